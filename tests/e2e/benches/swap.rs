//! Hot-swap latency: the time from a change to a `ReconcilerModule` to the
//! first write made by the new version, seen by a watch on the child it
//! applies. This is what an operator waits for after `kubectl apply`.
//!
//! Three changes to the same module, each measured the same way against a
//! real kube-apiserver + etcd and the `bosun` binary:
//!
//! - **settings** (same bytes): the baseline. It pays everything a swap
//!   pays — the ReconcilerModule watch, the host's own controller, the
//!   re-enqueue, a guest call, the server-side apply and the watch that sees
//!   it — except loading a component.
//! - **new version, compiled**: a host run with `--no-cache`, so every swap
//!   compiles the component with Cranelift (a version the host never saw).
//! - **new version, from the compile cache**: the same swaps on a host whose
//!   on-disk cache already holds both versions (a swap back, or a restart).
//!
//! The two versions are the webapp example and its `WEBAPP_REVISION=2`
//! build, read from files (`source.file`), alternated so that every sample
//! is a real change of bytes. Ratios are to the settings baseline.
//!
//! `cargo bench -p bosun-e2e --bench swap` (builds the control plane, the
//! guests and the host first if needed).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Cluster, Host, eventually, label};
use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{
    Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::{Value, json};

const SETTINGS_SAMPLES: usize = 9;
const COMPILED_SAMPLES: usize = 5;
const CACHED_SAMPLES: usize = 9;
const LONG: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // gets a quick pass that only checks the scenario runs.
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let samples = |n: usize| if quick { 1 } else { n };

    let first = bosun_testenv::guests::path("webapp").expect("the guests build");
    let second = bosun_testenv::guests::webapp_next().expect("webapp revision 2 builds");
    let size = std::fs::metadata(&first).expect("webapp.wasm").len();
    // The host as it ships: the release build.
    let bosun = bosun_testenv::guests::host_binary_release().expect("bosun builds");
    let cluster = Cluster::start().await;

    let cache = tempfile::tempdir().expect("a temporary compile cache");
    let cache_dir = cache.path().display().to_string();
    let mut results = Vec::new();

    // Compiled: the cache is off, every load compiles.
    {
        let _host = Host::start_binary(
            &bosun,
            &cluster,
            &[],
            &["--modules-from-cluster", "--no-cache"],
        )
        .await;
        let bench = Bench::new(&cluster, &[first.clone(), second.clone()]).await;
        results.push((
            "settings change (same bytes; baseline)",
            bench.settings(samples(SETTINGS_SAMPLES)).await,
        ));
        results.push((
            "new version, compiled",
            bench.swaps(samples(COMPILED_SAMPLES)).await,
        ));
        bench.delete().await;
    }
    // From the cache: a host whose cache has seen both versions.
    {
        let _host = Host::start_binary(
            &bosun,
            &cluster,
            &[],
            &["--modules-from-cluster", "--cache-dir", &cache_dir],
        )
        .await;
        let bench = Bench::new(&cluster, &[first.clone(), second.clone()]).await;
        // Fill the cache with both versions before measuring.
        bench.swaps(2).await;
        results.push((
            "new version, from the compile cache",
            bench.swaps(samples(CACHED_SAMPLES)).await,
        ));
        bench.delete().await;
    }

    let baseline = median(&results[0].1.latency);
    println!(
        "\nhot swap of webapp ({:.2} MB): ReconcilerModule patched -> Deployment applied by the new version",
        size as f64 / 1e6
    );
    println!(
        "{:<40} {:>8} {:>8} {:>8} {:>6}  load (status.loadTimeMs)",
        "change", "median", "min", "max", "ratio"
    );
    for (name, run) in &results {
        let m = median(&run.latency);
        println!(
            "{name:<40} {:>6.0}ms {:>6.0}ms {:>6.0}ms {:>5.1}x  {}",
            ms(m),
            ms(*run.latency.iter().min().unwrap()),
            ms(*run.latency.iter().max().unwrap()),
            m.as_secs_f64() / baseline.as_secs_f64(),
            run.load_ms
                .iter()
                .map(|ms| format!("{ms}"))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    if quick {
        println!("(one sample each: run under `cargo bench` for figures)");
    }
}

/// One measured series.
struct Run {
    latency: Vec<Duration>,
    /// The host's own figure for each load, from the resource's status.
    load_ms: Vec<u64>,
}

/// A `webapp` ReconcilerModule and one WebApp it reconciles.
struct Bench<'a> {
    cluster: &'a Cluster,
    modules: Api<DynamicObject>,
    deployments: Api<DynamicObject>,
    /// The Deployments again, through a client of its own: a watch holds
    /// its connection, and the patch that starts a sample must not pay for
    /// opening another one.
    watched: Api<DynamicObject>,
    versions: [String; 2],
    /// Which of `versions` the module runs now.
    current: std::cell::Cell<usize>,
}

impl<'a> Bench<'a> {
    async fn new(cluster: &'a Cluster, versions: &[std::path::PathBuf; 2]) -> Bench<'a> {
        let bench = Bench {
            cluster,
            modules: cluster.reconciler_modules(),
            deployments: cluster.api("apps", "v1", "Deployment", "deployments"),
            watched: {
                let client = cluster.env.new_client().await.expect("a second client");
                Api::namespaced_with(
                    client,
                    &cluster.namespace,
                    &ApiResource::erase::<Deployment>(&()),
                )
            },
            versions: versions.clone().map(|p| p.display().to_string()),
            current: std::cell::Cell::new(0),
        };
        let module: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "bosun.dev/v1alpha1", "kind": "ReconcilerModule",
            "metadata": {"name": "webapp"},
            "spec": {
                "source": {"file": {"path": bench.versions[0]}},
                "settings": {"commonLabels": {"sample": "initial"}},
                "permissions": common::permissions_of(&bench.versions[0]),
            }
        }))
        .expect("a ReconcilerModule");
        bench
            .modules
            .create(&PostParams::default(), &module)
            .await
            .expect("create the ReconcilerModule");
        let app: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
            "metadata": {"name": "shop"}, "spec": {"image": "nginx", "replicas": 1, "port": 8080}
        }))
        .expect("a WebApp");
        cluster
            .webapps()
            .create(&PostParams::default(), &app)
            .await
            .expect("create the WebApp");
        eventually("the first Deployment", LONG, || async {
            bench
                .deployments
                .get_opt("shop")
                .await
                .ok()
                .flatten()
                .filter(|d| label(d, "sample").as_deref() == Some("initial"))
        })
        .await;
        bench
    }

    /// Changes only the settings, `samples` times.
    async fn settings(&self, samples: usize) -> Run {
        let mut latency = Vec::new();
        for i in 0..samples {
            let value = format!("s{i}");
            let patch = json!({"spec": {"settings": {"commonLabels": {"sample": value}}}});
            latency.push(
                self.measure(patch, |d| {
                    label(d, "sample").as_deref() == Some(value.as_str())
                })
                .await,
            );
        }
        Run {
            latency,
            load_ms: Vec::new(),
        }
    }

    /// Swaps to the other version, `samples` times.
    async fn swaps(&self, samples: usize) -> Run {
        let mut run = Run {
            latency: Vec::new(),
            load_ms: Vec::new(),
        };
        for _ in 0..samples {
            let next = 1 - self.current.get();
            let patch = json!({"spec": {"source": {"file": {"path": self.versions[next]}}}});
            let revision = (next == 1).then_some("2");
            let elapsed = self
                .measure(patch, |d| {
                    label(d, webapp::REVISION_LABEL).as_deref() == revision
                })
                .await;
            self.current.set(next);
            run.latency.push(elapsed);
            let status = self.modules.get("webapp").await.expect("read the module");
            if let Some(load) = status.data["status"]["loadTimeMs"].as_u64() {
                run.load_ms.push(load);
            }
        }
        run
    }

    /// Patches the module and waits, on a watch, for the Deployment that
    /// satisfies `applied`.
    async fn measure(&self, patch: Value, applied: impl Fn(&DynamicObject) -> bool) -> Duration {
        let current = self
            .deployments
            .get("shop")
            .await
            .expect("read the Deployment");
        assert!(!applied(&current), "the change is already there");
        let version = current
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        let watch = self
            .watched
            .watch(
                &WatchParams::default().fields("metadata.name=shop"),
                &version,
            )
            .await
            .expect("watch the Deployment");
        let mut watch = std::pin::pin!(watch);
        let started = Instant::now();
        self.modules
            .patch("webapp", &PatchParams::default(), &Patch::Merge(patch))
            .await
            .expect("patch the ReconcilerModule");
        let waited = tokio::time::timeout(LONG, async {
            while let Some(event) = watch.try_next().await.expect("the watch") {
                if let WatchEvent::Modified(d) = event
                    && applied(&d)
                {
                    return;
                }
            }
            panic!("the Deployment watch ended");
        })
        .await;
        let elapsed = started.elapsed();
        waited.unwrap_or_else(|_| panic!("the change was not applied within {LONG:?}"));
        // Let the host settle (status writes) before the next sample.
        tokio::time::sleep(Duration::from_millis(300)).await;
        elapsed
    }

    async fn delete(&self) {
        let _ = self
            .cluster
            .webapps()
            .delete("shop", &Default::default())
            .await;
        let _ = self.deployments.delete("shop", &Default::default()).await;
        let _ = self
            .cluster
            .api("", "v1", "Service", "services")
            .delete("shop", &Default::default())
            .await;
        let _ = self.modules.delete("webapp", &Default::default()).await;
        eventually("the module and the app are gone", LONG, || async {
            let gone = self.modules.get_opt("webapp").await.ok()?.is_none()
                && self.cluster.webapps().get_opt("shop").await.ok()?.is_none();
            gone.then_some(())
        })
        .await;
    }
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
