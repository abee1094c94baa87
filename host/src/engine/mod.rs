//! The sandboxed WebAssembly engine: compiles reconciler components once,
//! caches them on disk, and runs every call in a fresh pooled instance
//! under a deadline and a memory cap.
//!
//! The engine's API is synchronous. Compiling and calling block the thread,
//! so an async caller runs them with `tokio::task::spawn_blocking`. Inside,
//! each call is driven as a future (on the caller's Tokio runtime when it
//! has one, else on wasmtime-wasi's own) so that its deadline can cut a
//! guest blocked in a WASI call, not only one that computes.

pub mod bindings;
mod budget;
mod cache;
mod cage;
mod compat;
mod contract;
mod cpu;
mod error;
mod module;
pub mod recording;
mod refusals;
mod resident;
mod sandbox;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

pub use cache::CompileCache;
pub use cage::{CompileLimits, Compiler, LimitHit, THIS_EXECUTABLE, WORKER_SUBCOMMAND};
pub use contract::Contract;
pub use error::{CallError, Fault, LoadError};
pub use module::{CallContext, Module, Outcome};
pub use worker::serve as serve_compile_worker;
// The bounds live below the engine; re-exported where callers met them first.
pub use crate::limits::{DEFAULT_MIN_REQUEUE, Limits};

use cage::{Cage, CageError};
use resident::{Reloader, Unloader};
use sandbox::Sandbox;

/// How much of each linear memory slot stays resident between calls: with
/// PAGEMAP_SCAN only the dirtied pages of it are reset, so it can be large;
/// without it the low addresses are memset whole, so it must stay small.
fn keep_resident() -> usize {
    if pagemap_scan_available() {
        8 << 20
    } else {
        128 << 10
    }
}

/// Idle slots the pool keeps warm for their module beyond those it needs:
/// none. Every slot an instance ever used keeps up to [`keep_resident`]
/// bytes, so the slots a long-running host has touched are its idle
/// resident memory. wasmtime's default (100) prefers a never-used slot over
/// another module's idle one until that many idle slots exist: each hot
/// swap is a new module, so every swap took fresh slots (8 MiB each, ~440
/// MiB after 55 swaps). Any bound N above zero still lets the set creep:
/// whenever calls in flight leave fewer than N idle, the next call takes a
/// fresh slot, so it ends at N plus the most calls ever in flight, reached
/// slowly (the soak's steady host with N = 8: 14 slots resident 8 minutes
/// in, 19 eight minutes later). With none, a call without an idle slot of
/// its own module takes the least recently used idle one, and the slots
/// ever used are exactly the most instances that ever ran at once — so a
/// host's idle pool memory is that peak times [`keep_resident`], reached at
/// its busiest. Losing affinity costs a remap of the module's memory
/// image, not a compile.
const MAX_UNUSED_WARM_SLOTS: u32 = 0;

/// PAGEMAP_SCAN arrived in Linux 6.7.
fn pagemap_scan_available() -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let mut numbers = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    (major, minor) >= (6, 7)
}

/// How often the epoch advances: the granularity of call deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Settings for an [`Engine`].
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How many guest instances may be alive at once, across all modules.
    /// Bounds the pooling allocator; a call beyond it fails to instantiate.
    pub max_instances: u32,
    /// The most linear memory any one instance may have. Per-module caps
    /// ([`Limits::memory_bytes`]) must be at most this.
    pub max_memory_bytes: usize,
    /// Where compiled components are cached; None disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Let go of a module's compiled code once no call has used it for this
    /// long, and map it again from the cache on its next call. Needs the
    /// cache; None keeps every module's code in memory.
    pub unload_idle_after: Option<Duration>,
    /// How components are compiled: in a worker process under limits, or
    /// in this process without any (see [`Compiler`]). The default is
    /// [`Compiler::for_this_process`]: caged in a `bosun` binary, in
    /// process elsewhere.
    pub compiler: Compiler,
}

/// The most core module instances one component may instantiate (see
/// [`Engine::new`]): a Python guest needs 14.
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 32;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_instances: 64,
            max_memory_bytes: 256 << 20,
            cache_dir: None,
            unload_idle_after: None,
            compiler: Compiler::for_this_process(),
        }
    }
}

impl EngineConfig {
    /// The default cache directory: `$XDG_CACHE_HOME/bosun/modules`, else
    /// `~/.cache/bosun/modules`.
    pub fn default_cache_dir() -> Option<PathBuf> {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
            .map(|base| base.join("bosun").join("modules"))
    }
}

