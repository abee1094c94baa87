//! The steady workload: objects of every example module created, changed
//! and deleted at a steady rate in each lane's namespace, each change
//! written in the [`Ledger`] with what the host must show for it.
//!
//! Per lane, around a target population (creates and deletes balance, so
//! the caches the hosts hold do not grow with time and a growing host is
//! a leak):
//!
//! | module | objects | a change |
//! |---|---|---|
//! | cnat | `At`s due from 30 s ago to 90 s ahead | the schedule moved |
//! | webapp | `WebApp`s, half with a port | the port added or removed (the Service applied or pruned), the replicas |
//! | mirror | `Mirror`s naming one of six ConfigMaps, half selecting a group | another source, another selector |
//! | mirror's reads | the six ConfigMaps | new data (`seq`), the group label moved, deleted and made again |
//! | misbehave | honest `Misbehave`s (mode `status`) beside the hostile ones | a spec field it ignores (a new generation) |
//!
//! Without a node nothing collects the children of a deleted primary, so
//! the workload plays the garbage collector ([`collector`]).
//! With `--node` kube-controller-manager's runs, and the workload leaves
//! the children to it, racing the hosts' own prunes: every other delete of
//! a primary is in the foreground (the primary stays, being deleted, until
//! the collector has taken its children), the rest in the background.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::Value;

use super::cluster::{self, Lane};
use super::collector;
use super::ledger::{Change, Expect, Ledger};

mod kinds;

/// A small, seedable random source (xorshift64*): a run can be repeated.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A source seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// Uniform in `low..high` seconds.
    pub fn seconds(&mut self, low: i64, high: i64) -> i64 {
        low + self.below((high - low).max(1) as u64) as i64
    }
}

/// How often the workload collects the garbage (see [`collector`]).
const GC_EVERY: Duration = Duration::from_secs(10);

/// The ConfigMaps each lane's Mirrors read.
pub const SOURCES: usize = 6;
/// The label that puts a ConfigMap in a Mirror's selection.
pub const GROUP_LABEL: &str = "soak-group";

/// How many objects of each kind a lane keeps, about.
#[derive(Debug, Clone, Copy)]
struct Targets {
    ats: usize,
    webapps: usize,
    mirrors: usize,
    tenants: usize,
}

#[derive(Debug, Clone)]
struct Live {
    uid: String,
    /// A WebApp's port; a Mirror's source.
    detail: Option<String>,
}

#[derive(Debug, Default)]
struct LaneState {
    ats: BTreeMap<String, Live>,
    webapps: BTreeMap<String, Live>,
    mirrors: BTreeMap<String, Live>,
    tenants: BTreeMap<String, Live>,
    /// Each source ConfigMap: whether it exists.
    sources: BTreeMap<String, bool>,
    serial: u64,
}

/// What the workload did, by module and operation.
pub type Counts = BTreeMap<(String, String), u64>;

/// The workload of every lane.
pub struct Workload {
    client: kube::Client,
    ledger: Arc<Ledger>,
    lanes: BTreeMap<Lane, LaneState>,
    rng: Rng,
    targets: Targets,
    turn: usize,
    /// Changes made, by (module, operation).
    pub counts: Counts,
    /// Operations the API server did not take (mostly while it restarted).
    pub failed: u64,
    /// The last change's time.
    pub last_change: Option<Instant>,
    /// The counter ConfigMap data carries, so every version of every
    /// source is distinct and ordered.
    seq: u64,
    /// Whether kube-controller-manager's garbage collector runs (`--node`):
    /// then the workload collects nothing and alternates the deletes'
    /// propagation.
    collector_runs: bool,
    /// Primaries deleted, for the alternation.
    deletes: u64,
}

impl Workload {
    /// A workload over both lanes, seeded with `seed`; `collector_runs`
    /// when a real garbage collector does (`--node`).
    pub fn new(
        client: &kube::Client,
        ledger: Arc<Ledger>,
        seed: u64,
        collector_runs: bool,
    ) -> Workload {
        let targets = Targets {
            ats: 12,
            webapps: 10,
            mirrors: 12,
            tenants: 4,
        };
        Workload {
            client: client.clone(),
            ledger,
            lanes: Lane::ALL
                .into_iter()
                .map(|l| (l, LaneState::default()))
                .collect(),
            rng: Rng::new(seed),
            targets,
            turn: 0,
            counts: Counts::new(),
            failed: 0,
            last_change: None,
            seq: 0,
            collector_runs,
            deletes: 0,
        }
    }

    /// Fills every lane to its targets (each create a change like any
    /// other).
    pub async fn populate(&mut self) -> Result<()> {
        for lane in Lane::ALL {
            for k in 0..SOURCES {
                self.create_source(lane, &format!("src-{k}")).await?;
            }
            for _ in 0..self.targets.ats {
                self.create_at(lane).await?;
            }
            for _ in 0..self.targets.webapps {
                self.create_webapp(lane).await?;
            }
            for _ in 0..self.targets.mirrors {
                self.create_mirror(lane).await?;
            }
            for _ in 0..self.targets.tenants {
                self.create_tenant(lane).await?;
            }
        }
        Ok(())
    }

