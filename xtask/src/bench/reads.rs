//! Event-driven reads: a ConfigMap a Mirror read changes, and the Mirror's
//! status shows the new data.
//!
//! N Mirrors each name a ConfigMap of their own (`src-i`, labelled
//! `group=gK`); N/10 more name a ConfigMap that does not exist and list the
//! ConfigMaps of one group by selector, so that every ConfigMap is read by
//! name by one Mirror and by selector by one other. Once every Mirror shows
//! its ConfigMap's data, the benchmark changes ConfigMaps one at a time
//! (spread over the N) and times, per change, from its write's answer to
//! the Mirror's status showing the new value, seen on a watch; and counts
//! reconciles per change on each side's own counter.
//!
//! The host finds the Mirrors to reconcile in what each reconcile read; the
//! native side (`native-controller --module mirror`) through the mapper a
//! kube-rs user writes (`bench/native/src/mapper.rs`): for each ConfigMap
//! event, the Mirrors of the Controller's store whose spec names it or
//! whose selector matches its labels. Both should reconcile the named
//! Mirror, the selecting one, and the named one again for its own status
//! write: about 3 per change. The host built before event-driven reads
//! reconciles nothing on such a change (only a resync would), so it has no
//! figure here.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;

use super::controllers::{Binaries, Controller, Side};
use super::mirrors::{self, Marks};
use super::report::{Row, quantile_ms};

const NAMESPACE: &str = "reads";
/// How long the Mirrors may take to converge at first.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long one change may take to reach its Mirror.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// How a run is shaped.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Mirrors reading a ConfigMap of their own by name.
    pub mirrors: usize,
    /// ConfigMaps changed, one at a time.
    pub changes: usize,
}

