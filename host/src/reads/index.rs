//! The last reads of every primary, and the reads of calls in flight.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::log::{KindId, NameKey, ReadLog, ScopeKey, Selection};

/// A change of one cached object, as read tracking sees it.
#[derive(Debug, Clone, Copy)]
pub struct TrackedChange<'a> {
    /// The object's kind, numbered as the reads were.
    pub kind: KindId,
    /// Its namespace; None for a cluster-scoped kind.
    pub namespace: Option<&'a str>,
    /// Its name.
    pub name: &'a str,
    /// Its labels before the change; None when it did not exist.
    pub old_labels: Option<&'a BTreeMap<String, String>>,
    /// Its labels after the change; None when it is gone.
    pub new_labels: Option<&'a BTreeMap<String, String>>,
}

impl TrackedChange<'_> {
    /// The list scopes that saw this object: its namespace, and every
    /// namespace.
    pub(super) fn scopes(&self) -> impl Iterator<Item = ScopeKey> + '_ {
        let own = self.namespace.map(|namespace| ScopeKey {
            kind: self.kind,
            namespace: Some(namespace.into()),
        });
        own.into_iter().chain(std::iter::once(ScopeKey {
            kind: self.kind,
            namespace: None,
        }))
    }
}

/// How a call's reads were taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// The reads went past the cap and were partly kept coarsely.
    pub overflowed: bool,
    /// ... and the primary's previous call did not.
    pub newly_overflowed: bool,
}

/// Which primaries read what: the reads of each primary's last call, and
/// those of calls in flight, under one lock (so a change is matched
/// against a call's reads whether it lands before or after the call ends).
pub struct Tracker<K> {
    state: Mutex<State<K>>,
}

struct State<K> {
    /// Gets by object, found or not.
    by_name: HashMap<Arc<NameKey>, HashSet<K>>,
    /// Lists by kind and namespace (None: across namespaces), with each
    /// reader's selections.
    by_scope: HashMap<Arc<ScopeKey>, HashMap<K, Vec<Selection>>>,
    /// What each primary's last call read, to take it out again.
    last: HashMap<K, Last>,
    in_flight: HashMap<K, Arc<ReadLog>>,
    /// Reads held in the index, for the gauge.
    entries: usize,
}

#[derive(Default)]
struct Last {
    names: Vec<Arc<NameKey>>,
    scopes: Vec<Arc<ScopeKey>>,
    overflowed: bool,
}

impl<K> Default for Tracker<K> {
    fn default() -> Self {
        Tracker {
            state: Mutex::new(State {
                by_name: HashMap::new(),
                by_scope: HashMap::new(),
                last: HashMap::new(),
                in_flight: HashMap::new(),
                entries: 0,
            }),
        }
    }
}

impl<K: Clone + Eq + Hash> Tracker<K> {
    fn state(&self) -> MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A call about `key` starts: its reads are recorded in the log
    /// returned, at most `cap` of them precisely, and changes are matched
    /// against them from now on.
    pub fn begin(&self, key: &K, cap: usize) -> Arc<ReadLog> {
        let log = Arc::new(ReadLog::new(cap));
        self.state().in_flight.insert(key.clone(), log.clone());
        log
    }

    /// The call about `key` that recorded `log` ended (whatever its
    /// outcome): its reads become the primary's last, replacing those of
    /// the call before.
    pub fn finish(&self, key: &K, log: &Arc<ReadLog>) -> Finished {
        let recorded = log.take();
        let mut state = self.state();
        if state
            .in_flight
            .get(key)
            .is_some_and(|current| Arc::ptr_eq(current, log))
        {
            state.in_flight.remove(key);
        }
        let was_overflowed = state.remove(key);
        let mut last = Last {
            overflowed: recorded.overflowed,
            ..Last::default()
        };
        for name in recorded.gets {
            let name = state.intern_name(name);
            state
                .by_name
                .entry(name.clone())
                .or_default()
                .insert(key.clone());
            last.names.push(name);
        }
        for (scope, selections) in recorded.lists {
            let scope = state.intern_scope(scope);
            state.entries += selections.len();
            state
                .by_scope
                .entry(scope.clone())
                .or_default()
                .insert(key.clone(), selections);
            last.scopes.push(scope);
        }
        state.entries += last.names.len();
        let finished = Finished {
            overflowed: last.overflowed,
            newly_overflowed: last.overflowed && !was_overflowed,
        };
        if !(last.names.is_empty() && last.scopes.is_empty()) {
            state.last.insert(key.clone(), last);
        }
        finished
    }

