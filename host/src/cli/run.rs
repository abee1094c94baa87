//! `bosun run`: the operator, against the cluster of the kubeconfig (or the
//! in-cluster service account), until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jiff::SignedDuration;

use crate::controller::ControllerSettings;
use crate::engine::{Engine, Limits};
use crate::leader::LeaderConfig;
use crate::modules::class::HostClass;
use crate::operator::{ClusterModules, OperatorConfig, OperatorError, ShardConfig};
use crate::queue::QueueConfig;
use crate::recorder::store::StoreSettings;

/// Arguments of `bosun run`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("sources").required(true).multiple(true).args(["modules", "modules_dir", "modules_from_cluster"])))]
pub struct RunArgs {
    /// A reconciler component to run (repeatable). It must load, or the host does not start.
    #[arg(long = "module", value_name = "FILE")]
    pub modules: Vec<PathBuf>,
    /// Watch a directory for reconciler components (`*.wasm`, each with an
    /// optional `<name>.settings.json|yaml` beside it): files dropped,
    /// replaced or deleted are loaded, swapped or stopped while the host
    /// runs; a file that does not load leaves the last good version running.
    #[arg(long, value_name = "DIR")]
    pub modules_dir: Option<PathBuf>,
    /// Run the modules named by the cluster's ReconcilerModule resources
    /// (group bosun.dev; the CRD is in deploy/), loading, swapping and
    /// stopping them as the resources change, and reporting in their status.
    #[arg(long)]
    pub modules_from_cluster: bool,
    /// The class of ReconcilerModules this host runs (their
    /// `spec.hostClass`); hosts of other classes run theirs, side by side
    /// in one cluster. The host announces its class with a Lease
    /// `bosun-host-class-<class>` in its namespace.
    #[arg(long, value_name = "NAME", default_value = crate::modules::class::DEFAULT)]
    pub host_class: HostClass,
    /// What local modules (`--module`, `--modules-dir`) may do: a YAML file
    /// of grants, one document per module (`module: NAME`, `permissions:
    /// {…}`), as `bosun inspect --grant` prints them (repeatable). A module
    /// in the modules directory may have its own `<name>.grant.yaml`
    /// instead. A module that declares more than it was granted does not run.
    #[arg(long = "grant", value_name = "FILE")]
    pub grants: Vec<PathBuf>,
    /// Grant local modules exactly what they declare, for local development
    /// only: a module then decides its own powers. Never applies to
    /// ReconcilerModules, which always need `spec.permissions`.
    #[arg(long)]
    pub grant_declared: bool,
    /// Quarantine a module (hand it no more work) after this many guest calls
    /// in a row failed by its own fault; 0 never does. A new version lifts it.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub quarantine_after: u32,
    /// Reconciles of one module that may run at once.
    #[arg(long, default_value_t = QueueConfig::default().concurrency)]
    pub concurrency: usize,
    /// Each guest call's deadline, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub timeout_ms: u64,
    /// Each guest call's memory cap, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub memory_limit_mib: usize,
    /// Reconcile every object again this often (e.g. `10m`); off by default.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub resync: Option<Duration>,
    /// Retries per second across all keys of a module (client-go's bucket).
    #[arg(long, default_value_t = QueueConfig::default().qps)]
    pub qps: f64,
    /// Burst of the retry bucket.
    #[arg(long, default_value_t = QueueConfig::default().burst)]
    pub burst: u32,
    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    pub telemetry_addr: SocketAddr,
    /// Campaign for a Lease and reconcile only while leading (for more than one replica).
    #[arg(long, conflicts_with = "sharded")]
    pub leader_elect: bool,
    /// Shard objects across every replica of the host class, all active at
    /// once: each replica announces itself with a Lease
    /// `bosun-shard-<class>-<replica>` in the Lease namespace, holds a share
    /// of 64 buckets, labels primaries and children `bosun.dev/shard-bucket`,
    /// and watches only its buckets. Uses the lease timing flags below.
    #[arg(long)]
    pub sharded: bool,
    /// This replica's identity among the sharded replicas (default: the
    /// Pod's name, from HOSTNAME). Must be unique within the class.
    #[arg(long, value_name = "ID", requires = "sharded")]
    pub replica_id: Option<crate::shard::membership::ReplicaId>,
    /// The Lease's namespace (default: the pod's namespace, else `default`).
    #[arg(long, value_name = "NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// The Lease's name (default: `bosun-leader`, or `bosun-leader-<class>`
    /// for a host class other than `default`, so classes never share one).
    #[arg(long, value_name = "NAME")]
    pub leader_election_id: Option<String>,
    /// How long a lease is valid without renewal.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "15s")]
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew the lease.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2s")]
    pub retry_period: Duration,
    /// How long in-flight reconciles may take to finish on shutdown.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub shutdown_grace: Duration,
    /// Export a trace of every reconcile over OTLP/HTTP to this endpoint
    /// (`http://collector:4318`; the standard `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// and `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` work too). Off by default.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// The share of reconciles traced, 0 to 1 (default: every one, or
    /// what `OTEL_TRACES_SAMPLER` says).
    #[arg(long, value_name = "RATIO")]
    pub trace_sample_ratio: Option<f64>,
    /// Let go of a module's compiled code after this long without a call,
    /// and map it again from the compile cache on its next event (a few
    /// milliseconds, once); `0s` keeps every module's code in memory.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    pub unload_idle_after: Duration,
    /// Recordings of failed and sampled calls kept per module, as
    /// ConfigMaps in the host's namespace (`bosun record get`); 0 turns the
    /// flight recorder off.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub recordings_per_module: usize,
    /// Record one in this many successful calls too; 0: failures only.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub record_sample_every: u64,
    /// The namespace recordings are kept in (default: the pod's namespace;
    /// a host outside a pod keeps none unless given one).
    #[arg(long, value_name = "NAMESPACE")]
    pub recordings_namespace: Option<String>,
}