/// Compiles and runs reconciler components. One per host process.
pub struct Engine {
    wasmtime: wasmtime::Engine,
    linker: Arc<Linker<Sandbox>>,
    cache: Option<CompileCache>,
    max_memory_bytes: usize,
    max_instances: u32,
    /// Present when idle modules' code is let go.
    unloader: Option<Unloader>,
    /// Present when components are compiled in worker processes.
    cage: Option<Cage>,
    /// Where the cage's files go when there is no usable cache: a
    /// directory private to this process, removed with the engine. Made
    /// on first need only: in the shipped image the cache's volume is the
    /// one writable place, and `/tmp` is read-only.
    scratch: std::sync::OnceLock<Result<tempfile::TempDir, String>>,
    _ticker: EpochTicker,
}

/// Where a load came from and how long it took; for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileSource {
    /// Compiled with Cranelift now.
    Compiled,
    /// Loaded from the on-disk compile cache.
    Cache,
}

impl Engine {
    /// An engine with the pooling allocator, epoch interruption and the
    /// bosun linker (WASI with no filesystem, network or environment, plus
    /// the `bosun:reconciler/host` functions of every served version).
    pub fn new(config: EngineConfig) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::new();
        // Per component: a Python guest (componentize-py 0.25.1: CPython,
        // libc, the WASI adapter and their shims as separate core modules)
        // instantiates 14 core modules, 1 memory and 2 tables, where a Rust
        // guest needs a few; 32 core instances leave it twice its need.
        // The totals let every instance slot hold the largest component
        // allowed, so a pool full of Python guests does not run out of core
        // instances before it runs out of slots. They bound metadata that
        // wasmtime allocates per instantiation, not memory reserved up front.
        pool.total_component_instances(config.max_instances)
            .total_core_instances(config.max_instances * MAX_CORE_INSTANCES_PER_COMPONENT)
            .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
            .total_memories(config.max_instances * 2)
            .max_memories_per_component(2)
            .total_tables(config.max_instances * 8)
            .max_tables_per_component(8)
            .max_memory_size(config.max_memory_bytes)
            .total_stacks(config.max_instances)
            // A fresh instance per call would otherwise fault in every page
            // it touches (stack, heap) again: a page fault costs more than
            // zeroing the page. Keep memory resident and reset only the
            // pages the last call dirtied (PAGEMAP_SCAN, Linux 6.7+; older
            // kernels memset the low addresses instead).
            .linear_memory_keep_resident(keep_resident())
            .max_unused_warm_slots(MAX_UNUSED_WARM_SLOTS)
            .table_keep_resident(64 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto);

        let mut wasm = compile_config();
        wasm.parallel_compilation(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let wasmtime = wasmtime::Engine::new(&wasm)?;

        let mut linker = Linker::new(&wasmtime);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        // wasi:http's types and outgoing-handler only: a component importing
        // them links, and every request goes through the send hook
        // (crate::http); one that does not is unaffected.
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        contract::add_to_linker(&mut linker)?;

        let cache = config
            .cache_dir
            .map(|dir| CompileCache::new(dir, &wasmtime));
        let unloader = match (&cache, config.unload_idle_after) {
            (Some(_), Some(idle)) => Some(Unloader::start(idle)),
            _ => None,
        };
        let cage = match config.compiler {
            Compiler::Caged {
                program,
                limits,
                concurrency,
            } => Some(Cage::new(program, limits, concurrency)),
            Compiler::InProcess => None,
        };
        let ticker = EpochTicker::start(wasmtime.clone());
        Ok(Engine {
            wasmtime,
            linker: Arc::new(linker),
            cache,
            max_memory_bytes: config.max_memory_bytes,
            max_instances: config.max_instances,
            unloader,
            cage,
            scratch: std::sync::OnceLock::new(),
            _ticker: ticker,
        })
    }

    /// How many guest instances may be alive at once: the most calls that
    /// can run together across every module.
    pub fn max_instances(&self) -> usize {
        self.max_instances as usize
    }

    /// The compile cache, if enabled.
    pub fn cache(&self) -> Option<&CompileCache> {
        self.cache.as_ref()
    }

    /// The limits compiles run under; None when components are compiled in
    /// this process, without any.
    pub fn compile_limits(&self) -> Option<&CompileLimits> {
        self.cage.as_ref().map(Cage::limits)
    }

