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
//! With `--node` the control plane has testenv's real node beside it
//! (kube-controller-manager with its garbage collector, kube-scheduler,
//! containerd, the kubelet, kube-proxy), and what a node adds joins in:
//! the pair runs as the shipped image in the shipped Deployment's Pods
//! ([`pods`]; [`pair`] is the lane either way), a failover deletes or
//! force-deletes the leader's Pod or kills its container, the kubelet is
//! restarted every few minutes, the workload's Pods really run and the
//! children of the primaries it deletes are the garbage collector's to
//! delete while the hosts prune. The steady host stays a process. The
//! sampler reads the Pods' hosts from `/proc` like the processes: they
//! are processes on this machine, under containerd (see [`pods`]).
//!
//! Then the workload stops, the soak waits for every object to converge,
//! and [`checks`]: every object converged to what its module wants; no
//! write outside any grant; no reconcile lost; memory and descriptors
//! flat after warm-up; with `--node`, no child left whose primary is gone.
//! [`report`] prints it and writes `target/soak/report.md` and
//! `report.json`.

pub mod chaos;
pub mod checks;
pub mod cluster;
pub mod collector;
pub mod hosts;
pub mod ledger;
pub mod modules;
pub mod pair;
pub mod pods;
pub mod report;
pub mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::api::{Api, DynamicObject, ListParams};

use chaos::{Chaos, Hosts, Plan};
use checks::converged::{self, LaneState};
use checks::grants::{self, Bystanders};
use checks::orphans;
use checks::resources::{self, Thresholds};
use cluster::{Cluster, Lane};
use hosts::{Pair, Program, Steady};
use ledger::{Ledger, Watched};
use modules::Modules;
use pair::PairLane;
use pods::PodPair;
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
    /// Run on a real node (root and the node's packages, like the node
    /// tests): the pair as the shipped image in Pods, the garbage
    /// collector live, failovers by deleting the leader's Pod, kubelet
    /// restarts.
    #[arg(long)]
    pub node: bool,
    /// With `--node`, a kubelet restart this often (at least one per run).
    #[arg(long, default_value = "3m", value_parser = parse_duration)]
    pub kubelet_every: Duration,
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
            node: false,
            kubelet_every: Duration::from_secs(180),
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
    let cluster = Cluster::start(&out, lifetime, args.node).await?;
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
    let mut pair = match cluster.env.node() {
        Some(node) => {
            eprintln!("soak: building the image and installing the pair on the node");
            PairLane::Pods(tokio::task::block_in_place(|| {
                PodPair::deploy(
                    &client,
                    node,
                    &binary,
                    &cache,
                    &cluster.admin_kubeconfig,
                    &out,
                )
            })?)
        }
        None => PairLane::Processes(Pair::start(&program(Lane::Pair))?),
    };
    let pair_description = match &pair {
        PairLane::Pods(pods) => pods.description.clone(),
        PairLane::Processes(_) => format!(
            "two bosun processes on the machine, --leader-elect (lease 15s, renew 10s, retry 2s), --modules-from-cluster; namespaces {}",
            Lane::Pair.namespaces().join(", ")
        ),
    };
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
                            .await
                            .into_iter()
                            // A Pod whose host has not started (or was
                            // just killed) has no process to read.
                            .filter(|i| i.pid != 0)
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
    let mut workload = Workload::new(&client, ledger.clone(), args.seed, args.node);
    workload.populate().await?;
    let plan = Plan {
        swap_every: args.swap_every,
        restart_every: args.restart_every,
        failover_every: args.failover_every,
        poke_every: args.poke_every.min(minutes / 3),
        kubelet_every: args.node.then_some(args.kubelet_every),
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
    let orphans = if args.node {
        eprintln!("soak: waiting for the garbage collector to leave no orphan");
        Some(orphans::wait(&client, &chaos.cluster.audit_log, Duration::from_secs(120)).await?)
    } else {
        None
    };

    let _ = stop_sampler.send(true);
    let samples = sampler.await.context("the sampler panicked")?;
    drop(watches);

    let touched = bystanders.touched(&client).await?;
    let attacks = chaos::attacks(&client, &chaos.hostile).await;
    let mut health = Vec::new();
    {
        let hosts = hosts.lock().await;
        let mut all = vec![hosts.steady.instance()];
        all.extend(hosts.pair.instances().await);
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
                if args.node {
                    "kube-apiserver and etcd (testenv) with a node: kube-controller-manager (its garbage collector live), kube-scheduler, containerd, the kubelet, kube-proxy".into()
                } else {
                    "kube-apiserver and etcd (testenv), no node".into()
                },
            ),
            (
                "steady lane".into(),
                format!(
                    "one bosun process on the machine, --modules-dir, never killed; namespaces {}",
                    Lane::Steady.namespaces().join(", ")
                ),
            ),
            ("pair lane".into(), pair_description),
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
                    "a webapp hot swap every {:?} per lane, an API server restart every {:?}, a failover every {:?}, hostile guests poked every {:?}{}",
                    plan.swap_every,
                    plan.restart_every,
                    plan.failover_every,
                    plan.poke_every,
                    plan.kubelet_every.map_or(String::new(), |every| format!(
                        ", a kubelet restart every {every:?}; the children of deleted primaries left to the garbage collector"
                    ))
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
        kubelet_restarts: chaos.kubelet_restarts.clone(),
        orphans,
        health,
        failures: Vec::new(),
        took: Duration::ZERO,
    };
    report.failures = checks::failures(&report, chaos.steady_died.as_deref());

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
    pair.stop(&logs).await;
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
