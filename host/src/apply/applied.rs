//! What the applier last sent, per primary object and field manager.
//!
//! The no-op rule skips a write when the live object already holds every
//! desired field. That alone cannot see a field a module *stopped* setting:
//! a label dropped by a new version, a setting removed, a status field no
//! longer reported. Under server-side apply such a field goes only when an
//! apply without it is sent, so a skip based on the live object alone would
//! keep it forever.
//!
//! So the applier also remembers a fingerprint of the last body it applied
//! to each target, and skips only when the body is the one it sent last
//! time *and* the live object still holds it. The record is in memory: after
//! a restart or a change of leader every target is applied once more, which
//! the API server treats as a no-op (no new resourceVersion) when nothing
//! changed.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};
use std::io;
use std::sync::{Mutex, PoisonError};

use serde_json::Value;

/// The writes of one field manager for one primary object: its children
/// and its status.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Owner {
    manager: String,
    namespace: Option<String>,
    name: String,
}

impl Owner {
    pub(crate) fn new(manager: String, namespace: Option<String>, name: String) -> Self {
        Owner {
            manager,
            namespace,
            name,
        }
    }
}

/// Fingerprints of the last applied bodies, by owner, then by target (a
/// child's description, or [`STATUS`]).
#[derive(Debug, Default)]
pub(crate) struct LastApplied {
    records: Mutex<HashMap<Owner, HashMap<String, u64>>>,
}

/// The target name of a primary's status.
pub(crate) const STATUS: &str = "status";

impl LastApplied {
    /// Whether `body` is what was last applied to `target` for `owner`.
    pub(crate) fn is_unchanged(&self, owner: &Owner, target: &str, body: &Value) -> bool {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        records
            .get(owner)
            .and_then(|targets| targets.get(target))
            .is_some_and(|last| *last == fingerprint(body))
    }

    /// Remembers that `body` was applied to `target` for `owner`.
    pub(crate) fn record(&self, owner: &Owner, target: &str, body: &Value) {
        let fingerprint = fingerprint(body);
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        records
            .entry(owner.clone())
            .or_default()
            .insert(target.to_owned(), fingerprint);
    }

    /// Forgets one target: it was deleted, or written with another body.
    pub(crate) fn forget_target(&self, owner: &Owner, target: &str) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(targets) = records.get_mut(owner) {
            targets.remove(target);
            if targets.is_empty() {
                records.remove(owner);
            }
        }
    }

    /// Forgets everything written for `owner`: the primary is gone.
    pub(crate) fn forget(&self, owner: &Owner) {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(owner);
    }

    /// How many primaries have records (for tests).
    #[cfg(test)]
    fn owners(&self) -> usize {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A hash of `body`'s JSON text, streamed into the hasher.
fn fingerprint(body: &Value) -> u64 {
    struct Sink(DefaultHasher);
    impl io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.write(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut sink = Sink(DefaultHasher::new());
    // Writing a Value into a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut sink, body);
    sink.0.finish()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn owner(name: &str) -> Owner {
        Owner::new("bosun/webapp".into(), Some("default".into()), name.into())
    }

    #[test]
    fn only_the_body_last_applied_is_unchanged() {
        let last = LastApplied::default();
        let with_label = json!({"metadata": {"labels": {"revision": "2"}}});
        let without = json!({"metadata": {"labels": {}}});
        assert!(!last.is_unchanged(&owner("shop"), "Deployment", &with_label));
        last.record(&owner("shop"), "Deployment", &with_label);
        assert!(last.is_unchanged(&owner("shop"), "Deployment", &with_label));
        assert!(!last.is_unchanged(&owner("shop"), "Deployment", &without));
        assert!(!last.is_unchanged(&owner("shop"), "Service", &with_label));
        assert!(!last.is_unchanged(&owner("cart"), "Deployment", &with_label));
        let other_manager = Owner::new("bosun/other".into(), Some("default".into()), "shop".into());
        assert!(!last.is_unchanged(&other_manager, "Deployment", &with_label));
    }

    #[test]
    fn forgetting_a_target_or_an_owner_drops_its_records() {
        let last = LastApplied::default();
        let body = json!({"spec": {"replicas": 2}});
        last.record(&owner("shop"), "Deployment", &body);
        last.record(&owner("shop"), STATUS, &body);
        last.record(&owner("cart"), "Deployment", &body);
        last.forget_target(&owner("shop"), "Deployment");
        assert!(!last.is_unchanged(&owner("shop"), "Deployment", &body));
        assert!(last.is_unchanged(&owner("shop"), STATUS, &body));
        last.forget_target(&owner("shop"), STATUS);
        assert_eq!(last.owners(), 1, "an owner with no targets left is dropped");
        last.forget(&owner("cart"));
        assert_eq!(last.owners(), 0);
    }
}
