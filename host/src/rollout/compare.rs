//! What two versions of a module would do to one object, side by side: the
//! outcome of each call (a plan, or the failure that stopped it) compared
//! into a bounded, serializable diff — children added, changed (field by
//! field) and pruned, the status, requeue and events.
//!
//! Everything compared came from a guest: every string is cut and every
//! list bounded here, so a diff stays small whatever either side returned.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::bindings::{self as wit, EventType};
use crate::plan::{ObjectRef, Plan};

/// The most changes one object's diff keeps; the rest are only counted:
/// a version that rewrites every field of a thousand children must not
/// make a diff of a thousand entries.
pub const MAX_CHANGES: usize = 32;

/// The longest value (as JSON text) a change shows, in bytes.
pub const MAX_VALUE_BYTES: usize = 256;

/// The longest path a change shows, in bytes.
const MAX_PATH_BYTES: usize = 512;

/// How deep the comparison descends into two values; below, a differing
/// subtree is one change. Guest output is already bounded in bytes, this
/// bounds the recursion.
const MAX_DEPTH: usize = 32;

/// How one side's call about an object ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The call returned and its output planned: what the host would write.
    Planned(Plan),
    /// The call, or the plan, failed: nothing would be written.
    Failed(Failure),
}

/// Why a call wrote nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Failure {
    /// A CamelCase reason: the engine's failure kind (`Trap`, `Timeout`,
    /// `MemoryLimit`, …), `RetryableError` or `PermanentError` with the
    /// guest's own reason, or `InvalidOutput`.
    pub reason: String,
    /// What happened, cut to [`MAX_VALUE_BYTES`].
    pub message: String,
}

impl Failure {
    /// A failure with `reason`, its message cut.
    pub fn new(reason: impl Into<String>, message: &str) -> Failure {
        Failure {
            reason: cut(reason.into(), 64),
            message: cut(message.to_owned(), MAX_VALUE_BYTES),
        }
    }
}

/// The verdict on one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Verdict {
    /// Both would write the same (or fail the same way).
    Identical,
    /// They would write different things.
    Differing,
    /// The candidate failed where the live version did not fail the same way.
    Failing,
}

/// What a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ChangeKind {
    /// A child only the candidate applies.
    ChildAdded,
    /// A child both apply, with a field that differs.
    ChildChanged,
    /// A child only the live version applies (the candidate no longer
    /// returns it).
    ChildDropped,
    /// A child the candidate would delete and the live version would not.
    ChildPruned,
    /// A child the live version would delete and the candidate keeps.
    ChildKept,
    /// A field of the primary's status.
    Status,
    /// When the object is reconciled again.
    Requeue,
    /// An event.
    Event,
    /// One side failed, the other planned (or they failed differently).
    Outcome,
}

/// One difference: where, and what each side would have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Change {
    /// What the change is about.
    pub kind: ChangeKind,
    /// Where: for a child `Kind.group/name` (and `ns/` before the name
    /// when it has one) followed by a JSON pointer into it; `/status/…`,
    /// `/requeueAfter`, `/events/N`, `/outcome`.
    pub path: String,
    /// The live version's value as JSON text, cut; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<String>,
    /// The candidate's value as JSON text, cut; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<String>,
}

/// The comparison of two outcomes for one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Diff {
    /// The verdict.
    pub verdict: Verdict,
    /// The candidate's failure, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// The differences, at most [`MAX_CHANGES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// How many differences past [`MAX_CHANGES`] were left out.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Compares what the live version and the candidate would do to one object.
