//! `cargo xtask soak --minutes N`: the hosts under a steady workload and
//! chaos on a real control plane (kube-apiserver and etcd) for N minutes,
//! then checks that nothing was lost.
//!
//! Two lanes of hosts, each in namespaces of its own ([`cluster::Lane`]):
//! the **steady** host (one process, modules from a `--modules-dir`,
//! never killed) and the **pair** (two hosts with `--leader-elect`,
//! modules from ReconcilerModules, processes too) — see [`hosts`]. Both run cnat,
//! webapp, mirror and misbehave ([`modules`]). Meanwhile:
//!
//! - [`workload`]: objects of every module created, changed and deleted
//!   at a steady rate, each change written in the [`ledger`];
//! - [`chaos`]: a hot swap of webapp every minute in each lane, an API
//!   server restart and a failover of the pair every few minutes, and the
//!   hostile guests running beside;
//! - a sampler of each host's memory and descriptors every 5 s.
//!
//! Then the workload stops, the soak waits for every object to converge,
//! and [`checks`]: every object converged to what its module wants; no
//! write outside any grant; no reconcile lost; memory and descriptors
//! flat after warm-up. [`report`] prints it and writes
//! `target/soak/report.md` and `report.json`.

pub mod chaos;
pub mod checks;
pub mod cluster;
pub mod hosts;
pub mod ledger;
pub mod modules;
pub mod report;
pub mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;

use chaos::{Chaos, HOSTILE, Hosts, Plan};
use checks::converged::{self, LaneState};
use checks::grants::{self, Bystanders};
use checks::resources::{self, Thresholds};
use cluster::{Cluster, Lane};
use hosts::{Pair, Program, Steady};
use ledger::{Ledger, Watched};
use modules::Modules;
use report::Report;
use workload::Workload;

/// `cargo xtask soak`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// How long the workload and the chaos run, in minutes; then the soak
    /// waits for convergence and checks.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Changes per second, over every module and lane.
    #[arg(long, default_value_t = 4.0)]
    pub rate: f64,
    /// A hot swap of webapp in each lane this often.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub swap_every: Duration,
    /// An API server restart this often (at least one per run).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub restart_every: Duration,
    /// A failover of the pair this often (at least one per run).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub failover_every: Duration,
    /// The hostile guests poked (run again) this often.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub poke_every: Duration,
    /// The start of each host's memory series left out of the leak check;
    /// default the shorter of 3 minutes and a third of the run.
    #[arg(long, value_parser = parse_duration)]
    pub warm_up: Option<Duration>,
    /// How long every object may take to converge after the last change.
    #[arg(long, default_value = "3m", value_parser = parse_duration)]
    pub settle: Duration,
    /// The random seed of the workload.
    #[arg(long, default_value_t = 20_26)]
    pub seed: u64,
    /// Run the host from the debug build (the tests') instead of release.
    #[arg(long)]
    pub debug: bool,
    /// Run this `bosun` binary instead of building one.
    #[arg(long, value_name = "PATH")]
    pub bosun_binary: Option<PathBuf>,
    /// Where the report, logs and audit log go; default `target/soak`.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            minutes: 10.0,
            rate: 4.0,
            swap_every: Duration::from_secs(60),
            restart_every: Duration::from_secs(300),
            failover_every: Duration::from_secs(300),
            poke_every: Duration::from_secs(60),
            warm_up: None,
            settle: Duration::from_secs(180),
            seed: 2026,
            debug: false,
            bosun_binary: None,
            out: None,
        }
    }
}

/// Durations as Go and kubectl write them (`90s`, `5m`, `1m30s`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let parsed: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("{text:?} is not a duration like 90s or 5m: {e}"))?;
    Duration::try_from(parsed).map_err(|_| format!("{text:?} is negative"))
}

