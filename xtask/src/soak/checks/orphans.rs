//! `--node`: no child outlives its primary. The workload leaves the
//! children of the primaries it deletes to kube-controller-manager's
//! garbage collector, which races the hosts' own prunes; after settling,
//! every child in the lanes' namespaces (Pods, Deployments, ReplicaSets,
//! Services, ConfigMaps) whose controller was one of the soak's objects or
//! their children must have a controller that still exists, or be on its
//! way out (being deleted: a Pod in its grace period).
//!
//! What the collector took is read from the API server's audit log, which
//! holds its deletes (see [`super::super::cluster`]): its successful
//! deletes in the lanes' namespaces, by resource. Without a node nothing
//! collects but the workload itself, and this check is not run.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde_json::{Value, json};

use crate::soak::cluster::{self, GARBAGE_COLLECTOR, Lane};

/// What the orphan check found.
#[derive(Debug, Clone, Default)]
pub struct Orphans {
    /// Children judged at the end.
    pub judged: usize,
    /// Children whose controller is gone and which are not being deleted:
    /// `lane kind name (controller kind uid)`.
    pub orphans: Vec<String>,
    /// Children whose controller is gone, being deleted at the end.
    pub going: usize,
    /// From the settle's start until no orphan was left (None: not within
    /// the timeout).
    pub settled: Option<Duration>,
    /// The garbage collector's successful deletes in the lanes'
    /// namespaces, by resource (`pods`, `deployments`, …).
    pub collected: BTreeMap<String, u64>,
}

impl Orphans {
    /// Children the garbage collector deleted, in all.
    pub fn collected_total(&self) -> u64 {
        self.collected.values().sum()
    }

    /// The report's section.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "\n## No orphan left\n");
        let _ = writeln!(
            out,
            "The workload left the children of deleted primaries to kube-controller-manager's garbage collector (half of the deletes in the foreground). It deleted {} children in the lanes' namespaces (audit log):\n",
            self.collected_total()
        );
        let _ = writeln!(out, "| resource | deleted by the collector |\n|---|---:|");
        for (resource, n) in &self.collected {
            let _ = writeln!(out, "| {resource} | {n} |");
        }
        let _ = writeln!(
            out,
            "\n{} children judged at the end: {} orphaned, {} of deleted controllers still going (being deleted); {}.",
            self.judged,
            self.orphans.len(),
            self.going,
            self.settled.map_or_else(
                || "orphans were left at the timeout".to_owned(),
                |d| format!(
                    "none orphaned {:.1} s after the settle began",
                    d.as_secs_f64()
                )
            )
        );
        for orphan in &self.orphans {
            let _ = writeln!(out, "- orphaned: {orphan}");
        }
        out
    }

    /// The report's JSON.
    pub fn json(&self) -> Value {
        json!({
            "judged": self.judged,
            "orphans": self.orphans,
            "going": self.going,
            "settled_s": self.settled.map(|d| d.as_secs_f64()),
            "collected": self.collected,
            "collected_total": self.collected_total(),
        })
    }
}

/// The kinds whose objects are judged as children (and may be owners).
fn children() -> [ApiResource; 5] {
    [
        cluster::pods(),
        cluster::replica_sets(),
        cluster::deployments(),
        cluster::services(),
        cluster::config_maps(),
    ]
}

/// The kinds whose objects may only be owners.
fn primaries() -> [ApiResource; 4] {
    [
        cluster::ats(),
        cluster::webapps(),
        cluster::mirrors(),
        cluster::misbehaves(),
    ]
}

/// Waits up to `timeout` for no orphan to be left, then counts the
/// collector's deletes in `audit_log`.
pub async fn wait(client: &kube::Client, audit_log: &Path, timeout: Duration) -> Result<Orphans> {
    let started = Instant::now();
    let mut found = loop {
        let mut found = judge(client).await?;
        if found.orphans.is_empty() {
            found.settled = Some(started.elapsed());
            break found;
        }
        if started.elapsed() > timeout {
            break found;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    found.collected = collected(audit_log)?;
    Ok(found)
}

async fn judge(client: &kube::Client) -> Result<Orphans> {
    let mut found = Orphans::default();
    let owner_kinds: HashSet<String> = children()
        .iter()
        .chain(primaries().iter())
        .map(|r| r.kind.clone())
        .collect();
    for lane in Lane::ALL {
        let namespace = lane.apps();
        let mut uids = HashSet::new();
        let mut candidates = Vec::new();
        for (resource, child) in children()
            .into_iter()
            .map(|r| (r, true))
            .chain(primaries().into_iter().map(|r| (r, false)))
        {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &namespace, &resource);
            let list = api
                .list(&ListParams::default())
                .await
                .with_context(|| format!("listing {} in {namespace}", resource.plural))?;
            for object in list.items {
                uids.extend(object.metadata.uid.clone());
                if child {
                    candidates.push((resource.kind.clone(), object));
                }
            }
        }
        for (kind, object) in candidates {
            let Some(owner) = object
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true) && owner_kinds.contains(&o.kind))
            else {
                continue;
            };
            found.judged += 1;
            if uids.contains(&owner.uid) {
                continue;
            }
            if object.metadata.deletion_timestamp.is_some() {
                found.going += 1;
                continue;
            }
            found.orphans.push(format!(
                "{} {kind} {} (its {} {} is gone)",
                lane.name(),
                object.metadata.name.as_deref().unwrap_or("?"),
                owner.kind,
                owner.name
            ));
        }
    }
    Ok(found)
}

/// The garbage collector's successful deletes in the lanes' namespaces,
/// by resource.
fn collected(audit_log: &Path) -> Result<BTreeMap<String, u64>> {
    let namespaces: HashSet<String> = Lane::ALL.into_iter().map(Lane::apps).collect();
    let file = std::fs::File::open(audit_log)
        .with_context(|| format!("opening {}", audit_log.display()))?;
    let mut counts = BTreeMap::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.with_context(|| format!("reading {}", audit_log.display()))?;
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let by_collector = event.pointer("/user/username").and_then(Value::as_str)
            == Some(GARBAGE_COLLECTOR)
            && event["verb"] == "delete"
            && event["stage"] == "ResponseComplete";
        let code = event
            .pointer("/responseStatus/code")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let namespace = event
            .pointer("/objectRef/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !by_collector || !(200..300).contains(&code) || !namespaces.contains(namespace) {
            continue;
        }
        let resource = event
            .pointer("/objectRef/resource")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        *counts.entry(resource).or_default() += 1;
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collector_s_successful_deletes_in_the_lanes_are_counted() {
        let dir = std::env::temp_dir().join(format!("soak-orphans-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("audit.log");
        let event = |user: &str, namespace: &str, resource: &str, code: u64| {
            json!({
                "stage": "ResponseComplete", "verb": "delete",
                "user": {"username": user},
                "objectRef": {"resource": resource, "namespace": namespace, "name": "x"},
                "responseStatus": {"code": code},
            })
            .to_string()
        };
        let lines = [
            event(GARBAGE_COLLECTOR, "soak-pair", "pods", 200),
            event(GARBAGE_COLLECTOR, "soak-steady", "services", 200),
            event(GARBAGE_COLLECTOR, "soak-steady", "services", 404),
            event(GARBAGE_COLLECTOR, "kube-system", "pods", 200),
            event(&Lane::Pair.user(), "soak-pair", "pods", 200),
        ];
        std::fs::write(&log, lines.join("\n")).unwrap();
        let counts = collected(&log).unwrap();
        assert_eq!(
            counts,
            BTreeMap::from([("pods".to_owned(), 1), ("services".to_owned(), 1)])
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
