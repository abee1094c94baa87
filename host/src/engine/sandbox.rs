//! The per-call store data: a locked-down WASI context, the memory limiter,
//! and the host functions the guest may call.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::Limits;
use super::bindings::{self, LogLevel, v0_1};
use super::compat;
use super::error::HostCallOverran;
use crate::http::{GuestHttp, Outbound};
use crate::objects::{GuestReads, ReadError};
use crate::recorder::Tap;
use crate::recorder::capture::Source;
use crate::recorder::format::{ReadAnswer, ReadAsk};
use crate::recorder::http::ReplayHttp;
use crate::recorder::tape::{TapedClock, TapedRng};

/// How much of the guest's stdout and stderr is kept (panic messages, prints).
pub(crate) const CAPTURED_OUTPUT_BYTES: usize = 1 << 20;
/// The longest log line kept; longer ones are cut.
const MAX_LOG_LINE_BYTES: usize = 4096;
/// The most random bytes one `get-random-bytes` call may ask for. The host
/// allocates them before copying them into the guest, outside the guest's
/// memory cap; Rust guests ask for a few dozen bytes at a time.
const MAX_RANDOM_BYTES: u64 = 1 << 20;
/// The most resources (streams, pollables) a guest may hold at once. Each
/// lives in host memory; a reconciler needs a handful.
const MAX_RESOURCES: usize = 1024;

/// Everything one guest call can touch.
pub(crate) struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) output: MemoryOutputPipe,
    reads: Option<GuestReads>,
    module: Arc<str>,
    object: Arc<str>,
    log_lines: u32,
    max_log_lines: u32,
    http_ctx: wasmtime_wasi_http::WasiHttpCtx,
    http: Hooks,
    tap: Tap,
}

/// The call's `wasi:http` hooks: the real send, or a replay's answers.
enum Hooks {
    Live(GuestHttp),
    Replay(ReplayHttp),
}

impl wasmtime_wasi_http::WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        match self {
            Hooks::Live(live) => live.send_request(request, options, fut),
            Hooks::Replay(replay) => replay.send_request(request, options, fut),
        }
    }
}

impl Sandbox {
    /// A sandbox with no filesystem, no network, no environment; the wall
    /// clock fixed at `clock` when given. Under `tap`, what the guest is
    /// handed (clock, random, reads, HTTP) is recorded, or taken from a
    /// recording instead.
    pub(crate) fn new(
        module: Arc<str>,
        object: Arc<str>,
        limits: &Limits,
        clock: Option<Timestamp>,
        reads: Option<GuestReads>,
        http: Option<Arc<Outbound>>,
        tap: Tap,
    ) -> Self {
        let output = MemoryOutputPipe::new(CAPTURED_OUTPUT_BYTES);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(output.clone())
            .stderr(output.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(MAX_RANDOM_BYTES.min(limits.memory_bytes as u64));
        match &tap {
            Tap::Off => {
                if let Some(now) = clock {
                    wasi.wall_clock(FixedClock(now));
                }
            }
            Tap::Record(recorder) => {
                wasi.wall_clock(TapedClock(recorder.clone()))
                    .secure_random(TapedRng::new(recorder.clone(), Source::Secure))
                    .insecure_random(TapedRng::new(recorder.clone(), Source::Insecure))
                    .insecure_random_seed(recorder.insecure_seed());
            }
            Tap::Replay(replayer) => {
                wasi.wall_clock(TapedClock(replayer.clone()))
                    .secure_random(TapedRng::new(replayer.clone(), Source::Secure))
                    .insecure_random(TapedRng::new(replayer.clone(), Source::Insecure))
                    .insecure_random_seed(replayer.insecure_seed());
            }
        }
        let hooks = match &tap {
            Tap::Replay(replayer) => Hooks::Replay(ReplayHttp(replayer.clone())),
            Tap::Off => Hooks::Live(GuestHttp::new(http, object.clone(), limits.timeout)),
            Tap::Record(recorder) => Hooks::Live(
                GuestHttp::new(http, object.clone(), limits.timeout).recording(recorder.clone()),
            ),
        };
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        Sandbox {
            wasi: wasi.build(),
            table,
            limiter: MemoryLimiter {
                limit: limits.memory_bytes,
                denied: false,
            },
            output,
            reads,
            http: hooks,
            tap,
            http_ctx: wasmtime_wasi_http::WasiHttpCtx::new(),
            module,
            object,
            log_lines: 0,
            max_log_lines: limits.log_lines,
        }
    }

    /// What the guest printed, lossily decoded.
    pub(crate) fn printed(&self) -> String {
        String::from_utf8_lossy(&self.output.contents())
            .trim_end()
            .to_owned()
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for Sandbox {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http_ctx,
            table: &mut self.table,
            hooks: &mut self.http,
        }
    }
}

/// Caps linear memory per call and remembers whether the cap was hit, so
/// that the trap that follows can be reported as what it is.
pub(crate) struct MemoryLimiter {
    limit: usize,
    pub(crate) denied: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.denied = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Rust guests use one small function table; a runaway one is a bug.
        Ok(desired <= 1 << 20)
    }
}

struct FixedClock(Timestamp);

impl HostWallClock for FixedClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        Duration::try_from(self.0.as_duration()).unwrap_or_default()
    }
}

impl bindings::bosun::reconciler::types::Host for Sandbox {}

