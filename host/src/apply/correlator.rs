//! Which events reach the API server: a budget per object, and repeats
//! folded into a series — client-go's `EventCorrelator`, with bounded
//! memory. Time is passed in, so the rules are tested without a clock.
//!
//! A guest chooses its events' reasons and how often it is reconciled; the
//! budget is what stops one object from filling etcd with Events (a guest
//! returning 32 new reasons per call, requeued every 250 ms, made 2,880
//! Events in 30 s). Each object gets a burst of [`BURST`] events, then one
//! every [`REFILL`]; what is over the budget is dropped and counted. The
//! host's own events about an object (its failure reports) draw on a budget
//! of their own, so a guest's flood never silences the host's account of
//! what went wrong.
//!
//! An event repeating one already recorded (same object, type, reason and
//! action) within [`SERIES_TTL`] is not a new Event: the recorded one's
//! series count goes up, as kube-runtime's recorder does — and it still
//! spends from the budget, since each is a write.
//!
//! Memory is bounded whatever guests do: at most [`MAX_OBJECTS`] budgets
//! (a full budget is the default and is not kept) and [`MAX_SERIES`]
//! series, the least recently used going first.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Events an object may get at once (client-go's `defaultSpamBurst`).
pub const BURST: u32 = 25;
/// How long each further event's token takes to come (client-go's
/// `defaultSpamQPS`, 1/300).
pub const REFILL: Duration = Duration::from_secs(300);
/// How long a recorded event is the one its repeats fold into (as
/// kube-runtime's recorder).
pub const SERIES_TTL: Duration = Duration::from_secs(360);
/// The most objects whose budget is not full, kept at once.
pub const MAX_OBJECTS: usize = 4096;
/// The most series kept at once.
pub const MAX_SERIES: usize = 8192;

/// Whose event it is: each draws on a budget of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The guest returned it.
    Guest,
    /// The host reports on the object (a failure).
    Host,
}

/// What to do with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<N> {
    /// Create a new Event.
    Create,
    /// Raise the series of the Event recorded as `name` to `count`.
    Repeat {
        /// The recorded Event.
        name: N,
        /// The series count to write.
        count: i32,
    },
    /// Over the object's budget: drop it.
    Drop,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    used: Instant,
}

#[derive(Debug, Clone)]
struct Series<N> {
    name: N,
    count: i32,
    last: Instant,
}

/// The budgets and series of every object, keyed by object (`O`) and by
/// event (`E`); `N` names a recorded Event.
#[derive(Debug)]
pub struct Correlator<O, E, N> {
    budgets: HashMap<(O, Source), Bucket>,
    series: HashMap<E, Series<N>>,
}

impl<O, E, N> Default for Correlator<O, E, N> {
    fn default() -> Self {
        Correlator {
            budgets: HashMap::new(),
            series: HashMap::new(),
        }
    }
}

impl<O: Clone + Eq + Hash, E: Clone + Eq + Hash, N: Clone> Correlator<O, E, N> {
    /// What to do with an event `event` about `object` from `source` at
    /// `now`. A verdict other than [`Verdict::Drop`] has spent a token.
    pub fn admit(&mut self, object: &O, source: Source, event: &E, now: Instant) -> Verdict<N> {
        if !self.spend(object, source, now) {
            return Verdict::Drop;
        }
        match self.series.get_mut(event) {
            Some(series) if now.saturating_duration_since(series.last) < SERIES_TTL => {
                series.count = series.count.saturating_add(1);
                series.last = now;
                Verdict::Repeat {
                    name: series.name.clone(),
                    count: series.count,
                }
            }
            _ => Verdict::Create,
        }
    }

    /// The Event for `event` was created as `name` at `now`: its repeats
    /// fold into it from now on.
    pub fn created(&mut self, event: E, name: N, now: Instant) {
        if !self.series.contains_key(&event) && self.series.len() >= MAX_SERIES {
            self.series
                .retain(|_, series| now.saturating_duration_since(series.last) < SERIES_TTL);
            evict_oldest(&mut self.series, MAX_SERIES, |series| series.last);
        }
        self.series.insert(
            event,
            Series {
                name,
                count: 1,
                last: now,
            },
        );
    }

