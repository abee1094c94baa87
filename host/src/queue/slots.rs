//! The queue's bookkeeping, without clocks, locks or tasks: which keys wait,
//! when each is due and at which priority, and which are out with a worker.
//! Time is passed in, so the ordering rules are tested with made-up instants;
//! the order itself is kept by [`Lines`].

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

use super::Priority;
use super::line::{Lines, Place};

/// A key that waits for its (next) turn, with the most urgent priority
/// asked for it since it last went out.
#[derive(Debug, Clone, Copy)]
enum Waiting {
    /// In line, at this place.
    Scheduled(Place, Priority),
    /// Re-added while out with a worker; it joins the line, due at this
    /// time, when the worker lets go (client-go's dirty set).
    Parked(Instant, Priority),
}

impl Waiting {
    /// The earliest time and the highest priority asked for so far.
    fn asked(self) -> (Instant, Priority) {
        match self {
            Waiting::Scheduled((due, _), priority) | Waiting::Parked(due, priority) => {
                (due, priority)
            }
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
    /// Empty slots; a `Low` key ready for longer than `low_priority_lag`
    /// goes ahead of `High` keys that became ready after that.
    pub(super) fn new(low_priority_lag: Duration) -> Self {
        Slots {
            waiting: HashMap::new(),
            lines: Lines::new(low_priority_lag),
            claimed: HashSet::new(),
        }
    }

    /// Asks for `key` to be handed out at `due` or later, at `priority`. A
    /// key already waiting keeps its one slot, with the earlier of the two
    /// times and the higher of the two priorities: never postponed, never
    /// lowered. A key raised to `High` keeps the time it has been waiting
    /// since. Returns whether a key joined the line or moved earlier, which
    /// is when a sleeping worker may have something new to take or an
    /// earlier time to wake at; a raise alone never wakes one, since a
    /// worker sleeps only while no key is ready.
    pub(super) fn add(&mut self, key: K, due: Instant, priority: Priority) -> bool {
        match self.waiting.entry(key) {
            Entry::Occupied(mut slot) => {
                let (was_due, was_priority) = slot.get().asked();
                let (due, priority) = (due.min(was_due), priority.max(was_priority));
                if (due, priority) == (was_due, was_priority) {
                    return false;
                }
                match *slot.get() {
                    Waiting::Parked(..) => {
                        slot.insert(Waiting::Parked(due, priority));
                        false
                    }
                    Waiting::Scheduled(place, _) => {
                        // The slot and the lines agree on every place, so
                        // the key is found; the slot's own copy keeps the
                        // key in line if they ever do not.
                        let key = self
                            .lines
                            .remove(place, was_priority)
                            .unwrap_or_else(|| slot.key().clone());
                        let earlier = due < was_due;
                        let place = if earlier {
                            self.lines.push(due, priority, key)
                        } else {
                            self.lines.restore(place, priority, key);
                            place
                        };
                        slot.insert(Waiting::Scheduled(place, priority));
                        earlier
                    }
                }
            }
            Entry::Vacant(slot) => {
                if self.claimed.contains(slot.key()) {
                    slot.insert(Waiting::Parked(due, priority));
                    false
                } else {
                    let place = self.lines.push(due, priority, slot.key().clone());
                    slot.insert(Waiting::Scheduled(place, priority));
                    true
                }
            }
        }
    }

    /// Takes the next key ready at `now` (in the order [`Lines::pop`]
    /// describes), marking it out with a worker, and returns it with the
    /// time it became ready.
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
    /// line at its requested time and priority, or at `now` if that time has
    /// passed, so it queues behind keys of its priority that were ready
    /// before it. Returns whether it did.
    pub(super) fn release(&mut self, key: &K, now: Instant) -> bool {
        self.claimed.remove(key);
        let Some(waiting) = self.waiting.get_mut(key) else {
            return false;
        };
        let Waiting::Parked(due, priority) = *waiting else {
            return false;
        };
        let place = self.lines.push(due.max(now), priority, key.clone());
        *waiting = Waiting::Scheduled(place, priority);
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
    use crate::queue::Priority::{High, Low};

    /// Longer than any test's span of made-up time, unless a test says so.
    const LAG: Duration = Duration::from_secs(3600);
    const SECOND: Duration = Duration::from_secs(1);
    const TICK: Duration = Duration::from_nanos(1);

    fn drain(slots: &mut Slots<&'static str>, now: Instant) -> Vec<&'static str> {
        std::iter::from_fn(|| slots.take(now).map(|(key, _)| key)).collect()
    }

    #[test]
    fn duplicates_keep_one_slot() {
        let now = Instant::now();
        let mut slots = Slots::new(LAG);
        slots.add("a", now, High);
        slots.add("a", now, High);
        assert_eq!(slots.len(), 1);
        assert_eq!(drain(&mut slots, now), ["a"]);
        assert_eq!(slots.len(), 0);
    }

    #[test]
    fn delayed_key_is_due_at_its_time_and_not_before() {
        let start = Instant::now();
        let mut slots = Slots::new(LAG);
        slots.add("a", start + SECOND, High);
        assert_eq!(slots.next_due(), Some(start + SECOND));
        assert_eq!(slots.take(start + SECOND - TICK), None);
        assert_eq!(slots.take(start + SECOND), Some(("a", start + SECOND)));
    }

    #[test]
    fn earlier_time_wins_and_later_does_not_postpone() {
        let start = Instant::now();
        let mut slots = Slots::new(LAG);
        slots.add("a", start + 5 * SECOND, High);
        assert!(slots.add("a", start + 2 * SECOND, High));
        assert!(!slots.add("a", start + 9 * SECOND, High));
        assert_eq!(slots.len(), 1);
        assert_eq!(slots.next_due(), Some(start + 2 * SECOND));
        assert_eq!(drain(&mut slots, start + 2 * SECOND), ["a"]);
    }

    #[test]
    fn adding_now_makes_a_delayed_key_ready() {
        let now = Instant::now();
        let mut slots = Slots::new(LAG);
        slots.add("a", now + 60 * SECOND, High);
        slots.add("a", now, High);
        assert_eq!(drain(&mut slots, now), ["a"]);
    }

    #[test]
    fn first_ready_is_first_served() {
        let start = Instant::now();
        let mut slots = Slots::new(LAG);
        // c was asked for later but fell due before b and a were added.
        slots.add("c", start + SECOND, High);
        slots.add("b", start + 2 * SECOND, High);
        slots.add("a", start + 2 * SECOND, High);
        slots.add("b", start + 2 * SECOND, High);
        assert_eq!(drain(&mut slots, start + 3 * SECOND), ["c", "b", "a"]);
    }

    #[test]
    fn key_added_while_out_returns_once_after_release() {
        let now = Instant::now();
        let mut slots = Slots::new(LAG);
        slots.add("a", now, High);
        slots.add("b", now, High);
        assert_eq!(slots.take(now), Some(("a", now)));

        slots.add("a", now, High);
        slots.add("a", now, High);
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
        let mut slots = Slots::new(LAG);
        slots.add("a", start, High);
        slots.take(start);
        slots.add("a", start + 10 * SECOND, High);
        slots.add("a", start + 5 * SECOND, High);
        slots.add("a", start + 20 * SECOND, High);

        slots.release(&"a", start + SECOND);
        assert_eq!(slots.next_due(), Some(start + 5 * SECOND));
        assert_eq!(slots.take(start + 5 * SECOND - TICK), None);
        assert_eq!(drain(&mut slots, start + 5 * SECOND), ["a"]);
    }

    #[test]
    fn released_key_queues_behind_keys_ready_before_it() {
        let now = Instant::now();
        let mut slots = Slots::new(LAG);
        slots.add("a", now, High);
        slots.take(now);
        slots.add("a", now, High);
        slots.add("b", now + SECOND, High);
        slots.release(&"a", now + 2 * SECOND);
        assert_eq!(drain(&mut slots, now + 2 * SECOND), ["b", "a"]);
    }

    #[test]
    fn clearing_drops_waiting_keys_and_parked_readds() {
        let now = Instant::now();
        let mut slots = Slots::new(LAG);
        slots.add("a", now, High);
        slots.add("b", now + SECOND, High);
        slots.take(now);
        slots.add("a", now, High);
        slots.clear_waiting();
        assert_eq!(slots.len(), 0);
        assert_eq!(slots.next_due(), None);
        assert!(!slots.release(&"a", now));
        assert_eq!(slots.claimed(), 0);
    }

    #[test]
    fn high_goes_ahead_of_low_among_ready_keys() {
        let start = Instant::now();
        let mut slots = Slots::new(LAG);
        slots.add("storm", start, Low);
        slots.add("change", start + SECOND, High);
        assert_eq!(drain(&mut slots, start + 2 * SECOND), ["change", "storm"]);
    }

    #[test]
    fn each_priority_is_first_ready_first_served() {
        let start = Instant::now();
        let mut slots = Slots::new(LAG);
        slots.add("low-2", start + 2 * SECOND, Low);
        slots.add("high-2", start + 2 * SECOND, High);
        slots.add("low-1", start + SECOND, Low);
        slots.add("high-1", start + SECOND, High);
        slots.add("low-3", start + 2 * SECOND, Low);
        assert_eq!(
            drain(&mut slots, start + 3 * SECOND),
            ["high-1", "high-2", "low-1", "low-2", "low-3"]
        );
    }

    #[test]
    fn low_key_ready_longer_than_the_lag_goes_ahead_of_newer_high_keys() {
        let start = Instant::now();
        let mut slots = Slots::new(10 * SECOND);
        slots.add("old", start, Low);
        slots.add("newer", start + 10 * SECOND + TICK, High);
        slots.add("older", start + 9 * SECOND, High);
        assert_eq!(
            drain(&mut slots, start + 20 * SECOND),
            ["older", "old", "newer"]
        );
    }

    #[test]
    fn low_key_ready_no_longer_than_the_lag_stays_behind_newer_high_keys() {
        let start = Instant::now();
        let mut slots = Slots::new(10 * SECOND);
        slots.add("young", start, Low);
        slots.add("new", start + SECOND, High);
        // Ready exactly the lag later still goes first: only a Low key
        // strictly older than the lag overtakes.
        slots.add("lagging", start + 10 * SECOND, High);
        assert_eq!(
            drain(&mut slots, start + 20 * SECOND),
            ["new", "lagging", "young"]
        );
    }

    #[test]
    fn lag_too_long_to_represent_never_lets_low_go_ahead() {
        let start = Instant::now();
        let mut slots = Slots::new(Duration::MAX);
        slots.add("low", start, Low);
        slots.add("high", start + 1000 * LAG, High);
        assert_eq!(drain(&mut slots, start + 1000 * LAG), ["high", "low"]);
    }

    #[test]
    fn delayed_high_key_does_not_block_a_ready_low_key() {
        let start = Instant::now();
        let mut slots = Slots::new(LAG);
        slots.add("due-later", start + SECOND, High);
        slots.add("ready", start, Low);
        slots.add("also-ready", start, Low);
        assert_eq!(slots.take(start), Some(("ready", start)));

        // Once due it goes ahead of the Low key still waiting.
        assert_eq!(
            slots.take(start + SECOND),
            Some(("due-later", start + SECOND))
        );
        assert_eq!(drain(&mut slots, start + SECOND), ["also-ready"]);
    }

    #[test]
    fn next_due_is_the_earliest_of_ready_and_delayed_keys() {
        let start = Instant::now();
        let mut slots = Slots::new(LAG);
        slots.add("delayed", start + 5 * SECOND, High);
        slots.add("a", start + SECOND, Low);
        slots.add("b", start + 2 * SECOND, Low);
        assert_eq!(slots.next_due(), Some(start + SECOND));

        // a goes out and b moves to the ready line; the delayed key stays.
        assert_eq!(slots.take(start + 3 * SECOND), Some(("a", start + SECOND)));
        assert_eq!(slots.next_due(), Some(start + 2 * SECOND));
        assert_eq!(
            slots.take(start + 3 * SECOND),
            Some(("b", start + 2 * SECOND))
        );
        assert_eq!(slots.next_due(), Some(start + 5 * SECOND));
        assert_eq!(slots.take(start + 3 * SECOND), None);
        assert_eq!(drain(&mut slots, start + 5 * SECOND), ["delayed"]);
        assert_eq!(slots.next_due(), None);
    }

    #[test]
    fn adding_high_raises_a_ready_low_key_which_keeps_its_time() {
        let start = Instant::now();
        let mut slots = Slots::new(LAG);
        slots.add("a", start, Low);
        slots.add("b", start, Low);
        slots.add("c", start, Low);
        slots.add("x", start + SECOND, High);
        assert!(
            !slots.add("b", start + 2 * SECOND, High),
            "a raise alone gives no worker anything new"
        );
        assert_eq!(slots.len(), 4);
        // b has been waiting since before x became ready.
        assert_eq!(slots.take(start + 2 * SECOND), Some(("b", start)));
        assert_eq!(drain(&mut slots, start + 2 * SECOND), ["x", "a", "c"]);
    }

    #[test]
    fn adding_high_raises_a_delayed_low_key_at_the_earlier_time() {
        let start = Instant::now();
        let mut slots = Slots::new(LAG);
        slots.add("waiting", start, Low);
        slots.add("now", start + 60 * SECOND, Low);
        slots.add("later", start + 10 * SECOND, Low);

        assert!(slots.add("now", start, High), "now became ready");
        assert!(!slots.add("later", start + 20 * SECOND, High));
        assert_eq!(slots.take(start), Some(("now", start)));
        assert_eq!(slots.next_due(), Some(start));
        assert_eq!(drain(&mut slots, start + 10 * SECOND), ["later", "waiting"]);
    }

    #[test]
    fn adding_low_keeps_a_high_key_high() {
        let start = Instant::now();
        let mut slots = Slots::new(LAG);
        slots.add("storm", start, Low);
        slots.add("change", start + SECOND, High);
        assert!(!slots.add("change", start + SECOND, Low));
        slots.add("retry", start + 10 * SECOND, High);
        assert!(slots.add("retry", start + 5 * SECOND, Low), "moved earlier");
        assert_eq!(
            drain(&mut slots, start + 5 * SECOND),
            ["change", "retry", "storm"]
        );
    }

    #[test]
    fn parked_key_keeps_the_highest_priority_and_earliest_time() {
        let start = Instant::now();
        let mut slots = Slots::new(LAG);
        slots.add("a", start, Low);
        slots.take(start);
        slots.add("a", start + 10 * SECOND, Low);
        slots.add("a", start + 20 * SECOND, High);
        slots.add("a", start + 30 * SECOND, Low);
        assert_eq!(slots.len(), 1);

        assert!(slots.release(&"a", start + 2 * SECOND));
        assert_eq!(slots.next_due(), Some(start + 10 * SECOND));
        slots.add("storm", start + 3 * SECOND, Low);
        assert_eq!(
            drain(&mut slots, start + 10 * SECOND),
            ["a", "storm"],
            "a came back at High"
        );
    }

    #[test]
    fn storm_of_low_keys_lets_a_real_change_through_next() {
        const STORM: u32 = 10_000;
        // Drained at 250 a second, the storm takes 40 s: the default lag
        // must outlast it for a change near its end to go first.
        let per_key = Duration::from_millis(4);
        let lag = crate::queue::QueueConfig::default().low_priority_lag;
        assert!(per_key * STORM < lag);

        let start = Instant::now();
        let mut slots = Slots::new(lag);
        for key in 0..STORM {
            slots.add(key.to_string(), start, Low);
        }
        let mut now = start;
        for _ in 0..STORM - 10 {
            now += per_key;
            assert!(slots.take(now).is_some());
        }
        slots.add("change".to_string(), now, High);
        now += per_key;
        assert_eq!(slots.take(now), Some(("change".to_string(), now - per_key)));
        assert_eq!(slots.len(), 10, "the rest of the storm still waits");
    }
}
