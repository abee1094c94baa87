//! Where waiting keys stand, without clocks, locks or tasks: keys not yet
//! due, ordered by due time, apart from the ready keys, which are ordered
//! by priority with aging (see [`Lines::pop`]). Keeping them apart means a
//! key that is not yet due never stands in front of a ready one, while the
//! earliest due time stays one lookup away for a worker to sleep to.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::Priority;

/// A key's place: the time it is due (or became ready), then its arrival,
/// which keeps places unique and breaks ties first come, first served. A
/// key keeps its place when it falls due and moves to a ready line, so
/// whoever recorded the place can always find the key again.
pub(super) type Place = (Instant, u64);

#[derive(Debug)]
pub(super) struct Lines<K> {
    delayed: BTreeMap<Place, (Priority, K)>,
    /// Ready keys of each priority, first ready first. Two lines rather than
    /// one ordered by virtual time: merging their heads gives the same order,
    /// and no `Instant` has to be computed that might not be representable.
    high: BTreeMap<Place, K>,
    low: BTreeMap<Place, K>,
    low_priority_lag: Duration,
    arrivals: u64,
}

impl<K> Lines<K> {
    pub(super) fn new(low_priority_lag: Duration) -> Self {
        Lines {
            delayed: BTreeMap::new(),
            high: BTreeMap::new(),
            low: BTreeMap::new(),
            low_priority_lag,
            arrivals: 0,
        }
    }

    /// Puts `key` in line, due at `due`, behind everything already there
    /// that is due at the same time, and returns its place.
    pub(super) fn push(&mut self, due: Instant, priority: Priority, key: K) -> Place {
        self.arrivals += 1;
        let place = (due, self.arrivals);
        self.restore(place, priority, key);
        place
    }

    /// Puts `key` back at a place it held, at another priority: a key raised
    /// to `High` keeps the time it has been waiting since and its arrival.
    /// Like every key it moves to its ready line when a worker next looks,
    /// at once if that time has passed.
    pub(super) fn restore(&mut self, place: Place, priority: Priority, key: K) {
        self.delayed.insert(place, (priority, key));
    }

    /// Takes the key at `place` and `priority` out of line, wherever it
    /// stands.
    pub(super) fn remove(&mut self, place: Place, priority: Priority) -> Option<K> {
        self.delayed
            .remove(&place)
            .map(|(_, key)| key)
            .or_else(|| self.ready_line(priority).remove(&place))
    }

    /// Takes the next ready key at `now`, with the time it became ready.
    ///
    /// Ready keys are served by virtual time: the time a key became ready,
    /// plus `low_priority_lag` for a `Low` key, earliest first; on a tie
    /// `High` goes first. Each line is already in that order, so the next key
    /// is the earlier of the two heads.
    pub(super) fn pop(&mut self, now: Instant) -> Option<(K, Instant)> {
        self.fall_due(now);
        let low_first = match (self.low.first_key_value(), self.high.first_key_value()) {
            (Some((&(low_ready, _), _)), Some((&(high_ready, _), _))) => {
                self.aged_past(low_ready, high_ready)
            }
            (low, _) => low.is_some(),
        };
        let line = if low_first {
            &mut self.low
        } else {
            &mut self.high
        };
        let ((ready_since, _), key) = line.pop_first()?;
        Some((key, ready_since))
    }

    /// The earliest time a key is or was due: in the past while a key is
    /// ready, so a worker that sleeps to it wakes at once.
    pub(super) fn next_due(&self) -> Option<Instant> {
        [
            first_time(&self.high),
            first_time(&self.low),
            self.delayed.first_key_value().map(|(&(due, _), _)| due),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(super) fn clear(&mut self) {
        self.delayed.clear();
        self.high.clear();
        self.low.clear();
    }

    /// Moves the keys due by `now` to their ready lines. Done lazily, when a
    /// worker asks, since nothing but a worker looks at the ready lines; a
    /// key's ready time is its due time, however late it is moved.
    fn fall_due(&mut self, now: Instant) {
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (place, (priority, key)) = entry.remove_entry();
            self.ready_line(priority).insert(place, key);
        }
    }

    /// Whether a `Low` key ready since `low_ready` goes ahead of a `High` key
    /// ready since `high_ready`. A lag too long to add to an `Instant` is as
    /// good as forever: the `Low` key never goes ahead.
    fn aged_past(&self, low_ready: Instant, high_ready: Instant) -> bool {
        low_ready
            .checked_add(self.low_priority_lag)
            .is_some_and(|virtual_ready| virtual_ready < high_ready)
    }

    fn ready_line(&mut self, priority: Priority) -> &mut BTreeMap<Place, K> {
        match priority {
            Priority::High => &mut self.high,
            Priority::Low => &mut self.low,
        }
    }
}

fn first_time<K>(line: &BTreeMap<Place, K>) -> Option<Instant> {
    line.first_key_value().map(|(&(time, _), _)| time)
}
