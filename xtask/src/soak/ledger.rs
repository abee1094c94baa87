//! No reconcile lost: every change the soak makes is written down with
//! what the host must show for it, and watches note when the host first
//! showed it.
//!
//! What a change expects:
//!
//! - a primary's new spec (or the primary itself, created): its status's
//!   `observedGeneration` reaching that generation ([`Expect::Generation`]);
//! - a ConfigMap a Mirror names, changed: the Mirror's mirrored `seq`
//!   reaching the ConfigMap's new one ([`Expect::Seq`]); deleted: the
//!   Mirror showing it absent ([`Expect::Absent`]) — a read trigger;
//! - a hot swap of webapp: each WebApp's Deployment carrying the new
//!   version's revision label, or no longer carrying it
//!   ([`Expect::Revision`]) — a module change reaching every object.
//!
//! The watches are the soak's own, so "first seen" is when the soak's
//! watch saw it (a little after the host wrote it; later still while the
//! API server restarts). A change nothing ever showed is **lost** unless
//! something superseded it first: its object deleted, or (for a Mirror's
//! source, a swap) a later change of the same object made before the
//! first was seen. The last state is read once more from the API server
//! at the end, so a watch that missed an event cannot make a change look
//! lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;

use super::cluster::Lane;

/// The label webapp's second version puts on every child.
pub const REVISION_LABEL: &str = "examples.bosun.dev/revision";

/// What the host must show for a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// `status.observedGeneration` at least this.
    Generation(i64),
    /// A Mirror's `status.data.seq` at least this.
    Seq(u64),
    /// A Mirror's `status.found` false, or a `seq` above this (its source
    /// made again since).
    Absent(u64),
    /// A WebApp's Deployment labelled with this revision (none: unlabelled).
    Revision(Option<String>),
}

/// One change the soak made.
#[derive(Debug, Clone)]
pub struct Change {
    /// The lane whose namespace it was made in.
    pub lane: Lane,
    /// The module that must react.
    pub module: &'static str,
    /// What was done (`create`, `spec`, `source`, `source-deleted`, `swap`).
    pub what: &'static str,
    /// The object that must show it.
    pub name: String,
    /// Its uid.
    pub uid: String,
    /// What it must show.
    pub expect: Expect,
    /// Just before the write was sent.
    pub at: Instant,
}

#[derive(Debug, Default)]
struct Seen {
    generations: Vec<(i64, Instant)>,
    seqs: Vec<(u64, Instant)>,
    absent: Vec<Instant>,
    revisions: Vec<(Option<String>, Instant)>,
    deleted: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    changes: Vec<Change>,
    seen: HashMap<String, Seen>,
}

/// The changes and what was seen of them.
#[derive(Default)]
pub struct Ledger {
    inner: Mutex<Inner>,
}

/// How the changes ended.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Changes seen, each with the time from the change to the sighting.
    pub seen: Vec<(Change, Duration)>,
    /// Changes superseded before they were seen (object deleted, or changed
    /// again), by reason.
    pub superseded: HashMap<&'static str, usize>,
    /// Changes never seen and never superseded in time, each with why.
    pub lost: Vec<(Change, String)>,
}

/// How long a change may stay unseen before something supersedes it and
/// still count as superseded rather than lost: longer than the slowest
/// failover (a 15 s lease, then a warm standby's first reconciles) and an
/// API server restart together.
pub const PATIENCE: Duration = Duration::from_secs(120);

impl Ledger {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes a change down.
    pub fn record(&self, change: Change) {
        self.inner().changes.push(change);
    }

    /// Notes that the object `uid` was deleted at `at`.
    pub fn deleted(&self, uid: &str, at: Instant) {
        self.inner().seen.entry(uid.to_owned()).or_default().deleted = Some(at);
    }

    /// How many changes were written down.
    pub fn len(&self) -> usize {
        self.inner().changes.len()
    }

