//! Where waiting keys stand, without clocks, locks or tasks: keys not yet
//! due, ordered by due time, apart from the ready line. Keeping them apart
//! lets the ready line be ordered by something other than due time, while
//! the earliest due time stays one lookup away for a worker to sleep to.

use std::collections::BTreeMap;

use tokio::time::Instant;

/// A key's place: the time it is due (or became ready), then its arrival,
/// which keeps places unique and breaks ties first come, first served. A
/// key keeps its place when it falls due and moves to the ready line, so
/// whoever recorded the place can always find the key again.
pub(super) type Place = (Instant, u64);

#[derive(Debug)]
pub(super) struct Lines<K> {
    delayed: BTreeMap<Place, K>,
    ready: BTreeMap<Place, K>,
    arrivals: u64,
}

impl<K> Lines<K> {
    pub(super) fn new() -> Self {
        Lines {
            delayed: BTreeMap::new(),
            ready: BTreeMap::new(),
            arrivals: 0,
        }
    }

    /// Puts `key` in line, due at `due`, behind everything already there
    /// that is due at the same time, and returns its place.
    pub(super) fn push(&mut self, due: Instant, key: K) -> Place {
        self.arrivals += 1;
        let place = (due, self.arrivals);
        self.delayed.insert(place, key);
        place
    }

    /// Takes the key at `place` out of line, wherever it stands.
    pub(super) fn remove(&mut self, place: Place) -> Option<K> {
        self.delayed
            .remove(&place)
            .or_else(|| self.ready.remove(&place))
    }

    /// Takes the first ready key at `now`, with the time it became ready.
    pub(super) fn pop(&mut self, now: Instant) -> Option<(K, Instant)> {
        self.fall_due(now);
        let ((ready_since, _), key) = self.ready.pop_first()?;
        Some((key, ready_since))
    }

    /// The earliest time a key is or was due: in the past while a key is
    /// ready, so a worker that sleeps to it wakes at once.
    pub(super) fn next_due(&self) -> Option<Instant> {
        let first = |line: &BTreeMap<Place, K>| line.first_key_value().map(|(&(due, _), _)| due);
        match (first(&self.ready), first(&self.delayed)) {
            (Some(ready), Some(delayed)) => Some(ready.min(delayed)),
            (ready, delayed) => ready.or(delayed),
        }
    }

    pub(super) fn clear(&mut self) {
        self.delayed.clear();
        self.ready.clear();
    }

    /// Moves the keys due by `now` to the ready line. Done lazily, when a
    /// worker asks, since nothing but a worker looks at the ready line.
    fn fall_due(&mut self, now: Instant) {
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (place, key) = entry.remove_entry();
            self.ready.insert(place, key);
        }
    }
}
