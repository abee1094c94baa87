//! The queue's bookkeeping, without clocks, locks or tasks: which keys wait,
//! when each is due, and which are out with a worker. Time is passed in, so
//! the ordering rules are tested with made-up instants.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use tokio::time::Instant;

use super::line::{Lines, Place};

/// A key that waits for its (next) turn.
#[derive(Debug, Clone, Copy)]
enum Waiting {
    /// In line, at this place.
    Scheduled(Place),
    /// Re-added while out with a worker; it joins the line, due at this
    /// time, when the worker lets go (client-go's dirty set).
    Parked(Instant),
}

impl Waiting {
    fn due(self) -> Instant {
        match self {
            Waiting::Scheduled((due, _)) | Waiting::Parked(due) => due,
        }
    }
}

/// One slot per key; a key is never both in line twice nor out twice.
#[derive(Debug)]
pub(super) struct Slots<K> {
    waiting: HashMap<K, Waiting>,
    lines: Lines<K>,
    claimed: HashSet<K>,
}

// Counting needs no bounds, so the queue's `Debug` can report them for any key.
impl<K> Slots<K> {
    /// Keys waiting, ready or delayed, including those re-added while out.
    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Keys out with a worker.
    pub(super) fn claimed(&self) -> usize {
        self.claimed.len()
    }
}

impl<K: Clone + Eq + Hash> Slots<K> {
    pub(super) fn new() -> Self {
        Slots {
            waiting: HashMap::new(),
            lines: Lines::new(),
            claimed: HashSet::new(),
        }
    }

    /// Asks for `key` to be handed out at `due` or later. A key already
    /// waiting keeps its one slot, moved earlier if `due` is earlier and
    /// never later. Returns whether the line changed, which is when a waiting
    /// worker may have something new to take or a new deadline to sleep to.
    pub(super) fn add(&mut self, key: K, due: Instant) -> bool {
        match self.waiting.entry(key) {
            Entry::Occupied(mut slot) => {
                if due >= slot.get().due() {
                    return false;
                }
                match *slot.get() {
                    Waiting::Parked(_) => {
                        slot.insert(Waiting::Parked(due));
                        false
                    }
                    Waiting::Scheduled(place) => {
                        // The slot and the lines agree on every place, so
                        // the key is found; the slot's own copy keeps the
                        // key in line if they ever do not.
                        let key = self
                            .lines
                            .remove(place)
                            .unwrap_or_else(|| slot.key().clone());
                        slot.insert(Waiting::Scheduled(self.lines.push(due, key)));
                        true
                    }
                }
            }
            Entry::Vacant(slot) => {
                if self.claimed.contains(slot.key()) {
                    slot.insert(Waiting::Parked(due));
                    false
                } else {
                    let place = self.lines.push(due, slot.key().clone());
                    slot.insert(Waiting::Scheduled(place));
                    true
                }
            }
        }
    }

    /// Takes the first key due at `now`, marking it out with a worker, and
    /// returns it with the time it became ready.
    pub(super) fn take(&mut self, now: Instant) -> Option<(K, Instant)> {
        let (key, ready_since) = self.lines.pop(now)?;
        self.waiting.remove(&key);
        self.claimed.insert(key.clone());
        Some((key, ready_since))
    }

