//! One run of one side: a fresh control plane, the controller started on
//! it, a burst of `At`s created by a fast client, and what it took to
//! converge them — time, latency per object, API requests, CPU and memory —
//! then the latency of single changes on the idle controller.
//!
//! An `At` is converged when the API server holds its status `RUNNING` for
//! its current generation (`observedGeneration`), which both controllers
//! write after applying the Pod; the run ends by checking every Pod on the
//! API server too.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bosun_testenv::TestEnv;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::controllers::{Binaries, Controller, Side};
use super::counters::{self, Cost, Requests};

/// The namespace every run works in.
pub const NAMESPACE: &str = "bench";
/// Creates in flight at once: a fast client, as a CI job or a GitOps tool.
const CONCURRENT_CREATES: usize = 32;
/// How long a burst may take to converge before the run fails.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(900);

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Run {
    /// Objects in the burst.
    pub objects: usize,
    /// From the first create to the last object converged.
    pub converge: Duration,
    /// Per object, from its create's answer to its status seen converged.
    pub latencies_loaded: Vec<Duration>,
    /// The same for single creates on the idle controller.
    pub latencies_idle: Vec<Duration>,
    /// Requests to the API server while converging the burst.
    pub cost: Cost,
    /// The host's reconciles while converging (bosun only).
    pub reconciles: Option<f64>,
    /// CPU seconds the controller spent converging the burst.
    pub cpu: f64,
    /// Resident memory once converged and idle, and its peak, in bytes.
    pub rss: u64,
    /// Peak resident memory over the run, in bytes.
    pub rss_peak: u64,
}

/// The cnat `At` resource.
pub fn at_resource() -> ApiResource {
    ApiResource {
        group: "cnat.programming-kubernetes.info".into(),
        version: "v1alpha1".into(),
        api_version: "cnat.programming-kubernetes.info/v1alpha1".into(),
        kind: "At".into(),
        plural: "ats".into(),
    }
}

pub fn at(name: &str) -> Result<DynamicObject> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "cnat.programming-kubernetes.info/v1alpha1",
        "kind": "At",
        "metadata": {"name": name, "namespace": NAMESPACE},
        // Due long ago: converging is a Pod and status RUNNING at once.
        "spec": {"schedule": "2020-01-01T00:00:00Z", "command": "echo bench"},
    }))?)
}

pub fn is_converged(object: &DynamicObject) -> bool {
    let status = object.data.get("status");
    status.and_then(|s| s.get("phase")).and_then(Value::as_str) == Some("RUNNING")
        && status
            .and_then(|s| s.get("observedGeneration"))
            .and_then(Value::as_i64)
            == object.metadata.generation
}