    /// Takes a token from `object`'s budget for `source`, if one is left.
    fn spend(&mut self, object: &O, source: Source, now: Instant) -> bool {
        let key = (object.clone(), source);
        if !self.budgets.contains_key(&key) && self.budgets.len() >= MAX_OBJECTS {
            // A budget refilled to the brim is the default: forgetting it
            // loses nothing.
            self.budgets
                .retain(|_, bucket| refilled(bucket, now) < f64::from(BURST));
            evict_oldest(&mut self.budgets, MAX_OBJECTS, |bucket| bucket.used);
        }
        let bucket = self.budgets.entry(key).or_insert(Bucket {
            tokens: f64::from(BURST),
            at: now,
            used: now,
        });
        bucket.tokens = refilled(bucket, now);
        bucket.at = now;
        bucket.used = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How many budgets and series are kept: bounded by [`MAX_OBJECTS`]
    /// and [`MAX_SERIES`].
    pub fn kept(&self) -> (usize, usize) {
        (self.budgets.len(), self.series.len())
    }
}

/// The tokens `bucket` holds at `now`.
fn refilled(bucket: &Bucket, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at);
    (bucket.tokens + elapsed.as_secs_f64() / REFILL.as_secs_f64()).min(f64::from(BURST))
}

/// Drops the least recently used entries until `map` has room for one more
/// below `max`.
fn evict_oldest<K: Clone + Eq + Hash, V>(
    map: &mut HashMap<K, V>,
    max: usize,
    last_used: impl Fn(&V) -> Instant,
) {
    if map.len() < max {
        return;
    }
    let mut by_age: Vec<(Instant, K)> =
        map.iter().map(|(k, v)| (last_used(v), k.clone())).collect();
    by_age.sort_by_key(|(at, _)| *at);
    // A tenth at a time, so a flood does not sort the map on every event.
    let excess = map.len() + 1 - max + max / 10;
    for (_, key) in by_age.into_iter().take(excess) {
        map.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Test = Correlator<&'static str, String, String>;

    fn admit(c: &mut Test, object: &'static str, reason: &str, now: Instant) -> Verdict<String> {
        let verdict = c.admit(&object, Source::Guest, &format!("{object}/{reason}"), now);
        if verdict == Verdict::Create {
            c.created(
                format!("{object}/{reason}"),
                format!("{object}.{reason}"),
                now,
            );
        }
        verdict
    }

    #[test]
    fn an_object_gets_its_burst_then_one_event_per_refill() {
        let mut c = Test::default();
        let start = Instant::now();
        let created = (0..100)
            .filter(|at| admit(&mut c, "o", &format!("r{at}"), start) == Verdict::Create)
            .count();
        assert_eq!(created, BURST as usize);
        assert_eq!(
            admit(&mut c, "o", "late", start + REFILL / 2),
            Verdict::Drop
        );
        assert_eq!(admit(&mut c, "o", "later", start + REFILL), Verdict::Create);
        assert_eq!(admit(&mut c, "o", "again", start + REFILL), Verdict::Drop);
        // Another object has a budget of its own.
        assert_eq!(admit(&mut c, "p", "r", start), Verdict::Create);
    }

    #[test]
    fn the_hosts_reports_keep_a_budget_the_guest_cannot_spend() {
        let mut c = Test::default();
        let now = Instant::now();
        for at in 0..100 {
            admit(&mut c, "o", &format!("r{at}"), now);
        }
        let verdict = c.admit(&"o", Source::Host, &"o/Failed".to_owned(), now);
        assert_eq!(verdict, Verdict::Create);
    }

    #[test]
    fn repeats_fold_into_a_series_until_it_expires() {
        let mut c = Test::default();
        let start = Instant::now();
        assert_eq!(admit(&mut c, "o", "Ready", start), Verdict::Create);
        assert_eq!(
            admit(&mut c, "o", "Ready", start + Duration::from_secs(1)),
            Verdict::Repeat {
                name: "o.Ready".into(),
                count: 2
            }
        );
        assert_eq!(
            admit(&mut c, "o", "Ready", start + Duration::from_secs(2)),
            Verdict::Repeat {
                name: "o.Ready".into(),
                count: 3
            }
        );
        let after = start + Duration::from_secs(2) + SERIES_TTL;
        assert_eq!(admit(&mut c, "o", "Ready", after), Verdict::Create);
    }

    #[test]
    fn memory_stays_bounded_whatever_the_guests_do() {
        let mut c: Correlator<u64, (u64, u64), u64> = Correlator::default();
        let now = Instant::now();
        for object in 0..20_000u64 {
            for reason in 0..3u64 {
                if c.admit(&object, Source::Guest, &(object, reason), now) == Verdict::Create {
                    c.created((object, reason), object, now);
                }
            }
        }
        let (budgets, series) = c.kept();
        assert!(budgets <= MAX_OBJECTS, "{budgets} budgets");
        assert!(series <= MAX_SERIES, "{series} series");
    }
}
