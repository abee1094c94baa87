//! Many modules: one host running M modules beside M native controller
//! processes doing the same work, and what each side holds in memory.
//!
//! Every module reconciles a kind of its own — `fleet.bench.bosun.dev`
//! `At001` … `AtM`, CRDs generated for the run from cnat's — with cnat's
//! logic: the host loads M copies of the `cnat-fleet` component, each with
//! its kind patched in (distinct components, compiled and cached one by
//! one, as M teams' modules would be); the native side starts
//! `native-controller --fleet-kind` once per kind, as M teams each running
//! their own kube-rs controller would. Each run creates K due objects of
//! every kind and waits until the API server holds every one converged,
//! then reads the resident memory of every process of the side: once
//! converged, and again after a few seconds idle, by which time the host
//! has let go of the idle modules' compiled code (`--unload-idle-after`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use serde_json::json;

use super::controllers::{Binaries, Controller, Side};
use super::scenario::{self, NAMESPACE};

/// The API group of every generated kind.
const GROUP: &str = "fleet.bench.bosun.dev";
/// Creates in flight at once, as in the burst scenario.
const CONCURRENT_CREATES: usize = 32;
/// How long the objects of a run may take to converge.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(600);
/// The host's `--unload-idle-after` in this scenario (10 minutes by
/// default): short, so that a run sees what an idle fleet costs.
const UNLOAD_IDLE_AFTER: &str = "5s";
/// How long both sides are left idle, once converged, before their idle
/// memory is read: the unload delay, and a sweep of the host's unloader.
const IDLE: Duration = Duration::from_secs(8);

/// What one run of one side measured.
#[derive(Debug, Clone)]
pub struct FleetRun {
    /// Modules (bosun) or controller processes (native).
    pub modules: usize,
    /// Objects of each module's kind.
    pub objects_per_module: usize,
    /// Resident memory of the side's processes once converged, summed.
    pub rss: u64,
    /// The same after [`IDLE`] more without work: the host has let go of
    /// its idle modules' code by then.
    pub rss_idle: u64,
    /// Peak resident memory of each process, summed.
    pub rss_peak: u64,
    /// CPU seconds the side spent starting and converging every object.
    pub cpu: f64,
}

/// The `i`th generated kind (from 1): `At001`.
pub fn kind(i: usize) -> String {
    format!("At{i:03}")
}

fn resource(kind: &str) -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: "v1alpha1".into(),
        api_version: format!("{GROUP}/v1alpha1"),
        kind: kind.into(),
        plural: format!("{}s", kind.to_lowercase()),
    }
}

/// cnat's CRD, renamed to `kind` in the fleet's group.
fn crd(cnat_crd: &str, kind: &str) -> Result<String> {
    let plural = format!("{}s", kind.to_lowercase());
    let mut text = cnat_crd.to_owned();
    for (from, to) in [
        (
            "  name: ats.cnat.programming-kubernetes.info\n".to_owned(),
            format!("  name: {plural}.{GROUP}\n"),
        ),
        (
            "  group: cnat.programming-kubernetes.info\n".to_owned(),
            format!("  group: {GROUP}\n"),
        ),
        ("    kind: At\n".to_owned(), format!("    kind: {kind}\n")),
        (
            "    plural: ats\n".to_owned(),
            format!("    plural: {plural}\n"),
        ),
        (
            "    singular: at\n".to_owned(),
            format!("    singular: {}\n", kind.to_lowercase()),
        ),
    ] {
        ensure!(
            text.matches(&from).count() == 1,
            "cnat's CRD no longer holds {from:?} once: the fleet's CRDs cannot be generated from it"
        );
        text = text.replace(&from, &to);
    }
    Ok(text)
}

/// Compiles `module` into the host's compile cache (`bosun inspect`), so
/// that every run of the host loads it from the cache as a host restarted
/// in production does, and no run's peak memory holds a compilation.
pub fn compile_into_cache(binaries: &Binaries, module: &Path) -> Result<()> {
    compile_into_cache_with(&binaries.bosun, &binaries.cache_dir, module)
}

