//! The chaos beside the workload, on a schedule: hot swaps of webapp in
//! each lane, API server restarts, failovers of the pair, with `--node`
//! kubelet restarts, and the hostile guests of the adversarial suite —
//! created at the start in each lane's hostile namespace and poked (a new
//! generation, so they run again) on a schedule too.
//!
//! Actions run one at a time, in the order they fall due; between them
//! the pair is supervised (a host that exited is restarted and the exit
//! written down) and the steady host checked alive.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::cluster::{self, Cluster, Lane};
use super::hosts::{self, Exit, Failover, Steady};
use super::ledger::{Change, Expect, Ledger};
use super::modules::Modules;
use super::pair::PairLane;

/// The hostile guests each lane runs beside its honest work: misbehave's
/// modes (see `tests/guests/misbehave`), each with what it does.
pub const HOSTILE: [(&str, &str); 16] = [
    ("loop", "spins until its deadline"),
    ("hog", "allocates without bound, to its memory cap"),
    ("sleep", "blocks in a WASI sleep of 600 s"),
    (
        "tick",
        "writes a new status on every call (its own writes trigger it)",
    ),
    (
        "tick-flood",
        "32 events of new reasons and a new status on every call, requeued after 250 ms",
    ),
    ("many-events", "returns 100,000 events"),
    ("flood", "returns a 32 MiB status"),
    ("random-flood", "asks for 64 MiB of random bytes"),
    ("read-many", "20,000 gets and 2,000 lists by selector"),
    ("list-all", "lists every ConfigMap of its namespace"),
    ("select-flood", "lists with a 60 MB label selector"),
    (
        "named",
        "desires the ConfigMap `bystander`, which it does not own",
    ),
    ("trespass", "returns a Secret, a kind it never declared"),
    ("other-namespace", "returns a child in kube-system"),
    (
        "forge-owner",
        "returns a child controlled by another object",
    ),
    ("panic", "panics"),
];

/// Modes whose own writes bring them back: never poked.
const SELF_DRIVEN: [&str; 2] = ["tick", "tick-flood"];

/// The hosts the chaos acts on and the sampler reads.
pub struct Hosts {
    /// The steady host.
    pub steady: Steady,
    /// The pair.
    pub pair: PairLane,
}

/// When each kind of action falls due.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Hot swaps of webapp, per lane (the lanes half a period apart).
    pub swap_every: Duration,
    /// API server restarts.
    pub restart_every: Duration,
    /// Failovers of the pair.
    pub failover_every: Duration,
    /// Pokes of the hostile guests.
    pub poke_every: Duration,
    /// Kubelet restarts (`--node` only).
    pub kubelet_every: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Swap(Lane),
    RestartApiServer,
    Failover,
    RestartKubelet,
    Poke,
}

/// Times `first`, `first + every`, … before `total`; when none falls
/// before `total`, one at `fallback` × `total`.
fn times(total: Duration, every: Duration, first: Duration, fallback: f64) -> Vec<Duration> {
    let mut times = Vec::new();
    let mut at = first;
    while at < total && !every.is_zero() {
        times.push(at);
        at += every;
    }
    if times.is_empty() {
        times.push(total.mul_f64(fallback));
    }
    times
}

impl Plan {
    fn schedule(&self, total: Duration) -> Vec<(Duration, Action)> {
        let mut due = Vec::new();
        for (lane, first) in [
            (Lane::Steady, self.swap_every / 2),
            (Lane::Pair, self.swap_every),
        ] {
            for at in times(total, self.swap_every, first, 0.5) {
                due.push((at, Action::Swap(lane)));
            }
        }
        for at in times(total, self.restart_every, self.restart_every / 2, 0.4) {
            due.push((at, Action::RestartApiServer));
        }
        for at in times(total, self.failover_every, self.failover_every * 4 / 5, 0.7) {
            due.push((at, Action::Failover));
        }
        for at in times(total, self.poke_every, self.poke_every, 0.3) {
            due.push((at, Action::Poke));
        }
        if let Some(every) = self.kubelet_every {
            for at in times(total, every, every * 3 / 5, 0.55) {
                due.push((at, Action::RestartKubelet));
            }
        }
        due.sort();
        due
    }
}

/// One chaos action as it happened.
#[derive(Debug, Clone)]
pub struct Event {
    /// Since the soak started.
    pub at: Duration,
    /// What was done.
    pub what: String,
    /// How long it took (a restart until ready, a failover until the new
    /// leader was ready).
    pub took: Duration,
    /// What failed, if it did.
    pub error: Option<String>,
}

