//! The per-call store data: a locked-down WASI context, the memory limiter,
//! and the host functions the guest may call.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::{self, LogLevel};
use crate::objects::GuestReads;

/// How much of the guest's stdout and stderr is kept (panic messages, prints).
pub(crate) const CAPTURED_OUTPUT_BYTES: usize = 1 << 20;
/// Log lines a guest may write in one call; the rest are counted, not written.
const MAX_LOG_LINES: u32 = 256;
/// The longest log line kept; longer ones are cut.
const MAX_LOG_LINE_BYTES: usize = 4096;

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
}

impl Sandbox {
    /// A sandbox with no filesystem, no network, no environment; the wall
    /// clock fixed at `clock` when given.
    pub(crate) fn new(
        module: Arc<str>,
        object: Arc<str>,
        memory_limit: usize,
        clock: Option<Timestamp>,
        reads: Option<GuestReads>,
    ) -> Self {
        let output = MemoryOutputPipe::new(CAPTURED_OUTPUT_BYTES);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(output.clone())
            .stderr(output.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some(now) = clock {
            wasi.wall_clock(FixedClock(now));
        }
        Sandbox {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                limit: memory_limit,
                denied: false,
            },
            output,
            reads,
            module,
            object,
            log_lines: 0,
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
    fn log(&mut self, level: LogLevel, mut message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            if self.log_lines == MAX_LOG_LINES + 1 {
                tracing::warn!(module = %self.module, object = %self.object, "guest logged more than {MAX_LOG_LINES} lines in one call; dropping the rest");
            }
            return;
        }
        if message.len() > MAX_LOG_LINE_BYTES {
            let kept = crate::meta::truncate_at_char_boundary(&message, MAX_LOG_LINE_BYTES).len();
            message.truncate(kept);
            message.push('…');
        }
        let (module, object) = (&*self.module, &*self.object);
        match level {
            LogLevel::Trace => tracing::trace!(target: "bosun::guest", module, object, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "bosun::guest", module, object, "{message}"),
            LogLevel::Info => tracing::info!(target: "bosun::guest", module, object, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "bosun::guest", module, object, "{message}"),
            LogLevel::Error => tracing::error!(target: "bosun::guest", module, object, "{message}"),
        }
    }

    fn get_object(
        &mut self,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
    ) -> Result<Option<String>, String> {
        self.reads()?
            .get(&api_version, &kind, namespace.as_deref(), &name)
    }

    fn list_objects(
        &mut self,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        label_selector: Option<String>,
    ) -> Result<Vec<String>, String> {
        self.reads()?.list(
            &api_version,
            &kind,
            namespace.as_deref(),
            label_selector.as_deref(),
        )
    }
}

impl Sandbox {
    fn reads(&self) -> Result<&GuestReads, String> {
        self.reads
            .as_ref()
            .ok_or_else(|| "reads are not available while the module is being loaded".to_owned())
    }
}
