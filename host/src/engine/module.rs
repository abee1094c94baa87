//! A loaded module and the calls into it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use wasmtime::{Store, UpdateDeadline};

use super::bindings::{self, FinalizeResponse, ReconcileError, Request, Response};
use super::contract::{Contract, Guest, Pre};
use super::cpu::{CallMeter, CpuHad, ModuleCpu};
use super::error::HostCallOverran;
use super::resident::{Reloader, Resident};
use super::sandbox::Sandbox;
use super::{CallError, CompileSource, EPOCH_TICK, LoadError, budget};
use crate::limits::Limits;
use crate::meta::{Declared, Kind, ModuleMeta, Scope};
use crate::objects::{GuestReads, ObjectSource, ReadBounds, StaticObjects};
use crate::recorder::Tap;

/// What a guest answered: its response, or the error it chose to return.
/// (A guest that fails to answer at all is a [`CallError`].)
pub type Outcome<T> = Result<T, ReconcileError>;

/// What one call may see besides its request.
#[derive(Clone)]
pub struct CallContext {
    /// Where `get-object` and `list-objects` are answered from.
    pub objects: Arc<dyn ObjectSource>,
    /// Fixes the guest's wall clock; None for the real time.
    pub clock: Option<Timestamp>,
    /// Bounds on the call.
    pub limits: Limits,
    /// What the module may reach over HTTP; None: nothing.
    pub http: Option<Arc<crate::http::Outbound>>,
    /// Where the call's reads are recorded before they are answered (read
    /// tracking); None: not recorded.
    pub read_log: Option<Arc<crate::reads::ReadLog>>,
}

impl Default for CallContext {
    fn default() -> Self {
        CallContext {
            objects: Arc::new(StaticObjects::default()),
            clock: None,
            limits: Limits::default(),
            http: None,
            read_log: None,
        }
    }
}

/// A compiled, checked reconciler module, ready to run. Cheap to clone;
/// every call gets a fresh instance, so calls may run concurrently.
#[derive(Clone)]
pub struct Module {
    runner: Runner,
    meta: Arc<ModuleMeta>,
    compiled: CompileSource,
    load_time: Duration,
}

/// Runs calls in fresh instances; knows the module only by name.
#[derive(Clone)]
struct Runner {
    code: Arc<Resident>,
    name: Arc<str>,
    max_memory_bytes: usize,
    /// What this module's calls have used, so that a deadline is charged
    /// to the guest only when it had the time (see [`super::cpu`]).
    cpu: ModuleCpu,
}

impl Module {
    /// `reloader`: where to map the code from again once it was let go
    /// while idle; None keeps it for the module's life.
    pub(super) fn new(
        pre: Pre,
        digest: String,
        reloader: Option<Reloader>,
        source_name: &str,
        compiled: CompileSource,
        started: Instant,
        max_memory_bytes: usize,
    ) -> Result<Self, LoadError> {
        let mut runner = Runner {
            code: Arc::new(Resident::new(pre, digest, reloader)),
            name: Arc::from(source_name),
            max_memory_bytes,
            cpu: ModuleCpu::default(),
        };
        let info = runner
            .call(
                &CallContext::default(),
                Tap::Off,
                None,
                String::new(),
                0,
                "metadata",
                async |guest, store| guest.call_metadata(store).await,
            )
            .map_err(|source| LoadError::Metadata {
                source_name: source_name.to_owned(),
                source: Box::new(source),
            })?;
        let meta = ModuleMeta::from_declared(declared(info)).map_err(|reason| {
            LoadError::InvalidMetadata {
                source_name: source_name.to_owned(),
                reason,
            }
        })?;
        runner.name = Arc::from(meta.name.as_str());
        Ok(Module {
            runner,
            meta: Arc::new(meta),
            compiled,
            load_time: started.elapsed(),
        })
    }

    /// What the module declared.
    pub fn meta(&self) -> &ModuleMeta {
        &self.meta
    }