/// The chaos and what it did.
pub struct Chaos {
    /// The cluster (the chaos restarts its API server).
    pub cluster: Cluster,
    /// The hosts.
    pub hosts: Arc<tokio::sync::Mutex<Hosts>>,
    ledger: Arc<Ledger>,
    /// The modules (swaps).
    pub modules: Modules,
    plan: Plan,
    started: Instant,
    /// Every action, in order.
    pub events: Vec<Event>,
    /// Every failover.
    pub failovers: Vec<Failover>,
    /// Hosts that exited without being asked to.
    pub exits: Vec<Exit>,
    /// The steady host's end, if it died.
    pub steady_died: Option<String>,
    /// Which lanes run webapp's second version now.
    pub next: BTreeMap<Lane, bool>,
    /// The hostile objects: (lane, name, mode).
    pub hostile: Vec<(Lane, String, &'static str)>,
    /// Pokes of hostile objects.
    pub pokes: u64,
    /// `--node`: how long each kubelet restart took, from the kill to the
    /// Node Ready with the new kubelet's heartbeat.
    pub kubelet_restarts: Vec<Duration>,
    failover_turn: usize,
}

impl Chaos {
    /// The chaos over `cluster` and `hosts`, timed from `started`.
    pub fn new(
        cluster: Cluster,
        hosts: Arc<tokio::sync::Mutex<Hosts>>,
        ledger: Arc<Ledger>,
        modules: Modules,
        plan: Plan,
        started: Instant,
    ) -> Chaos {
        Chaos {
            cluster,
            hosts,
            ledger,
            modules,
            plan,
            started,
            events: Vec::new(),
            failovers: Vec::new(),
            exits: Vec::new(),
            steady_died: None,
            next: Lane::ALL.into_iter().map(|l| (l, false)).collect(),
            hostile: Vec::new(),
            pokes: 0,
            kubelet_restarts: Vec::new(),
            failover_turn: 0,
        }
    }

    /// Creates the hostile guests in each lane's hostile namespace.
    pub async fn attack(&mut self) -> Result<()> {
        for lane in Lane::ALL {
            let api: Api<DynamicObject> = Api::namespaced_with(
                self.cluster.client.clone(),
                &lane.hostile(),
                &cluster::misbehaves(),
            );
            for (mode, _) in HOSTILE {
                let mut spec = json!({"mode": mode});
                match mode {
                    "sleep" => spec["seconds"] = json!(600),
                    "named" => spec["target"] = json!("bystander"),
                    _ => {}
                }
                let name = format!("hostile-{mode}");
                let object = json!({
                    "apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave",
                    "metadata": {"name": name}, "spec": spec,
                });
                api.create(&PostParams::default(), &serde_json::from_value(object)?)
                    .await
                    .with_context(|| {
                        format!("creating the hostile {mode} in {}", lane.hostile())
                    })?;
                self.hostile.push((lane, name, mode));
            }
        }
        Ok(())
    }