    /// Loads a module from a file. See [`Engine::load`].
    pub fn load_file(&self, path: impl AsRef<std::path::Path>) -> Result<Module, LoadError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        self.load(&path.display().to_string(), &bytes)
    }

    /// Compiles a component (or takes it from the cache), checks it against
    /// the `bosun:reconciler/reconciler` world of the contract version its
    /// imports name (see [`Contract`]), and reads its metadata.
    /// Blocks while compiling: call it off the async runtime.
    ///
    /// With [`Compiler::Caged`] the bytes are first held to the size cap,
    /// a refusal remembered for them is returned as it is, and the compile
    /// runs in a worker process under the limits (waiting for a free
    /// compile slot); its artifact is taken in through the cache's checks.
    /// A limit hit is [`LoadError::CompileLimit`].
    ///
    /// `source_name` says where the bytes came from, for error messages.
    pub fn load(&self, source_name: &str, bytes: &[u8]) -> Result<Module, LoadError> {
        let started = Instant::now();
        if let Some(limits) = self.compile_limits()
            && bytes.len() > limits.max_bytes
        {
            // Before anything parses the bytes, the header check included.
            return Err(LoadError::CompileLimit {
                source_name: source_name.to_owned(),
                hit: LimitHit::Size {
                    size: bytes.len(),
                    max: limits.max_bytes,
                },
                remembered: None,
            });
        }
        check_component_header(source_name, bytes)?;
        let digest = hex::encode(Sha256::digest(bytes));
        let (component, compiled) = match self
            .cache
            .as_ref()
            .and_then(|c| c.get(&self.wasmtime, &digest))
        {
            Some(component) => (component, CompileSource::Cache),
            None => (
                self.compile(source_name, &digest, bytes)?,
                CompileSource::Compiled,
            ),
        };
        let contract = contract::detect(&self.wasmtime, &component)
            .map_err(|unserved| LoadError::unserved(source_name, unserved))?;
        let pre = contract::Pre::link(&self.linker, &component, contract).map_err(|reason| {
            if contract == Contract::V0_1
                && contract::predates_http_origins(&self.wasmtime, &component)
            {
                LoadError::EarlyContract {
                    source_name: source_name.to_owned(),
                }
            } else {
                LoadError::WrongWorld {
                    source_name: source_name.to_owned(),
                    contract,
                    reason,
                }
            }
        })?;
        // Only code the cache holds may be let go: it is mapped again from there.
        let reloader = match (&self.unloader, &self.cache) {
            (Some(_), Some(cache)) if cache.contains(&digest) => Some(Reloader {
                cache: cache.clone(),
                linker: self.linker.clone(),
                engine: self.wasmtime.clone(),
            }),
            _ => None,
        };
        let module = Module::new(
            pre,
            digest,
            reloader,
            source_name,
            compiled,
            started,
            self.max_memory_bytes,
        )?;
        if let Some(unloader) = &self.unloader {
            unloader.watch(module.resident());
        }
        tracing::info!(
            module = %module.meta().name,
            version = %module.meta().version,
            contract = %module.contract(),
            digest = %module.digest(),
            source = source_name,
            from_cache = compiled == CompileSource::Cache,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded module"
        );
        Ok(module)
    }
}

