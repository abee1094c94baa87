//! What puts a key in the queue, why, and how urgently: the primary's own
//! changes, its children's (mapped to their controller owner), changes of
//! what a primary read (mapped by read tracking, [`crate::reads`]), requeues
//! the guest asked for, retries, and sweeps over everything (the first
//! list, a resync, a new version or settings).
//!
//! The trigger recorded here is what the guest sees as the reason. A real
//! change of one object goes ahead of a sweep ([`Priority`]): a change made
//! while ten thousand objects are being reconciled after a start does not
//! wait for all of them.

use std::collections::BTreeMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use kube::api::DynamicObject;

use super::Controller;
use crate::engine::bindings::Trigger;
use crate::informers::{Change, ChangeSource, ObjectKey};
use crate::meta::{Scope, group_of};
use crate::queue::Priority;
use crate::reads::{KindId, TrackedChange};

impl Controller {
    /// Whether `key` is in the namespaces this module may reconcile. The
    /// limit applies to namespaced primaries; cluster-scoped ones have none.
    pub(super) fn in_scope(&self, key: &ObjectKey) -> bool {
        let settings = self.settings.read().unwrap_or_else(PoisonError::into_inner);
        serves(&settings.namespaces, key.namespace.as_deref())
    }

    /// Remembers why `key` is queued: the most urgent reason wins, the
    /// first among equals.
    fn note_trigger(&self, key: &ObjectKey, trigger: Trigger, priority: Priority) {
        let mut triggers = self.triggers.lock().unwrap_or_else(PoisonError::into_inner);
        match triggers.entry(key.clone()) {
            Entry::Vacant(slot) => {
                slot.insert((trigger, priority));
            }
            Entry::Occupied(mut slot) if slot.get().1 < priority => {
                slot.insert((trigger, priority));
            }
            Entry::Occupied(_) => {}
        }
    }

    /// Queues `key` now (or after its hot-loop hold).
    pub(super) fn enqueue(&self, key: ObjectKey, trigger: Trigger, priority: Priority) {
        if !self.in_scope(&key) {
            return;
        }
        self.note_trigger(&key, trigger, priority);
        match self.hot_loops.hold(&key) {
            Some(hold) => {
                self.ctx.metrics.hot_loop_held(&self.meta.name);
                self.queue.add_after_with(key, hold, priority);
            }
            None => self.queue.add_with(key, priority),
        }
    }

    /// Queues every primary of the module, behind real changes.
    pub(super) fn enqueue_all(&self, trigger: Trigger) {
        for object in self.primary().objects() {
            self.enqueue(ObjectKey::of(&object), trigger, Priority::Low);
        }
    }

    pub(super) fn enqueue_after(&self, key: ObjectKey, trigger: Trigger, delay: Duration) {
        self.note_trigger(&key, trigger, Priority::High);
        self.queue.add_after_with(key, delay, Priority::High);
    }

    pub(super) fn retry(&self, key: &ObjectKey) -> Duration {
        self.note_trigger(key, Trigger::Retry, Priority::High);
        self.queue.add_rate_limited(key.clone())
    }

    /// One change of a watched object: queues its primary if it is one,
    /// its controller owner if it is a child, and every primary whose last
    /// reads cover it. A change a list found is a sweep; one a watch
    /// delivered is urgent.
    pub(super) fn changed(&self, kind: KindId, change: &Change) {
        let priority = match change.source {
            ChangeSource::Watched => Priority::High,
            ChangeSource::Listed => Priority::Low,
        };
        if kind == KindId(0) {
            self.enqueue(change.key(), Trigger::ObjectChanged, priority);
        }
        if self.owned.contains(&kind) {
            // An owner on either side: a child that changed hands concerns both.
            let mut owners: Vec<ObjectKey> = [&change.old, &change.new]
                .into_iter()
                .flatten()
                .filter_map(|child| self.owner_key(child))
                .collect();
            owners.dedup();
            for owner in owners {
                self.enqueue(owner, Trigger::ChildChanged, priority);
            }
        }
        let object = change.object();
        let empty = BTreeMap::new();
        let tracked = TrackedChange {
            kind,
            namespace: match self.views[usize::from(kind.0)].kind().scope {
                Scope::Namespaced => object.metadata.namespace.as_deref(),
                Scope::Cluster => None,
            },
            name: object.metadata.name.as_deref().unwrap_or_default(),
            old_labels: labels(change.old.as_ref(), &empty),
            new_labels: labels(change.new.as_ref(), &empty),
        };
        for reader in self.reads.affected(&tracked) {
            // What it read is new: a permanent failure was about the old.
            self.failed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&reader);
            self.ctx.metrics.read_triggered(&self.meta.name);
            self.enqueue(reader, Trigger::ReadChanged, priority);
        }
    }

    /// The primary that controls `child`, by its controller ownerReference.
    fn owner_key(&self, child: &DynamicObject) -> Option<ObjectKey> {
        let primary = &self.meta().primary;
        let owner = child
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))?;
        if owner.kind != primary.kind || group_of(&owner.api_version) != primary.group {
            return None;
        }
        Some(ObjectKey {
            namespace: match primary.scope {
                Scope::Namespaced => child.metadata.namespace.clone(),
                Scope::Cluster => None,
            },
            name: owner.name.clone(),
        })
    }
}

/// The labels of a state of an object (None: it did not exist then).
fn labels<'a>(
    object: Option<&'a Arc<DynamicObject>>,
    empty: &'a BTreeMap<String, String>,
) -> Option<&'a BTreeMap<String, String>> {
    object.map(|o| o.metadata.labels.as_ref().unwrap_or(empty))
}

/// Whether a module granted `namespaces` (empty: every namespace) serves
/// an object in `namespace`. The limit applies to namespaced objects;
/// cluster-scoped ones (None) have none.
pub(super) fn serves(namespaces: &[String], namespace: Option<&str>) -> bool {
    match namespace {
        Some(namespace) => namespaces.is_empty() || namespaces.iter().any(|n| n == namespace),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(namespaces: &[&str]) -> Vec<String> {
        namespaces.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn the_grant_bounds_namespaced_objects_only() {
        assert!(serves(&[], Some("b")));
        assert!(serves(&granted(&["a"]), Some("a")));
        assert!(!serves(&granted(&["a"]), Some("b")));
        assert!(serves(&granted(&["a"]), None));
    }
}
