//! The operator: loads modules, serves telemetry, campaigns for leadership,
//! and runs one [`Controller`] per module over shared informers until told
//! to stop. What `bosun run` runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::watcher;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::apply::Applier;
use crate::controller::{ControllerContext, ControllerSettings};
use crate::discovery::Discovery;
use crate::engine::{Engine, LoadError};
use crate::grants::{Grant, GrantFile};
use crate::informers::{Informers, Observers, SkipEvents};
use crate::leader::{LeaderConfig, LeaderElection};
use crate::modules::class::{Announcer, HostClass};
use crate::modules::dir::{DirError, DirEvent, DirSource};
use crate::modules::registry::{Registry, RegistryError};
use crate::telemetry::{Health, Metrics};

/// How the operator runs.
pub struct OperatorConfig {
    /// The module files to load (`--module`).
    pub modules: Vec<PathBuf>,
    /// A directory to watch for module files (`--modules-dir`).
    pub modules_dir: Option<PathBuf>,
    /// Run the modules the cluster's ReconcilerModule resources of this
    /// host's class name (`--modules-from-cluster`).
    pub modules_from_cluster: Option<ClusterModules>,
    /// Settings applied to every module's controller.
    pub controller: ControllerSettings,
    /// Grants for local modules (`--module`, `--modules-dir`), by module
    /// name (`--grant`); a grant file beside a directory module wins.
    pub grants: Vec<GrantFile>,
    /// Grant local modules exactly what they declare (`--grant-declared`):
    /// local development only. ReconcilerModules always need
    /// `spec.permissions`.
    pub grant_declared: bool,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; None: not served.
    pub telemetry: Option<tokio::net::TcpListener>,
    /// Leader election; None runs without it (local development).
    pub leader: Option<LeaderConfig>,
    /// Sharding across the active replicas of the class (`--sharded`);
    /// exclusive with `leader`.
    pub shard: Option<ShardConfig>,
    /// How long in-flight reconciles may take to finish after a stop.
    pub shutdown_grace: Duration,
    /// The API server's addresses: guest HTTP requests never reach them
    /// unless a grant names them literally.
    pub api_server: Vec<std::net::IpAddr>,
    /// Where the flight recorder keeps recordings of failed and sampled
    /// calls; None: it is off.
    pub recordings: Option<crate::recorder::store::StoreSettings>,
}

/// How a host runs the cluster's ReconcilerModules.
#[derive(Debug, Clone)]
pub struct ClusterModules {
    /// The class of modules it runs (`--host-class`).
    pub class: HostClass,
    /// Where its class's announcement Lease lives: its own namespace.
    pub namespace: String,
    /// Who holds the announcement.
    pub identity: String,
}

/// How a sharded replica joins its class's ring.
#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// The class whose replicas share the buckets.
    pub class: HostClass,
    /// Where the membership Leases live.
    pub namespace: String,
    /// This replica's identity (`--replica-id`).
    pub replica: crate::shard::membership::ReplicaId,
    /// Lease timings (the leader election flags').
    pub timing: crate::shard::handover::Timing,
}