    /// The call that recorded `log` did not run (nothing was read): the
    /// primary keeps the reads of its last call.
    pub fn abandon(&self, key: &K, log: &Arc<ReadLog>) {
        let mut state = self.state();
        if state
            .in_flight
            .get(key)
            .is_some_and(|current| Arc::ptr_eq(current, log))
        {
            state.in_flight.remove(key);
        }
    }

    /// `key`'s primary is gone: nothing it read concerns anyone.
    pub fn forget(&self, key: &K) {
        self.state().remove(key);
    }

    /// Every primary whose last reads, or whose call in flight, cover
    /// `change`: once each.
    pub fn affected(&self, change: &TrackedChange<'_>) -> Vec<K> {
        let state = self.state();
        let mut affected: HashSet<&K> = HashSet::new();
        let name = NameKey {
            kind: change.kind,
            namespace: change.namespace.map(Into::into),
            name: change.name.into(),
        };
        if let Some(readers) = state.by_name.get(&name) {
            affected.extend(readers);
        }
        for scope in change.scopes() {
            let Some(readers) = state.by_scope.get(&scope) else {
                continue;
            };
            affected.extend(readers.iter().filter_map(|(key, selections)| {
                selections.iter().any(|s| s.covers(change)).then_some(key)
            }));
        }
        affected.extend(
            state
                .in_flight
                .iter()
                .filter(|(_, log)| log.covers(change))
                .map(|(key, _)| key),
        );
        affected.into_iter().cloned().collect()
    }

    /// How many reads the index holds (gets, and selections per scope).
    pub fn tracked(&self) -> usize {
        self.state().entries
    }

    /// How many primaries have reads in the index.
    pub fn readers(&self) -> usize {
        self.state().last.len()
    }
}

impl<K: Clone + Eq + Hash> State<K> {
    /// Takes `key`'s last reads out of the index; returns whether they had
    /// overflowed.
    fn remove(&mut self, key: &K) -> bool {
        let Some(last) = self.last.remove(key) else {
            return false;
        };
        for name in last.names {
            if let Some(readers) = self.by_name.get_mut(&name) {
                readers.remove(key);
                if readers.is_empty() {
                    self.by_name.remove(&name);
                }
            }
            self.entries -= 1;
        }
        for scope in last.scopes {
            if let Some(readers) = self.by_scope.get_mut(&scope) {
                if let Some(selections) = readers.remove(key) {
                    self.entries -= selections.len();
                }
                if readers.is_empty() {
                    self.by_scope.remove(&scope);
                }
            }
        }
        last.overflowed
    }

    /// The index's own copy of `name`, so that every primary reading one
    /// object shares one key.
    fn intern_name(&self, name: NameKey) -> Arc<NameKey> {
        self.by_name
            .get_key_value(&name)
            .map_or_else(|| Arc::new(name), |(key, _)| key.clone())
    }

    fn intern_scope(&self, scope: ScopeKey) -> Arc<ScopeKey> {
        self.by_scope
            .get_key_value(&scope)
            .map_or_else(|| Arc::new(scope), |(key, _)| key.clone())
    }
}

#[cfg(test)]
mod tests {
    use kube::core::Selector;

    use super::super::testing::{CM, change, labels};
    use super::*;

