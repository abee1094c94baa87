//! Failover: two host replicas with `--leader-elect`, N Mirrors converged
//! by the leader, the leader killed, and how long the standby takes from
//! taking the Lease to its first reconcile and to every object reconciled.
//!
//! The Lease is watched: the instant its `holderIdentity` changes away from
//! the killed leader is when the standby took it. The standby's
//! `controller_runtime_reconcile_total` is polled every 10 ms from the kill.
//! A warm standby (the host now) has loaded its modules and filled its
//! caches while waiting; the host before that change (`--before-binary`)
//! starts its informers only once it leads, and lists everything then.
//!
//! kube-runtime has no leader election of its own (a kube-rs user adds a
//! crate or a sidecar for it), so there is no native side.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures::TryStreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher;

use super::controllers::{Binaries, Controller, Side};
use super::mirrors::{self, Marks};
use super::report::Row;

const NAMESPACE: &str = "failover";
/// Where the hosts keep their Lease (`bosun run`'s default outside a pod).
const LEASE_NAMESPACE: &str = "default";
const LEASE_NAME: &str = "bosun-leader";
/// Short, so that a run does not wait 15 s for the Lease to lapse.
const LEADER_ARGS: [&str; 7] = [
    "--leader-elect",
    "--lease-duration",
    "4s",
    "--renew-deadline",
    "3s",
    "--retry-period",
    "500ms",
];
/// How long the standby is left to warm up before the leader is killed.
const WARM_UP: Duration = Duration::from_secs(8);
const TIMEOUT: Duration = Duration::from_secs(900);
/// How often the standby's reconcile count is read: the resolution of the
/// first-reconcile figure.
const POLL: Duration = Duration::from_millis(10);

/// What one run measured.
#[derive(Debug, Clone)]
pub struct FailoverRun {
    /// From the leader killed to the Lease taken by the standby.
    pub takeover: Duration,
    /// From the Lease taken to the standby's first reconcile, in ms
    /// (negative when the count rose before the benchmark saw the Lease
    /// change).
    pub first: f64,
    /// From the Lease taken to every object reconciled by the standby.
    pub all: Duration,
}

/// The Lease's holders, each with when the watch first saw it.
struct Holders {
    seen: Arc<Mutex<Vec<(String, Instant)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Holders {
    fn start(client: &kube::Client) -> Holders {
        let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
        let seen: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
        let config = watcher::Config::default().fields(&format!("metadata.name={LEASE_NAME}"));
        let task = tokio::spawn({
            let seen = seen.clone();
            async move {
                let mut stream = std::pin::pin!(watcher(api, config));
                while let Ok(Some(event)) = stream.try_next().await {
                    let now = Instant::now();
                    if let watcher::Event::Apply(lease) | watcher::Event::InitApply(lease) = event {
                        let holder = lease
                            .spec
                            .and_then(|s| s.holder_identity)
                            .unwrap_or_default();
                        let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
                        if !holder.is_empty() && seen.last().is_none_or(|(h, _)| *h != holder) {
                            seen.push((holder, now));
                        }
                    }
                }
            }
        });
        Holders { seen, task }
    }

    fn current(&self) -> Option<(String, Instant)> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last()
            .cloned()
    }

