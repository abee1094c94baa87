//! `cargo xtask bench`: bosun beside a native kube-rs controller doing the
//! same work on the same kind of control plane, in one run.
//!
//! Both sides run cnat's logic (the component in the host; the same crate
//! linked natively in `bench/native`). Each run starts a control plane of
//! its own, starts one side on it, creates a burst of due `At`s with a fast
//! client (32 creates in flight) and waits until the API server holds every
//! one converged ([`scenario`]). Runs alternate bosun and native, so both
//! sides share whatever else the machine is doing; the ratios are the
//! result, not the absolute figures. A last step checks that a resync of
//! converged objects writes nothing (the host only: kube-runtime's
//! Controller has no periodic resync). Last, the memory of many modules:
//! one host running M modules beside M native processes ([`fleet`]).
//!
//! Prints one table and writes `target/bench/bench.md` and
//! `target/bench/bench.json`.

pub mod controllers;
pub mod counters;
pub mod fleet;
pub mod report;
pub mod scenario;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;

use controllers::{Binaries, Side};
use report::{Row, quantile_ms};
use scenario::{Run, Shape};

/// What `cargo xtask bench` measures, and how often.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Small bursts and one repeat fewer: a few minutes instead of ~20.
    #[arg(long)]
    pub quick: bool,
    /// Burst sizes (objects created at once); default 1000 and 5000
    /// (100 and 300 with --quick).
    #[arg(long, value_delimiter = ',')]
    pub objects: Vec<usize>,
    /// Runs of each side per burst size; default 3 (2 with --quick).
    #[arg(long)]
    pub repeats: Option<usize>,
    /// Module counts of the many-modules scenario; default 1, 10 and 50
    /// (1 and 10 with --quick).
    #[arg(long, value_delimiter = ',')]
    pub modules: Vec<usize>,
    /// Objects of each module's kind in the many-modules scenario;
    /// default 20 (10 with --quick).
    #[arg(long)]
    pub objects_per_module: Option<usize>,
    /// Build and run the debug binaries instead of release ones (for the
    /// harness's own test; figures from debug builds mean little).
    #[arg(long)]
    pub debug: bool,
    /// Where the results go; default `target/bench`.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// What a finished benchmark produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Every row of the table.
    pub rows: Vec<Row>,
    /// The Markdown file written.
    pub markdown: PathBuf,
    /// The JSON file written.
    pub json: PathBuf,
}