    /// The earliest time a waiting key is due, if any key is in line; in the
    /// past while one is ready.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.lines.next_due()
    }

    /// The worker let go of `key`. If it was re-added meanwhile it joins the
    /// line at its requested time, or at `now` if that has passed, so it
    /// queues behind keys that were ready before it. Returns whether it did.
    pub(super) fn release(&mut self, key: &K, now: Instant) -> bool {
        self.claimed.remove(key);
        let Some(waiting) = self.waiting.get_mut(key) else {
            return false;
        };
        let Waiting::Parked(due) = *waiting else {
            return false;
        };
        *waiting = Waiting::Scheduled(self.lines.push(due.max(now), key.clone()));
        true
    }

    /// Drops every waiting key; keys out stay out until released.
    pub(super) fn clear_waiting(&mut self) {
        self.waiting.clear();
        self.lines.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);
    const TICK: Duration = Duration::from_nanos(1);

    fn drain(slots: &mut Slots<&'static str>, now: Instant) -> Vec<&'static str> {
        std::iter::from_fn(|| slots.take(now).map(|(key, _)| key)).collect()
    }

    #[test]
    fn duplicates_keep_one_slot() {
        let now = Instant::now();
        let mut slots = Slots::new();
        slots.add("a", now);
        slots.add("a", now);
        assert_eq!(slots.len(), 1);
        assert_eq!(drain(&mut slots, now), ["a"]);
        assert_eq!(slots.len(), 0);
    }

    #[test]
    fn delayed_key_is_due_at_its_time_and_not_before() {
        let start = Instant::now();
        let mut slots = Slots::new();
        slots.add("a", start + SECOND);
        assert_eq!(slots.next_due(), Some(start + SECOND));
        assert_eq!(slots.take(start + SECOND - TICK), None);
        assert_eq!(slots.take(start + SECOND), Some(("a", start + SECOND)));
    }

    #[test]
    fn earlier_time_wins_and_later_does_not_postpone() {
        let start = Instant::now();
        let mut slots = Slots::new();
        slots.add("a", start + 5 * SECOND);
        assert!(slots.add("a", start + 2 * SECOND));
        assert!(!slots.add("a", start + 9 * SECOND));
        assert_eq!(slots.len(), 1);
        assert_eq!(slots.next_due(), Some(start + 2 * SECOND));
        assert_eq!(drain(&mut slots, start + 2 * SECOND), ["a"]);
    }

    #[test]
    fn adding_now_makes_a_delayed_key_ready() {
        let now = Instant::now();
        let mut slots = Slots::new();
        slots.add("a", now + 60 * SECOND);
        slots.add("a", now);
        assert_eq!(drain(&mut slots, now), ["a"]);
    }

    #[test]
    fn first_ready_is_first_served() {
        let start = Instant::now();
        let mut slots = Slots::new();
        // c was asked for later but fell due before b and a were added.
        slots.add("c", start + SECOND);
        slots.add("b", start + 2 * SECOND);
        slots.add("a", start + 2 * SECOND);
        slots.add("b", start + 2 * SECOND);
        assert_eq!(drain(&mut slots, start + 3 * SECOND), ["c", "b", "a"]);
    }

    #[test]
    fn key_added_while_out_returns_once_after_release() {
        let now = Instant::now();
        let mut slots = Slots::new();
        slots.add("a", now);
        slots.add("b", now);
        assert_eq!(slots.take(now), Some(("a", now)));

        slots.add("a", now);
        slots.add("a", now);
        assert_eq!(slots.len(), 2, "a waits again, b still waits");
        assert_eq!(drain(&mut slots, now), ["b"], "a is not handed out twice");

        let later = now + SECOND;
        assert!(slots.release(&"a", later));
        // It became ready only when released.
        assert_eq!(slots.take(later), Some(("a", later)));
        assert_eq!(slots.take(later), None);
        assert!(!slots.release(&"a", later));
        assert_eq!(slots.take(later), None);
    }

    #[test]
    fn key_added_while_out_keeps_its_earliest_requested_time() {
        let start = Instant::now();
        let mut slots = Slots::new();
        slots.add("a", start);
        slots.take(start);
        slots.add("a", start + 10 * SECOND);
        slots.add("a", start + 5 * SECOND);
        slots.add("a", start + 20 * SECOND);

        slots.release(&"a", start + SECOND);
        assert_eq!(slots.next_due(), Some(start + 5 * SECOND));
        assert_eq!(slots.take(start + 5 * SECOND - TICK), None);
        assert_eq!(drain(&mut slots, start + 5 * SECOND), ["a"]);
    }

    #[test]
    fn released_key_queues_behind_keys_ready_before_it() {
        let now = Instant::now();
        let mut slots = Slots::new();
        slots.add("a", now);
        slots.take(now);
        slots.add("a", now);
        slots.add("b", now + SECOND);
        slots.release(&"a", now + 2 * SECOND);
        assert_eq!(drain(&mut slots, now + 2 * SECOND), ["b", "a"]);
    }

    #[test]
    fn clearing_drops_waiting_keys_and_parked_readds() {
        let now = Instant::now();
        let mut slots = Slots::new();
        slots.add("a", now);
        slots.add("b", now + SECOND);
        slots.take(now);
        slots.add("a", now);
        slots.clear_waiting();
        assert_eq!(slots.len(), 0);
        assert_eq!(slots.next_due(), None);
        assert!(!slots.release(&"a", now));
        assert_eq!(slots.claimed(), 0);
    }
}
