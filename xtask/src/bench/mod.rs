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
//! Then the scenarios of event-driven reads, the priority queue, the warm
//! standby and watches that follow the grant, each in a module of its own:
//! [`reads`] (a read object's change to the primary reconciled), [`storm`]
//! (one change while thousands of objects are reconciled at start or after
//! a hot swap), [`failover`] (a standby taking the Lease), [`confined`]
//! (the memory of a module confined to one namespace) and [`concurrency`]
//! (kube-runtime's unbounded default beside the host's limits). `--only`
//! runs some of them; `--before-binary` adds the host from another build to
//! the scenarios that compare the host with its earlier self (storm,
//! failover, confined), alternating with the others.
//!
//! Prints one table and writes `target/bench/bench.md` and
//! `target/bench/bench.json`.

pub mod concurrency;
pub mod confined;
pub mod controllers;
pub mod counters;
pub mod failover;
pub mod fleet;
pub mod mirrors;
pub mod reads;
pub mod report;
pub mod scenario;
pub mod shards;
pub mod storm;
pub mod traces;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use serde_json::json;

use controllers::{Binaries, Side};
use report::{Row, quantile_ms};
use scenario::{Run, Shape};

/// A scenario `--only` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Bursts of `At`s: converge rate, latency, API cost, memory, CPU (a–e).
    Burst,
    /// Many modules in one host against as many native processes.
    Fleet,
    /// The writes of a resync of converged objects (the host only).
    Resync,
    /// A read ConfigMap's change to its Mirror's status.
    Reads,
    /// Single changes during the initial reconcile and a hot swap of 10,000.
    Storm,
    /// A standby taking the Lease, to its reconciles (hosts only).
    Failover,
    /// The memory of a module confined to one namespace.
    Confined,
    /// kube-runtime's unbounded concurrency beside the host's limits.
    Concurrency,
    /// The host with traces exported (100% and 1%) beside traces off.
    Traces,
    /// 1, 2 and 3 sharded replicas: converge rate, memory, CPU, rebalance.
    Shards,
}

/// What `cargo xtask bench` measures, and how often.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// Run only these scenarios (comma-separated): burst, fleet, resync,
    /// reads, storm, failover, confined, concurrency, traces, shards; every
    /// one by default (traces needs `jaeger` on PATH; see testenv/jaeger).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Scenario>,
    /// Run the host side with this `bosun` binary instead of building one
    /// (another build, e.g. an earlier commit's).
    #[arg(long, value_name = "PATH")]
    pub bosun_binary: Option<PathBuf>,
    /// Also run this `bosun` binary (an earlier build) as a third side,
    /// "bosun before", in the storm, failover and confined scenarios.
    #[arg(long, value_name = "PATH")]
    pub before_binary: Option<PathBuf>,
    /// Mirrors of the reads scenario, each reading a ConfigMap of its own;
    /// default 500 (100 with --quick).
    #[arg(long)]
    pub mirrors: Option<usize>,
    /// ConfigMap changes timed in the reads scenario, one at a time;
    /// default 100 (20 with --quick).
    #[arg(long)]
    pub read_changes: Option<usize>,
    /// Objects of the storm scenario; default 10000 (1000 with --quick).
    #[arg(long)]
    pub storm_objects: Option<usize>,
    /// Single changes timed during each storm; default 20 (10 with --quick).
    #[arg(long)]
    pub storm_probes: Option<usize>,
    /// Objects converged before the failover; default 5000 (500 with --quick).
    #[arg(long)]
    pub failover_objects: Option<usize>,
    /// Mirrors the sharded replicas share; default 10000 (1000 with --quick).
    #[arg(long)]
    pub shard_objects: Option<usize>,
    /// ConfigMaps outside the confined module's namespace; default 10000
    /// (1000 with --quick).
    #[arg(long)]
    pub confined_objects: Option<usize>,
    /// Objects of the concurrency scenario; default 2000 (300 with --quick).
    #[arg(long)]
    pub concurrency_objects: Option<usize>,
    /// The host's `--concurrency` values in the concurrency scenario;
    /// default 4 (its default) and 16.
    #[arg(long, value_delimiter = ',')]
    pub host_concurrency: Vec<usize>,
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