impl Engine {
    /// Compiles a component the cache does not hold: in the cage when
    /// there is one, else in this process.
    fn compile(
        &self,
        source_name: &str,
        digest: &str,
        bytes: &[u8],
    ) -> Result<Component, LoadError> {
        let Some(cage) = &self.cage else {
            let component =
                Component::new(&self.wasmtime, bytes).map_err(|reason| LoadError::Compile {
                    source_name: source_name.to_owned(),
                    reason,
                })?;
            if let Some(cache) = &self.cache {
                cache.put(digest, &component);
            }
            return Ok(component);
        };
        let cache = self.cache.as_ref().filter(|cache| cache.is_usable());
        let limit = |hit, remembered| LoadError::CompileLimit {
            source_name: source_name.to_owned(),
            hit,
            remembered,
        };
        let unavailable = |reason: String| LoadError::CompileUnavailable {
            source_name: source_name.to_owned(),
            reason,
        };
        if let Some(refused) = cache.and_then(|c| refusals::recall(c, digest, cage.limits())) {
            tracing::warn!(source = source_name, %digest, hit = %refused.hit, at = %refused.at, "not compiling a component refused before under the same limits");
            return Err(limit(refused.hit, Some(refused.at)));
        }
        let scratch = match cache {
            Some(cache) => cache.dir(),
            None => self.scratch()
                .map_err(|why| unavailable(format!("{why}; give the host a compile cache it can write (--cache-dir) or a writable TMPDIR")))?,
        };
        let artifact = cage.compile(bytes, scratch).map_err(|error| match error {
            CageError::Limit(hit) => {
                tracing::warn!(source = source_name, %digest, %hit, "compile refused: over a limit of the compile cage");
                if let (Some(cache), LimitHit::Time { .. } | LimitHit::Memory { .. }) = (cache, hit) {
                    refusals::remember(cache, digest, cage.limits(), hit);
                }
                limit(hit, None)
            }
            CageError::Invalid(message) => LoadError::Compile {
                source_name: source_name.to_owned(),
                reason: wasmtime::Error::msg(message),
            },
            CageError::Unavailable(reason) => unavailable(reason),
        })?;
        let component = match cache {
            // Checked exactly as a cache entry is: tagged by this host as it
            // takes it, verified and mapped by `get`.
            Some(cache) => {
                if !cache.admit(digest, artifact) {
                    return Err(unavailable(format!(
                        "the compile cache {} could not take the artifact",
                        cache.dir().display()
                    )));
                }
                cache.get(&self.wasmtime, digest)
            }
            None => map_artifact(&self.wasmtime, &artifact),
        };
        component.ok_or_else(|| {
            unavailable("the compile worker's artifact does not load in this engine (is the worker a bosun binary of this very build?)".into())
        })
    }
}

impl Engine {
    /// The private directory the cage works in when there is no usable
    /// cache, made on first use.
    fn scratch(&self) -> Result<&Path, String> {
        self.scratch
            .get_or_init(|| {
                tempfile::Builder::new()
                    .prefix("bosun-compile-")
                    .tempdir()
                    .map_err(|e| {
                        format!("no private directory for the compile worker's files: {e}")
                    })
            })
            .as_ref()
            .map(tempfile::TempDir::path)
            .map_err(Clone::clone)
    }
}

/// Maps an artifact the cage wrote into the host's private scratch
/// directory (no cache to take it). None when wasmtime refuses it.
fn map_artifact(
    engine: &wasmtime::Engine,
    artifact: &tempfile::NamedTempFile,
) -> Option<Component> {
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fd/{}", artifact.as_file().as_raw_fd());
    // SAFETY: the file lies in a directory private to this process and
    // only this process has it open: the cage copied the worker's output
    // into it, and the worker has exited. wasmtime checks the artifact's
    // header and engine compatibility; the mapping outlives the file.
    match unsafe { Component::deserialize_file(engine, &path) } {
        Ok(component) => Some(component),
        Err(error) => {
            tracing::warn!(%error, "the compile worker's artifact does not load");
            None
        }
    }
}

/// The settings that decide what compiled code looks like, shared by the
/// engine and the compile worker so that the worker's artifacts load in
/// the engine (wasmtime refuses any that do not match). The engine adds
/// only what does not change the code: its allocator and its threads.
pub(crate) fn compile_config() -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .cranelift_opt_level(OptLevel::Speed);
    config
}

/// Rejects what is not a component before Cranelift sees it, with a
/// message that says what it is instead.
fn check_component_header(source_name: &str, bytes: &[u8]) -> Result<(), LoadError> {
    let fail = |reason: &str| LoadError::NotAComponent {
        source_name: source_name.to_owned(),
        reason: reason.to_owned(),
    };
    match bytes {
        [0, b'a', b's', b'm', _, _, 0x01, 0x00, ..] => Ok(()),
        [0, b'a', b's', b'm', 0x01, 0x00, 0x00, 0x00, ..] => {
            Err(fail("it is a core WebAssembly module"))
        }
        [0, b'a', b's', b'm', ..] => Err(fail("unknown WebAssembly binary layer")),
        _ if bytes.is_empty() => Err(fail("it is empty")),
        _ if std::str::from_utf8(bytes).is_ok_and(|s| s.trim_start().starts_with("(component")) => {
            Ok(())
        }
        _ => Err(fail("it does not start with the WebAssembly magic bytes")),
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a thread of its own.
/// A late tick is simply late: deadlines are a floor, never early.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: wasmtime::Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("bosun-epoch".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