/// Watches the namespace's `At`s and notes when each is first seen converged.
struct Convergence {
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Convergence {
    async fn start(client: &kube::Client) -> Result<Convergence> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), NAMESPACE, &at_resource());
        let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn({
            let seen = seen.clone();
            async move {
                let mut ready = Some(ready_tx);
                let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()));
                while let Ok(Some(event)) = stream.try_next().await {
                    let now = Instant::now();
                    match event {
                        watcher::Event::Apply(o) | watcher::Event::InitApply(o)
                            if is_converged(&o) =>
                        {
                            let name = o.metadata.name.unwrap_or_default();
                            seen.lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .entry(name)
                                .or_insert(now);
                        }
                        watcher::Event::InitDone => {
                            if let Some(tx) = ready.take() {
                                let _ = tx.send(());
                            }
                        }
                        _ => {}
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(30), ready_rx)
            .await
            .context("the benchmark's own watch did not start")??;
        Ok(Convergence { seen, task })
    }

    fn at(&self, name: &str) -> Option<Instant> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .copied()
    }

    fn count(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Waits until `name` is converged; returns when it was seen so.
    async fn wait_for(&self, name: &str, controller: &mut Controller) -> Result<Instant> {
        let started = Instant::now();
        loop {
            if let Some(at) = self.at(name) {
                return Ok(at);
            }
            if started.elapsed() > Duration::from_secs(60) {
                controller.check_alive()?;
                bail!("{name} did not converge within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

impl Drop for Convergence {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How one run is shaped.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Objects created at once.
    pub objects: usize,
    /// Single creates timed on the idle controller afterwards.
    pub idle_samples: usize,
}

/// Runs `side` through one burst of `shape.objects` on a control plane of its own.
pub async fn converge(side: Side, binaries: &Binaries, shape: Shape, out: &Path) -> Result<Run> {
    let (env, client) = control_plane().await?;
    let kubeconfig = env
        .kubeconfig_path()
        .context("the control plane has no kubeconfig")?;
    let log = out.join(format!("{}-{}.log", side.name(), shape.objects));
    let mut controller = Controller::start(side, binaries, kubeconfig, &log, &[])?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &at_resource());
    let convergence = Convergence::start(&client).await?;

    // Ready: one object converged (caches synced, module loaded).
    api.create(&PostParams::default(), &at("warmup")?).await?;
    convergence.wait_for("warmup", &mut controller).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let requests_before = Requests::scrape(&client).await?;
    let reconciles_before = host_reconciles(&controller).await?;
    let cpu_before = controller.cpu_seconds()?;
    let started = Instant::now();
    let created: Vec<(String, Instant)> = futures::stream::iter(0..shape.objects)
        .map(|i| {
            let api = api.clone();
            async move {
                let name = format!("at-{i:05}");
                api.create(&PostParams::default(), &at(&name)?).await?;
                anyhow::Ok((name, Instant::now()))
            }
        })
        .buffer_unordered(CONCURRENT_CREATES)
        .try_collect()
        .await
        .context("creating the burst")?;
    loop {
        // The warmup object counts too.
        if convergence.count() > shape.objects {
            break;
        }
        if started.elapsed() > CONVERGE_TIMEOUT {
            bail!(
                "{}: {} of {} objects converged within {CONVERGE_TIMEOUT:?}",
                side.name(),
                convergence.count() - 1,
                shape.objects
            );
        }
        controller.check_alive()?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let last = created
        .iter()
        .filter_map(|(name, _)| convergence.at(name))
        .max()
        .context("no object converged")?;
    let cpu = controller.cpu_seconds()? - cpu_before;
    // Writes that trail the last status (events) land within a moment.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cost = Requests::scrape(&client).await?.since(&requests_before);
    let reconciles = match (reconciles_before, host_reconciles(&controller).await?) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    let latencies_loaded = created
        .iter()
        .filter_map(|(name, created)| {
            Some(convergence.at(name)?.saturating_duration_since(*created))
        })
        .collect();

    let mut latencies_idle = Vec::with_capacity(shape.idle_samples);
    for i in 0..shape.idle_samples {
        let name = format!("idle-{i:03}");
        api.create(&PostParams::default(), &at(&name)?).await?;
        let created = Instant::now();
        let converged = convergence.wait_for(&name, &mut controller).await?;
        latencies_idle.push(converged.saturating_duration_since(created));
        // Let the status write's own watch event settle first.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (rss, rss_peak) = controller.rss()?;
    verify(&client, shape.objects + shape.idle_samples + 1).await?;

    Ok(Run {
        objects: shape.objects,
        converge: last.saturating_duration_since(started),
        latencies_loaded,
        latencies_idle,
        cost,
        reconciles,
        cpu,
        rss,
        rss_peak,
    })
}

/// Checks on the API server that every `At` has its Pod, controlled by it,
/// and status `RUNNING` for its generation.
async fn verify(client: &kube::Client, expected: usize) -> Result<()> {
    let ats: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &at_resource());
    let ats = ats.list(&ListParams::default()).await?.items;
    ensure!(
        ats.len() == expected,
        "{} Ats on the API server, {expected} expected",
        ats.len()
    );
    let pods = Api::<Pod>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default())
        .await?
        .items;
    let owners: HashMap<String, String> = pods
        .iter()
        .filter_map(|pod| {
            let owner = pod
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))?;
            Some((owner.uid.clone(), pod.metadata.name.clone()?))
        })
        .collect();
    for object in &ats {
        let name = object.metadata.name.as_deref().unwrap_or_default();
        ensure!(is_converged(object), "{name} is not converged");
        let uid = object.metadata.uid.as_deref().unwrap_or_default();
        ensure!(
            owners.get(uid).map(String::as_str) == Some(format!("{name}-pod").as_str()),
            "{name} has no Pod controlled by it"
        );
    }
    Ok(())
}

/// The host's reconcile count, from its `/metrics`; None for the native side.
pub async fn host_reconciles(controller: &Controller) -> Result<Option<f64>> {
    let Some(port) = controller.telemetry_port else {
        return Ok(None);
    };
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    Ok(Some(counters::reconciles(&text)))
}

/// A control plane of its own with the cnat CRD and the namespace.
pub async fn control_plane() -> Result<(TestEnv, kube::Client)> {
    let env = TestEnv::start()
        .await
        .map_err(|e| anyhow::anyhow!("the control plane did not start: {e}"))?;
    env.install_crds([bosun_testenv::guests::workspace_root().join("examples/cnat/crd.yaml")])
        .await
        .map_err(|e| anyhow::anyhow!("installing the cnat CRD: {e}"))?;
    let client = env.client();
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    Ok((env, client))
}

/// Writes while the host resyncs converged objects: a host started with
/// `--resync`, a burst converged, then two resync periods watched.
/// Returns (reconciles, writes) in that window.
pub async fn resync(binaries: &Binaries, objects: usize, out: &Path) -> Result<(f64, Cost)> {
    const PERIOD: Duration = Duration::from_secs(5);
    let (env, client) = control_plane().await?;
    let kubeconfig = env
        .kubeconfig_path()
        .context("the control plane has no kubeconfig")?;
    let mut controller = Controller::start(
        Side::Bosun,
        binaries,
        kubeconfig,
        &out.join("bosun-resync.log"),
        &["--resync", "5s"],
    )?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &at_resource());
    let convergence = Convergence::start(&client).await?;
    for i in 0..objects {
        api.create(&PostParams::default(), &at(&format!("at-{i:05}"))?)
            .await?;
    }
    let started = Instant::now();
    while convergence.count() < objects {
        if started.elapsed() > CONVERGE_TIMEOUT {
            bail!("the resync burst did not converge");
        }
        controller.check_alive()?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Past the first resync after converging, so nothing of the burst is in flight.
    tokio::time::sleep(PERIOD + Duration::from_secs(1)).await;
    let before = Requests::scrape(&client).await?;
    let reconciles_before = host_reconciles(&controller).await?.unwrap_or_default();
    tokio::time::sleep(PERIOD * 2 + Duration::from_millis(500)).await;
    let cost = Requests::scrape(&client).await?.since(&before);
    let reconciles = host_reconciles(&controller).await?.unwrap_or_default() - reconciles_before;
    Ok((reconciles, cost))
}
