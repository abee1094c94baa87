//! Compiled code held in memory only while a module is in use.
//!
//! A loaded module's compiled code is mapped from the compile cache, and
//! the pooling allocator keeps its memory images; with fifty cnat modules in
//! one host that was about 1.8 MiB of mapped code a module, most of what an
//! idle module cost (`cargo xtask bench`, many-modules rows). When the engine
//! has a compile cache and [`EngineConfig::unload_idle_after`] is set, a
//! module no call has used for that long lets go of its code; the next call
//! maps it again from the cache, where the verified artifact stays (a few
//! milliseconds, once). Everything else about the module (its metadata, its
//! controller, its watches) stays as it was.
//!
//! [`EngineConfig::unload_idle_after`]: super::EngineConfig::unload_idle_after

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::component::Linker;

use super::CompileCache;
use super::contract::{Contract, Pre};
use super::sandbox::Sandbox;

/// How to map a module's code again: the cache holding its artifact and
/// the linker its imports resolve against.
#[derive(Clone)]
pub(super) struct Reloader {
    pub cache: CompileCache,
    pub linker: Arc<Linker<Sandbox>>,
    pub engine: wasmtime::Engine,
}

/// One module's compiled code, present or let go.
pub(super) struct Resident {
    digest: String,
    /// The contract version the code is linked for, again on each reload.
    contract: Contract,
    /// None: the code stays for the module's life (no cache to reload from,
    /// or unloading is off).
    reloader: Option<Reloader>,
    state: Mutex<State>,
}

struct State {
    pre: Option<Pre>,
    /// Calls running now; a module is never idle while one runs.
    calls: usize,
    last_used: Instant,
}

/// A call's hold on the code; the module counts as used until it drops.
pub(super) struct InUse<'a>(&'a Resident);

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.calls -= 1;
        state.last_used = Instant::now();
    }
}

impl Resident {
    pub fn new(pre: Pre, digest: String, reloader: Option<Reloader>) -> Self {
        Resident {
            digest,
            contract: pre.contract(),
            reloader,
            state: Mutex::new(State {
                pre: Some(pre),
                calls: 0,
                last_used: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The code for one call, mapped again from the cache if it was let go.
    pub fn acquire(&self) -> Result<(Pre, InUse<'_>), String> {
        let mut state = self.lock();
        let pre = match &state.pre {
            Some(pre) => pre.clone(),
            None => {
                // Under the lock: concurrent first calls map the code once.
                let pre = self.reload()?;
                state.pre = Some(pre.clone());
                pre
            }
        };
        state.calls += 1;
        state.last_used = Instant::now();
        Ok((pre, InUse(self)))
    }

    fn reload(&self) -> Result<Pre, String> {
        let reloader = self
            .reloader
            .as_ref()
            .ok_or("its code was let go with no cache to reload it from")?;
        let started = Instant::now();
        let component = reloader
            .cache
            .get(&reloader.engine, &self.digest)
            .ok_or_else(|| {
                format!(
                    "its compiled code is no longer in the compile cache {}",
                    reloader.cache.dir().display()
                )
            })?;
        let pre = Pre::link(&reloader.linker, &component, self.contract)
            .map_err(|error| format!("its compiled code no longer links: {error:#}"))?;
        tracing::debug!(
            digest = %self.digest,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "mapped an idle module's code again"
        );
        Ok(pre)
    }

    /// Lets go of the code if no call has used it for `idle`; true if it did.
    pub fn unload_if_idle(&self, idle: Duration) -> bool {
        if self.reloader.is_none() {
            return false;
        }
        let mut state = self.lock();
        if state.pre.is_none() || state.calls > 0 || state.last_used.elapsed() < idle {
            return false;
        }
        state.pre = None;
        true
    }

    /// The sha256 of the component's bytes, hex-encoded.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The contract version the code targets.
    pub fn contract(&self) -> Contract {
        self.contract
    }

    /// Whether the code is in memory now.
    pub fn is_loaded(&self) -> bool {
        self.lock().pre.is_some()
    }
}

/// Every module of an engine that may unload, and the thread that unloads
/// the idle ones.
pub(super) struct Unloader {
    modules: Arc<Mutex<Vec<Weak<Resident>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Unloader {
    pub fn start(idle: Duration) -> Self {
        let modules: Arc<Mutex<Vec<Weak<Resident>>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        // Often enough that a module goes within a quarter of `idle` of
        // falling idle; never busier than ten times a second.
        let every = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(10));
        let thread = std::thread::Builder::new()
            .name("bosun-unload".into())
            .spawn({
                let (modules, stop) = (modules.clone(), stop.clone());
                move || {
                    loop {
                        // Dropping the unloader unparks the thread at once.
                        std::thread::park_timeout(every);
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        sweep(&modules, idle);
                    }
                }
            })
            .expect("spawning the unload thread");
        Unloader {
            modules,
            stop,
            thread: Some(thread),
        }
    }

    /// Watches `module` from now on.
    pub fn watch(&self, module: &Arc<Resident>) {
        self.modules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::downgrade(module));
    }
}

fn sweep(modules: &Mutex<Vec<Weak<Resident>>>, idle: Duration) {
    let live: Vec<Arc<Resident>> = {
        let mut modules = modules.lock().unwrap_or_else(PoisonError::into_inner);
        modules.retain(|m| m.strong_count() > 0);
        modules.iter().filter_map(Weak::upgrade).collect()
    };
    let unloaded = live.iter().filter(|m| m.unload_if_idle(idle)).count();
    if unloaded > 0 {
        tracing::debug!(
            unloaded,
            idle_s = idle.as_secs_f64(),
            "let go of idle modules' code"
        );
        release_freed_heap();
    }
}

/// Hands the heap a module's code used back to the system: glibc keeps
/// freed memory in its arenas otherwise, and the host's resident size would
/// not show what unloading saved.
fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims glibc's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Drop for Unloader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