/// Builds both sides, runs every scenario, prints and writes the table.
pub fn run(args: Args) -> Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: Args) -> Result<Outcome> {
    let started = Instant::now();
    let sizes = if !args.objects.is_empty() {
        args.objects.clone()
    } else if args.quick {
        vec![100, 300]
    } else {
        vec![1000, 5000]
    };
    let repeats = args
        .repeats
        .unwrap_or(if args.quick { 2 } else { 3 })
        .max(1);
    let idle_samples = if args.quick || sizes[0] < 100 { 5 } else { 30 };
    let resync_objects = (sizes[0] / 5).clamp(10, 200);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| bosun_testenv::guests::target_dir().join("bench"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let binaries = build(args.debug, &out)?;
    fleet::compile_into_cache(&binaries, &binaries.cnat)?;

    let mut runs: Vec<(Side, usize, Run)> = Vec::new();
    for &objects in &sizes {
        for repeat in 0..repeats {
            for side in Side::BOTH {
                eprintln!(
                    "bench: {} objects, {} (repeat {}/{repeats}) …",
                    objects,
                    side.name(),
                    repeat + 1
                );
                let shape = Shape {
                    objects,
                    idle_samples,
                };
                // A run that fails (a controller that died, a control plane
                // that did not start on a busy machine) is tried once more
                // before the benchmark gives up; the failure is printed.
                let run = match scenario::converge(side, &binaries, shape, &out).await {
                    Ok(run) => run,
                    Err(error) => {
                        eprintln!("bench:   failed, trying once more: {error:#}");
                        scenario::converge(side, &binaries, shape, &out)
                            .await
                            .with_context(|| format!("{} objects, {}", objects, side.name()))?
                    }
                };
                eprintln!(
                    "bench:   converged in {:.1}s ({:.0} objects/s)",
                    run.converge.as_secs_f64(),
                    objects as f64 / run.converge.as_secs_f64()
                );
                runs.push((side, objects, run));
            }
        }
    }
    let module_counts = if !args.modules.is_empty() {
        args.modules.clone()
    } else if args.quick {
        vec![1, 10]
    } else {
        vec![1, 10, 50]
    };
    let per_module = args
        .objects_per_module
        .unwrap_or(if args.quick { 10 } else { 20 })
        .max(1);
    // Memory varies little between runs: two per side are enough for a spread.
    let fleet_repeats = repeats.min(2);
    let max_modules = module_counts.iter().copied().max().unwrap_or(1);
    eprintln!("bench: compiling {max_modules} cnat-fleet modules into the host's cache …");
    let fleet_modules = fleet::modules(&binaries, max_modules)?;
    let mut fleet_runs = Vec::new();
    for &count in &module_counts {
        for repeat in 0..fleet_repeats {
            for side in Side::BOTH {
                eprintln!(
                    "bench: {count} modules × {per_module} objects, {} (repeat {}/{fleet_repeats}) …",
                    side.name(),
                    repeat + 1
                );
                let run = match fleet::run(side, &binaries, &fleet_modules, count, per_module, &out)
                    .await
                {
                    Ok(run) => run,
                    Err(error) => {
                        eprintln!("bench:   failed, trying once more: {error:#}");
                        fleet::run(side, &binaries, &fleet_modules, count, per_module, &out)
                            .await
                            .with_context(|| format!("{count} modules, {}", side.name()))?
                    }
                };
                eprintln!("bench:   {:.1} MiB resident", mib(run.rss));
                fleet_runs.push((side, count, run));
            }
        }
    }
    eprintln!("bench: resync of {resync_objects} converged objects (bosun) …");
    let (resync_reconciles, resync_cost) =
        scenario::resync(&binaries, resync_objects, &out).await?;
    if resync_reconciles < resync_objects as f64 {
        bail!(
            "the host reconciled {resync_reconciles} times in two resync periods of {resync_objects} objects: the resync did not run"
        );
    }

    let mut rows = rows(
        &runs,
        &sizes,
        resync_objects,
        resync_reconciles,
        resync_cost.writes,
    );
    rows.extend(fleet_rows(&fleet_runs, &module_counts));
    let note = format!(
        "`cargo xtask bench{}`: cnat, {} builds, bursts of {} objects created 32 at a time, {repeats} runs per side alternating, a control plane per run; {} idle samples; many modules: {} modules with {per_module} objects each, one host against as many native processes, {fleet_repeats} runs per side; bosun/native < 1 is better for time, requests, CPU and memory, > 1 for rates. Took {:.0} s.",
        if args.quick { " --quick" } else { "" },
        if args.debug { "debug" } else { "release" },
        sizes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" and "),
        idle_samples,
        module_counts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        started.elapsed().as_secs_f64()
    );
    let table = report::text(&rows);
    println!("{table}");
    let markdown = out.join("bench.md");
    std::fs::write(&markdown, report::markdown(&rows, &note))?;
    let json_path = out.join("bench.json");
    let settings = json!({
        "objects": sizes,
        "repeats": repeats,
        "idle_samples": idle_samples,
        "resync_objects": resync_objects,
        "modules": module_counts,
        "objects_per_module": per_module,
        "fleet_repeats": fleet_repeats,
        "profile": if args.debug { "debug" } else { "release" },
    });
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&report::json(&rows, &note, settings))?,
    )?;
    eprintln!(
        "bench: wrote {} and {}",
        markdown.display(),
        json_path.display()
    );
    Ok(Outcome {
        rows,
        markdown,
        json: json_path,
    })
}