pub fn compare(live: &Outcome, candidate: &Outcome) -> Diff {
    let mut out = Changes::default();
    match (live, candidate) {
        (Outcome::Planned(live), Outcome::Planned(candidate)) => {
            compare_plans(live, candidate, &mut out);
        }
        (Outcome::Failed(live), Outcome::Failed(candidate)) if live.reason == candidate.reason => {}
        (Outcome::Failed(failure), Outcome::Planned(_)) => out.push(
            ChangeKind::Outcome,
            "/outcome".into(),
            Some(&Value::String(format!(
                "{}: {}",
                failure.reason, failure.message
            ))),
            Some(&Value::String("planned".into())),
        ),
        (live, Outcome::Failed(failure)) => {
            let live = match live {
                Outcome::Planned(_) => "planned".to_owned(),
                Outcome::Failed(f) => format!("{}: {}", f.reason, f.message),
            };
            out.push(
                ChangeKind::Outcome,
                "/outcome".into(),
                Some(&Value::String(live)),
                Some(&Value::String(format!(
                    "{}: {}",
                    failure.reason, failure.message
                ))),
            );
        }
    }
    let failure = match (live, candidate) {
        (Outcome::Failed(l), Outcome::Failed(c)) if l.reason == c.reason => None,
        (_, Outcome::Failed(c)) => Some(c.clone()),
        _ => None,
    };
    let verdict = if failure.is_some() {
        Verdict::Failing
    } else if out.changes.is_empty() && out.omitted == 0 {
        Verdict::Identical
    } else {
        Verdict::Differing
    };
    Diff {
        verdict,
        failure,
        changes: out.changes,
        omitted: out.omitted,
    }
}

fn compare_plans(live: &Plan, candidate: &Plan, out: &mut Changes) {
    let live_children = by_identity(&live.apply);
    let candidate_children = by_identity(&candidate.apply);
    for (id, live_child) in &live_children {
        match candidate_children.get(id) {
            Some(candidate_child) => {
                diff_values(
                    ChangeKind::ChildChanged,
                    id,
                    live_child,
                    candidate_child,
                    0,
                    out,
                );
            }
            None => out.push(ChangeKind::ChildDropped, id.clone(), Some(live_child), None),
        }
    }
    for (id, candidate_child) in &candidate_children {
        if !live_children.contains_key(id) {
            out.push(
                ChangeKind::ChildAdded,
                id.clone(),
                None,
                Some(candidate_child),
            );
        }
    }
    let pruned = |plan: &Plan| -> Vec<String> { plan.prune.iter().map(ref_identity).collect() };
    let (live_pruned, candidate_pruned) = (pruned(live), pruned(candidate));
    for id in &candidate_pruned {
        if !live_pruned.contains(id) {
            out.push(
                ChangeKind::ChildPruned,
                id.clone(),
                None,
                Some(&Value::String("deleted".into())),
            );
        }
    }
    for id in &live_pruned {
        if !candidate_pruned.contains(id) {
            out.push(
                ChangeKind::ChildKept,
                id.clone(),
                Some(&Value::String("deleted".into())),
                None,
            );
        }
    }
    match (&live.status, &candidate.status) {
        (Some(l), Some(c)) => diff_values(ChangeKind::Status, "/status", l, c, 0, out),
        (None, None) => {}
        (l, c) => out.push(ChangeKind::Status, "/status".into(), l.as_ref(), c.as_ref()),
    }
    if live.requeue_after != candidate.requeue_after {
        let text = |d: Option<Duration>| d.map(|d| Value::String(format!("{}ms", d.as_millis())));
        out.push(
            ChangeKind::Requeue,
            "/requeueAfter".into(),
            text(live.requeue_after).as_ref(),
            text(candidate.requeue_after).as_ref(),
        );
    }
    let events = live.events.len().max(candidate.events.len());
    for at in 0..events {
        let (l, c) = (
            live.events.get(at).map(event_text),
            candidate.events.get(at).map(event_text),
        );
        if l != c {
            out.push(
                ChangeKind::Event,
                format!("/events/{at}"),
                l.as_ref(),
                c.as_ref(),
            );
        }
    }
}

/// Children by identity (`Kind.group/ns/name`), sorted, so the diff reads
/// the same whatever order each version returned them in.
fn by_identity(children: &[Value]) -> BTreeMap<String, &Value> {
    children
        .iter()
        .map(|child| {
            let text = |pointer: &str| child.pointer(pointer).and_then(Value::as_str);
            let id = identity(
                text("/apiVersion").unwrap_or_default(),
                text("/kind").unwrap_or_default(),
                text("/metadata/namespace"),
                text("/metadata/name").unwrap_or_default(),
            );
            (id, child)
        })
        .collect()
}

fn ref_identity(object: &ObjectRef) -> String {
    identity(
        &object.api_version,
        &object.kind,
        object.namespace.as_deref(),
        &object.name,
    )
}

