//! What puts a key in the queue, and why: the primary's own changes, its
//! children's (mapped to their controller owner), requeues the guest asked
//! for, retries, and re-reconciles of everything (resync, a new version).
//! The trigger recorded here is what the guest sees as the reason.

use std::sync::PoisonError;
use std::time::Duration;

use kube::api::DynamicObject;

use super::Controller;
use crate::engine::bindings::Trigger;
use crate::informers::ObjectKey;
use crate::meta::group_of;

impl Controller {
    /// Whether `key` is in the namespaces this module may reconcile. The
    /// limit applies to namespaced primaries; cluster-scoped ones have none.
    pub(super) fn in_scope(&self, key: &ObjectKey) -> bool {
        let settings = self.settings.read().unwrap_or_else(PoisonError::into_inner);
        serves(&settings.namespaces, key.namespace.as_deref())
    }

    pub(super) fn enqueue(&self, key: ObjectKey, trigger: Trigger) {
        if !self.in_scope(&key) {
            return;
        }
        self.triggers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_insert(trigger);
        match self.hot_loops.hold(&key) {
            Some(hold) => {
                self.ctx.metrics.hot_loop_held(&self.meta.name);
                self.queue.add_after(key, hold);
            }
            None => self.queue.add(key),
        }
    }

    pub(super) fn enqueue_after(&self, key: ObjectKey, trigger: Trigger, delay: Duration) {
        self.triggers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_insert(trigger);
        self.queue.add_after(key, delay);
    }

    pub(super) fn retry(&self, key: &ObjectKey) -> Duration {
        self.triggers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_insert(Trigger::Retry);
        self.queue.add_rate_limited(key.clone())
    }

    /// The primary that controls `child`, by its controller ownerReference.
    pub(super) fn owner_key(&self, child: &DynamicObject) -> Option<ObjectKey> {
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
                crate::meta::Scope::Namespaced => child.metadata.namespace.clone(),
                crate::meta::Scope::Cluster => None,
            },
            name: owner.name.clone(),
        })
    }

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