    /// The sha256 of the component's bytes, hex-encoded.
    pub fn digest(&self) -> &str {
        self.runner.code.digest()
    }

    /// The version of the `bosun:reconciler` contract the component targets.
    pub fn contract(&self) -> Contract {
        self.runner.code.contract()
    }

    /// Whether `other` is this very load (a clone of it), not another load
    /// of the module, even of the same bytes.
    pub fn is_same_load(&self, other: &Module) -> bool {
        Arc::ptr_eq(&self.runner.code, &other.runner.code)
    }

    /// Whether the load compiled the component or took it from the cache.
    pub fn compile_source(&self) -> CompileSource {
        self.compiled
    }

    /// How long loading took, compile (or cache read) and metadata call included.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// Whether the module's compiled code is in memory now; false after it
    /// was let go while idle (see [`EngineConfig::unload_idle_after`]), until
    /// the next call maps it again.
    ///
    /// [`EngineConfig::unload_idle_after`]: super::EngineConfig::unload_idle_after
    pub fn is_resident(&self) -> bool {
        self.runner.code.is_loaded()
    }

    pub(super) fn resident(&self) -> &Arc<Resident> {
        &self.runner.code
    }

    /// Runs `reconcile` in a fresh instance.
    ///
    /// The response is checked against the call's [`Limits`] (bytes and
    /// counts; a short requeue raised to the floor) and an error's message
    /// cut to size, so what leaves the engine is bounded.
    pub fn reconcile(
        &self,
        request: &Request,
        ctx: &CallContext,
    ) -> Result<Outcome<Response>, CallError> {
        self.reconcile_tapped(request, ctx, Tap::Off)
    }

    /// [`Module::reconcile`], with what the guest is handed recorded or
    /// replayed under `tap` (see [`crate::recorder`]).
    pub fn reconcile_tapped(
        &self,
        request: &Request,
        ctx: &CallContext,
        tap: Tap,
    ) -> Result<Outcome<Response>, CallError> {
        let (reads, object) = self.reads(ctx, &request.object);
        let mut outcome = self.runner.call(
            ctx,
            tap,
            Some(reads),
            object,
            request_size(request),
            "reconcile",
            async |guest, store| guest.call_reconcile(store, request).await,
        )?;
        let limits = self.runner.limits(ctx);
        match &mut outcome {
            Ok(response) => budget::check_response(&self.meta.name, response, &limits)?,
            Err(error) => budget::cut_error(error, &limits),
        }
        Ok(outcome)
    }

    /// Runs `finalize` in a fresh instance, bounded as [`Module::reconcile`].
    pub fn finalize(
        &self,
        request: &Request,
        ctx: &CallContext,
    ) -> Result<Outcome<FinalizeResponse>, CallError> {
        self.finalize_tapped(request, ctx, Tap::Off)
    }

    /// [`Module::finalize`] under `tap`, as [`Module::reconcile_tapped`].
    pub fn finalize_tapped(
        &self,
        request: &Request,
        ctx: &CallContext,
        tap: Tap,
    ) -> Result<Outcome<FinalizeResponse>, CallError> {
        let (reads, object) = self.reads(ctx, &request.object);
        let mut outcome = self.runner.call(
            ctx,
            tap,
            Some(reads),
            object,
            request_size(request),
            "finalize",
            async |guest, store| guest.call_finalize(store, request).await,
        )?;
        let limits = self.runner.limits(ctx);
        match &mut outcome {
            Ok(response) => budget::check_finalize(&self.meta.name, response, &limits)?,
            Err(error) => budget::cut_error(error, &limits),
        }
        Ok(outcome)
    }