impl Args {
    /// Whether `scenario` runs.
    fn runs(&self, scenario: Scenario) -> bool {
        self.only.is_empty() || self.only.contains(&scenario)
    }

    /// `value`, else `quick` or `full` by `--quick`.
    fn size(&self, value: Option<usize>, quick: usize, full: usize) -> usize {
        value
            .unwrap_or(if self.quick { quick } else { full })
            .max(1)
    }
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
    let mut binaries = build(&args, &out)?;
    // Another build's artifacts may not load in this one: a cache of its own.
    binaries.before = args
        .before_binary
        .clone()
        .map(|path| (path, out.join("module-cache-before")));
    let mut rows = Vec::new();
    let mut notes = Vec::new();

    if args.runs(Scenario::Burst) || args.runs(Scenario::Fleet) || args.runs(Scenario::Resync) {
        fleet::compile_into_cache(&binaries, &binaries.cnat)?;
    }
    if args.runs(Scenario::Burst) {
        let runs = bursts(&binaries, &sizes, repeats, idle_samples, &out).await?;
        rows.extend(burst_rows(&runs, &sizes));
        notes.push(format!(
            "cnat, bursts of {} objects created 32 at a time, {repeats} runs per side alternating, a control plane per run; {idle_samples} idle samples",
            sizes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" and "),
        ));
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
    if args.runs(Scenario::Fleet) {
        let fleet_runs = fleets(&binaries, &module_counts, per_module, fleet_repeats, &out).await?;
        rows.extend(fleet_rows(&fleet_runs, &module_counts));
        notes.push(format!(
            "many modules: {} modules with {per_module} objects each, one host against as many native processes, {fleet_repeats} runs per side",
            module_counts
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    if args.runs(Scenario::Resync) {
        eprintln!("bench: resync of {resync_objects} converged objects (bosun) …");
        let (resync_reconciles, resync_cost) =
            scenario::resync(&binaries, resync_objects, &out).await?;
        if resync_reconciles < resync_objects as f64 {
            bail!(
                "the host reconciled {resync_reconciles} times in two resync periods of {resync_objects} objects: the resync did not run"
            );
        }
        rows.push(Row::new(
            format!("(c) writes in two resyncs of {resync_objects} converged objects ({resync_reconciles:.0} reconciles)"),
            "requests",
            vec![resync_cost.writes],
            Vec::new(),
        ));
    }

    // The newer scenarios: memory varies little and their runs are long, so
    // at most two runs per side each.
    let new_repeats = repeats.min(2);
    let needs_mirror = [
        Scenario::Reads,
        Scenario::Storm,
        Scenario::Failover,
        Scenario::Confined,
        Scenario::Shards,
    ]
    .into_iter()
    .any(|s| args.runs(s));
    let mirror = if needs_mirror {
        let mirror = bosun_testenv::guests::path("mirror").context("building the guests")?;
        for side in binaries.host_sides() {
            let (binary, cache) = binaries.host(side)?;
            fleet::compile_into_cache_with(binary, cache, &mirror)?;
        }
        Some(mirror)
    } else {
        None
    };
    if let (true, Some(mirror)) = (args.runs(Scenario::Reads), &mirror) {
        let shape = reads::Shape {
            mirrors: args.size(args.mirrors, 100, 500),
            changes: args.size(args.read_changes, 20, 100),
        };
        let (new_rows, note) = reads::rows(&binaries, mirror, shape, new_repeats, &out).await?;
        rows.extend(new_rows);
        notes.push(note);
    }
    if let (true, Some(mirror)) = (args.runs(Scenario::Storm), &mirror) {
        let shape = storm::Shape {
            objects: args.size(args.storm_objects, 1000, 10_000),
            probes: args.size(args.storm_probes, 10, 20),
        };
        let (new_rows, note) = storm::rows(&binaries, mirror, shape, new_repeats, &out).await?;
        rows.extend(new_rows);
        notes.push(note);
    }
    if let (true, Some(mirror)) = (args.runs(Scenario::Failover), &mirror) {
        let objects = args.size(args.failover_objects, 500, 5000);
        let (new_rows, note) =
            failover::rows(&binaries, mirror, objects, new_repeats, &out).await?;
        rows.extend(new_rows);
        notes.push(note);
    }
    if let (true, Some(mirror)) = (args.runs(Scenario::Confined), &mirror) {
        let objects = args.size(args.confined_objects, 1000, 10_000);
        let (new_rows, note) =
            confined::rows(&binaries, mirror, objects, new_repeats, &out).await?;
        rows.extend(new_rows);
        notes.push(note);
    }
    if let (true, Some(mirror)) = (args.runs(Scenario::Shards), &mirror) {
        let objects = args.size(args.shard_objects, 1000, 10_000);
        let (new_rows, note) = shards::rows(&binaries, mirror, objects, 1, &out).await?;
        rows.extend(new_rows);
        notes.push(note);
    }
    if args.runs(Scenario::Concurrency) {
        let objects = args.size(args.concurrency_objects, 300, 2000);
        let limits = if args.host_concurrency.is_empty() {
            vec![4, 16]
        } else {
            args.host_concurrency.clone()
        };
        let (new_rows, note) =
            concurrency::rows(&binaries, objects, &limits, new_repeats, &out).await?;
        rows.extend(new_rows);
        notes.push(note);
    }

    if args.runs(Scenario::Traces) {
        let objects = args.size(args.concurrency_objects, 300, 2000);
        let (new_rows, note) = traces::rows(&binaries, objects, new_repeats, &out).await?;
        rows.extend(new_rows);
        notes.push(note);
    }

    let mut flags = String::new();
    if args.quick {
        flags.push_str(" --quick");
    }
    if !args.only.is_empty() {
        let only: Vec<String> = args
            .only
            .iter()
            .map(|s| format!("{s:?}").to_lowercase())
            .collect();
        flags.push_str(&format!(" --only {}", only.join(",")));
    }
    if args.before_binary.is_some() {
        flags.push_str(" --before-binary BOSUN");
    }
    let note = format!(
        "`cargo xtask bench{flags}`: {} builds; {}; bosun/native < 1 is better for time, requests, CPU and memory, > 1 for rates. Took {:.0} s.",
        if args.debug { "debug" } else { "release" },
        notes.join("; "),
        started.elapsed().as_secs_f64()
    );
    let table = report::text(&rows);
    println!("{table}");
    let markdown = out.join("bench.md");
    std::fs::write(&markdown, report::markdown(&rows, &note))?;
    let json_path = out.join("bench.json");
    let settings = json!({
        "only": args.only.iter().map(|s| format!("{s:?}").to_lowercase()).collect::<Vec<_>>(),
        "bosun_binary": binaries.bosun,
        "before_binary": args.before_binary,
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

/// Builds the host (unless `--bosun-binary` names one), the native
/// baseline and the guests.
fn build(args: &Args, out: &Path) -> Result<Binaries> {
    let debug = args.debug;
    let cnat = bosun_testenv::guests::path("cnat").context("building the guests")?;
    let profile = if debug { "dev" } else { "release" };
    eprintln!("bench: building bosun and the native baseline ({profile} profile)");
    let host = ["--package", "bosun", "--bin", "bosun"].as_slice();
    let native = ["--package", "bosun-native-baseline"].as_slice();
    let packages = if args.bosun_binary.is_some() {
        vec![native]
    } else {
        vec![host, native]
    };
    for path in args.bosun_binary.iter().chain(&args.before_binary) {
        ensure!(path.is_file(), "no bosun binary at {}", path.display());
    }
    // One cargo invocation each: built together, features unified across
    // both would make this host build differ from (and rebuild) the one
    // `cargo build --release -p bosun` makes.
    for package in packages {
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
        bosun: args
            .bosun_binary
            .clone()
            .unwrap_or_else(|| dir.join("bosun")),
        native: dir.join("native-controller"),
        cnat,
        cache_dir: out.join("module-cache"),
        before: None,
    })
}

/// The bursts of every size, `repeats` runs per side, sides alternating.
async fn bursts(
    binaries: &Binaries,
    sizes: &[usize],
    repeats: usize,
    idle_samples: usize,
    out: &Path,
) -> Result<Vec<(Side, usize, Run)>> {
    let mut runs: Vec<(Side, usize, Run)> = Vec::new();
    for &objects in sizes {
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
                let run = match scenario::converge(side, binaries, shape, out).await {
                    Ok(run) => run,
                    Err(error) => {
                        eprintln!("bench:   failed, trying once more: {error:#}");
                        scenario::converge(side, binaries, shape, out)
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
    Ok(runs)
}

/// The many-modules runs: every module count, `repeats` runs per side.
async fn fleets(
    binaries: &Binaries,
    module_counts: &[usize],
    per_module: usize,
    repeats: usize,
    out: &Path,
) -> Result<Vec<(Side, usize, fleet::FleetRun)>> {
    let max_modules = module_counts.iter().copied().max().unwrap_or(1);
    eprintln!("bench: compiling {max_modules} cnat-fleet modules into the host's cache …");
    let fleet_modules = fleet::modules(binaries, max_modules)?;
    let mut fleet_runs = Vec::new();
    for &count in module_counts {
        for repeat in 0..repeats {
            for side in Side::BOTH {
                eprintln!(
                    "bench: {count} modules × {per_module} objects, {} (repeat {}/{repeats}) …",
                    side.name(),
                    repeat + 1
                );
                let run = match fleet::run(side, binaries, &fleet_modules, count, per_module, out)
                    .await
                {
                    Ok(run) => run,
                    Err(error) => {
                        eprintln!("bench:   failed, trying once more: {error:#}");
                        fleet::run(side, binaries, &fleet_modules, count, per_module, out)
                            .await
                            .with_context(|| format!("{count} modules, {}", side.name()))?
                    }
                };
                eprintln!("bench:   {:.1} MiB resident", mib(run.rss));
                fleet_runs.push((side, count, run));
            }
        }
    }
    Ok(fleet_runs)
}

fn burst_rows(runs: &[(Side, usize, Run)], sizes: &[usize]) -> Vec<Row> {
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
        rows.push(Row::new(
            format!("(c) reconciles per converged object, {n}"),
            "reconciles",
            values(Side::Bosun, n, &|r| {
                r.reconciles.unwrap_or_default() / r.objects as f64
            }),
            Vec::new(),
        ));
    }
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
        rows.push(Row::new(
            format!("(d) RSS per cached object, {small} to {large}"),
            "bytes",
            per_object(Side::Bosun),
            per_object(Side::Native),
        ));
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
        rows.push(Row::new(
            format!("(d) RSS per added module, {fewest} to {most} modules"),
            "MiB",
            per_added(Side::Bosun, &in_use),
            per_added(Side::Native, &in_use),
        ));
        rows.push(Row::new(
            format!("(d) RSS per added module, {fewest} to {most} modules, idle"),
            "MiB",
            per_added(Side::Bosun, &idle),
            per_added(Side::Native, &idle),
        ));
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
pub fn mib(bytes: u64) -> f64 {
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
    Row::new(
        metric,
        unit,
        figures(runs, Side::Bosun, size, f),
        figures(runs, Side::Native, size, f),
    )
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
