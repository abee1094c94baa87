//! Keys caught in a hot loop: a reconcile whose own write triggers the
//! next reconcile, which writes again.
//!
//! A guest that puts a timestamp (or a counter) in its status makes every
//! reconcile write, and every write comes back as a watch event that
//! reconciles the object again: a loop as fast as the API server allows,
//! for as long as the object exists. The host cannot tell a moving
//! timestamp from a real change, and must never skip a reconcile whose
//! result could differ. What it can do is notice a key whose reconciles
//! have written, one straight after the other, many times in a row, and
//! hold that key's next reconcile back for a while, growing, until a
//! reconcile writes nothing.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Reconciles that wrote, in a row and each soon after the last, before
/// a key counts as looping.
pub const THRESHOLD: u32 = 8;

/// A reconcile counts as following the last write when it starts within
/// this long of it: a watch event of the host's own write comes back in
/// milliseconds, a person's next edit in seconds.
const FOLLOW_UP: Duration = Duration::from_secs(2);

/// The first hold of a looping key; it doubles each time the loop goes on.
const FIRST_HOLD: Duration = Duration::from_secs(1);

/// The longest hold.
const MAX_HOLD: Duration = Duration::from_secs(300);

/// What [`HotLoops::record`] concluded about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not looping.
    Calm,
    /// Looping: the key's next reconcile waits `hold`. `entered` is true the
    /// first time, when the user should be told.
    Looping {
        /// Reconciles in a row that wrote.
        writes: u32,
        /// How long the next reconcile waits.
        hold: Duration,
        /// True when the key just started looping.
        entered: bool,
    },
}

#[derive(Debug)]
struct Track {
    writes: u32,
    last_write: Instant,
    held_until: Option<Instant>,
}

/// Hot-loop tracking for one module's keys.
#[derive(Debug)]
pub struct HotLoops<K> {
    keys: Mutex<HashMap<K, Track>>,
}

impl<K> Default for HotLoops<K> {
    fn default() -> Self {
        HotLoops {
            keys: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Clone + Eq + Hash> HotLoops<K> {
    /// Records how a reconcile of `key` that started at `started` ended:
    /// whether it wrote anything.
    pub fn record(&self, key: &K, started: Instant, wrote: bool) -> Verdict {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if !wrote {
            keys.remove(key);
            return Verdict::Calm;
        }
        let now = Instant::now();
        let track = keys.entry(key.clone()).or_insert(Track {
            writes: 0,
            last_write: now,
            held_until: None,
        });
        let follows = track.writes == 0
            || started.duration_since(track.last_write) <= FOLLOW_UP
            || track.held_until.is_some();
        track.writes = if follows { track.writes + 1 } else { 1 };
        track.last_write = now;
        if track.writes < THRESHOLD {
            track.held_until = None;
            return Verdict::Calm;
        }
        let entered = track.held_until.is_none();
        let doublings = (track.writes - THRESHOLD).min(16);
        let hold = FIRST_HOLD.saturating_mul(1 << doublings).min(MAX_HOLD);
        track.held_until = Some(now + hold);
        Verdict::Looping {
            writes: track.writes,
            hold,
            entered,
        }
    }

    /// How long a reconcile of `key` asked for now must wait, if the key is
    /// held.
    pub fn hold(&self, key: &K) -> Option<Duration> {
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let until = keys.get(key)?.held_until?;
        until
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    /// Forgets `key` (its object is gone).
    pub fn forget(&self, key: &K) {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_in_a_row_become_a_loop_with_a_growing_hold() {
        let loops = HotLoops::default();
        for _ in 1..THRESHOLD {
            assert_eq!(loops.record(&"k", Instant::now(), true), Verdict::Calm);
        }
        assert!(loops.hold(&"k").is_none());
        let Verdict::Looping { hold, entered, .. } = loops.record(&"k", Instant::now(), true)
        else {
            panic!("the eighth write in a row is a loop");
        };
        assert!(entered);
        assert_eq!(hold, FIRST_HOLD);
        assert!(loops.hold(&"k").is_some());
        let Verdict::Looping { hold, entered, .. } = loops.record(&"k", Instant::now(), true)
        else {
            panic!("still looping");
        };
        assert!(!entered);
        assert_eq!(hold, FIRST_HOLD * 2);
    }

    #[test]
    fn a_reconcile_that_writes_nothing_ends_the_loop() {
        let loops = HotLoops::default();
        for _ in 0..THRESHOLD {
            loops.record(&"k", Instant::now(), true);
        }
        assert!(loops.hold(&"k").is_some());
        assert_eq!(loops.record(&"k", Instant::now(), false), Verdict::Calm);
        assert!(loops.hold(&"k").is_none());
        assert_eq!(loops.record(&"k", Instant::now(), true), Verdict::Calm);
    }

    #[test]
    fn writes_far_apart_are_not_a_loop() {
        let loops = HotLoops::default();
        for _ in 0..THRESHOLD * 2 {
            // Each reconcile starts long after the last write ended (a
            // person's edits, a slow requeue): never a loop.
            let started = Instant::now() + FOLLOW_UP * 2;
            assert_eq!(loops.record(&"k", started, true), Verdict::Calm);
        }
        assert!(loops.hold(&"k").is_none());
    }

    #[test]
    fn keys_are_tracked_apart() {
        let loops = HotLoops::default();
        for _ in 0..THRESHOLD {
            loops.record(&"a", Instant::now(), true);
        }
        assert!(loops.hold(&"a").is_some());
        assert!(loops.hold(&"b").is_none());
    }
}