    /// The reads a call about `object` may make, and the object's
    /// `namespace/name` for logs.
    fn reads(&self, ctx: &CallContext, object: &str) -> (GuestReads, String) {
        let (namespace, label) = primary_namespace(&self.meta, object);
        let limits = self.runner.limits(ctx);
        let reads = GuestReads {
            meta: self.meta.clone(),
            namespace,
            source: ctx.objects.clone(),
            log: ctx.read_log.clone(),
            bounds: ReadBounds {
                list_bytes: limits.memory_bytes,
                selector: bosun_selector::Bounds {
                    bytes: limits.selector_bytes as usize,
                    requirements: limits.selector_requirements as usize,
                },
                deadline: Some(Instant::now() + limits.timeout),
            },
        };
        (reads, label)
    }
}

impl Runner {
    /// The limits a call with `ctx` runs under: the memory cap never above
    /// the engine's.
    fn limits(&self, ctx: &CallContext) -> Limits {
        Limits {
            memory_bytes: ctx.limits.memory_bytes.min(self.max_memory_bytes),
            ..ctx.limits
        }
    }

    /// Runs `f` in a fresh instance under the call's deadline.
    ///
    /// A guest computing past its deadline is stopped by epoch interruption;
    /// a guest waiting in a host call (a sleep, a poll on a far deadline) is
    /// a pending future, dropped when the deadline passes. Either way the
    /// call returns within the deadline (and a tick), and the instance,
    /// its pooled slot and the thread are free again.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call's parts, each from another place; a struct would be built only to be taken apart here"
    )]
    fn call<R>(
        &self,
        ctx: &CallContext,
        tap: Tap,
        reads: Option<GuestReads>,
        object: String,
        request_bytes: usize,
        what: &str,
        f: impl AsyncFnOnce(&Guest, &mut Store<Sandbox>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let limits = self.limits(ctx);
        let _span =
            tracing::debug_span!("guest_call", module = %self.name, object = %object, call = what)
                .entered();
        // A request the guest could not even hold is the data's doing, not
        // the guest's: fail this object without calling.
        if request_bytes > limits.memory_bytes / 4 {
            return Err(CallError::RequestTooLarge {
                module: self.name.to_string(),
                size: request_bytes,
                limit_mib: limits.memory_bytes >> 20,
            });
        }
        let (pre, _in_use) = self.code.acquire().map_err(|reason| CallError::Reload {
            module: self.name.to_string(),
            reason,
        })?;
        let sandbox = Sandbox::new(
            self.name.clone(),
            Arc::from(object),
            &limits,
            ctx.clock,
            reads,
            ctx.http.clone(),
            tap,
        );
        let mut store = Store::new(pre.engine(), sandbox);
        store.limiter(|sandbox| &mut sandbox.limiter);
        // The epoch callback runs on the call's thread every tick the guest
        // computes through: it samples the CPU the call uses (for its
        // siblings to see) and stops the guest at its deadline.
        let meter = Arc::new(Mutex::new(CallMeter::start(&self.cpu)));
        let started = Instant::now();
        let timeout = limits.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback({
            let meter = Arc::clone(&meter);
            move |_| {
                if let Ok(mut meter) = meter.lock() {
                    meter.sample();
                }
                if started.elapsed() >= timeout {
                    return Err(wasmtime::Trap::Interrupt.into());
                }
                Ok(UpdateDeadline::Continue(1))
            }
        });

        // One tick of grace, so that a guest computing at the deadline is
        // stopped by the epoch (and reported as computing) rather than here.
        let wall = limits.timeout + EPOCH_TICK;
        let outcome = wasmtime_wasi::runtime::in_tokio(async {
            tokio::time::timeout(wall, async {
                let guest = pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(|error| (error, true))?;
                f(&guest, &mut store).await.map_err(|error| (error, false))
            })
            .await
        });
        let had = meter.lock().ok().and_then(|mut meter| meter.finish());
        let result = match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err((error, instantiating))) => {
                Err(self.classify(error, &store, &limits, request_bytes, instantiating))
            }
            Err(_elapsed) => Err(CallError::Blocked {
                module: self.name.to_string(),
                limit: limits.timeout,
            }),
        };
        let result = result.map_err(|error| starved(error, had));
        let printed = store.data().printed();
        if result.is_ok() && !printed.is_empty() {
            tracing::debug!(module = %self.name, output = %printed, "guest printed");
        }
        result
    }

    fn classify(
        &self,
        error: wasmtime::Error,
        store: &Store<Sandbox>,
        limits: &Limits,
        request_bytes: usize,
        instantiating: bool,
    ) -> CallError {
        let module = self.name.to_string();
        if store.data().limiter.denied {
            return CallError::MemoryLimit {
                module,
                limit_mib: limits.memory_bytes >> 20,
                request_bytes,
            };
        }
        if let Some(overran) = error.downcast_ref::<HostCallOverran>() {
            return CallError::HostCallOverran {
                module,
                call: overran.call,
                examined: overran.examined,
                limit: limits.timeout,
            };
        }
        if error.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
            return CallError::Timeout {
                module,
                limit: limits.timeout,
            };
        }
        let printed = store.data().printed();
        if let Some(at) = printed.find("panicked at") {
            return CallError::Panic {
                module,
                message: printed[at..].to_owned(),
            };
        }
        if instantiating {
            return CallError::Instantiate {
                module,
                reason: error,
            };
        }
        let reason = if printed.is_empty() {
            error
        } else {
            error.context(printed)
        };
        CallError::Trap { module, reason }
    }
}

