//! A diff as lines a person reads: what `bosun diff` and `bosun rollout
//! status` print.

use super::compare::{Change, ChangeKind, Diff, Verdict};

/// `identical`, `differing (3 changes)`, `failing: Trap: …`.
pub fn verdict_line(diff: &Diff) -> String {
    match (diff.verdict, &diff.failure) {
        (Verdict::Identical, _) => "identical".to_owned(),
        (Verdict::Failing, Some(failure)) => {
            format!("failing: {}: {}", failure.reason, failure.message)
        }
        (Verdict::Failing, None) => "failing".to_owned(),
        (Verdict::Differing, _) => {
            let n = diff.changes.len() + diff.omitted;
            format!("differing ({n} change{})", if n == 1 { "" } else { "s" })
        }
    }
}

/// One line per change, and one for those left out.
pub fn change_lines(diff: &Diff) -> Vec<String> {
    let mut lines: Vec<String> = diff
        .changes
        .iter()
        .filter(|c| c.kind != ChangeKind::Outcome || diff.verdict != Verdict::Failing)
        .map(change_line)
        .collect();
    if diff.omitted > 0 {
        lines.push(format!("… and {} more", diff.omitted));
    }
    lines
}

/// `changed Deployment.apps/ns/web/metadata/labels/x: "1" → "2"`.
pub fn change_line(change: &Change) -> String {
    let what = match change.kind {
        ChangeKind::ChildAdded => "added",
        ChangeKind::ChildChanged => "changed",
        ChangeKind::ChildDropped => "no longer applied",
        ChangeKind::ChildPruned => "pruned",
        ChangeKind::ChildKept => "no longer pruned",
        ChangeKind::Status => "status",
        ChangeKind::Requeue => "requeue",
        ChangeKind::Event => "event",
        ChangeKind::Outcome => "outcome",
    };
    let side = |value: &Option<String>| value.clone().unwrap_or_else(|| "(none)".to_owned());
    match change.kind {
        ChangeKind::ChildAdded | ChangeKind::ChildDropped => format!("{what} {}", change.path),
        ChangeKind::ChildPruned | ChangeKind::ChildKept => format!("{what} {}", change.path),
        _ => format!(
            "{what} {}: {} → {}",
            change.path,
            side(&change.live),
            side(&change.candidate)
        ),
    }
}
