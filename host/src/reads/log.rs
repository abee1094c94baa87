//! One call's reads.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use kube::core::{Selector, SelectorExt};

use super::TrackedChange;

/// A kind, by its place among the kinds one module may read; the
/// controller numbers them and maps cache changes back to the same number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KindId(pub u16);

/// A `get` of one object (found or not).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct NameKey {
    pub(super) kind: KindId,
    pub(super) namespace: Option<Box<str>>,
    pub(super) name: Box<str>,
}

/// Where a `list` looked: one namespace, or every namespace the module may
/// see (None; also the only scope of a cluster-scoped kind).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct ScopeKey {
    pub(super) kind: KindId,
    pub(super) namespace: Option<Box<str>>,
}

/// What a `list` selected within its scope. An empty selector selects
/// everything: that is also what a read past the cap is kept as.
#[derive(Clone, Debug)]
pub(super) struct Selection {
    text: Box<str>,
    selector: Selector,
}

impl Selection {
    fn everything() -> Self {
        Selection {
            text: "".into(),
            selector: Selector::default(),
        }
    }

    fn is_everything(&self) -> bool {
        self.text.is_empty()
    }

    /// Whether an object with these labels before or after a change is or
    /// was selected: entering and leaving a selection both count.
    pub(super) fn covers(&self, change: &TrackedChange<'_>) -> bool {
        self.is_everything()
            || [change.old_labels, change.new_labels]
                .into_iter()
                .flatten()
                .any(|labels| self.selector.matches(labels))
    }
}

/// The reads of one call so far.
#[derive(Debug, Default)]
pub(super) struct Recorded {
    pub(super) gets: HashSet<NameKey>,
    pub(super) lists: HashMap<ScopeKey, Vec<Selection>>,
    /// Whether reads past the cap were kept coarsely.
    pub(super) overflowed: bool,
    /// Precise reads kept (gets, and list selections).
    precise: usize,
    /// Bytes of names, namespaces and selector texts the precise reads keep.
    bytes: usize,
    /// Scopes kept as "everything" because of the cap.
    coarse: usize,
}

impl Recorded {
    /// Whether a change of an object is one these reads looked at.
    pub(super) fn covers(&self, change: &TrackedChange<'_>) -> bool {
        let name = NameKey {
            kind: change.kind,
            namespace: change.namespace.map(Into::into),
            name: change.name.into(),
        };
        if self.gets.contains(&name) {
            return true;
        }
        change
            .scopes()
            .filter_map(|scope| self.lists.get(&scope))
            .flatten()
            .any(|selection| selection.covers(change))
    }

    /// Reads kept, precise and coarse: what the index will hold.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.gets.len() + self.lists.values().map(Vec::len).sum::<usize>()
    }
}

/// The most bytes of names, namespaces and selector texts one log keeps
/// precisely: names are short (253 bytes at most), but selectors may be
/// kilobytes, and the index holds a log per primary.
pub const MAX_TRACKED_BYTES: usize = 64 << 10;

/// What one reconcile (or finalize) call read, recorded by the host as it
/// answers the guest's reads, before each answer is taken from the cache.
///
/// Bounded: at most `cap` precise reads (distinct gets, and distinct
/// selectors per scope), holding at most [`MAX_TRACKED_BYTES`], are kept; each read past them is kept as "any
/// object of its kind in its namespace", at most `cap` such scopes, and
/// past those as "any object of its kind anywhere". The log then says it
/// [overflowed](ReadLog::overflowed). However much a guest reads, a log
/// holds at most `2 × cap` entries plus one per kind.
#[derive(Debug)]
pub struct ReadLog {
    cap: usize,
    recorded: Mutex<Recorded>,
}

impl ReadLog {
    /// An empty log keeping at most `cap` precise reads.
    pub fn new(cap: usize) -> Self {
        ReadLog {
            cap,
            recorded: Mutex::default(),
        }
    }