/// A deadline the call reached while computing (the guest's code, or a
/// host function it called) counts against the guest only if it had the
/// CPU to use it (see [`super::cpu`]); otherwise the host was starved and
/// the failure is [`CallError::Starved`]. A guest waiting in WASI
/// ([`CallError::Blocked`]) chose to wait.
fn starved(error: CallError, had: Option<CpuHad>) -> CallError {
    match (error, had) {
        (
            CallError::Timeout { module, limit } | CallError::HostCallOverran { module, limit, .. },
            Some(had),
        ) if had.starved(limit) => CallError::Starved {
            module,
            limit,
            cpu: had.call,
        },
        (other, _) => other,
    }
}

/// The bytes a request copies into the guest.
fn request_size(request: &Request) -> usize {
    request.object.len()
        + request.children.iter().map(String::len).sum::<usize>()
        + request.settings.as_ref().map_or(0, String::len)
}

/// The primary object's namespace (when the primary kind is namespaced) and
/// its `namespace/name` for logs.
fn primary_namespace(meta: &ModuleMeta, object: &str) -> (Option<String>, String) {
    #[derive(serde::Deserialize, Default)]
    struct Meta {
        name: Option<String>,
        namespace: Option<String>,
    }
    #[derive(serde::Deserialize, Default)]
    struct Head {
        #[serde(default)]
        metadata: Meta,
    }
    let head: Head = serde_json::from_str(object).unwrap_or_default();
    let name = head.metadata.name.unwrap_or_default();
    match (meta.primary.scope, head.metadata.namespace) {
        (Scope::Namespaced, namespace) => {
            let namespace = namespace.unwrap_or_default();
            let label = format!("{namespace}/{name}");
            (Some(namespace), label)
        }
        (Scope::Cluster, _) => (None, name),
    }
}

/// What the guest's `metadata` export said, in the host's terms.
fn declared(info: bindings::ModuleInfo) -> Declared {
    Declared {
        name: info.name,
        version: info.version,
        primary: kind(info.primary),
        owns: info.owns.into_iter().map(kind).collect(),
        reads: info.reads.into_iter().map(kind).collect(),
        finalizer: info.finalizer,
        http_origins: info.http_origins,
    }
}

fn kind(kind: bindings::ApiKind) -> Kind {
    Kind {
        group: kind.group,
        version: kind.version,
        kind: kind.kind,
        plural: kind.plural,
        scope: match kind.scope {
            bindings::Scope::Namespaced => Scope::Namespaced,
            bindings::Scope::Cluster => Scope::Cluster,
        },
    }
}
