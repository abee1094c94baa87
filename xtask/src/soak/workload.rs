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
use serde_json::{Value, json};

use super::cluster::{self, Lane};
use super::collector;
use super::ledger::{Change, Expect, Ledger};

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

    fn schedule(&mut self, low: i64, high: i64) -> String {
        let at =
            jiff::Timestamp::now() + jiff::SignedDuration::from_secs(self.rng.seconds(low, high));
        at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    async fn create_at(&mut self, lane: Lane) -> Result<()> {
        let name = self.name(lane, "at");
        let schedule = self.schedule(-30, 90);
        let object = json!({
            "apiVersion": "cnat.programming-kubernetes.info/v1alpha1", "kind": "At",
            "metadata": {"name": name},
            "spec": {"schedule": schedule, "command": format!("echo soak {name}")},
        });
        let created = self.create(lane, "cnat", &cluster::ats(), object).await?;
        self.state(lane).ats.insert(name, live(&created, None));
        Ok(())
    }

    async fn at_op(&mut self, lane: Lane) -> Result<()> {
        let n = self.state(lane).ats.len();
        let target = self.targets.ats;
        let names: Vec<String> = self.state(lane).ats.keys().cloned().collect();
        match self.choose(n, target) {
            Op::Create => self.create_at(lane).await,
            Op::Delete => {
                let Some(name) = self.pick(names) else {
                    return Ok(());
                };
                let uid = self.state(lane).ats[&name].uid.clone();
                self.delete(lane, "cnat", &cluster::ats(), &name, &uid)
                    .await?;
                self.state(lane).ats.remove(&name);
                Ok(())
            }
            Op::Change => {
                let Some(name) = self.pick(names) else {
                    return Ok(());
                };
                // Moved: still ahead, or due now. A RUNNING or DONE At keeps
                // its Pod whatever its schedule says.
                let schedule = self.schedule(-10, 60);
                self.change(
                    lane,
                    "cnat",
                    &cluster::ats(),
                    &name,
                    json!({"spec": {"schedule": schedule}}),
                )
                .await
                .map(drop)
            }
        }
    }

    async fn create_webapp(&mut self, lane: Lane) -> Result<()> {
        let name = self.name(lane, "web");
        let port = self.rng.chance(0.5).then_some(8080);
        let replicas = self.replicas();
        let mut spec = json!({"image": "nginx", "replicas": replicas});
        if let Some(port) = port {
            spec["port"] = json!(port);
        }
        let object = json!({
            "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
            "metadata": {"name": name}, "spec": spec,
        });
        let created = self
            .create(lane, "webapp", &cluster::webapps(), object)
            .await?;
        self.state(lane)
            .webapps
            .insert(name, live(&created, port.map(|p: i32| p.to_string())));
        Ok(())
    }

    /// Replicas of a WebApp (with `--node`, Pods the node runs).
    fn replicas(&mut self) -> u64 {
        self.rng.below(3)
    }

    async fn webapp_op(&mut self, lane: Lane) -> Result<()> {
        let n = self.state(lane).webapps.len();
        let target = self.targets.webapps;
        let names: Vec<String> = self.state(lane).webapps.keys().cloned().collect();
        match self.choose(n, target) {
            Op::Create => self.create_webapp(lane).await,
            Op::Delete => {
                let Some(name) = self.pick(names) else {
                    return Ok(());
                };
                let uid = self.state(lane).webapps[&name].uid.clone();
                self.delete(lane, "webapp", &cluster::webapps(), &name, &uid)
                    .await?;
                self.state(lane).webapps.remove(&name);
                Ok(())
            }
            Op::Change => {
                let Some(name) = self.pick(names) else {
                    return Ok(());
                };
                let had_port = self.state(lane).webapps[&name].detail.is_some();
                let patch = if self.rng.chance(0.6) {
                    json!({"spec": {"port": if had_port { Value::Null } else { json!(8080) }}})
                } else {
                    json!({"spec": {"replicas": self.replicas()}})
                };
                let changed = self
                    .change(lane, "webapp", &cluster::webapps(), &name, patch)
                    .await?;
                let port = changed
                    .data
                    .pointer("/spec/port")
                    .and_then(Value::as_i64)
                    .map(|p| p.to_string());
                if let Some(app) = self.state(lane).webapps.get_mut(&name) {
                    app.detail = port;
                }
                Ok(())
            }
        }
    }

    async fn create_mirror(&mut self, lane: Lane) -> Result<()> {
        let name = self.name(lane, "mir");
        let source = format!("src-{}", self.rng.below(SOURCES as u64));
        let mut spec = json!({"configMapName": source});
        if self.rng.chance(0.5) {
            spec["selector"] = json!(format!("{GROUP_LABEL}={}", self.group()));
        }
        let object = json!({
            "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "Mirror",
            "metadata": {"name": name}, "spec": spec,
        });
        let created = self
            .create(lane, "mirror", &cluster::mirrors(), object)
            .await?;
        self.state(lane)
            .mirrors
            .insert(name, live(&created, Some(source)));
        Ok(())
    }

    fn group(&mut self) -> &'static str {
        if self.rng.chance(0.5) { "a" } else { "b" }
    }

    async fn mirror_op(&mut self, lane: Lane) -> Result<()> {
        let n = self.state(lane).mirrors.len();
        let target = self.targets.mirrors;
        let names: Vec<String> = self.state(lane).mirrors.keys().cloned().collect();
        match self.choose(n, target) {
            Op::Create => self.create_mirror(lane).await,
            Op::Delete => {
                let Some(name) = self.pick(names) else {
                    return Ok(());
                };
                let uid = self.state(lane).mirrors[&name].uid.clone();
                self.delete(lane, "mirror", &cluster::mirrors(), &name, &uid)
                    .await?;
                self.state(lane).mirrors.remove(&name);
                Ok(())
            }
            Op::Change => {
                let Some(name) = self.pick(names) else {
                    return Ok(());
                };
                let source = format!("src-{}", self.rng.below(SOURCES as u64));
                let selector = if self.rng.chance(0.5) {
                    json!(format!("{GROUP_LABEL}={}", self.group()))
                } else {
                    Value::Null
                };
                let patch = json!({"spec": {"configMapName": source, "selector": selector}});
                self.change(lane, "mirror", &cluster::mirrors(), &name, patch)
                    .await?;
                if let Some(mirror) = self.state(lane).mirrors.get_mut(&name) {
                    mirror.detail = Some(source);
                }
                Ok(())
            }
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The Mirrors of `lane` naming `source`: (name, uid).
    fn readers(&mut self, lane: Lane, source: &str) -> Vec<(String, String)> {
        self.state(lane)
            .mirrors
            .iter()
            .filter(|(_, m)| m.detail.as_deref() == Some(source))
            .map(|(name, m)| (name.clone(), m.uid.clone()))
            .collect()
    }

    fn expect_readers(
        &mut self,
        lane: Lane,
        source: &str,
        what: &'static str,
        expect: Expect,
        at: Instant,
    ) {
        for (name, uid) in self.readers(lane, source) {
            self.ledger.record(Change {
                lane,
                module: "mirror",
                what,
                name,
                uid,
                expect: expect.clone(),
                at,
            });
        }
    }

    async fn create_source(&mut self, lane: Lane, name: &str) -> Result<()> {
        let seq = self.next_seq();
        let group = self.group();
        let object = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {GROUP_LABEL: group}},
            "data": {"seq": seq.to_string(), "lane": lane.name()},
        });
        let object: DynamicObject = serde_json::from_value(object)?;
        let at = Instant::now();
        self.api(lane, &cluster::config_maps())
            .create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("creating the ConfigMap {name}"))?;
        self.state(lane).sources.insert(name.to_owned(), true);
        self.expect_readers(lane, name, "source", Expect::Seq(seq), at);
        self.count("mirror", "source created");
        Ok(())
    }

    async fn source_op(&mut self, lane: Lane) -> Result<()> {
        let name = format!("src-{}", self.rng.below(SOURCES as u64));
        let exists = self
            .state(lane)
            .sources
            .get(&name)
            .copied()
            .unwrap_or(false);
        if !exists {
            return self.create_source(lane, &name).await;
        }
        let api = self.api(lane, &cluster::config_maps());
        let roll = self.rng.below(20);
        if roll < 14 {
            let seq = self.next_seq();
            let at = Instant::now();
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"seq": seq.to_string()}})),
            )
            .await
            .with_context(|| format!("changing the ConfigMap {name}"))?;
            self.expect_readers(lane, &name, "source", Expect::Seq(seq), at);
            self.count("mirror", "source changed");
        } else if roll < 17 {
            let group = self.group();
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {GROUP_LABEL: group}}})),
            )
            .await
            .with_context(|| format!("moving the ConfigMap {name}"))?;
            self.count("mirror", "source moved between selections");
        } else {
            // The highest seq any source had: a Mirror that shows a higher
            // one has seen it made again.
            let seq = self.seq;
            let at = Instant::now();
            api.delete(&name, &DeleteParams::default())
                .await
                .with_context(|| format!("deleting the ConfigMap {name}"))?;
            self.state(lane).sources.insert(name.clone(), false);
            self.expect_readers(lane, &name, "source deleted", Expect::Absent(seq), at);
            self.count("mirror", "source deleted");
        }
        self.last_change = Some(Instant::now());
        Ok(())
    }

    async fn create_tenant(&mut self, lane: Lane) -> Result<()> {
        let name = self.name(lane, "tenant");
        let object = json!({
            "apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave",
            "metadata": {"name": name},
            "spec": {"mode": "status", "seconds": 0},
        });
        let created = self
            .create(lane, "misbehave", &cluster::misbehaves(), object)
            .await?;
        self.state(lane).tenants.insert(name, live(&created, None));
        Ok(())
    }

    async fn tenant_op(&mut self, lane: Lane) -> Result<()> {
        let n = self.state(lane).tenants.len();
        let target = self.targets.tenants;
        let names: Vec<String> = self.state(lane).tenants.keys().cloned().collect();
        match self.choose(n, target) {
            Op::Create => self.create_tenant(lane).await,
            Op::Delete => {
                let Some(name) = self.pick(names) else {
                    return Ok(());
                };
                let uid = self.state(lane).tenants[&name].uid.clone();
                self.delete(lane, "misbehave", &cluster::misbehaves(), &name, &uid)
                    .await?;
                self.state(lane).tenants.remove(&name);
                Ok(())
            }
            Op::Change => {
                let Some(name) = self.pick(names) else {
                    return Ok(());
                };
                let seconds = self.rng.below(1000);
                self.change(
                    lane,
                    "misbehave",
                    &cluster::misbehaves(),
                    &name,
                    json!({"spec": {"seconds": seconds}}),
                )
                .await
                .map(drop)
            }
        }
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
