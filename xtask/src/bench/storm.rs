//! A real change in a storm: single new Mirrors created while the
//! controller works through thousands of others, and how long each waits.
//!
//! N Mirrors (and the 100 ConfigMaps they read) exist before the
//! controller starts. Two storms follow:
//!
//! - **initial**: the controller starts and reconciles all N. Once the
//!   first is done, a new Mirror is created every 100 ms (`probes` of
//!   them; 10 ms apart in the swap below, which goes faster); each
//!   probe's latency runs from its create's answer to its
//!   status seen on a watch. The storm's duration runs from the process's
//!   start to the last of the N seen reconciled.
//! - **hot swap**: once all is converged, the host is handed a new version
//!   of the module through its watched `--modules-dir` (the same component
//!   with a custom section appended: new bytes, a new digest, the same
//!   logic; compiled into the cache beforehand, so the swap pays no
//!   compile), and re-reconciles every object; the probes are created
//!   again once its reconcile count rises. kube-rs has no hot swap: the
//!   native side is restarted, as a kube-rs user deploys a new version,
//!   and lists and reconciles everything again. The storm's duration runs
//!   from the swap (the file renamed into place; the process killed) to
//!   the side's reconcile count having risen by every object. Probes'
//!   own reconciles count there too, ending it at most 2×probes
//!   reconciles early, on every side alike.
//!
//! The host queues the objects of an initial list or a swap at low
//! priority and a watch event (a probe) at high, so a probe goes first;
//! the host before the priority queue (`--before-binary`) and
//! kube-runtime take keys in the order they came.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::api::DynamicObject;

use super::controllers::{Binaries, Controller, Side};
use super::mirrors::{self, Marks};
use super::report::{Row, quantile_ms};

const NAMESPACE: &str = "storm";
/// ConfigMaps the N Mirrors read, N/100 Mirrors each.
const SOURCES: usize = 100;
/// Between two probes during the initial reconcile (which writes every
/// status: tens of seconds at 10,000 objects).
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// Between two probes during a swap, whose re-reconciles write nothing and
/// go about ten times faster: the probes must land inside it.
const SWAP_PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// How long a storm may take.
const STORM_TIMEOUT: Duration = Duration::from_secs(1200);

/// How a run is shaped.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Mirrors existing before the controller starts.
    pub objects: usize,
    /// Single changes timed in each storm.
    pub probes: usize,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct StormRun {
    /// From the start of the process to all N reconciled.
    pub initial: Duration,
    /// The probes made during it.
    pub initial_probes: Vec<Duration>,
    /// From the swap (or restart) to all N reconciled again.
    pub swap: Duration,
    /// The probes made during it.
    pub swap_probes: Vec<Duration>,
}

fn marks(object: &DynamicObject) -> Vec<String> {
    if !mirrors::is_synced(object) {
        return Vec::new();
    }
    let name = object.metadata.name.as_deref().unwrap_or_default();
    let mut marks = vec!["synced".to_owned()];
    if name.starts_with("m-") {
        marks.push("m-synced".into());
    }
    marks
}