/// Why the operator stopped other than by request.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// A module given at startup did not load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A module given at startup could not be started.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The modules directory cannot be watched.
    #[error(transparent)]
    Dir(#[from] DirError),
    /// This host lost the leader lease; another host leads now.
    #[error("lost the leader lease; stopping so that only the new leader reconciles")]
    LostLeadership,
    /// The telemetry server failed.
    #[error("the telemetry server failed: {0}")]
    Telemetry(String),
    /// The leader election could not start.
    #[error("leader election: {0}")]
    Leader(String),
    /// This sharded replica's Lease lapsed; it stopped writing.
    #[error(transparent)]
    Shard(#[from] crate::shard::handover::HandoverError),
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

    // Not ready until the modules given at start (files, the directory's
    // first scan) are loaded: a first compile can take tens of seconds, and
    // a host that answered ready meanwhile would meet its first objects
    // with no controller running.
    let modules_loaded = health.check("modules-loaded");
    // A host that does not campaign waits for its caches from the start
    // too, so no moment between the two checks reads as ready.
    let mut caches_synced = config
        .leader
        .is_none()
        .then(|| health.check("caches-synced"));
    // Modules named on the command line must load: check them before
    // campaigning (the second load below comes from the compile cache).
    let files = read_module_files(&engine, &config.modules).await?;

    // A replica waiting for the Lease is a warm standby (controller-runtime's
    // warm replicas): it loads its modules, lists and watches their kinds
    // and queues their keys now, and writes nothing — no reconcile is
    // handed out, the applier refuses, no ReconcilerModule status is
    // written — until it leads. Taking over then costs no LIST.
    let (mut election, leading, _always) = match config.leader {
        Some(leader) => {
            let (elector, leading) = LeaderElection::start(client.clone(), leader)
                .map_err(|e| OperatorError::Leader(e.to_string()))?;
            (Some(elector), leading, None)
        }
        None => {
            let (always, leading) = watch::channel(true);
            (None, leading, Some(always))
        }
    };
    // An object the watches cannot decode is counted, and named in a
    // Warning event on it once this host leads.
    let cache_observer = Observers(vec![
        metrics.cache_observer(),
        Arc::new(SkipEvents::start(client.clone(), leading.clone())),
    ]);
    let sharding = config
        .shard
        .as_ref()
        .map(|_| Arc::new(crate::shard::Sharding::default()));
    let mut informers = Informers::new(
        client.clone(),
        watcher::Config::default(),
        Arc::new(cache_observer),
    );
    let mut applier = Applier::new(client.clone(), "bosun");
    if let Some(sharding) = &sharding {
        informers = informers.sharded(sharding.watched());
        applier = applier.sharded();
    }
    let informers = Arc::new(informers);
    if election.is_some() {
        applier = applier.standing_by();
    }
    let applier = Arc::new(applier);
    // The controllers start handing out reconciles on `writable`, not on
    // the Lease itself: it turns true only once the applier is open below.
    // On the Lease alone, a takeover on a busy machine handed out
    // reconciles whose writes met the still-closed gate, were refused as
    // "no longer leads" (never retried: a host that lost the Lease exits)
    // and left those objects unreconciled until they changed again.
    let (writable_sender, writable) = watch::channel(election.is_none());
    let ctx = ControllerContext {
        informers,
        applier: applier.clone(),
        metrics: metrics.clone(),
        guest_slots: Arc::new(tokio::sync::Semaphore::new(engine.max_instances())),
        discovery: Arc::new(Discovery::new(client.clone())),
        http: crate::http::Environment {
            keys: Some(Arc::new(crate::http::credentials::ClusterKeys::new(
                client.clone(),
            ))),
            api_server: config.api_server.clone().into(),
            metrics: Some(metrics.clone()),
            hint: None,
            leading: election.is_some().then(|| leading.clone()),
        },
        leading: writable,
        recordings: config
            .recordings
            .clone()
            .map(|settings| crate::recorder::store::RecordStore::new(client.clone(), settings)),
        shard: sharding.clone(),
    };
    let registry = Arc::new(Registry::new(engine.clone(), ctx));
    let local = LocalGrants {
        files: config.grants.clone(),
        declared: config.grant_declared,
    };
    for (path, bytes) in files {
        let key = path.display().to_string();
        registry
            .upsert(&key, &key, bytes, config.controller.clone(), &|name| {
                local.for_module(name, None)
            })
            .await?;
    }
    let mut sources = JoinSet::new();
    if let Some(dir) = &config.modules_dir {
        let (source, mut events) = DirSource::watch(dir.clone())?;
        // The first scan is queued before `watch` returns: load it before
        // calling the host ready.
        while let Ok(event) = events.try_recv() {
            handle_dir_event(&registry, &config.controller, &local, event).await;
        }
        let registry = registry.clone();
        let defaults = config.controller.clone();
        let local = local.clone();
        sources.spawn(async move {
            let _watching = source;
            while let Some(event) = events.recv().await {
                handle_dir_event(&registry, &defaults, &local, event).await;
            }
        });
    }
    modules_loaded.set(true);
    if let Some(cluster) = config.modules_from_cluster {
        let announcer = Announcer::new(
            client.clone(),
            &cluster.namespace,
            cluster.class,
            cluster.identity,
        );
        // Sharded, every replica is active: the status of the cluster's
        // modules has one writer all the same, or replicas would write
        // their own counts over each other's.
        let writes_status = sharding
            .as_ref()
            .map_or_else(|| leading.clone(), |sharding| sharding.writes_shared());
        sources.spawn(crate::modules::cluster::run(
            client.clone(),
            registry.clone(),
            config.controller.clone(),
            writes_status,
            announcer,
            std::future::pending(),
        ));
    }

    let mut shutdown = std::pin::pin!(shutdown);
    if let Some(elector) = election {
        tracing::info!("waiting to become the leader; modules load and caches fill meanwhile");
        let mut waiting = leading.clone();
        let led = tokio::select! {
            () = &mut shutdown => None,
            result = async { waiting.wait_for(|leads| *leads).await.is_ok() } => Some(result),
        };
        match led {
            None => {
                sources.abort_all();
                registry.stop_all(config.shutdown_grace).await;
                elector.step_down().await;
                let _ = stop_telemetry.send(true);
                return Ok(());
            }
            Some(false) => {
                sources.abort_all();
                registry.stop_all(config.shutdown_grace).await;
                return Err(OperatorError::LostLeadership);
            }
            Some(true) => {}
        }
        applier.open();
        writable_sender.send_replace(true);
        tracing::info!("became the leader");
        election = Some(elector);
    }
    let mut election = election.map(|elector| (elector, leading.clone()));
    // Registered only now, so a standby waiting for the Lease, its modules
    // loaded, has no failing check and is ready (as controller-runtime's
    // are): a two-replica Deployment could otherwise never finish a
    // rollout, and its PodDisruptionBudget would never let the leader be
    // evicted.
    let caches_synced = caches_synced
        .take()
        .unwrap_or_else(|| health.check("caches-synced"));

    let readiness = tokio::spawn({
        let registry = registry.clone();
        async move {
            while !registry.all_synced().await {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            caches_synced.set(true);
            tracing::info!("caches synced; ready");
        }
    });

    // A sharded replica joins its class's ring: it reconciles the buckets
    // it comes to hold, and leaves the ring when stopped.
    let (stop_shard, shard_stopped) = watch::channel(false);
    let mut handover = match (config.shard, &sharding) {
        (Some(shard), Some(sharding)) => {
            let membership = crate::shard::membership::Membership::new(
                client.clone(),
                &shard.namespace,
                shard.class,
                shard.replica,
                shard.timing.lease_duration,
            );
            let mut stopped = shard_stopped.clone();
            let span = tracing::info_span!("shard", lease = %membership.lease_name());
            Some(tokio::spawn(
                crate::shard::handover::run(
                    client.clone(),
                    membership,
                    shard.timing,
                    sharding.clone(),
                    applier.clone(),
                    metrics.clone(),
                    async move {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    },
                )
                .instrument(span),
            ))
        }
        _ => None,
    };
    let shard_lost = async {
        match handover.as_mut() {
            Some(task) => match task.await {
                Ok(Err(error)) => error,
                Ok(Ok(())) => std::future::pending().await,
                Err(error) => crate::shard::handover::HandoverError::LostLease {
                    lease: String::new(),
                    deadline: Duration::ZERO,
                    last_error: format!("the shard task failed: {error}"),
                },
            },
            None => std::future::pending().await,
        }
    };
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
        () = lost => {
            // Another replica may lead from now on: not one more write from
            // here, not even from reconciles in flight.
            applier.close();
            writable_sender.send_replace(false);
            tracing::error!("lost the leader lease; writes stopped, shutting down");
            Err(OperatorError::LostLeadership)
        }
        error = shard_lost => {
            // The Lease is no longer renewed (the task said so, or died):
            // not one more write, whatever the gate still says.
            applier.close();
            writable_sender.send_replace(false);
            tracing::error!(%error, "shutting down");
            handover = None;
            Err(OperatorError::Shard(error))
        }
    };
    tracing::info!("shutting down");
    readiness.abort();
    sources.abort_all();
    registry.stop_all(config.shutdown_grace).await;
    if let Some((elector, _)) = election {
        elector.step_down().await;
    }
    // After the controllers stopped: nothing of a bucket runs any more
    // when the ring hears this replica leave.
    let _ = stop_shard.send(true);
    if let Some(task) = handover
        && let Ok(Err(error)) = task.await
    {
        tracing::warn!(%error, "leaving the shard ring");
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

/// Grants for local modules: the `--grant` files, and `--grant-declared`.
#[derive(Clone)]
struct LocalGrants {
    files: Vec<GrantFile>,
    declared: bool,
}

impl LocalGrants {
    /// The grant of module `name`: the one beside it (a directory's grant
    /// file, which must name the module), else the `--grant` file naming
    /// it, else what it declares under `--grant-declared`, else none.
    fn for_module(&self, name: &str, beside: Option<&GrantFile>) -> Grant {
        let file = beside.or_else(|| self.files.iter().find(|g| g.module == name));
        match file {
            Some(file) => Grant::Granted {
                module: Some(file.module.clone()),
                permissions: Box::new(file.permissions.clone()),
            },
            None if self.declared => Grant::Declared,
            None => Grant::none(),
        }
    }
}

/// Reads and checks every module file; a file that does not load stops the
/// start, since the operator asked for it by name.
async fn read_module_files(
    engine: &Arc<Engine>,
    paths: &[PathBuf],
) -> Result<Vec<(PathBuf, Arc<[u8]>)>, OperatorError> {
    let mut files = Vec::new();
    for path in paths {
        let engine = engine.clone();
        let path = path.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&path).map_err(|source| LoadError::Read {
                path: path.display().to_string(),
                source,
            })?;
            engine.load(&path.display().to_string(), &bytes)?;
            Ok::<_, LoadError>((path, Arc::<[u8]>::from(bytes)))
        })
        .await
        .map_err(|e| OperatorError::Leader(format!("module loading task failed: {e}")))??;
        files.push(checked);
    }
    Ok(files)
}