impl Shape {
    /// Mirrors listing a group of ConfigMaps by selector.
    fn selectors(self) -> usize {
        (self.mirrors / 10).max(1)
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct ReadsRun {
    /// Per change, from its write's answer to the Mirror showing it.
    pub latencies: Vec<Duration>,
    /// Reconciles per change, on the side's own counter.
    pub reconciles_per_change: f64,
    /// CPU seconds the controller spent over the changes.
    pub cpu: f64,
}

/// The marks: `synced` (status for the generation) and `v=VALUE`, the
/// mirrored `v` key.
fn marks(object: &DynamicObject) -> Vec<String> {
    if !mirrors::is_synced(object) {
        return Vec::new();
    }
    let mut marks = vec!["synced".to_owned()];
    if let Some(v) = mirrors::mirrored(object, "v") {
        marks.push(format!("v={v}"));
    }
    marks
}

/// Runs `side` once.
pub async fn run(
    side: Side,
    binaries: &Binaries,
    mirror: &Path,
    shape: Shape,
    out: &Path,
) -> Result<ReadsRun> {
    let (env, client) = mirrors::control_plane(&[NAMESPACE]).await?;
    let selectors = shape.selectors();
    let config_maps = (0..shape.mirrors)
        .map(|i| {
            mirrors::config_map(
                NAMESPACE,
                &format!("src-{i:05}"),
                BTreeMap::from([("v".to_owned(), "0".to_owned())]),
                BTreeMap::from([("group".to_owned(), format!("g{}", i % selectors))]),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    mirrors::create_config_maps(&client, config_maps).await?;
    let mut objects = (0..shape.mirrors)
        .map(|i| {
            mirrors::mirror(
                NAMESPACE,
                &format!("m-{i:05}"),
                &format!("src-{i:05}"),
                None,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    for j in 0..selectors {
        objects.push(mirrors::mirror(
            NAMESPACE,
            &format!("sel-{j:05}"),
            &format!("absent-{j:05}"),
            Some(&format!("group=g{j}")),
        )?);
    }
    mirrors::create_mirrors(&client, objects).await?;
    let watch = Marks::start(&client, &mirrors::mirror_resource(), NAMESPACE, marks).await?;

    let kubeconfig = mirrors::kubeconfig(&env)?;
    let log = out.join(format!("{}-reads.log", side.name()));
    let mut controller = match side {
        Side::Native => {
            Controller::native_counted(binaries, &["--module", "mirror"], kubeconfig, &log)?
        }
        host => {
            let args = [
                "--grant-declared".to_owned(),
                "--module".to_owned(),
                mirror.display().to_string(),
            ];
            Controller::host_side(host, binaries, &args, kubeconfig, &log)?
        }
    };
    watch
        .wait_count(
            "synced",
            shape.mirrors + selectors,
            CONVERGE_TIMEOUT,
            &mut controller,
        )
        .await?;
    // The status writes' own watch events handled.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let reconciles_before = controller.reconciles().await?;
    let cpu_before = controller.cpu_seconds()?;
    let mut latencies = Vec::with_capacity(shape.changes);
    for k in 0..shape.changes {
        // Spread over the ConfigMaps, each changed once.
        let i = k * shape.mirrors / shape.changes;
        let value = format!("{}", k + 1);
        api.patch(
            &format!("src-{i:05}"),
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": value}})),
        )
        .await?;
        let written = Instant::now();
        let shown = watch
            .wait_for(
                &format!("m-{i:05}"),
                &format!("v={value}"),
                CHANGE_TIMEOUT,
                &mut controller,
            )
            .await?;
        latencies.push(shown.saturating_duration_since(written));
        // The status write's own event, and the selecting Mirror, handled
        // before the next change.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let reconciles = controller.reconciles().await? - reconciles_before;
    let cpu = controller.cpu_seconds()? - cpu_before;
    ensure!(
        reconciles >= shape.changes as f64,
        "{}: {reconciles} reconciles for {} changes",
        side.name(),
        shape.changes
    );
    Ok(ReadsRun {
        latencies,
        reconciles_per_change: reconciles / shape.changes as f64,
        cpu,
    })
}

/// Runs both sides `repeats` times, alternating, and makes the rows.
pub async fn rows(
    binaries: &Binaries,
    mirror: &Path,
    shape: Shape,
    repeats: usize,
    out: &Path,
) -> Result<(Vec<Row>, String)> {
    let mut runs: Vec<(Side, ReadsRun)> = Vec::new();
    for repeat in 0..repeats {
        for side in Side::BOTH {
            eprintln!(
                "bench: reads, {} Mirrors, {} changes, {} (repeat {}/{repeats}) …",
                shape.mirrors,
                shape.changes,
                side.name(),
                repeat + 1
            );
            let run = mirrors::retried(&format!("reads, {}", side.name()), || {
                run(side, binaries, mirror, shape, out)
            })
            .await?;
            eprintln!(
                "bench:   p50 {:.1} ms, {:.2} reconciles per change",
                quantile_ms(&run.latencies, 0.5),
                run.reconciles_per_change
            );
            runs.push((side, run));
        }
    }
    let of = |side: Side, f: &dyn Fn(&ReadsRun) -> f64| -> Vec<f64> {
        runs.iter()
            .filter(|(s, _)| *s == side)
            .map(|(_, r)| f(r))
            .collect()
    };
    let row = |metric: String, unit: &'static str, f: &dyn Fn(&ReadsRun) -> f64| {
        Row::new(metric, unit, of(Side::Bosun, f), of(Side::Native, f))
    };
    let n = shape.mirrors;
    let rows = vec![
        row(
            format!("(f) read change → Mirror status, p50, {n} Mirrors"),
            "ms",
            &|r| quantile_ms(&r.latencies, 0.5),
        ),
        row(
            format!("(f) read change → Mirror status, p99, {n} Mirrors"),
            "ms",
            &|r| quantile_ms(&r.latencies, 0.99),
        ),
        row(
            format!("(f) reconciles per read change, {n} Mirrors"),
            "reconciles",
            &|r| r.reconciles_per_change,
        ),
        row(
            format!("(f) CPU over {} read changes", shape.changes),
            "s",
            &|r| r.cpu,
        ),
    ];
    let note = format!(
        "reads: {n} Mirrors each reading a ConfigMap of its own and {} listing by selector, {} ConfigMaps changed one at a time, {repeats} runs per side (native: `Controller::watches` with a hand-written mapper)",
        shape.selectors(),
        shape.changes
    );
    Ok((rows, note))
}