impl bindings::bosun::reconciler::host::Host for Sandbox {
    fn log(&mut self, level: LogLevel, mut message: String) -> wasmtime::Result<()> {
        self.log_lines = self.log_lines.saturating_add(1);
        if self.log_lines > self.max_log_lines {
            if self.log_lines == self.max_log_lines + 1 {
                tracing::warn!(module = %self.module, object = %self.object, "guest logged more than {} lines in one call; dropping the rest", self.max_log_lines);
            }
            return Ok(());
        }
        if message.len() > MAX_LOG_LINE_BYTES {
            let kept = crate::meta::truncate_at_char_boundary(&message, MAX_LOG_LINE_BYTES).len();
            message.truncate(kept);
            message.push('…');
        }
        // Displayed, not debugged: unquoted like the guest_call span's fields.
        let module = tracing::field::display(&*self.module);
        let object = tracing::field::display(&*self.object);
        match level {
            LogLevel::Trace => tracing::trace!(target: "bosun::guest", module, object, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "bosun::guest", module, object, "{message}"),
            LogLevel::Info => tracing::info!(target: "bosun::guest", module, object, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "bosun::guest", module, object, "{message}"),
            LogLevel::Error => tracing::error!(target: "bosun::guest", module, object, "{message}"),
        }
        Ok(())
    }

    fn get_object(
        &mut self,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
    ) -> wasmtime::Result<Result<Option<String>, String>> {
        let _span = tracing::debug_span!("read", verb = "get", %kind, namespace = namespace.as_deref().unwrap_or(""), %name).entered();
        let ask = |namespace: Option<String>| ReadAsk::Get {
            api_version: api_version.clone(),
            kind: kind.clone(),
            namespace,
            name: name.clone(),
        };
        match &self.tap {
            Tap::Replay(replayer) => Ok(match replayer.read(&ask(namespace)) {
                Ok(ReadAnswer::Found(found)) => Ok(found),
                Ok(ReadAnswer::Refused(message)) | Err(message) => Err(message),
                Ok(ReadAnswer::Items(_)) => Err(mismatched()),
            }),
            Tap::Off => answer(
                self.reads()
                    .and_then(|reads| reads.get(&api_version, &kind, namespace.as_deref(), &name)),
            ),
            Tap::Record(recorder) => {
                let answered = answer(self.reads().and_then(|reads| {
                    reads.get(&api_version, &kind, namespace.as_deref(), &name)
                }))?;
                recorder.read(
                    ask(namespace),
                    match &answered {
                        Ok(found) => ReadAnswer::Found(found.clone()),
                        Err(message) => ReadAnswer::Refused(message.clone()),
                    },
                );
                Ok(answered)
            }
        }
    }

    fn list_objects(
        &mut self,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        label_selector: Option<String>,
    ) -> wasmtime::Result<Result<Vec<String>, String>> {
        let _span = tracing::debug_span!("read", verb = "list", %kind, namespace = namespace.as_deref().unwrap_or(""), selector = label_selector.as_deref().unwrap_or("")).entered();
        let list = |this: &Self| {
            answer(this.reads().and_then(|reads| {
                reads.list(
                    &api_version,
                    &kind,
                    namespace.as_deref(),
                    label_selector.as_deref(),
                )
            }))
        };
        let ask = || ReadAsk::List {
            api_version: api_version.clone(),
            kind: kind.clone(),
            namespace: namespace.clone(),
            label_selector: label_selector.clone(),
        };
        match &self.tap {
            Tap::Replay(replayer) => Ok(match replayer.read(&ask()) {
                Ok(ReadAnswer::Items(items)) => Ok(items),
                Ok(ReadAnswer::Refused(message)) | Err(message) => Err(message),
                Ok(ReadAnswer::Found(_)) => Err(mismatched()),
            }),
            Tap::Off => list(self),
            Tap::Record(recorder) => {
                let answered = list(self)?;
                recorder.read(
                    ask(),
                    match &answered {
                        Ok(items) => ReadAnswer::Items(items.clone()),
                        Err(message) => ReadAnswer::Refused(message.clone()),
                    },
                );
                Ok(answered)
            }
        }
    }
}

/// A recording whose answer is of the other read's shape was not written
/// by a host.
fn mismatched() -> String {
    "the recording's answer to this read is of the wrong shape".to_owned()
}

/// A read's answer for the guest: a refusal is the guest's to handle; a
/// read that ran into the call's deadline ends the call, saying so.
fn answer<T>(read: Result<T, ReadError>) -> wasmtime::Result<Result<T, String>> {
    match read {
        Ok(answer) => Ok(Ok(answer)),
        Err(ReadError::Refused(message)) => Ok(Err(message)),
        Err(ReadError::Overran { call, examined }) => {
            Err(wasmtime::Error::new(HostCallOverran { call, examined }))
        }
    }
}

/// 0.1.0's host interface is 0.2.0's: the same functions, answered by the
/// same code.
impl v0_1::bosun::reconciler::types::Host for Sandbox {}

impl v0_1::bosun::reconciler::host::Host for Sandbox {
    fn log(
        &mut self,
        level: v0_1::bosun::reconciler::host::LogLevel,
        message: String,
    ) -> wasmtime::Result<()> {
        bindings::bosun::reconciler::host::Host::log(self, compat::v0_1::log_level(level), message)
    }

    fn get_object(
        &mut self,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
    ) -> wasmtime::Result<Result<Option<String>, String>> {
        bindings::bosun::reconciler::host::Host::get_object(
            self,
            api_version,
            kind,
            namespace,
            name,
        )
    }

    fn list_objects(
        &mut self,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        label_selector: Option<String>,
    ) -> wasmtime::Result<Result<Vec<String>, String>> {
        bindings::bosun::reconciler::host::Host::list_objects(
            self,
            api_version,
            kind,
            namespace,
            label_selector,
        )
    }
}

impl Sandbox {
    fn reads(&self) -> Result<&GuestReads, ReadError> {
        self.reads.as_ref().ok_or_else(|| {
            ReadError::Refused("reads are not available while the module is being loaded".into())
        })
    }
}