    /// Runs the schedule until `deadline`.
    pub async fn run(&mut self, deadline: Instant) {
        let total = deadline.saturating_duration_since(self.started);
        let mut due = self.plan.schedule(total).into_iter().peekable();
        let mut supervised = Instant::now();
        while Instant::now() < deadline {
            if supervised.elapsed() >= Duration::from_secs(2) {
                self.supervise().await;
                supervised = Instant::now();
            }
            while let Some((at, action)) = due.peek().copied() {
                if self.started.elapsed() < at || Instant::now() >= deadline {
                    break;
                }
                due.next();
                self.act(action).await;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.supervise().await;
    }

    /// Restarts pair hosts that exited; notes a dead steady host.
    pub async fn supervise(&mut self) {
        let mut hosts = self.hosts.lock().await;
        let exits = hosts.pair.supervise().await;
        for exit in &exits {
            eprintln!(
                "soak: pair host {} exited ({}){}",
                exit.id,
                exit.status,
                if exit.lost_lease {
                    ", having lost the Lease"
                } else {
                    ""
                }
            );
        }
        self.exits.extend(exits);
        if self.steady_died.is_none()
            && let Err(error) = hosts.steady.check_alive()
        {
            eprintln!("soak: the steady host died: {error:#}");
            self.steady_died = Some(format!("{error:#}"));
        }
    }

    async fn act(&mut self, action: Action) {
        let at = self.started.elapsed();
        let began = Instant::now();
        let (what, result) = match action {
            Action::Swap(lane) => {
                let next = !self.next[&lane];
                let result = self.swap(lane, next).await;
                if result.is_ok() {
                    self.next.insert(lane, next);
                }
                (
                    format!(
                        "hot swap of webapp in the {} lane to {}",
                        lane.name(),
                        if next {
                            "webapp-next (revision 2)"
                        } else {
                            "webapp"
                        }
                    ),
                    result,
                )
            }
            Action::RestartApiServer => (
                "API server restarted".to_owned(),
                self.cluster
                    .env
                    .restart_apiserver()
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}")),
            ),
            Action::Failover => {
                let mut hosts = self.hosts.lock().await;
                let kinds = hosts.pair.failover_kinds();
                let kind = kinds[self.failover_turn % kinds.len()];
                self.failover_turn += 1;
                let result = hosts.pair.fail_over(&self.cluster.client, kind).await;
                drop(hosts);
                match result {
                    Ok(failover) => {
                        let what = format!(
                            "failover: {}, {} → {} (Lease taken after {:.1} s)",
                            kind.name(),
                            failover.from,
                            failover.to,
                            failover.lease_taken.as_secs_f64()
                        );
                        self.failovers.push(failover);
                        (what, Ok(()))
                    }
                    Err(error) => (format!("failover: {}", kind.name()), Err(error)),
                }
            }
            Action::RestartKubelet => match self.restart_kubelet().await {
                Ok(what) => (what, Ok(())),
                Err(error) => ("kubelet restarted".to_owned(), Err(error)),
            },
            Action::Poke => ("hostile guests poked".to_owned(), self.poke().await),
        };
        let took = began.elapsed();
        eprintln!(
            "soak: {:>6.1}s {what} ({:.1}s){}",
            at.as_secs_f64(),
            took.as_secs_f64(),
            match &result {
                Ok(()) => String::new(),
                Err(e) => format!(": FAILED: {e:#}"),
            }
        );
        self.events.push(Event {
            at,
            what,
            took,
            error: result.err().map(|e| format!("{e:#}")),
        });
    }

    /// Restarts the node's kubelet (SIGKILL, then started again) and waits
    /// for the pair to lead with its caches synced: the Pods run on
    /// untouched, so the leader should keep the Lease.
    async fn restart_kubelet(&mut self) -> Result<String> {
        let node = self.cluster.env.node().context("no node runs")?;
        let client = self.cluster.client.clone();
        let before = self.hosts.lock().await.pair.leader(&client).await;
        let took = node
            .restart_kubelet(&client)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        self.kubelet_restarts.push(took);
        let waited = Instant::now();
        let after = loop {
            if let Some(leader) = self.hosts.lock().await.pair.leader(&client).await
                && hosts::leads(&leader).await
            {
                break leader;
            }
            if waited.elapsed() > Duration::from_secs(90) {
                bail!(
                    "no host of the pair led with its caches synced within 90 s of the kubelet's restart ({:.1} s)",
                    took.as_secs_f64()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let lead = match before {
            Some(before) if before.id == after.id => format!("{} kept the Lease", after.id),
            Some(before) => format!("the Lease passed from {} to {}", before.id, after.id),
            None => format!("{} leads", after.id),
        };
        Ok(format!(
            "kubelet restarted (Node Ready again after {:.1} s; {lead})",
            took.as_secs_f64()
        ))
    }

    /// Swaps `lane`'s webapp and expects every WebApp of the lane to show it.
    async fn swap(&mut self, lane: Lane, next: bool) -> Result<()> {
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.cluster.client.clone(),
            &lane.apps(),
            &cluster::webapps(),
        );
        let at = Instant::now();
        let apps = api.list(&ListParams::default()).await?.items;
        let modules = &self.modules;
        let kubeconfig = self.cluster.admin_kubeconfig.clone();
        tokio::task::block_in_place(|| modules.swap(lane, next, &kubeconfig))?;
        for app in apps {
            self.ledger.record(Change {
                lane,
                module: "webapp",
                what: "swap",
                name: app.metadata.name.clone().unwrap_or_default(),
                uid: app.metadata.uid.clone().unwrap_or_default(),
                expect: Expect::Revision(next.then(|| "2".to_owned())),
                at,
            });
        }
        Ok(())
    }

    /// A new generation for every hostile guest that is not self-driven.
    async fn poke(&mut self) -> Result<()> {
        let mut failed = None;
        for (lane, name, mode) in self.hostile.clone() {
            if SELF_DRIVEN.contains(&mode) {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(
                self.cluster.client.clone(),
                &lane.hostile(),
                &cluster::misbehaves(),
            );
            let patch = json!({"spec": {"url": format!("poke-{}", self.pokes)}});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => self.pokes += 1,
                Err(error) => failed = Some(error),
            }
        }
        match failed {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }
}

/// What the hosts said of each hostile guest: its `Reconciled` condition,
/// or its status.
pub async fn attacks(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_falls_due_at_least_once_even_in_a_short_run() {
        let plan = Plan {
            swap_every: Duration::from_secs(60),
            restart_every: Duration::from_secs(300),
            failover_every: Duration::from_secs(300),
            poke_every: Duration::from_secs(60),
            kubelet_every: Some(Duration::from_secs(180)),
        };
        let short = plan.schedule(Duration::from_secs(120));
        for action in [
            Action::Swap(Lane::Steady),
            Action::Swap(Lane::Pair),
            Action::RestartApiServer,
            Action::Failover,
            Action::RestartKubelet,
            Action::Poke,
        ] {
            assert!(
                short.iter().any(|(_, a)| *a == action),
                "{action:?}: {short:?}"
            );
        }
        let long = plan.schedule(Duration::from_secs(1800));
        let count = |action| long.iter().filter(|(_, a)| *a == action).count();
        assert_eq!(count(Action::Swap(Lane::Steady)), 30);
        assert_eq!(count(Action::RestartApiServer), 6);
        assert_eq!(count(Action::Failover), 6);
        assert_eq!(count(Action::RestartKubelet), 10);
    }
}
