//! The workload's operations on each kind: how an object of each example
//! module is created, changed and deleted, and what the ledger expects the
//! host to show for it (see the table in [`super`]).

use std::time::Instant;

use anyhow::{Context, Result};
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::{GROUP_LABEL, Lane, Op, SOURCES, Workload, cluster, live};
use crate::soak::ledger::{Change, Expect};

impl Workload {
    pub(super) fn schedule(&mut self, low: i64, high: i64) -> String {
        let at =
            jiff::Timestamp::now() + jiff::SignedDuration::from_secs(self.rng.seconds(low, high));
        at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    pub(super) async fn create_at(&mut self, lane: Lane) -> Result<()> {
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

    pub(super) async fn at_op(&mut self, lane: Lane) -> Result<()> {
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

    pub(super) async fn create_webapp(&mut self, lane: Lane) -> Result<()> {
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
    pub(super) fn replicas(&mut self) -> u64 {
        self.rng.below(3)
    }

    pub(super) async fn webapp_op(&mut self, lane: Lane) -> Result<()> {
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

    pub(super) async fn create_mirror(&mut self, lane: Lane) -> Result<()> {
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

    pub(super) fn group(&mut self) -> &'static str {
        if self.rng.chance(0.5) { "a" } else { "b" }
    }

    pub(super) async fn mirror_op(&mut self, lane: Lane) -> Result<()> {
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

    pub(super) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The Mirrors of `lane` naming `source`: (name, uid).
    pub(super) fn readers(&mut self, lane: Lane, source: &str) -> Vec<(String, String)> {
        self.state(lane)
            .mirrors
            .iter()
            .filter(|(_, m)| m.detail.as_deref() == Some(source))
            .map(|(name, m)| (name.clone(), m.uid.clone()))
            .collect()
    }

    pub(super) fn expect_readers(
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

    pub(super) async fn create_source(&mut self, lane: Lane, name: &str) -> Result<()> {
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

    pub(super) async fn source_op(&mut self, lane: Lane) -> Result<()> {
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

    pub(super) async fn create_tenant(&mut self, lane: Lane) -> Result<()> {
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

    pub(super) async fn tenant_op(&mut self, lane: Lane) -> Result<()> {
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
}