    /// One operation, in the next lane.
    pub async fn step(&mut self) {
        let lane = Lane::ALL[self.turn % Lane::ALL.len()];
        self.turn += 1;
        let result = match self.rng.below(12) {
            0..=2 => self.at_op(lane).await,
            3..=5 => self.webapp_op(lane).await,
            6..=7 => self.mirror_op(lane).await,
            8..=10 => self.source_op(lane).await,
            _ => self.tenant_op(lane).await,
        };
        if result.is_err() {
            self.failed += 1;
        }
    }

    fn state(&mut self, lane: Lane) -> &mut LaneState {
        self.lanes.get_mut(&lane).expect("every lane has a state")
    }

    fn count(&mut self, module: &str, op: &str) {
        *self
            .counts
            .entry((module.to_owned(), op.to_owned()))
            .or_default() += 1;
        self.last_change = Some(Instant::now());
    }

    fn name(&mut self, lane: Lane, prefix: &str) -> String {
        let state = self.state(lane);
        state.serial += 1;
        format!("{prefix}-{}", state.serial)
    }

    /// What to do with a population of `n` around `target`: create,
    /// delete, or change (a random live one).
    fn choose(&mut self, n: usize, target: usize) -> Op {
        if n < target.div_ceil(2) || n == 0 {
            return Op::Create;
        }
        if n > target * 3 / 2 {
            return Op::Delete;
        }
        match self.rng.below(10) {
            0..=2 => Op::Create,
            3..=4 => Op::Delete,
            _ => Op::Change,
        }
    }

    fn pick(&mut self, names: Vec<String>) -> Option<String> {
        if names.is_empty() {
            None
        } else {
            let i = self.rng.below(names.len() as u64) as usize;
            Some(names[i].clone())
        }
    }

    fn api(&self, lane: Lane, resource: &ApiResource) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &lane.apps(), resource)
    }

    fn record(
        &self,
        lane: Lane,
        module: &'static str,
        what: &'static str,
        object: &DynamicObject,
        expect: Expect,
        at: Instant,
    ) {
        self.ledger.record(Change {
            lane,
            module,
            what,
            name: object.metadata.name.clone().unwrap_or_default(),
            uid: object.metadata.uid.clone().unwrap_or_default(),
            expect,
            at,
        });
    }

    async fn create(
        &mut self,
        lane: Lane,
        module: &'static str,
        resource: &ApiResource,
        object: Value,
    ) -> Result<DynamicObject> {
        let object: DynamicObject = serde_json::from_value(object)?;
        let at = Instant::now();
        let created = self
            .api(lane, resource)
            .create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("creating a {}", resource.kind))?;
        self.record(lane, module, "create", &created, Expect::Generation(1), at);
        self.count(module, "create");
        Ok(created)
    }

    async fn change(
        &mut self,
        lane: Lane,
        module: &'static str,
        resource: &ApiResource,
        name: &str,
        patch: Value,
    ) -> Result<DynamicObject> {
        let at = Instant::now();
        let changed = self
            .api(lane, resource)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("changing {} {name}", resource.kind))?;
        let generation = changed.metadata.generation.unwrap_or(1);
        self.record(
            lane,
            module,
            "spec",
            &changed,
            Expect::Generation(generation),
            at,
        );
        self.count(module, "change");
        Ok(changed)
    }

    async fn delete(
        &mut self,
        lane: Lane,
        module: &'static str,
        resource: &ApiResource,
        name: &str,
        uid: &str,
    ) -> Result<()> {
        // In the foreground the primary stays, being deleted, while the
        // collector takes its children: the hosts see it go (and must not
        // write children for it) while the collector deletes theirs.
        let foreground = self.collector_runs && self.deletes % 2 == 1;
        let params = if foreground {
            DeleteParams::foreground()
        } else {
            DeleteParams::default()
        };
        self.api(lane, resource)
            .delete(name, &params)
            .await
            .with_context(|| format!("deleting {} {name}", resource.kind))?;
        self.deletes += 1;
        self.ledger.deleted(uid, Instant::now());
        self.count(
            module,
            if foreground {
                "delete (foreground)"
            } else {
                "delete"
            },
        );
        Ok(())
    }

    /// Plays the garbage collector once ([`collector::collect`]).
    pub async fn collect_garbage(&mut self) {
        collector::collect(&self.client, &mut self.counts).await;
    }

    /// Changes made (every operation the API server took).
    pub fn changes(&self) -> u64 {
        self.counts.values().sum()
    }
}

enum Op {
    Create,
    Delete,
    Change,
}

fn live(object: &DynamicObject, detail: Option<String>) -> Live {
    Live {
        uid: object.metadata.uid.clone().unwrap_or_default(),
        detail,
    }
}

/// Runs `workload` at `rate` operations a second until `deadline`.
pub async fn run(mut workload: Workload, rate: f64, deadline: Instant) -> Workload {
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.01));
    let mut next = Instant::now();
    let mut collected = Instant::now();
    while Instant::now() < deadline {
        workload.step().await;
        if !workload.collector_runs && collected.elapsed() >= GC_EVERY {
            workload.collect_garbage().await;
            collected = Instant::now();
        }
        next += interval;
        let now = Instant::now();
        if next > now {
            tokio::time::sleep(next - now).await;
        } else {
            // Behind (the API server away): no burst to catch up.
            next = now;
        }
    }
    workload
}