/// Builds the host, the native baseline and the guests.
fn build(debug: bool, out: &Path) -> Result<Binaries> {
    let cnat = bosun_testenv::guests::path("cnat").context("building the guests")?;
    let profile = if debug { "dev" } else { "release" };
    eprintln!("bench: building bosun and the native baseline ({profile} profile)");
    // One cargo invocation each: built together, features unified across
    // both would make this host build differ from (and rebuild) the one
    // `cargo build --release -p bosun` makes.
    for package in [
        ["--package", "bosun", "--bin", "bosun"].as_slice(),
        ["--package", "bosun-native-baseline"].as_slice(),
    ] {
        let status = bosun_testenv::guests::cargo()
            .current_dir(bosun_testenv::guests::workspace_root())
            .args(["build", "--profile", profile])
            .args(package)
            .status()
            .context("running cargo")?;
        if !status.success() {
            bail!("building {} failed ({status})", package[1]);
        }
    }
    let dir = bosun_testenv::guests::target_dir().join(if debug { "debug" } else { "release" });
    Ok(Binaries {
        bosun: dir.join("bosun"),
        native: dir.join("native-controller"),
        cnat,
        cache_dir: out.join("module-cache"),
    })
}

fn rows(
    runs: &[(Side, usize, Run)],
    sizes: &[usize],
    resync_objects: usize,
    resync_reconciles: f64,
    resync_writes: f64,
) -> Vec<Row> {
    let values =
        |side: Side, objects: usize, f: &dyn Fn(&Run) -> f64| figures(runs, side, objects, f);
    let row = |metric: String, unit: &'static str, objects: usize, f: &dyn Fn(&Run) -> f64| {
        both(runs, metric, unit, objects, f)
    };
    let mut rows = Vec::new();
    for &n in sizes {
        rows.push(row(
            format!("(a) converge rate, {n}"),
            "objects/s",
            n,
            &|r| r.objects as f64 / r.converge.as_secs_f64(),
        ));
    }
    let first = sizes[0];
    rows.push(row("(b) latency p50, idle".into(), "ms", first, &|r| {
        quantile_ms(&r.latencies_idle, 0.5)
    }));
    rows.push(row("(b) latency p99, idle".into(), "ms", first, &|r| {
        quantile_ms(&r.latencies_idle, 0.99)
    }));
    for &n in sizes {
        rows.push(row(
            format!("(b) latency p50, burst of {n}"),
            "ms",
            n,
            &|r| quantile_ms(&r.latencies_loaded, 0.5),
        ));
        rows.push(row(
            format!("(b) latency p99, burst of {n}"),
            "ms",
            n,
            &|r| quantile_ms(&r.latencies_loaded, 0.99),
        ));
    }
    for &n in sizes {
        rows.push(row(
            format!("(c) API requests per converged object, {n}"),
            "requests",
            n,
            &|r| r.cost.total() / r.objects as f64,
        ));
        rows.push(row(
            format!("(c) writes per converged object, {n}"),
            "requests",
            n,
            &|r| r.cost.writes / r.objects as f64,
        ));
        rows.push(Row {
            metric: format!("(c) reconciles per converged object, {n}"),
            unit: "reconciles",
            bosun: values(Side::Bosun, n, &|r| {
                r.reconciles.unwrap_or_default() / r.objects as f64
            }),
            native: Vec::new(),
        });
    }
    rows.push(Row {
        metric: format!("(c) writes in two resyncs of {resync_objects} converged objects ({resync_reconciles:.0} reconciles)"),
        unit: "requests",
        bosun: vec![resync_writes],
        native: Vec::new(),
    });
    for &n in sizes {
        rows.push(row(
            format!("(d) RSS once converged, {n}"),
            "MiB",
            n,
            &|r| mib(r.rss),
        ));
        rows.push(row(format!("(d) peak RSS, {n}"), "MiB", n, &|r| {
            mib(r.rss_peak)
        }));
    }
    if let (Some(&small), Some(&large)) = (sizes.first(), sizes.last())
        && large > small
    {
        let per_object = |side: Side| growth(runs, side, small, large, &|r| r.rss as f64);
        rows.push(Row {
            metric: format!("(d) RSS per cached object, {small} to {large}"),
            unit: "bytes",
            bosun: per_object(Side::Bosun),
            native: per_object(Side::Native),
        });
    }
    for &n in sizes {
        rows.push(row(format!("(e) CPU converging {n}"), "s", n, &|r| r.cpu));
    }
    rows
}