    fn recorded(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.recorded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a `get` of `name` in `namespace` (None for a cluster-scoped
    /// kind), whether or not the object exists.
    pub fn get(&self, kind: KindId, namespace: Option<&str>, name: &str) {
        let key = NameKey {
            kind,
            namespace: namespace.map(Into::into),
            name: name.into(),
        };
        let mut recorded = self.recorded();
        if recorded.gets.contains(&key) || covered_coarsely(&recorded, kind, namespace) {
            return;
        }
        let size = name.len() + namespace.map_or(0, str::len);
        if recorded.precise < self.cap && recorded.bytes + size <= MAX_TRACKED_BYTES {
            recorded.precise += 1;
            recorded.bytes += size;
            recorded.gets.insert(key);
        } else {
            self.keep_coarsely(&mut recorded, kind, namespace);
        }
    }

    /// Records a `list` in `namespace` (None: every namespace the module
    /// may see) selected by `selector`, whose text is `text` (empty:
    /// everything).
    pub fn list(&self, kind: KindId, namespace: Option<&str>, text: &str, selector: &Selector) {
        let mut recorded = self.recorded();
        if covered_coarsely(&recorded, kind, namespace) {
            return;
        }
        let scope = ScopeKey {
            kind,
            namespace: namespace.map(Into::into),
        };
        let size = text.len() + namespace.map_or(0, str::len);
        let full = recorded.precise >= self.cap || recorded.bytes + size > MAX_TRACKED_BYTES;
        match recorded.lists.entry(scope) {
            Entry::Occupied(mut selections) => {
                let selections = selections.get_mut();
                if selections.iter().any(|s| &*s.text == text) {
                    return;
                }
                if !full {
                    selections.push(Selection {
                        text: text.into(),
                        selector: selector.clone(),
                    });
                }
            }
            Entry::Vacant(slot) if !full => {
                slot.insert(vec![Selection {
                    text: text.into(),
                    selector: selector.clone(),
                }]);
            }
            Entry::Vacant(_) => {}
        }
        if full {
            self.keep_coarsely(&mut recorded, kind, namespace);
        } else {
            recorded.precise += 1;
            recorded.bytes += size;
        }
    }

    /// Keeps a read past the cap as "everything of `kind` in `namespace`",
    /// or, past `cap` such scopes, "everything of `kind`".
    fn keep_coarsely(&self, recorded: &mut Recorded, kind: KindId, namespace: Option<&str>) {
        recorded.overflowed = true;
        let namespace = if recorded.coarse < self.cap {
            namespace
        } else {
            None
        };
        let scope = ScopeKey {
            kind,
            namespace: namespace.map(Into::into),
        };
        let selections = recorded.lists.entry(scope).or_default();
        if !selections.iter().any(Selection::is_everything) {
            // What this scope selected precisely is covered now.
            *selections = vec![Selection::everything()];
            recorded.coarse += 1;
        }
    }

    /// Whether reads past the cap were kept coarsely.
    pub fn overflowed(&self) -> bool {
        self.recorded().overflowed
    }

    /// Whether a change is one of the reads so far.
    pub(super) fn covers(&self, change: &TrackedChange<'_>) -> bool {
        self.recorded().covers(change)
    }

    /// The reads, leaving the log empty.
    pub(super) fn take(&self) -> Recorded {
        std::mem::take(&mut *self.recorded())
    }
}

/// Whether every object of `kind` in `namespace` is already covered by a
/// coarse entry, so a precise read adds nothing.
fn covered_coarsely(recorded: &Recorded, kind: KindId, namespace: Option<&str>) -> bool {
    let everything = |namespace: Option<&str>| {
        recorded
            .lists
            .get(&ScopeKey {
                kind,
                namespace: namespace.map(Into::into),
            })
            .is_some_and(|s| s.iter().any(Selection::is_everything))
    };
    everything(None) || (namespace.is_some() && everything(namespace))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{CM, change, labels};
    use super::*;

    fn select(text: &str) -> Selector {
        bosun_selector::parse(text).unwrap()
    }

    #[test]
    fn a_get_covers_its_object_only_found_or_not() {
        let log = ReadLog::new(8);
        log.get(CM, Some("a"), "settings");
        let none = labels(&[]);
        assert!(log.covers(&change("a", "settings", None, Some(&none))));
        assert!(!log.covers(&change("a", "other", None, Some(&none))));
        assert!(!log.covers(&change("b", "settings", None, Some(&none))));
        assert!(!log.covers(&TrackedChange {
            kind: KindId(2),
            ..change("a", "settings", None, Some(&none))
        }));
    }

    #[test]
    fn a_list_covers_objects_entering_and_leaving_its_selection() {
        let log = ReadLog::new(8);
        log.list(CM, Some("a"), "app=web", &select("app=web"));
        let web = labels(&[("app", "web")]);
        let db = labels(&[("app", "db")]);
        assert!(
            log.covers(&change("a", "x", None, Some(&web))),
            "created inside"
        );
        assert!(
            log.covers(&change("a", "x", Some(&db), Some(&web))),
            "entered"
        );
        assert!(log.covers(&change("a", "x", Some(&web), Some(&db))), "left");
        assert!(
            log.covers(&change("a", "x", Some(&web), None)),
            "deleted inside"
        );
        assert!(
            !log.covers(&change("a", "x", Some(&db), Some(&db))),
            "never inside"
        );
        assert!(
            !log.covers(&change("b", "x", None, Some(&web))),
            "another namespace"
        );
    }

    #[test]
    fn a_list_across_namespaces_covers_every_namespace() {
        let log = ReadLog::new(8);
        log.list(CM, None, "", &Selector::default());
        let none = labels(&[]);
        assert!(log.covers(&change("a", "x", None, Some(&none))));
        assert!(log.covers(&change("z", "y", Some(&none), None)));
    }

    #[test]
    fn reads_past_the_cap_are_kept_as_their_whole_namespace() {
        let log = ReadLog::new(2);
        log.get(CM, Some("a"), "one");
        log.get(CM, Some("a"), "two");
        log.get(CM, Some("a"), "one");
        assert!(!log.overflowed(), "a repeated read is not a new one");
        log.get(CM, Some("a"), "three");
        assert!(log.overflowed());
        let none = labels(&[]);
        assert!(log.covers(&change("a", "anything", None, Some(&none))));
        assert!(!log.covers(&change("b", "anything", None, Some(&none))));
        let recorded = log.take();
        assert_eq!(recorded.len(), 3, "two gets and one coarse scope");
    }

    #[test]
    fn long_selectors_are_kept_within_the_byte_budget() {
        let log = ReadLog::new(256);
        let long = format!("a in ({})", vec!["x"; 2_000].join(","));
        for at in 0..100 {
            let text = format!("{long},n{at}=1");
            log.list(CM, Some("ns"), &text, &select(&text));
        }
        assert!(log.overflowed(), "100 selectors of 4 KB each fit 64 KiB");
        let recorded = log.take();
        assert!(recorded.bytes <= MAX_TRACKED_BYTES);
    }

    #[test]
    fn however_much_a_guest_reads_the_log_stays_bounded() {
        let cap = 16;
        let log = ReadLog::new(cap);
        for namespace in 0..10_000 {
            let namespace = format!("ns-{namespace}");
            for name in 0..3 {
                log.get(CM, Some(&namespace), &format!("o-{name}"));
            }
            log.list(CM, Some(&namespace), "a=b", &select("a=b"));
        }
        assert!(log.overflowed());
        let recorded = log.take();
        assert!(
            recorded.len() <= 2 * cap + 1,
            "{} entries kept for a cap of {cap}",
            recorded.len()
        );
        // And it still covers everything the guest read.
        let none = labels(&[]);
        let probe = change("ns-9999", "o-2", None, Some(&none));
        assert!(recorded.covers(&probe));
    }
}
