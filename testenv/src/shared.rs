//! The process-wide environments: one control plane (or control plane and
//! node) per test process, started on first use on a thread that keeps its
//! runtime alive, and torn down by an exit hook, since a `static`'s `Drop`
//! never runs.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use crate::env::{TestEnv, TestEnvBuilder};
use crate::error::Error;
use crate::node::{self, NodeOptions};

impl TestEnv {
    /// One environment per process, shared by every caller: started on first
    /// use (with default options, or the current cluster under
    /// `USE_EXISTING_CLUSTER`) and torn down when the process exits.
    ///
    /// Tests in one test binary can share it to avoid paying startup once per
    /// test; they must then use distinct namespaces and object names. The
    /// environment's runtime lives on a dedicated thread, so [`TestEnv::client`]
    /// works from any test's runtime. If the first start failed, every caller
    /// gets that error.
    pub async fn shared() -> Result<&'static TestEnv, Error> {
        static SHARED: tokio::sync::OnceCell<Result<&'static TestEnv, Arc<Error>>> =
            tokio::sync::OnceCell::const_new();
        let result = SHARED.get_or_init(|| start_shared(TestEnv::builder)).await;
        result
            .as_ref()
            .copied()
            .map_err(|e| Error::Shared(Arc::clone(e)))
    }

    /// [`TestEnv::shared`] with a node ([`TestEnvBuilder::node`]): one
    /// control plane and node per process, for the node-backed tests of a
    /// test binary. Torn down when the process exits.
    pub async fn shared_with_node() -> Result<&'static TestEnv, Error> {
        static SHARED: tokio::sync::OnceCell<Result<&'static TestEnv, Arc<Error>>> =
            tokio::sync::OnceCell::const_new();
        let result = SHARED
            .get_or_init(|| start_shared(|| TestEnv::builder().node(NodeOptions::default())))
            .await;
        result
            .as_ref()
            .copied()
            .map_err(|e| Error::Shared(Arc::clone(e)))
    }
}

/// Starts the shared environment on a thread that keeps its runtime alive for
/// the rest of the process, and registers an exit hook that tears it down.
async fn start_shared(
    builder: impl FnOnce() -> TestEnvBuilder + Send + 'static,
) -> Result<&'static TestEnv, Arc<Error>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("bosun-testenv-shared".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = tx.send(Err(Error::Runtime("building the shared runtime", e)));
                    return;
                }
            };
            runtime.block_on(async move {
                let started = builder()
                    .start()
                    .await
                    .map(|env| &*Box::leak(Box::new(env)));
                if let Ok(env) = started {
                    register_exit_cleanup(env);
                }
                let _ = tx.send(started);
                // Keep the runtime (and the client's connection tasks) alive.
                std::future::pending::<()>().await
            });
        });
    if let Err(e) = spawned {
        return Err(Arc::new(Error::Runtime(
            "spawning the shared environment's thread",
            e,
        )));
    }
    match rx.await {
        Ok(result) => result.map_err(Arc::new),
        Err(_) => Err(Arc::new(Error::Runtime(
            "starting the shared environment",
            std::io::Error::other("its thread ended early"),
        ))),
    }
}

/// What the exit hook needs: process groups to kill and directories to
/// remove, one entry per process-wide environment.
static EXIT_CLEANUP: Mutex<Vec<(Vec<u32>, Option<PathBuf>)>> = Mutex::new(Vec::new());

fn register_exit_cleanup(env: &TestEnv) {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    if env.is_existing_cluster() {
        return;
    }
    let dir = env.temporary_dir();
    let pids = env.pids().into_iter().map(|(_, pid)| pid).collect();
    if let Ok(mut cleanup) = EXIT_CLEANUP.lock() {
        cleanup.push((pids, dir));
    }
    REGISTERED.get_or_init(|| {
        // SAFETY: registers a plain `extern "C" fn` that touches only statics.
        unsafe {
            libc::atexit(exit_cleanup);
        }
    });
}

extern "C" fn exit_cleanup() {
    // The nodes first: their processes talk to the API servers.
    node::exit_cleanup();
    let entries = match EXIT_CLEANUP.lock() {
        Ok(entries) => entries.clone(),
        Err(_) => return,
    };
    for (pids, dir) in &entries {
        for pid in pids {
            if let Ok(pgid) = libc::pid_t::try_from(*pid) {
                // SAFETY: plain syscalls on our own children (group id = child pid).
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                    libc::waitpid(pgid, std::ptr::null_mut(), 0);
                }
            }
        }
        if let Some(dir) = dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