    /// Whether no change was written down.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Notes what a primary shows now: its `observedGeneration`, and for a
    /// Mirror its mirrored `seq` or that its source is absent.
    pub fn observe_primary(&self, object: &DynamicObject, now: Instant) {
        let Some(uid) = object.metadata.uid.clone() else {
            return;
        };
        let status = object.data.get("status");
        let generation = status
            .and_then(|s| s.get("observedGeneration"))
            .and_then(Value::as_i64);
        let mirror = object.types.as_ref().is_some_and(|t| t.kind == "Mirror");
        let mut inner = self.inner();
        let seen = inner.seen.entry(uid).or_default();
        if let Some(generation) = generation
            && seen.generations.last().is_none_or(|(g, _)| *g < generation)
        {
            seen.generations.push((generation, now));
        }
        if mirror && let Some(status) = status {
            let found = status.get("found").and_then(Value::as_bool);
            let seq = status
                .pointer("/data/seq")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<u64>().ok());
            match (found, seq) {
                (Some(false), _) => seen.absent.push(now),
                (_, Some(seq)) if seen.seqs.last().is_none_or(|(s, _)| *s != seq) => {
                    seen.seqs.push((seq, now));
                }
                _ => {}
            }
        }
    }

    /// Notes a WebApp's Deployment's revision label, under its controller
    /// owner's uid.
    pub fn observe_child(&self, object: &DynamicObject, now: Instant) {
        let Some(owner) = object
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
        else {
            return;
        };
        let revision = object
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(REVISION_LABEL))
            .cloned();
        let mut inner = self.inner();
        let seen = inner.seen.entry(owner.uid.clone()).or_default();
        if seen.revisions.last().is_none_or(|(r, _)| *r != revision) {
            seen.revisions.push((revision, now));
        }
    }

    /// When `change` was first seen, if it was.
    fn sighting(seen: &Seen, change: &Change) -> Option<Instant> {
        match &change.expect {
            Expect::Generation(g) => seen
                .generations
                .iter()
                .find(|(seen, _)| seen >= g)
                .map(|(_, at)| *at),
            Expect::Seq(n) => seen
                .seqs
                .iter()
                .find(|(seq, at)| seq >= n && *at >= change.at)
                .map(|(_, at)| *at),
            Expect::Absent(n) => {
                let absent = seen.absent.iter().find(|at| **at >= change.at).copied();
                let again = seen
                    .seqs
                    .iter()
                    .find(|(seq, at)| seq > n && *at >= change.at)
                    .map(|(_, at)| *at);
                absent.into_iter().chain(again).min()
            }
            Expect::Revision(r) => seen
                .revisions
                .iter()
                .find(|(seen, at)| seen == r && *at >= change.at)
                .map(|(_, at)| *at),
        }
    }

    /// How every change ended, as of now.
    pub fn verdict(&self) -> Verdict {
        let inner = self.inner();
        let empty = Seen::default();
        let mut verdict = Verdict::default();
        for (index, change) in inner.changes.iter().enumerate() {
            let seen = inner.seen.get(&change.uid).unwrap_or(&empty);
            if let Some(at) = Ledger::sighting(seen, change) {
                verdict
                    .seen
                    .push((change.clone(), at.saturating_duration_since(change.at)));
                continue;
            }
            if let Some(deleted) = seen.deleted {
                let unseen = deleted.saturating_duration_since(change.at);
                if unseen <= PATIENCE {
                    *verdict.superseded.entry("object deleted").or_default() += 1;
                } else {
                    verdict.lost.push((
                        change.clone(),
                        format!(
                            "not seen in the {:.0} s before its object was deleted",
                            unseen.as_secs_f64()
                        ),
                    ));
                }
                continue;
            }
            // A Mirror's source expectations are superseded by a change of
            // the Mirror itself (it may name another ConfigMap now), new
            // data by the source's deletion, and a swap's by the next swap;
            // the final convergence check judges the state they left.
            let later = inner.changes[index + 1..].iter().find(|c| {
                c.uid == change.uid
                    && matches!(
                        (&change.expect, &c.expect),
                        (Expect::Seq(_) | Expect::Absent(_), Expect::Generation(_))
                            | (Expect::Seq(_), Expect::Absent(_))
                            | (Expect::Revision(_), Expect::Revision(_))
                    )
            });
            match later {
                Some(later) if later.at.saturating_duration_since(change.at) <= PATIENCE => {
                    *verdict.superseded.entry("changed again").or_default() += 1;
                }
                Some(later) => verdict.lost.push((
                    change.clone(),
                    format!(
                        "not seen in the {:.0} s before the object was changed again",
                        later.at.saturating_duration_since(change.at).as_secs_f64()
                    ),
                )),
                None => verdict.lost.push((change.clone(), "never seen".into())),
            }
        }
        verdict
    }
}