/// A finished soak.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What it found.
    pub report: Report,
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.json`.
    pub json: PathBuf,
}

/// Runs the soak; the report says whether it passed.
pub fn run(args: Args) -> Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

/// How often the sampler reads `/proc`.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

async fn run_async(args: Args) -> Result<Outcome> {
    let began = Instant::now();
    let minutes = Duration::from_secs_f64(args.minutes.max(0.1) * 60.0);
    // Absolute: the API server, started elsewhere, reads the audit policy
    // from it.
    let out = std::path::absolute(
        args.out
            .clone()
            .unwrap_or_else(|| bosun_testenv::guests::target_dir().join("soak")),
    )?;
    let logs = out.join("logs");
    if logs.exists() {
        std::fs::remove_dir_all(&logs)?;
    }
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;

    let binary = match &args.bosun_binary {
        Some(path) => path.clone(),
        None => {
            eprintln!(
                "soak: building the bosun host ({})",
                if args.debug { "debug" } else { "release" }
            );
            let built = if args.debug {
                bosun_testenv::guests::host_binary()
            } else {
                bosun_testenv::guests::host_binary_release()
            };
            built.context("building bosun")?
        }
    };
    let cache = out.join("module-cache");
    eprintln!("soak: building the guests and compiling them into the hosts' cache");
    let modules = tokio::task::block_in_place(|| Modules::prepare(&binary, &cache, &out))?;

    eprintln!("soak: starting the control plane");
    let lifetime = minutes + args.settle + Duration::from_secs(1800);
    let cluster = Cluster::start(&out, lifetime).await?;
    let client = cluster.client.clone();
    let bystanders = Bystanders::create(&client).await?;

    eprintln!("soak: starting the hosts");
    let program = |lane: Lane| Program {
        binary: binary.clone(),
        cache: cache.clone(),
        kubeconfig: cluster.host_kubeconfigs[&lane].clone(),
        logs: logs.clone(),
    };
    let steady = Steady::start(&program(Lane::Steady), &modules.steady_dir)?;
    tokio::task::block_in_place(|| modules.publish(&cluster.admin_kubeconfig))?;
    let mut pair = Pair::start(&program(Lane::Pair))?;
    wait_ready(&steady.instance(), Duration::from_secs(180)).await?;
    pair.wait_ready(&client, Duration::from_secs(300)).await?;
    let first_leader = pair.leader(&client).await.map(|i| i.id);

    let started = Instant::now();
    let hosts = Arc::new(tokio::sync::Mutex::new(Hosts { steady, pair }));
    let (stop_sampler, stop) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(resources::run(
        started,
        SAMPLE_EVERY,
        {
            let hosts = hosts.clone();
            move || {
                let hosts = hosts.clone();
                async move {
                    let hosts = hosts.lock().await;
                    let steady = hosts.steady.instance();
                    let mut all = vec![(steady.id, steady.pid, steady.telemetry)];
                    all.extend(
                        hosts
                            .pair
                            .instances()
                            .into_iter()
                            .map(|i| (i.id, i.pid, i.telemetry)),
                    );
                    all
                }
            }
        },
        stop,
    ));

    let ledger = Arc::new(Ledger::default());
    let mut watches = Vec::new();
    for lane in Lane::ALL {
        for resource in [
            cluster::ats(),
            cluster::webapps(),
            cluster::mirrors(),
            cluster::misbehaves(),
        ] {
            watches.push(ledger::watch(
                &client,
                &lane.apps(),
                &resource,
                Watched::Primary,
                ledger.clone(),
            ));
        }
        watches.push(ledger::watch(
            &client,
            &lane.apps(),
            &cluster::deployments(),
            Watched::Child,
            ledger.clone(),
        ));
    }
    eprintln!("soak: creating the objects and the hostile guests");
    let mut workload = Workload::new(&client, ledger.clone(), args.seed);
    workload.populate().await?;
    let plan = Plan {
        swap_every: args.swap_every,
        restart_every: args.restart_every,
        failover_every: args.failover_every,
        poke_every: args.poke_every.min(minutes / 3),
    };
    let mut chaos = Chaos::new(
        cluster,
        hosts.clone(),
        ledger.clone(),
        modules,
        plan.clone(),
        started,
    );
    chaos.attack().await?;

    eprintln!(
        "soak: {:.1} minutes of workload ({} changes/s) and chaos",
        minutes.as_secs_f64() / 60.0,
        args.rate
    );
    let deadline = started + minutes;
    let workload_task = tokio::spawn(workload::run(workload, args.rate, deadline));
    chaos.run(deadline).await;
    let workload = workload_task.await.context("the workload panicked")?;

    eprintln!("soak: settling: waiting for every object to converge");
    let last_change = workload.last_change.unwrap_or_else(Instant::now);
    let lanes: Vec<LaneState> = Lane::ALL
        .into_iter()
        .map(|lane| LaneState {
            lane,
            revision: chaos.next[&lane].then(|| "2".to_owned()),
        })
        .collect();
    let (judgement, converged_at) = converged::wait(&client, &lanes, args.settle).await?;
    let convergence = converged_at.map(|at| at.saturating_duration_since(last_change));
    observe_last(&client, &ledger).await;
    let verdict = ledger.verdict();
    chaos.supervise().await;

    let _ = stop_sampler.send(true);
    let samples = sampler.await.context("the sampler panicked")?;
    drop(watches);

    let touched = bystanders.touched(&client).await?;
    let attacks = attacks(&client, &chaos.hostile).await;
    let mut health = Vec::new();
    {
        let hosts = hosts.lock().await;
        let mut all = vec![hosts.steady.instance()];
        all.extend(hosts.pair.instances());
        for instance in all {
            health.push((
                instance.id.clone(),
                hosts::healthy(&instance).await,
                instance.id != "steady" && hosts::leads(&instance).await,
            ));
        }
    }
    let audit = grants::audit(&chaos.cluster.audit_log, &chaos.modules.granted)?;
    let warm_up = args
        .warm_up
        .unwrap_or_else(|| Duration::from_secs(180).min(minutes / 3));
    let thresholds = Thresholds::new(warm_up);
    // When each pair host began to lead: its warm-up starts there.
    let mut led_from: std::collections::BTreeMap<String, Duration> = chaos
        .failovers
        .iter()
        .map(|f| (f.to.clone(), f.at.saturating_duration_since(started)))
        .collect();
    if let Some(id) = first_leader {
        led_from.insert(id, Duration::ZERO);
    }
    let trends = resources::trends(&samples, thresholds, &led_from);

    let mut report = Report {
        setup: vec![
            (
                "control plane".into(),
                "kube-apiserver and etcd (testenv), no node".into(),
            ),
            (
                "steady lane".into(),
                format!(
                    "one bosun process on the machine, --modules-dir, never killed; namespaces {}",
                    Lane::Steady.namespaces().join(", ")
                ),
            ),
            (
                "pair lane".into(),
                format!(
                    "two bosun processes on the machine, --leader-elect (lease 15s, renew 10s, retry 2s), --modules-from-cluster; namespaces {}",
                    Lane::Pair.namespaces().join(", ")
                ),
            ),
            (
                "host binary".into(),
                format!(
                    "{} ({})",
                    binary.display(),
                    if args.debug {
                        "debug"
                    } else if args.bosun_binary.is_some() {
                        "given"
                    } else {
                        "release"
                    }
                ),
            ),
            (
                "workload".into(),
                format!(
                    "{} changes/s over cnat, webapp, mirror (and its ConfigMaps) and misbehave's honest tenants, seed {}",
                    args.rate, args.seed
                ),
            ),
            (
                "chaos".into(),
                format!(
                    "a webapp hot swap every {:?} per lane, an API server restart every {:?}, a failover every {:?}, hostile guests poked every {:?}",
                    plan.swap_every, plan.restart_every, plan.failover_every, plan.poke_every
                ),
            ),
            (
                "run".into(),
                format!(
                    "{:.1} minutes of workload and chaos, then up to {:?} to converge",
                    minutes.as_secs_f64() / 60.0,
                    args.settle
                ),
            ),
        ],
        changes: workload.counts.clone(),
        failed_operations: workload.failed,
        events: chaos.events.clone(),
        failovers: chaos.failovers.clone(),
        exits: chaos.exits.clone(),
        attacks,
        pokes: chaos.pokes,
        recorded: ledger.len(),
        lost: verdict,
        converged: judgement,
        convergence,
        settle_timeout: args.settle,
        bystanders: (bystanders.len(), touched),
        audit,
        trends,
        warm_up: (thresholds.warm_up, thresholds.window),
        health,
        failures: Vec::new(),
        took: Duration::ZERO,
    };
    report.failures = failures(&report, chaos.steady_died.as_deref());

    eprintln!("soak: stopping the hosts");
    // The chaos's handle on the hosts goes first; the cluster last, so the
    // pair's leader hands its Lease over to a live API server.
    let Chaos {
        cluster,
        hosts: chaos_hosts,
        ..
    } = chaos;
    drop(chaos_hosts);
    let Hosts { steady, pair } = Arc::try_unwrap(hosts)
        .ok()
        .context("the hosts are still in use")?
        .into_inner();
    pair.stop();
    drop(steady);
    drop(cluster);
    report.took = began.elapsed();

    let markdown = out.join("report.md");
    let json = out.join("report.json");
    let text = report.markdown();
    println!("{text}");
    std::fs::write(&markdown, &text)?;
    std::fs::write(&json, serde_json::to_string_pretty(&report.json())?)?;
    eprintln!("soak: wrote {} and {}", markdown.display(), json.display());
    Ok(Outcome {
        report,
        markdown,
        json,
    })
}

/// Waits until `instance` answers `/readyz` with 200.
async fn wait_ready(instance: &hosts::Instance, timeout: Duration) -> Result<()> {
    let started = Instant::now();
    loop {
        if let Ok((200, _)) =
            crate::bench::controllers::http_get(instance.telemetry, "/readyz").await
        {
            return Ok(());
        }
        if started.elapsed() > timeout {
            bail!("the {} host was not ready within {timeout:?}", instance.id);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads every primary and Deployment once more into the ledger: the
/// state at the end counts as seen, whatever a watch missed.
async fn observe_last(client: &kube::Client, ledger: &Ledger) {
    for lane in Lane::ALL {
        for (resource, primary) in [
            (cluster::ats(), true),
            (cluster::webapps(), true),
            (cluster::mirrors(), true),
            (cluster::misbehaves(), true),
            (cluster::deployments(), false),
        ] {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &lane.apps(), &resource);
            let Ok(list) = api.list(&ListParams::default()).await else {
                continue;
            };
            let now = Instant::now();
            for mut object in list.items {
                object.types = Some(kube::api::TypeMeta {
                    api_version: resource.api_version.clone(),
                    kind: resource.kind.clone(),
                });
                if primary {
                    ledger.observe_primary(&object, now);
                } else {
                    ledger.observe_child(&object, now);
                }
            }
        }
    }
}

/// What the hosts said of each hostile guest: its `Reconciled` condition,
/// or its status.
async fn attacks(
    client: &kube::Client,
    hostile: &[(Lane, String, &'static str)],
) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for (lane, name, mode) in hostile {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &lane.hostile(), &cluster::misbehaves());
        let said = match api.get_opt(name).await {
            Ok(Some(object)) => {
                let status = object.data.get("status").cloned().unwrap_or(Value::Null);
                let condition = status
                    .get("conditions")
                    .and_then(Value::as_array)
                    .and_then(|c| c.iter().find(|c| c["type"] == "Reconciled"));
                match condition {
                    Some(c) => {
                        let message: String = c["message"]
                            .as_str()
                            .unwrap_or_default()
                            .chars()
                            .take(140)
                            .collect();
                        format!(
                            "Reconciled={} {}: {}",
                            c["status"].as_str().unwrap_or_default(),
                            c["reason"].as_str().unwrap_or_default(),
                            message.replace('|', "\\|").replace('\n', " ")
                        )
                    }
                    None => {
                        let text: String = status.to_string().chars().take(140).collect();
                        format!("no failure reported; status {}", text.replace('|', "\\|"))
                    }
                }
            }
            Ok(None) => "gone".into(),
            Err(error) => format!("not read: {error}"),
        };
        let what = HOSTILE
            .iter()
            .find(|(m, _)| m == mode)
            .map_or("", |(_, what)| *what);
        out.push((
            lane.name().to_owned(),
            (*mode).to_owned(),
            what.to_owned(),
            said,
        ));
    }
    out
}

/// What failed, from the report's figures.
fn failures(report: &Report, steady_died: Option<&str>) -> Vec<String> {
    let mut failures = Vec::new();
    if let Some(why) = steady_died {
        failures.push(format!("the steady host died: {why}"));
    }
    for exit in report.exits.iter().filter(|e| !e.lost_lease) {
        failures.push(format!(
            "pair host {} exited unasked ({}) without losing its Lease:\n{}",
            exit.id, exit.status, exit.tail
        ));
    }
    for event in &report.events {
        if let Some(error) = &event.error {
            failures.push(format!(
                "{} at {:.0} s failed: {error}",
                event.what,
                event.at.as_secs_f64()
            ));
        }
    }
    if report.convergence.is_none() {
        failures.push(format!(
            "{} objects did not converge within {:?} of the last change",
            report.converged.unconverged.len(),
            report.settle_timeout
        ));
    }
    if !report.lost.lost.is_empty() {
        failures.push(format!(
            "{} changes were never seen reconciled",
            report.lost.lost.len()
        ));
    }
    if !report.bystanders.1.is_empty() {
        failures.push(format!(
            "{} bystanders were written",
            report.bystanders.1.len()
        ));
    }
    if !report.audit.outside.is_empty() {
        failures.push(format!(
            "{} writes outside every grant",
            report.audit.outside.len()
        ));
    }
    for trend in &report.trends {
        if let Some(why) = &trend.leak {
            failures.push(format!("host {}: {why}", trend.id));
        }
    }
    for (id, healthy, _) in &report.health {
        if !healthy {
            failures.push(format!("host {id} was not healthy at the end"));
        }
    }
    if !report.health.iter().any(|(_, _, leading)| *leading) {
        failures.push("no host of the pair led at the end".into());
    }
    failures
}