/// Applies one change of the watched directory. A bad file is reported and
/// changes nothing: the last good version keeps running.
async fn handle_dir_event(
    registry: &Registry,
    defaults: &ControllerSettings,
    local: &LocalGrants,
    event: DirEvent,
) {
    match event {
        DirEvent::Upsert {
            key,
            path,
            bytes,
            settings,
            grant,
        } => {
            let settings = ControllerSettings {
                settings,
                ..defaults.clone()
            };
            let source = path.display().to_string();
            let grant_for = |name: &str| local.for_module(name, grant.as_deref());
            match registry
                .upsert(&key, &source, bytes, settings, &grant_for)
                .await
            {
                Ok(loaded) => tracing::info!(
                    file = %source,
                    module = %loaded.name,
                    version = %loaded.version,
                    change = ?loaded.change,
                    load_ms = loaded.load_time.as_millis() as u64,
                    from_cache = loaded.from_cache,
                    "module file applied"
                ),
                Err(error) => {
                    tracing::error!(file = %source, %error, "module file not loaded; the last good version keeps running")
                }
            }
        }
        DirEvent::Remove { key } => registry.remove(&key).await,

        DirEvent::Error { key, error } => {
            tracing::error!(file = %key, %error, "module file unreadable; the last good version keeps running")
        }
    }
}