/// `Deployment.apps/ns/name`: a child's name as `kubectl get` would take
/// it, with its namespace. The version is left out: two versions of a
/// module applying one child at different apiVersions apply one object.
fn identity(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> String {
    let group = crate::meta::group_of(api_version);
    let kind = if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    };
    match namespace {
        Some(namespace) => format!("{kind}/{namespace}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

fn event_text(event: &wit::Event) -> Value {
    let kind = match event.event_type {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    };
    Value::String(format!("{kind} {}: {}", event.reason, event.note))
}

/// Descends two values in step, noting each place they differ. Past
/// [`MAX_CHANGES`] it goes on only counting: what a guest returned is
/// bounded in bytes by the engine, so the walk is too.
fn diff_values(
    kind: ChangeKind,
    path: &str,
    live: &Value,
    candidate: &Value,
    depth: usize,
    out: &mut Changes,
) {
    if live == candidate {
        return;
    }
    if depth >= MAX_DEPTH {
        out.push(kind, path.to_owned(), Some(live), Some(candidate));
        return;
    }
    match (live, candidate) {
        (Value::Object(l), Value::Object(c)) => {
            let keys: std::collections::BTreeSet<&String> = l.keys().chain(c.keys()).collect();
            for key in keys {
                let at = format!("{path}/{}", escape(key));
                match (l.get(key), c.get(key)) {
                    (Some(lv), Some(cv)) => diff_values(kind, &at, lv, cv, depth + 1, out),
                    (lv, cv) => out.push(kind, at, lv, cv),
                }
            }
        }
        (Value::Array(l), Value::Array(c)) => {
            for at in 0..l.len().max(c.len()) {
                let path = format!("{path}/{at}");
                match (l.get(at), c.get(at)) {
                    (Some(lv), Some(cv)) => diff_values(kind, &path, lv, cv, depth + 1, out),
                    (lv, cv) => out.push(kind, path, lv, cv),
                }
            }
        }
        _ => out.push(kind, path.to_owned(), Some(live), Some(candidate)),
    }
}

/// JSON pointer escaping (RFC 6901): `~` as `~0`, `/` as `~1`.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[derive(Default)]
struct Changes {
    changes: Vec<Change>,
    omitted: usize,
}

impl Changes {
    fn full(&self) -> bool {
        self.changes.len() >= MAX_CHANGES
    }

    fn push(
        &mut self,
        kind: ChangeKind,
        path: String,
        live: Option<&Value>,
        candidate: Option<&Value>,
    ) {
        if self.full() {
            self.omitted += 1;
            return;
        }
        self.changes.push(Change {
            kind,
            path: cut(path, MAX_PATH_BYTES),
            live: live.map(value_text),
            candidate: candidate.map(value_text),
        });
    }
}

/// A value as JSON text, cut to [`MAX_VALUE_BYTES`].
fn value_text(value: &Value) -> String {
    cut(value.to_string(), MAX_VALUE_BYTES)
}

/// `text` cut at a character boundary to `max` bytes, with `…` when cut.
fn cut(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let kept = crate::meta::truncate_at_char_boundary(&text, max.saturating_sub(3));
    format!("{kept}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(apply: Vec<Value>) -> Plan {
        Plan {
            apply,
            prune: Vec::new(),
            status: None,
            requeue_after: None,
            events: Vec::new(),
        }
    }

    fn deployment(name: &str, labels: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "ns", "labels": labels},
            "spec": {"replicas": 2},
        })
    }

    #[test]
    fn the_same_plan_is_identical() {
        let p = plan(vec![deployment("web", json!({"app": "web"}))]);
        let diff = compare(&Outcome::Planned(p.clone()), &Outcome::Planned(p));
        assert_eq!(diff.verdict, Verdict::Identical);
        assert!(diff.changes.is_empty());
    }

    #[test]
    fn a_new_label_is_a_changed_field_with_an_escaped_path() {
        let live = plan(vec![deployment("web", json!({"app": "web"}))]);
        let candidate = plan(vec![deployment(
            "web",
            json!({"app": "web", "examples.bosun.dev/revision": "2"}),
        )]);
        let diff = compare(&Outcome::Planned(live), &Outcome::Planned(candidate));
        assert_eq!(diff.verdict, Verdict::Differing);
        assert_eq!(
            diff.changes,
            [Change {
                kind: ChangeKind::ChildChanged,
                path: "Deployment.apps/ns/web/metadata/labels/examples.bosun.dev~1revision".into(),
                live: None,
                candidate: Some("\"2\"".into()),
            }]
        );
    }

    #[test]
    fn children_added_dropped_pruned_and_kept_are_told_apart() {
        let gone = ObjectRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("ns".into()),
            name: "old".into(),
        };
        let mut live = plan(vec![deployment("web", json!({}))]);
        live.prune.push(ObjectRef {
            name: "kept".into(),
            ..gone.clone()
        });
        let mut candidate = plan(vec![json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "ns"},
        })]);
        candidate.prune.push(gone);
        let diff = compare(&Outcome::Planned(live), &Outcome::Planned(candidate));
        let seen: Vec<(ChangeKind, &str)> = diff
            .changes
            .iter()
            .map(|c| (c.kind, c.path.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (ChangeKind::ChildDropped, "Deployment.apps/ns/web"),
                (ChangeKind::ChildAdded, "Service/ns/web"),
                (ChangeKind::ChildPruned, "ConfigMap/ns/old"),
                (ChangeKind::ChildKept, "ConfigMap/ns/kept"),
            ]
        );
    }

    #[test]
    fn status_requeue_and_events_are_compared() {
        let mut live = plan(Vec::new());
        live.status = Some(json!({"ready": true, "replicas": 2}));
        live.requeue_after = Some(Duration::from_secs(30));
        let mut candidate = live.clone();
        candidate.status = Some(json!({"ready": false, "replicas": 2}));
        candidate.requeue_after = None;
        candidate.events.push(wit::Event {
            event_type: EventType::Warning,
            reason: "Drift".into(),
            note: "replicas".into(),
            action: "Check".into(),
        });
        let diff = compare(&Outcome::Planned(live), &Outcome::Planned(candidate));
        let paths: Vec<&str> = diff.changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["/status/ready", "/requeueAfter", "/events/0"]);
        assert_eq!(diff.changes[1].live.as_deref(), Some("\"30000ms\""));
        assert_eq!(
            diff.changes[2].candidate.as_deref(),
            Some("\"Warning Drift: replicas\"")
        );
    }

    #[test]
    fn a_candidate_failure_is_failing_with_its_reason_unless_live_failed_alike() {
        let trap = Outcome::Failed(Failure::new("Trap", "unreachable"));
        let diff = compare(&Outcome::Planned(plan(Vec::new())), &trap);
        assert_eq!(diff.verdict, Verdict::Failing);
        assert_eq!(
            diff.failure.as_ref().map(|f| f.reason.as_str()),
            Some("Trap")
        );
        assert_eq!(diff.changes[0].kind, ChangeKind::Outcome);

        let same = compare(&trap, &trap);
        assert_eq!(same.verdict, Verdict::Identical);

        let fixed = compare(&trap, &Outcome::Planned(plan(Vec::new())));
        assert_eq!(fixed.verdict, Verdict::Differing);
        assert_eq!(fixed.changes[0].candidate.as_deref(), Some("\"planned\""));
    }

    #[test]
    fn a_diff_is_bounded_in_entries_and_bytes_whatever_the_guest_returned() {
        let wide: serde_json::Map<String, Value> = (0..1000)
            .map(|i| (format!("k{i}"), json!("x".repeat(10_000))))
            .collect();
        let live = plan(vec![deployment("web", json!({}))]);
        let candidate = plan(vec![deployment("web", Value::Object(wide))]);
        let diff = compare(&Outcome::Planned(live), &Outcome::Planned(candidate));
        assert_eq!(diff.changes.len(), MAX_CHANGES);
        assert!(diff.omitted > 0);
        assert!(diff.changes.iter().all(|c| {
            c.candidate
                .as_ref()
                .is_some_and(|v| v.len() <= MAX_VALUE_BYTES)
        }));
        // Deeper than the comparison descends: one change for the subtree.
        let deep = |leaf: Value| (0..200).fold(leaf, |inner, _| json!([inner]));
        let diff = compare(
            &Outcome::Planned(plan(vec![deployment("web", deep(json!(1)))])),
            &Outcome::Planned(plan(vec![deployment("web", deep(json!(2)))])),
        );
        assert_eq!(diff.verdict, Verdict::Differing);
        assert_eq!(diff.changes.len(), 1);
    }
}