    fn sorted(mut keys: Vec<&'static str>) -> Vec<&'static str> {
        keys.sort_unstable();
        keys
    }

    fn read(tracker: &Tracker<&'static str>, key: &'static str, f: impl FnOnce(&ReadLog)) {
        let log = tracker.begin(&key, 64);
        f(&log);
        tracker.finish(&key, &log);
    }

    #[test]
    fn a_change_reaches_exactly_the_primaries_that_read_it() {
        let tracker = Tracker::default();
        read(&tracker, "mirror-a", |log| log.get(CM, Some("ns"), "a"));
        read(&tracker, "mirror-b", |log| log.get(CM, Some("ns"), "b"));
        read(&tracker, "mirror-a2", |log| log.get(CM, Some("ns"), "a"));
        let web = labels(&[("app", "web")]);
        read(&tracker, "lister", |log| {
            log.list(
                CM,
                Some("ns"),
                "app=web",
                &bosun_selector::parse("app=web").unwrap(),
            )
        });
        let none = labels(&[]);
        assert_eq!(
            sorted(tracker.affected(&change("ns", "a", Some(&none), Some(&none)))),
            ["mirror-a", "mirror-a2"]
        );
        assert_eq!(
            sorted(tracker.affected(&change("ns", "c", None, Some(&web)))),
            ["lister"]
        );
        assert_eq!(
            sorted(tracker.affected(&change("ns", "a", Some(&none), Some(&web)))),
            ["lister", "mirror-a", "mirror-a2"]
        );
        assert!(
            tracker
                .affected(&change("other", "a", None, Some(&web)))
                .is_empty()
        );
    }

    #[test]
    fn the_next_call_replaces_the_reads_of_the_last() {
        let tracker = Tracker::default();
        read(&tracker, "p", |log| log.get(CM, Some("ns"), "old"));
        read(&tracker, "p", |log| log.get(CM, Some("ns"), "new"));
        let none = labels(&[]);
        assert!(
            tracker
                .affected(&change("ns", "old", None, Some(&none)))
                .is_empty()
        );
        assert_eq!(
            tracker.affected(&change("ns", "new", None, Some(&none))),
            ["p"]
        );
        assert_eq!(tracker.tracked(), 1);

        read(&tracker, "p", |_| {});
        assert!(
            tracker
                .affected(&change("ns", "new", None, Some(&none)))
                .is_empty()
        );
        assert_eq!((tracker.tracked(), tracker.readers()), (0, 0));
    }

    #[test]
    fn a_forgotten_primary_is_no_longer_reached() {
        let tracker = Tracker::default();
        read(&tracker, "p", |log| {
            log.get(CM, Some("ns"), "x");
            log.list(CM, None, "", &Selector::default());
        });
        assert_eq!(tracker.tracked(), 2);
        tracker.forget(&"p");
        let none = labels(&[]);
        assert!(
            tracker
                .affected(&change("ns", "x", None, Some(&none)))
                .is_empty()
        );
        assert_eq!(tracker.tracked(), 0);
    }

    #[test]
    fn a_change_during_the_call_finds_the_reads_made_so_far() {
        let tracker = Tracker::default();
        let log = tracker.begin(&"p", 64);
        log.get(CM, Some("ns"), "x");
        let none = labels(&[]);
        assert_eq!(
            tracker.affected(&change("ns", "x", None, Some(&none))),
            ["p"]
        );
        tracker.finish(&"p", &log);
        assert_eq!(
            tracker.affected(&change("ns", "x", None, Some(&none))),
            ["p"]
        );
    }

    #[test]
    fn a_call_that_did_not_run_keeps_the_last_reads() {
        let tracker = Tracker::default();
        read(&tracker, "p", |log| log.get(CM, Some("ns"), "x"));
        let log = tracker.begin(&"p", 64);
        tracker.abandon(&"p", &log);
        let none = labels(&[]);
        assert_eq!(
            tracker.affected(&change("ns", "x", None, Some(&none))),
            ["p"]
        );
    }

    #[test]
    fn overflow_is_reported_once_until_it_stops() {
        let tracker = Tracker::default();
        let overflow = |tracker: &Tracker<&'static str>| {
            let log = tracker.begin(&"p", 1);
            log.get(CM, Some("ns"), "a");
            log.get(CM, Some("ns"), "b");
            tracker.finish(&"p", &log)
        };
        let first = overflow(&tracker);
        assert!(first.overflowed && first.newly_overflowed);
        let second = overflow(&tracker);
        assert!(second.overflowed && !second.newly_overflowed);
        read(&tracker, "p", |log| log.get(CM, Some("ns"), "a"));
        assert!(overflow(&tracker).newly_overflowed);
        // Coarse: any object of the namespace reaches it.
        let none = labels(&[]);
        assert_eq!(
            tracker.affected(&change("ns", "zzz", None, Some(&none))),
            ["p"]
        );
    }
}
