//! Confined memory: the mirror module granted one namespace (`a`), whose
//! read kind (ConfigMaps) has N objects in ten *other* namespaces and a few
//! in its own, and the resident memory of each side once its Mirrors are
//! reconciled.
//!
//! The host now watches a confined module's namespaced kinds only in its
//! namespaces; the host before that change (`--before-binary`) watched
//! them cluster-wide and cached all N. The native side is what a kube-rs
//! user writes for a controller of one namespace: every `Api::namespaced`
//! (`native-controller --module mirror --namespace a`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use kube::api::DynamicObject;

use super::controllers::{Binaries, Controller, Side};
use super::mib;
use super::mirrors::{self, Marks};
use super::report::Row;

/// The module's one namespace.
const HOME: &str = "a";
/// The other namespaces, holding the N ConfigMaps between them.
const OTHERS: usize = 10;
/// ConfigMaps and Mirrors in the module's own namespace.
const OWN: usize = 20;
const TIMEOUT: Duration = Duration::from_secs(600);

/// What one run measured.
#[derive(Debug, Clone)]
pub struct ConfinedRun {
    /// Resident memory once the Mirrors are reconciled and idle, in bytes.
    pub rss: u64,
    /// Peak resident memory, in bytes.
    pub rss_peak: u64,
}

fn marks(object: &DynamicObject) -> Vec<String> {
    if mirrors::is_synced(object) {
        vec!["synced".into()]
    } else {
        Vec::new()
    }
}

/// The grant confining mirror to [`HOME`], as `bosun inspect --grant`
/// prints it plus `namespaces`.
fn grant(out: &Path) -> Result<PathBuf> {
    let path = out.join("mirror-confined.grant.yaml");
    std::fs::write(
        &path,
        format!(
            "module: mirror\npermissions:\n  reconciles:\n    group: examples.bosun.dev\n    kind: Mirror\n  reads:\n  - group: ''\n    kind: ConfigMap\n  - group: ''\n    kind: Secret\n  namespaces:\n  - {HOME}\n"
        ),
    )
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// About 1 KB of data, as a ConfigMap of settings might hold.
fn data(i: usize) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("index".to_owned(), i.to_string()),
        ("settings".to_owned(), format!("{i:08}-").repeat(100)),
    ])
}

/// Runs `side` once.
pub async fn run(
    side: Side,
    binaries: &Binaries,
    mirror: &Path,
    objects: usize,
    out: &Path,
) -> Result<ConfinedRun> {
    let others: Vec<String> = (0..OTHERS).map(|k| format!("other-{k}")).collect();
    let mut namespaces = vec![HOME];
    namespaces.extend(others.iter().map(String::as_str));
    let (env, client) = mirrors::control_plane(&namespaces).await?;
    let mut config_maps = (0..objects)
        .map(|i| {
            mirrors::config_map(
                &others[i % OTHERS],
                &format!("cm-{i:05}"),
                data(i),
                BTreeMap::new(),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    for i in 0..OWN {
        config_maps.push(mirrors::config_map(
            HOME,
            &format!("cm-{i:05}"),
            data(i),
            BTreeMap::new(),
        )?);
    }
    mirrors::create_config_maps(&client, config_maps).await?;
    let own = (0..OWN)
        .map(|i| mirrors::mirror(HOME, &format!("m-{i:05}"), &format!("cm-{i:05}"), None))
        .collect::<Result<Vec<_>>>()?;
    mirrors::create_mirrors(&client, own).await?;
    let watch = Marks::start(&client, &mirrors::mirror_resource(), HOME, marks).await?;

    let kubeconfig = mirrors::kubeconfig(&env)?;
    let log = out.join(format!("{}-confined.log", side.name()));
    let mut controller = match side {
        Side::Native => Controller::native(
            binaries,
            &["--module", "mirror", "--namespace", HOME],
            kubeconfig,
            &log,
        )?,
        host => {
            let args = [
                "--grant".to_owned(),
                grant(out)?.display().to_string(),
                "--module".to_owned(),
                mirror.display().to_string(),
            ];
            Controller::host_side(host, binaries, &args, kubeconfig, &log)?
        }
    };
    watch
        .wait_count("synced", OWN, TIMEOUT, &mut controller)
        .await?;
    // Idle: the status writes' own events handled, the caches settled.
    tokio::time::sleep(Duration::from_secs(3)).await;
    controller.check_alive()?;
    let (rss, rss_peak) = controller.rss()?;
    Ok(ConfinedRun { rss, rss_peak })
}

/// Runs every side `repeats` times, alternating, and makes the rows.
pub async fn rows(
    binaries: &Binaries,
    mirror: &Path,
    objects: usize,
    repeats: usize,
    out: &Path,
) -> Result<(Vec<Row>, String)> {
    let mut sides = binaries.host_sides();
    sides.push(Side::Native);
    let mut runs: Vec<(Side, ConfinedRun)> = Vec::new();
    for repeat in 0..repeats {
        for &side in &sides {
            eprintln!(
                "bench: confined to one namespace, {objects} ConfigMaps elsewhere, {} (repeat {}/{repeats}) …",
                side.name(),
                repeat + 1
            );
            let run = mirrors::retried(&format!("confined, {}", side.name()), || {
                run(side, binaries, mirror, objects, out)
            })
            .await?;
            eprintln!("bench:   {:.1} MiB resident", mib(run.rss));
            runs.push((side, run));
        }
    }
    let of = |side: Side, f: &dyn Fn(&ConfinedRun) -> f64| -> Vec<f64> {
        runs.iter()
            .filter(|(s, _)| *s == side)
            .map(|(_, r)| f(r))
            .collect()
    };
    let row = |metric: String, f: &dyn Fn(&ConfinedRun) -> f64| Row {
        before: of(Side::Before, f),
        ..Row::new(metric, "MiB", of(Side::Bosun, f), of(Side::Native, f))
    };
    let rows = vec![
        row(
            format!("(i) RSS, module confined to one namespace, {objects} ConfigMaps elsewhere"),
            &|r| mib(r.rss),
        ),
        row(
            format!(
                "(i) peak RSS, module confined to one namespace, {objects} ConfigMaps elsewhere"
            ),
            &|r| mib(r.rss_peak),
        ),
    ];
    let note = format!(
        "confined: mirror granted namespace {HOME} only ({OWN} Mirrors and ConfigMaps there), {objects} ConfigMaps of about 1 KB in {OTHERS} other namespaces, native with Api::namespaced, {repeats} runs per side"
    );
    Ok((rows, note))
}
