//! When a module is quarantined: after repeated failures of its own making,
//! and never because of one tenant's objects.
//!
//! Quarantine stops handing a module work until a new version is loaded: it
//! is for a module that is broken, not for an object that is bad. So only a
//! guest's own faults count ([`Fault::Guest`]: it looped, blocked,
//! panicked, ran out of memory on a small request, returned too much), a
//! success anywhere resets the count, and the faults in a row must come
//! from more than one namespace when the module has objects in more than
//! one: a tenant whose objects make the module trap fails its own objects
//! (each backs off on its own), not every tenant's.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use crate::engine::Fault;

/// What a recorded failure did to the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not held against the module (the data's or the host's doing).
    NotCounted,
    /// Counted; the module keeps running.
    Counted {
        /// Faults in a row so far.
        in_a_row: u32,
    },
    /// This failure quarantined the module.
    Quarantined {
        /// Faults in a row.
        in_a_row: u32,
    },
}

#[derive(Debug, Default)]
struct State {
    in_a_row: u32,
    /// The namespaces the faults in a row came from (None: cluster-scoped).
    namespaces: BTreeSet<Option<String>>,
    quarantined: bool,
}

/// One module's quarantine state.
#[derive(Debug, Default)]
pub struct Quarantine {
    state: Mutex<State>,
}

impl Quarantine {
    /// True while the module is quarantined.
    pub fn is_quarantined(&self) -> bool {
        self.lock().quarantined
    }

    /// A call succeeded: the faults in a row are over.
    pub fn succeeded(&self) {
        let mut state = self.lock();
        state.in_a_row = 0;
        state.namespaces.clear();
    }

    /// A new version was loaded: the quarantine, if any, is lifted.
    pub fn lift(&self) {
        *self.lock() = State::default();
    }

    /// Records a failed call of an object in `namespace`. `after` is the
    /// number of faults in a row that quarantine (0: never);
    /// `tenants` says how many namespaces the module has objects in.
    pub fn failed(
        &self,
        fault: Fault,
        namespace: Option<&str>,
        after: u32,
        tenants: impl FnOnce() -> usize,
    ) -> Verdict {
        if fault != Fault::Guest {
            return Verdict::NotCounted;
        }
        let mut state = self.lock();
        state.in_a_row = state.in_a_row.saturating_add(1);
        state.namespaces.insert(namespace.map(str::to_owned));
        let in_a_row = state.in_a_row;
        if state.quarantined || after == 0 || in_a_row < after {
            return Verdict::Counted { in_a_row };
        }
        // Only now, rarely, count the module's tenants.
        let needed = tenants().clamp(1, 2);
        if state.namespaces.len() < needed {
            return Verdict::Counted { in_a_row };
        }
        state.quarantined = true;
        Verdict::Quarantined { in_a_row }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_in_a_row_quarantine_a_module_broken_for_everyone() {
        let q = Quarantine::default();
        for i in 1..3 {
            let ns = if i % 2 == 0 { "a" } else { "b" };
            assert_eq!(
                q.failed(Fault::Guest, Some(ns), 3, || 2),
                Verdict::Counted { in_a_row: i }
            );
        }
        assert_eq!(
            q.failed(Fault::Guest, Some("a"), 3, || 2),
            Verdict::Quarantined { in_a_row: 3 }
        );
        assert!(q.is_quarantined());
        q.lift();
        assert!(!q.is_quarantined());
    }

    #[test]
    fn one_tenants_objects_do_not_quarantine_a_shared_module() {
        let q = Quarantine::default();
        for _ in 0..20 {
            assert!(matches!(
                q.failed(Fault::Guest, Some("tenant-a"), 3, || 2),
                Verdict::Counted { .. }
            ));
        }
        assert!(!q.is_quarantined());
    }

    #[test]
    fn a_module_with_one_tenant_is_quarantined_by_it() {
        let q = Quarantine::default();
        q.failed(Fault::Guest, Some("only"), 2, || 1);
        assert!(matches!(
            q.failed(Fault::Guest, Some("only"), 2, || 1),
            Verdict::Quarantined { .. }
        ));
    }

    #[test]
    fn the_datas_faults_and_the_hosts_do_not_count_and_success_resets() {
        let q = Quarantine::default();
        assert_eq!(
            q.failed(Fault::Input, Some("a"), 1, || 1),
            Verdict::NotCounted
        );
        assert_eq!(
            q.failed(Fault::Host, Some("a"), 1, || 1),
            Verdict::NotCounted
        );
        assert!(!q.is_quarantined());
        q.failed(Fault::Guest, Some("a"), 3, || 1);
        q.failed(Fault::Guest, Some("a"), 3, || 1);
        q.succeeded();
        assert_eq!(
            q.failed(Fault::Guest, Some("a"), 3, || 1),
            Verdict::Counted { in_a_row: 1 }
        );
    }

    #[test]
    fn zero_never_quarantines() {
        let q = Quarantine::default();
        for _ in 0..100 {
            q.failed(Fault::Guest, None, 0, || 1);
        }
        assert!(!q.is_quarantined());
    }
}