/// Durations as Go and kubectl write them (`15s`, `1m30s`, `2h`) or ISO 8601.
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let parsed: SignedDuration = text
        .parse()
        .map_err(|e| format!("{text:?} is not a duration like 15s, 1m30s or 2h: {e}"))?;
    Duration::try_from(parsed).map_err(|_| format!("{text:?} is negative"))
}

pub(super) fn run(args: &RunArgs, engine: Engine) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bosun")
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(operate(args, engine));
    // Dropping a runtime waits for every blocking thread; a guest call given
    // a long deadline must not hold the exit past the grace.
    runtime.shutdown_timeout(args.shutdown_grace);
    result
}

async fn operate(args: &RunArgs, engine: Engine) -> anyhow::Result<ExitCode> {
    let kube_config = kube::Config::infer().await.context(
        "connecting to the cluster (set KUBECONFIG, or run in a pod with a service account)",
    )?;
    let mut api_server = crate::http::api_server_addresses(&kube_config.cluster_url).await;
    let client = kube::Client::try_from(kube_config).context(
        "connecting to the cluster (set KUBECONFIG, or run in a pod with a service account)",
    )?;
    api_server.extend(crate::http::api_server_endpoints(&client).await);
    api_server.sort();
    api_server.dedup();
    let listener = tokio::net::TcpListener::bind(args.telemetry_addr)
        .await
        .with_context(|| format!("binding the telemetry address {}", args.telemetry_addr))?;
    let namespace = args
        .leader_election_namespace
        .clone()
        .unwrap_or_else(pod_namespace);
    let identity = crate::leader::default_identity();
    let leader = args.leader_elect.then(|| LeaderConfig {
        lease_name: args
            .leader_election_id
            .clone()
            .unwrap_or_else(|| leader_lease_name(&args.host_class)),
        namespace: namespace.clone(),
        identity: identity.clone(),
        lease_duration: args.lease_duration,
        renew_deadline: args.renew_deadline,
        retry_period: args.retry_period,
    });
    let shard = match args.sharded {
        false => None,
        true => {
            let replica = match &args.replica_id {
                Some(replica) => replica.clone(),
                None => crate::shard::membership::ReplicaId::from_host()
                    .context("--sharded needs a replica id: pass --replica-id")?,
            };
            anyhow::ensure!(
                args.renew_deadline < args.lease_duration
                    && !args.retry_period.is_zero()
                    && args.retry_period < args.renew_deadline,
                "--sharded needs 0 < --retry-period < --renew-deadline < --lease-duration"
            );
            Some(ShardConfig {
                class: args.host_class.clone(),
                namespace: namespace.clone(),
                replica,
                timing: crate::shard::handover::Timing {
                    lease_duration: args.lease_duration,
                    renew_deadline: args.renew_deadline,
                    retry_period: args.retry_period,
                },
            })
        }
    };
    let mut grants = Vec::new();
    for path in &args.grants {
        grants.extend(crate::grants::read_grant_file(path)?);
    }
    if let Some(module) = duplicate_module(&grants) {
        return Err(crate::grants::GrantFileError::Duplicate { module }.into());
    }
    if args.grant_declared {
        tracing::warn!(
            "--grant-declared: local modules get exactly the permissions they declare; for local development only"
        );
    }
    let config = OperatorConfig {
        grants,
        grant_declared: args.grant_declared,
        modules: args.modules.clone(),
        modules_dir: args.modules_dir.clone(),
        modules_from_cluster: args.modules_from_cluster.then(|| ClusterModules {
            class: args.host_class.clone(),
            namespace,
            identity,
        }),
        controller: ControllerSettings {
            settings: None,
            limits: Limits {
                timeout: Duration::from_millis(args.timeout_ms),
                memory_bytes: args.memory_limit_mib << 20,
                ..Limits::default()
            },
            queue: QueueConfig {
                concurrency: args.concurrency,
                qps: args.qps,
                burst: args.burst,
                ..QueueConfig::default()
            },
            resync: args.resync,
            paused: false,
            quarantine_after: args.quarantine_after,
            namespaces: Vec::new(),
            http: Vec::new(),
        },
        telemetry: Some(listener),
        api_server,
        leader,
        shard,
        shutdown_grace: args.shutdown_grace,
        // A host outside a pod has no namespace of its own to keep
        // recordings in: it keeps none unless given one.
        recordings: args
            .recordings_namespace
            .clone()
            .or_else(in_pod_namespace)
            .filter(|_| args.recordings_per_module > 0)
            .map(|namespace| StoreSettings {
                per_module: args.recordings_per_module,
                sample_every: args.record_sample_every,
                ..StoreSettings::new(namespace)
            }),
    };
    match crate::operator::run(client, Arc::new(engine), config, shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            Ok(ExitCode::SUCCESS)
        }
        Err(error @ (OperatorError::Load(_) | OperatorError::Registry(_))) => {
            Ok(super::output::fail(super::EXIT_LOAD_FAILED, &error))
        }
        Err(error) => Err(error.into()),
    }
}

/// The leader Lease of a host class when `--leader-election-id` is unset.
fn leader_lease_name(class: &HostClass) -> String {
    if class.as_str() == crate::modules::class::DEFAULT {
        "bosun-leader".to_owned()
    } else {
        format!("bosun-leader-{class}")
    }
}

/// A module named by two grants, if any.
fn duplicate_module(grants: &[crate::grants::GrantFile]) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    grants
        .iter()
        .find(|g| !seen.insert(g.module.as_str()))
        .map(|g| g.module.clone())
}

/// The namespace of the pod this runs in, from its service account; else `default`.
fn pod_namespace() -> String {
    in_pod_namespace().unwrap_or_else(|| "default".to_owned())
}

/// The namespace of the pod this runs in, when it runs in one.
fn in_pod_namespace() -> Option<String> {
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .map(|ns| ns.trim().to_owned())
        .ok()
        .filter(|ns| !ns.is_empty())
}

/// Resolves on SIGTERM (what Kubernetes sends) or Ctrl-C.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = terminate => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
    }
}