    /// Waits for a holder other than `not` (any holder when None).
    async fn wait_for_other(
        &self,
        not: Option<&str>,
        controller: &mut Controller,
    ) -> Result<(String, Instant)> {
        let started = Instant::now();
        loop {
            if let Some((holder, at)) = self.current()
                && Some(holder.as_str()) != not
            {
                return Ok((holder, at));
            }
            controller.check_alive()?;
            if started.elapsed() > TIMEOUT {
                bail!("no new Lease holder within {TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Holders {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn marks(object: &DynamicObject) -> Vec<String> {
    if mirrors::is_synced(object) {
        vec!["synced".into()]
    } else {
        Vec::new()
    }
}

/// Runs one failover with the host of `side`.
pub async fn run(
    side: Side,
    binaries: &Binaries,
    mirror: &Path,
    objects: usize,
    out: &Path,
) -> Result<FailoverRun> {
    let (env, client) = mirrors::control_plane(&[NAMESPACE]).await?;
    let sources = (0..100)
        .map(|k| {
            mirrors::config_map(
                NAMESPACE,
                &format!("src-{k:03}"),
                BTreeMap::from([("v".to_owned(), k.to_string())]),
                BTreeMap::new(),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    mirrors::create_config_maps(&client, sources).await?;
    let mirrors_list = (0..objects)
        .map(|i| {
            mirrors::mirror(
                NAMESPACE,
                &format!("m-{i:05}"),
                &format!("src-{:03}", i % 100),
                None,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    mirrors::create_mirrors(&client, mirrors_list).await?;
    let watch = Marks::start(&client, &mirrors::mirror_resource(), NAMESPACE, marks).await?;
    let holders = Holders::start(&client);

    let kubeconfig = mirrors::kubeconfig(&env)?;
    let args: Vec<String> = ["--grant-declared", "--module"]
        .into_iter()
        .map(str::to_owned)
        .chain([mirror.display().to_string()])
        .chain(LEADER_ARGS.iter().map(|a| (*a).to_owned()))
        .collect();
    let log = |replica: &str| out.join(format!("{}-failover-{replica}.log", side.name()));
    let mut leader = Controller::host_side(side, binaries, &args, kubeconfig, &log("a"))?;
    let (first_holder, _) = holders.wait_for_other(None, &mut leader).await?;
    watch
        .wait_count("synced", objects, TIMEOUT, &mut leader)
        .await?;
    let mut standby = Controller::host_side(side, binaries, &args, kubeconfig, &log("b"))?;
    tokio::time::sleep(WARM_UP).await;
    standby.check_alive()?;
    leader.check_alive()?;
    ensure!(
        holders.current().is_some_and(|(h, _)| h == first_holder),
        "the Lease changed hands before the leader was killed"
    );
    let before = standby.reconciles().await?;

    leader.kill()?;
    let killed = Instant::now();
    // The count is polled from the kill on, and the Lease watched at the
    // same time: a warm standby may reconcile before the benchmark's own
    // watch reports the Lease changing hands, which makes the first
    // figure negative (by at most the watch's delay).
    let mut first = None;
    let mut taken = None;
    let all = loop {
        let now = Instant::now();
        let reconciles = standby.reconciles().await? - before;
        if reconciles > 0.0 && first.is_none() {
            first = Some(now);
        }
        if taken.is_none()
            && let Some((holder, at)) = holders.current()
            && holder != first_holder
        {
            taken = Some(at);
        }
        if reconciles >= objects as f64 && taken.is_some() {
            break now;
        }
        standby.check_alive()?;
        if killed.elapsed() > TIMEOUT {
            bail!("the standby reconciled {reconciles} of {objects} within {TIMEOUT:?}");
        }
        tokio::time::sleep(POLL).await;
    };
    let (first, taken) = (
        first.context("no first reconcile")?,
        taken.context("no new holder")?,
    );
    Ok(FailoverRun {
        takeover: taken.saturating_duration_since(killed),
        first: signed_ms(first, taken),
        all: all.saturating_duration_since(taken),
    })
}

/// `a - b` in milliseconds, negative when `a` came first.
fn signed_ms(a: Instant, b: Instant) -> f64 {
    if a >= b {
        (a - b).as_secs_f64() * 1e3
    } else {
        -((b - a).as_secs_f64() * 1e3)
    }
}

/// Runs the host sides `repeats` times, alternating, and makes the rows.
pub async fn rows(
    binaries: &Binaries,
    mirror: &Path,
    objects: usize,
    repeats: usize,
    out: &Path,
) -> Result<(Vec<Row>, String)> {
    let mut runs: Vec<(Side, FailoverRun)> = Vec::new();
    for repeat in 0..repeats {
        for side in binaries.host_sides() {
            eprintln!(
                "bench: failover with {objects} Mirrors, {} (repeat {}/{repeats}) …",
                side.name(),
                repeat + 1
            );
            let run = mirrors::retried(&format!("failover, {}", side.name()), || {
                run(side, binaries, mirror, objects, out)
            })
            .await?;
            eprintln!(
                "bench:   Lease taken {:.1}s after the kill; first reconcile {:.0} ms after, all {:.2}s after",
                run.takeover.as_secs_f64(),
                run.first,
                run.all.as_secs_f64()
            );
            runs.push((side, run));
        }
    }
    let of = |side: Side, f: &dyn Fn(&FailoverRun) -> f64| -> Vec<f64> {
        runs.iter()
            .filter(|(s, _)| *s == side)
            .map(|(_, r)| f(r))
            .collect()
    };
    let row = |metric: String, unit: &'static str, f: &dyn Fn(&FailoverRun) -> f64| Row {
        before: of(Side::Before, f),
        ..Row::new(metric, unit, of(Side::Bosun, f), Vec::new())
    };
    let rows = vec![
        row(
            format!(
                "(h) failover, {objects} Mirrors: Lease taken → first reconcile (no native: kube-rs has no leader election)"
            ),
            "ms",
            &|r| r.first,
        ),
        row(
            format!("(h) failover, {objects} Mirrors: Lease taken → all reconciled"),
            "s",
            &|r| r.all.as_secs_f64(),
        ),
        row(
            format!("(h) failover, {objects} Mirrors: leader killed → Lease taken (lease 4s)"),
            "s",
            &|r| r.takeover.as_secs_f64(),
        ),
    ];
    let note = format!(
        "failover: two hosts with --leader-elect --lease-duration 4s --renew-deadline 3s --retry-period 500ms, {objects} Mirrors converged, the leader killed, the standby's reconcile count polled every 10 ms from the kill, {repeats} runs per side"
    );
    Ok((rows, note))
}
