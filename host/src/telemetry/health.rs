//! Named readiness checks.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The process's readiness: a set of named checks, ready when every one
/// passes.
///
/// Each part of the host that must be up before the operator can do useful
/// work registers a check with [`Health::check`] and sets it when it is.
/// Cloning is cheap; clones share the checks.
#[derive(Clone, Default)]
pub struct Health {
    /// In registration order, which is the order `/readyz` lists them in.
    checks: Arc<Mutex<Vec<Check>>>,
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.report()).finish()
    }
}

impl Health {
    /// No checks: ready until one is registered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the readiness check `name`, failing until set, and returns
    /// the handle that sets it. Asking again for the same name returns a
    /// handle onto the same check, so a restarted component does not leave
    /// a stale duplicate behind.
    ///
    /// Dropping the handle leaves the check as it was: a component that
    /// stops reporting must not silently become ready.
    pub fn check(&self, name: &str) -> Check {
        let mut checks = self.checks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = checks.iter().find(|c| *c.name == *name) {
            return existing.clone();
        }
        let check = Check {
            name: Arc::from(name),
            passing: Arc::new(AtomicBool::new(false)),
        };
        checks.push(check.clone());
        check
    }

    /// Whether every registered check passes.
    pub fn is_ready(&self) -> bool {
        let checks = self.checks.lock().unwrap_or_else(PoisonError::into_inner);
        checks.iter().all(Check::is_passing)
    }

    /// Every check's name and whether it passes, in registration order.
    pub fn report(&self) -> Vec<(String, bool)> {
        let checks = self.checks.lock().unwrap_or_else(PoisonError::into_inner);
        checks
            .iter()
            .map(|c| (c.name.to_string(), c.is_passing()))
            .collect()
    }
}

/// The handle onto one readiness check, from [`Health::check`].
#[derive(Clone)]
pub struct Check {
    name: Arc<str>,
    passing: Arc<AtomicBool>,
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .field("passing", &self.is_passing())
            .finish()
    }
}

impl Check {
    /// The check's name, as `/readyz` lists it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Marks the check as passing (`true`) or failing (`false`).
    pub fn set(&self, passing: bool) {
        let was = self.passing.swap(passing, Ordering::AcqRel);
        if was != passing {
            tracing::info!(check = %self.name, passing, "readiness check changed");
        }
    }

    /// Whether the check passes.
    pub fn is_passing(&self) -> bool {
        self.passing.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_passes() {
        let health = Health::new();
        assert!(health.is_ready(), "no checks: ready");

        let synced = health.check("caches-synced");
        let leader = health.check("leader-election");
        assert!(!health.is_ready(), "new checks start failing");

        synced.set(true);
        assert!(!health.is_ready());
        leader.set(true);
        assert!(health.is_ready());

        synced.set(false);
        assert!(!health.is_ready());
        assert_eq!(
            health.report(),
            [
                ("caches-synced".to_owned(), false),
                ("leader-election".to_owned(), true)
            ]
        );
    }

    #[test]
    fn the_same_name_is_the_same_check() {
        let health = Health::new();
        let first = health.check("caches-synced");
        let again = health.check("caches-synced");
        again.set(true);
        assert!(first.is_passing());
        assert_eq!(health.report().len(), 1);
    }

    #[test]
    fn a_dropped_handle_keeps_its_check() {
        let health = Health::new();
        drop(health.check("caches-synced"));
        assert!(!health.is_ready());
    }
}