/// `module` with a custom section appended: the same code in new bytes, a
/// new version to the host. A custom section may follow the last section
/// of a component (id 0, size, name, payload).
pub fn second_build(module: &Path, out: &Path) -> Result<PathBuf> {
    let mut bytes =
        std::fs::read(module).with_context(|| format!("reading {}", module.display()))?;
    let name = b"bosun-bench-revision";
    let payload = b"2";
    let mut section = leb128(name.len());
    section.extend_from_slice(name);
    section.extend_from_slice(payload);
    bytes.push(0);
    bytes.extend(leb128(section.len()));
    bytes.extend(section);
    let path = out.join("mirror-next.wasm");
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn leb128(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Creates `count` probe Mirrors named `prefix-K`, one per `interval`;
/// returns each name with its create's answer.
async fn probe(
    client: &kube::Client,
    prefix: &str,
    count: usize,
    interval: Duration,
) -> Result<Vec<(String, Instant)>> {
    let api = kube::Api::<DynamicObject>::namespaced_with(
        client.clone(),
        NAMESPACE,
        &mirrors::mirror_resource(),
    );
    let mut created = Vec::with_capacity(count);
    for k in 0..count {
        let name = format!("{prefix}-{k:03}");
        api.create(
            &kube::api::PostParams::default(),
            &mirrors::mirror(NAMESPACE, &name, "probe-src", None)?,
        )
        .await?;
        created.push((name, Instant::now()));
        tokio::time::sleep(interval).await;
    }
    Ok(created)
}

/// Each probe's latency, once all are seen reconciled.
async fn probe_latencies(
    watch: &Marks,
    created: &[(String, Instant)],
    controller: &mut Controller,
) -> Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(created.len());
    for (name, at) in created {
        let seen = watch
            .wait_for(name, "synced", STORM_TIMEOUT, controller)
            .await?;
        latencies.push(seen.saturating_duration_since(*at));
    }
    Ok(latencies)
}

/// Polls `controller`'s reconcile count every 10 ms until it reaches `target`.
async fn reconciled(controller: &mut Controller, target: f64) -> Result<Instant> {
    let started = Instant::now();
    loop {
        if controller.reconciles().await.unwrap_or(0.0) >= target {
            return Ok(Instant::now());
        }
        controller.check_alive()?;
        if started.elapsed() > STORM_TIMEOUT {
            bail!("the reconcile count did not reach {target} within {STORM_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn start(
    side: Side,
    binaries: &Binaries,
    modules_dir: &Path,
    kubeconfig: &Path,
    log: &Path,
) -> Result<Controller> {
    match side {
        Side::Native => {
            Controller::native_counted(binaries, &["--module", "mirror"], kubeconfig, log)
        }
        host => {
            let args = [
                "--grant-declared".to_owned(),
                "--modules-dir".to_owned(),
                modules_dir.display().to_string(),
            ];
            Controller::host_side(host, binaries, &args, kubeconfig, log)
        }
    }
}

/// Runs `side` through both storms once.
pub async fn run(
    side: Side,
    binaries: &Binaries,
    (first, second): (&Path, &Path),
    shape: Shape,
    out: &Path,
) -> Result<StormRun> {
    let (env, client) = mirrors::control_plane(&[NAMESPACE]).await?;
    let mut config_maps = (0..SOURCES)
        .map(|k| {
            mirrors::config_map(
                NAMESPACE,
                &format!("src-{k:03}"),
                BTreeMap::from([("v".to_owned(), k.to_string())]),
                BTreeMap::new(),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    config_maps.push(mirrors::config_map(
        NAMESPACE,
        "probe-src",
        BTreeMap::from([("probe".to_owned(), "yes".to_owned())]),
        BTreeMap::new(),
    )?);
    mirrors::create_config_maps(&client, config_maps).await?;
    let objects = (0..shape.objects)
        .map(|i| {
            mirrors::mirror(
                NAMESPACE,
                &format!("m-{i:05}"),
                &format!("src-{:03}", i % SOURCES),
                None,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    mirrors::create_mirrors(&client, objects).await?;
    let watch = Marks::start(&client, &mirrors::mirror_resource(), NAMESPACE, marks).await?;

    let modules_dir = out.join(format!("storm-modules-{}", side.name()));
    if modules_dir.exists() {
        std::fs::remove_dir_all(&modules_dir)?;
    }
    std::fs::create_dir_all(&modules_dir)?;
    std::fs::copy(first, modules_dir.join("mirror.wasm"))?;
    let kubeconfig = mirrors::kubeconfig(&env)?;
    let log = |phase: &str| out.join(format!("{}-storm-{phase}.log", side.name()));

    // The initial storm.
    let started = Instant::now();
    let mut controller = start(side, binaries, &modules_dir, kubeconfig, &log("initial"))?;
    watch
        .wait_count("m-synced", 1, STORM_TIMEOUT, &mut controller)
        .await?;
    let created = probe(&client, "probe-a", shape.probes, PROBE_INTERVAL).await?;
    watch
        .wait_count("m-synced", shape.objects, STORM_TIMEOUT, &mut controller)
        .await?;
    let initial = watch
        .last("m-synced")
        .context("no Mirror reconciled")?
        .saturating_duration_since(started);
    let initial_probes = probe_latencies(&watch, &created, &mut controller).await?;
    // The last status writes' own watch events handled.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The hot swap (native: a restart), re-reconciling everything.
    let total = (shape.objects + shape.probes) as f64;
    let (swapped, before) = match side {
        Side::Native => {
            controller.kill()?;
            let swapped = Instant::now();
            controller = start(side, binaries, &modules_dir, kubeconfig, &log("restart"))?;
            (swapped, 0.0)
        }
        _ => {
            let before = controller.reconciles().await?;
            // Written beside it and renamed over it, as a deploy does: the
            // host never reads half a file.
            let staged = modules_dir.join("mirror.wasm.tmp");
            std::fs::copy(second, &staged)?;
            std::fs::rename(&staged, modules_dir.join("mirror.wasm"))?;
            (Instant::now(), before)
        }
    };
    reconciled(&mut controller, before + 1.0).await?;
    // The count is watched while the probes go out: a storm over before
    // the last probe is created must not be timed as lasting until then.
    let (created, done) = tokio::join!(
        probe(&client, "probe-b", shape.probes, SWAP_PROBE_INTERVAL),
        reconciled(&mut controller, before + total)
    );
    let (created, done) = (created?, done?);
    let swap_probes = probe_latencies(&watch, &created, &mut controller).await?;
    Ok(StormRun {
        initial,
        initial_probes,
        swap: done.saturating_duration_since(swapped),
        swap_probes,
    })
}

/// Runs every side `repeats` times, alternating, and makes the rows.
pub async fn rows(
    binaries: &Binaries,
    mirror: &Path,
    shape: Shape,
    repeats: usize,
    out: &Path,
) -> Result<(Vec<Row>, String)> {
    let second = second_build(mirror, out)?;
    for side in binaries.host_sides() {
        let (binary, cache) = binaries.host(side)?;
        super::fleet::compile_into_cache_with(binary, cache, &second)?;
    }
    let mut sides = binaries.host_sides();
    sides.push(Side::Native);
    let mut runs: Vec<(Side, StormRun)> = Vec::new();
    for repeat in 0..repeats {
        for &side in &sides {
            eprintln!(
                "bench: storm of {} Mirrors, {} (repeat {}/{repeats}) …",
                shape.objects,
                side.name(),
                repeat + 1
            );
            let run = mirrors::retried(&format!("storm, {}", side.name()), || {
                run(side, binaries, (mirror, &second), shape, out)
            })
            .await?;
            eprintln!(
                "bench:   initial {:.1}s (probe p50 {:.0} ms), swap {:.1}s (probe p50 {:.0} ms)",
                run.initial.as_secs_f64(),
                quantile_ms(&run.initial_probes, 0.5),
                run.swap.as_secs_f64(),
                quantile_ms(&run.swap_probes, 0.5),
            );
            runs.push((side, run));
        }
    }
    let of = |side: Side, f: &dyn Fn(&StormRun) -> f64| -> Vec<f64> {
        runs.iter()
            .filter(|(s, _)| *s == side)
            .map(|(_, r)| f(r))
            .collect()
    };
    let row = |metric: String, unit: &'static str, f: &dyn Fn(&StormRun) -> f64| Row {
        before: of(Side::Before, f),
        ..Row::new(metric, unit, of(Side::Bosun, f), of(Side::Native, f))
    };
    let n = shape.objects;
    let rows = vec![
        row(
            format!("(g) initial reconcile of {n} Mirrors, start to last"),
            "s",
            &|r| r.initial.as_secs_f64(),
        ),
        row(
            format!("(g) one change during the initial reconcile of {n}, p50"),
            "ms",
            &|r| quantile_ms(&r.initial_probes, 0.5),
        ),
        row(
            format!("(g) one change during the initial reconcile of {n}, p99"),
            "ms",
            &|r| quantile_ms(&r.initial_probes, 0.99),
        ),
        row(
            format!("(g) hot swap re-reconciling {n} (native: restart), swap to last"),
            "s",
            &|r| r.swap.as_secs_f64(),
        ),
        row(
            format!("(g) one change during the hot swap of {n} (native: restart), p50"),
            "ms",
            &|r| quantile_ms(&r.swap_probes, 0.5),
        ),
        row(
            format!("(g) one change during the hot swap of {n} (native: restart), p99"),
            "ms",
            &|r| quantile_ms(&r.swap_probes, 0.99),
        ),
    ];
    let note = format!(
        "storm: {n} Mirrors existing before the controller starts, {} single creates 100 ms apart during the initial reconcile and 10 ms apart during a hot swap through --modules-dir (native: a restart, kube-rs having no hot swap), {repeats} runs per side{}",
        shape.probes,
        if binaries.before.is_some() {
            ", bosun before = --before-binary"
        } else {
            ""
        }
    );
    Ok((rows, note))
}