/// A watch feeding the ledger, aborted when dropped.
pub struct Watch(tokio::task::JoinHandle<()>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Whether a watched kind is a primary (its status observed) or a child
/// (its revision label observed).
#[derive(Debug, Clone, Copy)]
pub enum Watched {
    /// A primary.
    Primary,
    /// A child (Deployments).
    Child,
}

/// Watches `resource` in `namespace` for as long as the [`Watch`] lives,
/// re-listing after every error (the API server restarts under it).
pub fn watch(
    client: &kube::Client,
    namespace: &str,
    resource: &ApiResource,
    watched: Watched,
    ledger: Arc<Ledger>,
) -> Watch {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    let kind = resource.kind.clone();
    let api_version = resource.api_version.clone();
    Watch(tokio::spawn(async move {
        let mut stream = std::pin::pin!(
            watcher(api, watcher::Config::default().any_semantic()).default_backoff()
        );
        while let Some(event) = stream.next().await {
            let Ok(event) = event else {
                continue;
            };
            let now = Instant::now();
            if let watcher::Event::Apply(mut object) | watcher::Event::InitApply(mut object) = event
            {
                object.types.get_or_insert_with(|| kube::api::TypeMeta {
                    api_version: api_version.clone(),
                    kind: kind.clone(),
                });
                match watched {
                    Watched::Primary => ledger.observe_primary(&object, now),
                    Watched::Child => ledger.observe_child(&object, now),
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(uid: &str, expect: Expect, at: Instant) -> Change {
        Change {
            lane: Lane::Steady,
            module: "mirror",
            what: "spec",
            name: "m".into(),
            uid: uid.into(),
            expect,
            at,
        }
    }

    fn mirror(uid: &str, generation: i64, found: bool, seq: Option<u64>) -> DynamicObject {
        let mut status = serde_json::json!({"observedGeneration": generation, "found": found});
        if let Some(seq) = seq {
            status["data"] = serde_json::json!({"seq": seq.to_string()});
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "Mirror",
            "metadata": {"name": "m", "uid": uid},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_change_is_seen_lost_or_superseded() {
        let ledger = Ledger::default();
        let t0 = Instant::now();
        ledger.record(change("a", Expect::Generation(2), t0));
        ledger.record(change("a", Expect::Seq(7), t0));
        ledger.record(change("b", Expect::Generation(3), t0));
        ledger.record(change("c", Expect::Generation(1), t0));
        ledger.record(change("d", Expect::Seq(9), t0));
        ledger.record(change("d", Expect::Generation(2), t0));
        let later = t0 + Duration::from_millis(30);
        ledger.observe_primary(&mirror("a", 2, true, Some(7)), later);
        ledger.observe_primary(&mirror("b", 2, true, None), later);
        ledger.deleted("c", later);
        ledger.observe_primary(&mirror("d", 2, true, Some(3)), later);
        let verdict = ledger.verdict();
        assert_eq!(verdict.seen.len(), 3, "{verdict:?}");
        assert!(
            verdict
                .seen
                .iter()
                .all(|(_, d)| *d == Duration::from_millis(30))
        );
        assert_eq!(verdict.lost.len(), 1);
        assert_eq!(verdict.lost[0].0.uid, "b");
        assert_eq!(verdict.superseded["object deleted"], 1);
        assert_eq!(verdict.superseded["changed again"], 1);
    }

    #[test]
    fn a_change_unseen_long_before_its_object_went_is_lost() {
        let ledger = Ledger::default();
        let t0 = Instant::now();
        ledger.record(change("a", Expect::Generation(2), t0));
        ledger.deleted("a", t0 + PATIENCE + Duration::from_secs(1));
        let verdict = ledger.verdict();
        assert_eq!(verdict.lost.len(), 1, "{verdict:?}");
        assert!(verdict.lost[0].1.contains("before its object was deleted"));
    }

    #[test]
    fn new_data_unseen_before_its_source_went_is_superseded_not_lost() {
        let ledger = Ledger::default();
        let t0 = Instant::now();
        ledger.record(change("a", Expect::Seq(4), t0));
        ledger.record(change("a", Expect::Absent(4), t0 + Duration::from_secs(5)));
        ledger.observe_primary(&mirror("a", 1, false, None), t0 + Duration::from_secs(20));
        let verdict = ledger.verdict();
        assert!(verdict.lost.is_empty(), "{verdict:?}");
        assert_eq!(verdict.superseded["changed again"], 1);
        assert_eq!(verdict.seen.len(), 1);
    }

    #[test]
    fn a_source_deleted_is_seen_absent_or_made_again() {
        let ledger = Ledger::default();
        let t0 = Instant::now();
        ledger.record(change("a", Expect::Absent(4), t0));
        ledger.observe_primary(
            &mirror("a", 1, true, Some(4)),
            t0 - Duration::from_millis(1),
        );
        assert_eq!(ledger.verdict().lost.len(), 1);
        ledger.observe_primary(
            &mirror("a", 1, true, Some(5)),
            t0 + Duration::from_millis(1),
        );
        assert_eq!(ledger.verdict().seen.len(), 1);
    }
}