fn fleet_rows(runs: &[(Side, usize, fleet::FleetRun)], counts: &[usize]) -> Vec<Row> {
    let per_module = runs.first().map_or(0, |(_, _, run)| run.objects_per_module);
    let mut rows = Vec::new();
    for &count in counts {
        rows.push(both(
            runs,
            format!("(d) RSS of {count} modules, {per_module} objects each, once converged"),
            "MiB",
            count,
            &|r| mib(r.rss),
        ));
        rows.push(both(
            runs,
            format!(
                "(d) RSS of {count} modules, {per_module} objects each, idle (bosun: code unloaded)"
            ),
            "MiB",
            count,
            &|r| mib(r.rss_idle),
        ));
        rows.push(both(
            runs,
            format!("(d) peak RSS of {count} modules, {per_module} objects each"),
            "MiB",
            count,
            &|r| mib(r.rss_peak),
        ));
    }
    if let (Some(&fewest), Some(&most)) = (counts.iter().min(), counts.iter().max())
        && most > fewest
    {
        let per_added = |side: Side, f: &dyn Fn(&fleet::FleetRun) -> f64| -> Vec<f64> {
            growth(runs, side, fewest, most, f)
                .into_iter()
                .map(|g| g.max(0.0))
                .collect()
        };
        let in_use = |r: &fleet::FleetRun| mib(r.rss);
        let idle = |r: &fleet::FleetRun| mib(r.rss_idle);
        rows.push(Row {
            metric: format!("(d) RSS per added module, {fewest} to {most} modules"),
            unit: "MiB",
            bosun: per_added(Side::Bosun, &in_use),
            native: per_added(Side::Native, &in_use),
        });
        rows.push(Row {
            metric: format!("(d) RSS per added module, {fewest} to {most} modules, idle"),
            unit: "MiB",
            bosun: per_added(Side::Bosun, &idle),
            native: per_added(Side::Native, &idle),
        });
    }
    for &count in counts {
        rows.push(both(
            runs,
            format!("(e) CPU starting {count} modules and converging {per_module} objects each"),
            "s",
            count,
            &|r| r.cpu,
        ));
    }
    rows
}

/// `bytes` in MiB.
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// `f` of each of `side`'s runs at `size` (objects, or modules), one per repeat.
fn figures<R>(
    runs: &[(Side, usize, R)],
    side: Side,
    size: usize,
    f: &dyn Fn(&R) -> f64,
) -> Vec<f64> {
    runs.iter()
        .filter(|(s, n, _)| *s == side && *n == size)
        .map(|(_, _, run)| f(run))
        .collect()
}

/// A row of `f` on both sides at `size`.
fn both<R>(
    runs: &[(Side, usize, R)],
    metric: String,
    unit: &'static str,
    size: usize,
    f: &dyn Fn(&R) -> f64,
) -> Row {
    Row {
        metric,
        unit,
        bosun: figures(runs, Side::Bosun, size, f),
        native: figures(runs, Side::Native, size, f),
    }
}

/// How much `f` grows per unit of size from `small` to `large`, repeat by
/// repeat.
fn growth<R>(
    runs: &[(Side, usize, R)],
    side: Side,
    small: usize,
    large: usize,
    f: &dyn Fn(&R) -> f64,
) -> Vec<f64> {
    let a = figures(runs, side, small, f);
    let b = figures(runs, side, large, f);
    a.iter()
        .zip(&b)
        .map(|(a, b)| (b - a) / (large - small) as f64)
        .collect()
}
