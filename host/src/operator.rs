//! The operator: loads modules, serves telemetry, campaigns for leadership,
//! and runs one [`Controller`] per module over shared informers until told
//! to stop. What `bosun run` runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::watcher;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::apply::Applier;
use crate::controller::{Controller, ControllerContext, ControllerSettings};
use crate::engine::{Engine, LoadError, Module};
use crate::informers::Informers;
use crate::leader::{LeaderConfig, LeaderElection};
use crate::telemetry::{Health, Metrics};

/// How the operator runs.
pub struct OperatorConfig {
    /// The module files to load (`--module`).
    pub modules: Vec<PathBuf>,
    /// Settings applied to every module's controller.
    pub controller: ControllerSettings,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; None: not served.
    pub telemetry: Option<tokio::net::TcpListener>,
    /// Leader election; None runs without it (local development).
    pub leader: Option<LeaderConfig>,
    /// How long in-flight reconciles may take to finish after a stop.
    pub shutdown_grace: Duration,
}

/// Why the operator stopped other than by request.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// A module given at startup did not load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Two modules claim the same name, which is their controller name and field manager.
    #[error("two modules are named {0:?}; each module needs its own name")]
    DuplicateName(String),
    /// This host lost the leader lease; another host leads now.
    #[error("lost the leader lease; stopping so that only the new leader reconciles")]
    LostLeadership,
    /// The telemetry server failed.
    #[error("the telemetry server failed: {0}")]
    Telemetry(String),
    /// The leader election could not start.
    #[error("leader election: {0}")]
    Leader(String),
}

/// Runs the operator until `shutdown` resolves (or leadership is lost).
pub async fn run(
    client: kube::Client,
    engine: Arc<Engine>,
    config: OperatorConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), OperatorError> {
    let metrics = Metrics::new();
    let health = Health::new();
    let modules_loaded = health.check("modules-loaded");
    let caches_synced = health.check("caches-synced");

    let (stop_telemetry, telemetry_stopped) = watch::channel(false);
    let telemetry = config.telemetry.map(|listener| {
        if let Ok(address) = listener.local_addr() {
            tracing::info!(%address, "serving /metrics, /healthz and /readyz");
        }
        let (metrics, health) = (metrics.clone(), health.clone());
        let mut stopped = telemetry_stopped.clone();
        tokio::spawn(async move {
            crate::telemetry::serve(listener, metrics, health, async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
        })
    });

    let modules = load_modules(&engine, &config.modules, &metrics).await?;
    modules_loaded.set(true);

    let mut shutdown = std::pin::pin!(shutdown);
    let mut election = None;
    if let Some(leader) = config.leader {
        let (elector, mut leading) = LeaderElection::start(client.clone(), leader)
            .map_err(|e| OperatorError::Leader(e.to_string()))?;
        tracing::info!("waiting to become the leader");
        tokio::select! {
            () = &mut shutdown => {
                elector.step_down().await;
                let _ = stop_telemetry.send(true);
                return Ok(());
            }
            result = leading.wait_for(|leads| *leads) => {
                if result.is_err() {
                    return Err(OperatorError::LostLeadership);
                }
            }
        }
        tracing::info!("became the leader");
        election = Some((elector, leading));
    }

    let informers = Arc::new(Informers::new(client.clone(), watcher::Config::default()));
    let ctx = ControllerContext {
        informers,
        applier: Arc::new(Applier::new(client.clone(), "bosun")),
        metrics: metrics.clone(),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut running = JoinSet::new();
    let controllers: Vec<Arc<Controller>> = modules
        .into_iter()
        .map(|module| Controller::new(module, config.controller.clone(), ctx.clone()))
        .collect();
    for controller in &controllers {
        let mut stop = stop_rx.clone();
        running.spawn(controller.clone().run(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        }));
    }
    let readiness = tokio::spawn({
        let controllers = controllers.clone();
        async move {
            while !controllers.iter().all(|c| c.is_synced()) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            caches_synced.set(true);
            tracing::info!("caches synced; ready");
        }
    });

    let lost = async {
        match election.as_mut() {
            Some((_, leading)) => {
                let _ = leading.wait_for(|leads| !*leads).await;
            }
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        () = &mut shutdown => Ok(()),
        () = lost => Err(OperatorError::LostLeadership),
    };
    tracing::info!("shutting down");
    readiness.abort();
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(grace = ?config.shutdown_grace, "in-flight reconciles did not finish in time; abandoning them");
    }
    if let Some((elector, _)) = election {
        elector.step_down().await;
    }
    let _ = stop_telemetry.send(true);
    if let Some(server) = telemetry {
        match server.await {
            Ok(Err(error)) => tracing::warn!(%error, "telemetry server"),
            Err(error) => tracing::warn!(%error, "telemetry server task"),
            Ok(Ok(())) => {}
        }
    }
    outcome
}

/// Loads every module off the async runtime; a module that does not load
/// stops the start, since the operator asked for it by name.
async fn load_modules(
    engine: &Arc<Engine>,
    paths: &[PathBuf],
    metrics: &Metrics,
) -> Result<Vec<Module>, OperatorError> {
    let mut modules: Vec<Module> = Vec::new();
    for path in paths {
        let engine = engine.clone();
        let path = path.clone();
        let module = tokio::task::spawn_blocking(move || engine.load_file(&path))
            .await
            .map_err(|e| OperatorError::Telemetry(format!("module loading task failed: {e}")))??;
        let meta = module.meta();
        if modules.iter().any(|m| m.meta().name == meta.name) {
            return Err(OperatorError::DuplicateName(meta.name.clone()));
        }
        metrics.module_loaded(
            &meta.name,
            &meta.version,
            module.digest(),
            module.compile_source() == crate::engine::CompileSource::Cache,
            module.load_time(),
        );
        tracing::info!(module = %meta.name, version = %meta.version, primary = %meta.primary, "module loaded");
        modules.push(module);
    }
    Ok(modules)
}