/// [`compile_into_cache`] with the host `binary` and its cache `cache_dir`.
pub fn compile_into_cache_with(binary: &Path, cache_dir: &Path, module: &Path) -> Result<()> {
    let output = std::process::Command::new(binary)
        .arg("inspect")
        .arg(module)
        .env("BOSUN_CACHE_DIR", cache_dir)
        .output()
        .context("running bosun inspect")?;
    if !output.status.success() {
        bail!(
            "bosun inspect {} failed: {}",
            module.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// The `cnat-fleet` component of every kind, each compiled into the
/// host's cache.
pub fn modules(binaries: &Binaries, count: usize) -> Result<Vec<PathBuf>> {
    (1..=count)
        .map(|i| {
            let kind = kind(i);
            let module = bosun_testenv::guests::cnat_fleet(&kind)
                .map_err(|e| anyhow::anyhow!("the cnat-fleet component for {kind}: {e}"))?;
            compile_into_cache(binaries, &module)?;
            Ok(module)
        })
        .collect()
}

/// The running side: one host, or one process per kind.
struct Fleet(Vec<Controller>);

impl Fleet {
    fn check_alive(&mut self) -> Result<()> {
        self.0.iter_mut().try_for_each(Controller::check_alive)
    }

    fn cpu_seconds(&self) -> Result<f64> {
        self.0.iter().map(Controller::cpu_seconds).sum()
    }

    fn rss(&self) -> Result<(u64, u64)> {
        self.0.iter().try_fold((0, 0), |(rss, peak), controller| {
            let (r, p) = controller.rss()?;
            Ok((rss + r, peak + p))
        })
    }
}

/// Runs `side` with `count` modules (`modules[..count]`), `per_module`
/// objects each, on a control plane of its own.
pub async fn run(
    side: Side,
    binaries: &Binaries,
    modules: &[PathBuf],
    count: usize,
    per_module: usize,
    out: &Path,
) -> Result<FleetRun> {
    ensure!(
        modules.len() >= count,
        "{count} modules asked for, {} built",
        modules.len()
    );
    let (env, client) = scenario::control_plane().await?;
    let cnat_crd = std::fs::read_to_string(
        bosun_testenv::guests::workspace_root().join("examples/cnat/crd.yaml"),
    )
    .context("reading cnat's CRD")?;
    let kinds: Vec<String> = (1..=count).map(kind).collect();
    let crds = kinds
        .iter()
        .map(|kind| crd(&cnat_crd, kind).map(bosun_testenv::CrdSource::yaml))
        .collect::<Result<Vec<_>>>()?;
    env.install_crds(crds)
        .await
        .map_err(|e| anyhow::anyhow!("installing the fleet's CRDs: {e}"))?;
    let kubeconfig = env
        .kubeconfig_path()
        .context("the control plane has no kubeconfig")?;

    let mut fleet = Fleet(match side {
        Side::Bosun => vec![Controller::host(
            binaries,
            &modules[..count],
            kubeconfig,
            &out.join(format!("bosun-fleet-{count}.log")),
            &["--unload-idle-after", UNLOAD_IDLE_AFTER],
        )?],
        Side::Native => kinds
            .iter()
            .map(|kind| {
                Controller::native(
                    binaries,
                    &["--module", "cnat", "--fleet-kind", kind],
                    kubeconfig,
                    &out.join(format!("native-fleet-{count}-{kind}.log")),
                )
            })
            .collect::<Result<_>>()?,
        Side::Before => bail!("the many-modules scenario runs no before side"),
    });

    let objects: Vec<(ApiResource, String)> = kinds
        .iter()
        .flat_map(|kind| {
            let resource = resource(kind);
            (0..per_module)
                .map(move |i| (resource.clone(), format!("{}-{i:04}", kind.to_lowercase())))
        })
        .collect();
    futures::stream::iter(&objects)
        .map(|(resource, name)| {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, resource);
            async move {
                let object: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": resource.api_version,
                    "kind": resource.kind,
                    "metadata": {"name": name, "namespace": NAMESPACE},
                    "spec": {"schedule": "2020-01-01T00:00:00Z", "command": "echo bench"},
                }))?;
                api.create(&PostParams::default(), &object).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CONCURRENT_CREATES)
        .try_collect::<()>()
        .await
        .context("creating the objects")?;

    let started = Instant::now();
    loop {
        let mut converged = 0;
        for kind in &kinds {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), NAMESPACE, &resource(kind));
            converged += api
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .filter(|o| scenario::is_converged(o))
                .count();
        }
        if converged == objects.len() {
            break;
        }
        if started.elapsed() > CONVERGE_TIMEOUT {
            bail!(
                "{}: {converged} of {} objects of {count} kinds converged within {CONVERGE_TIMEOUT:?}",
                side.name(),
                objects.len()
            );
        }
        fleet.check_alive()?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let cpu = fleet.cpu_seconds()?;
    // Idle: the watch events of the last status writes handled.
    tokio::time::sleep(Duration::from_secs(3)).await;
    fleet.check_alive()?;
    let (rss, _) = fleet.rss()?;
    tokio::time::sleep(IDLE).await;
    fleet.check_alive()?;
    let (rss_idle, rss_peak) = fleet.rss()?;

    let pods = Api::<Pod>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default())
        .await?
        .items;
    let controlled = pods
        .iter()
        .filter(|pod| {
            pod.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && o.api_version.starts_with(GROUP))
        })
        .count();
    ensure!(
        controlled == objects.len(),
        "{}: {controlled} Pods controlled by the fleet's objects, {} expected",
        side.name(),
        objects.len()
    );
    Ok(FleetRun {
        modules: count,
        objects_per_module: per_module,
        rss,
        rss_idle,
        rss_peak,
        cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_crd_names_the_kind_everywhere_cnat_named_at() {
        let cnat = std::fs::read_to_string(
            bosun_testenv::guests::workspace_root().join("examples/cnat/crd.yaml"),
        )
        .unwrap();
        let text = crd(&cnat, "At007").unwrap();
        assert!(text.contains("  name: at007s.fleet.bench.bosun.dev\n"));
        assert!(text.contains("  group: fleet.bench.bosun.dev\n"));
        assert!(text.contains("    kind: At007\n"));
        assert!(text.contains("    plural: at007s\n"));
        assert!(text.contains("    singular: at007\n"));
        assert!(!text.contains("cnat.programming-kubernetes.info"));
    }
}
