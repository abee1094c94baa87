//! The work queue: one slot per object key, delayed entries, per-key
//! exponential backoff under a global token bucket, and a concurrency cap.
//!
//! One [`WorkQueue`] serves one controller. It follows client-go's
//! workqueue: a key is in at most one slot however often it is added, a key
//! is never handed to two workers at once, and a key added while a worker
//! holds it comes back once that worker is done. Workers take keys with
//! [`WorkQueue::next`], which hands out a [`Claim`]; dropping the claim
//! returns the worker's slot.
//!
//! # Priorities, and how they age
//!
//! A key is queued at a [`Priority`]. `Low` is for work that sweeps over
//! every object at once (the first list, a resync, a new version or new
//! settings of the module), `High` for a real change of one object;
//! [`add`](WorkQueue::add), [`add_after`](WorkQueue::add_after) and
//! [`add_rate_limited`](WorkQueue::add_rate_limited) queue at `High`. A change made while
//! 10,000 keys of a sweep wait then goes ahead of them instead of behind, as
//! with controller-runtime's priority queue. Unlike that queue, priorities
//! here age, so a steady stream of `High` keys cannot starve `Low` ones.
//!
//! Ready keys are served by *virtual time*, earliest first: the time a key
//! became ready, plus [`QueueConfig::low_priority_lag`] for a `Low` key. On
//! a tie `High` goes first; among keys of one priority the first ready goes
//! first, as it did before priorities. Hence:
//!
//! - a `High` key goes ahead of every `Low` key that became ready less than
//!   the lag before it, which is all of a storm younger than the lag;
//! - a `Low` key is overtaken only by `High` keys that became ready within
//!   the lag after it, so it waits at most the lag behind later `High` work.
//!
//! The default lag is 2 minutes, because it must outlast a storm: once a
//! storm's keys have been ready for longer than the lag, changes made after
//! that queue behind what is left of it. A 10,000-object first list drained
//! at a few hundred reconciles a second takes 30 to 50 s; 2 minutes covers
//! it down to about 85 a second, and is still a short hold-up for a resync
//! or a module's new version behind a flood of real changes.
//!
//! Keys not yet due wait apart from the ready ones, by due time, and join
//! the ready line of their priority once due, with their due time as the
//! time they became ready. A key that is not yet due thus never holds back a
//! ready one, and a sleeping worker wakes at the earliest due time.
//!
//! A key still has one slot, whatever its priority: adding it again keeps
//! the earlier time and the higher priority. A `Low` key added at `High` is
//! raised and keeps the time it has been ready since (or takes the earlier
//! due time, if it was delayed); a `High` key added at `Low` stays `High`.
//! A key added while a worker holds it comes back with the highest priority
//! and earliest time asked for meanwhile.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use bosun::queue::{QueueConfig, QueueObserver, WorkQueue};
//! # struct Quiet;
//! # impl QueueObserver for Quiet {}
//! # async fn reconcile(_: &String) -> Result<(), ()> { Ok(()) }
//! # async fn run() {
//! let queue = WorkQueue::new(QueueConfig::default(), Arc::new(Quiet));
//! queue.add("default/web".to_string());
//! while let Some(claim) = queue.next().await {
//!     let queue = queue.clone();
//!     tokio::spawn(async move {
//!         match reconcile(claim.key()).await {
//!             Ok(()) => queue.forget(claim.key()),
//!             Err(()) => {
//!                 queue.add_rate_limited(claim.key().clone());
//!             }
//!         }
//!     });
//! }
//! # }
//! ```

mod limiter;
mod line;
mod slots;

use std::fmt;
use std::hash::Hash;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

use self::limiter::{Backoff, RateLimiter, TokenBucket};
use self::slots::Slots;

/// Receives the queue's measurements, as client-go's `MetricsProvider` does;
/// telemetry implements it per controller. Every method defaults to nothing.
pub trait QueueObserver: Send + Sync {
    /// A key was added (also when it merged with a pending one).
    fn added(&self) {}
    /// A key was re-added with backoff after an error.
    fn retried(&self) {}
    /// The number of keys waiting (ready or delayed), after a change.
    fn depth(&self, depth: usize) {
        let _ = depth;
    }
    /// How long a key waited between becoming ready and being handed out.
    fn waited(&self, latency: Duration) {
        let _ = latency;
    }
    /// How long a key was held by a worker.
    fn worked(&self, duration: Duration) {
        let _ = duration;
    }
    /// The number of keys being worked on, after a change.
    fn active(&self, workers: usize) {
        let _ = workers;
    }
}

/// How a [`WorkQueue`] paces its workers and retries. The defaults are
/// client-go's (`DefaultControllerRateLimiter`), with four workers.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// The most keys out with workers at once. Reconciles mostly wait on the
    /// API server, so several in flight hide that latency, while the cap
    /// keeps one busy module from taking every instance and thread.
    /// Default 16: measured beside kube-runtime's unbounded default (2,000
    /// objects created by 8 clients, `cargo xtask bench --only
    /// concurrency`, and kube-rs's controller-rs), 4 left a backlog of 6
    /// to 10 s after the last create and 16 none, for the same CPU and
    /// memory; 32 bought nothing more, the API server being the limit. A
    /// guest instance is held only for the guest call, and every module's
    /// calls share the engine's pool, so waiting slots cost nothing; the
    /// host also caps this at the pool's size. 0 hands out nothing until
    /// raised with [`WorkQueue::set_concurrency`].
    pub concurrency: usize,
    /// A key's delay after its first failure, doubled after each further
    /// one. Default 5 ms.
    pub backoff_base: Duration,
    /// The most a key's own backoff grows to. Default 1000 s.
    pub backoff_max: Duration,
    /// Retries per second let through by the bucket shared by all keys once
    /// its burst is spent. Default 10; a value that is not a positive finite
    /// number turns the bucket off.
    pub qps: f64,
    /// Retries the shared bucket lets through at once. Default 100; 0 is
    /// taken as 1.
    pub burst: u32,
    /// How long a [`Priority::Low`] key may be overtaken: it goes ahead of
    /// `High` keys that became ready more than this after it did, so it
    /// waits at most this long behind later `High` work.
    ///
    /// Default 2 minutes. It has to outlast a storm, or real changes made
    /// late in the storm queue behind what is left of it: a 10,000-object
    /// first list drained at a few hundred reconciles a second takes 30 to
    /// 50 s, and 2 minutes still covers it at 85 a second. It is also the
    /// most a resync or a new module version is held back by a steady
    /// stream of real changes, which is short beside the minutes or hours
    /// between resyncs.
    pub low_priority_lag: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            concurrency: 16,
            backoff_base: Duration::from_millis(5),
            backoff_max: Duration::from_secs(1000),
            qps: 10.0,
            burst: 100,
            low_priority_lag: Duration::from_secs(120),
        }
    }
}

/// How urgent a key is. Among ready keys, `High` ones go first, unless a
/// `Low` key has been ready for longer than
/// [`QueueConfig::low_priority_lag`] before them; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Work that sweeps over everything: the first list, a resync, a new
    /// version or settings of the module.
    Low,
    /// A real change of one object, a requeue the guest asked for, a retry.
    High,
}

/// A controller's queue of object keys. Cloning gives another handle to the
/// same queue.
///
/// Depth ([`len`](Self::len)) counts keys waiting, ready or delayed, and
/// also a key re-added while a worker holds it, since that is work still to
/// do; the keys being worked on are counted by [`QueueObserver::active`].
pub struct WorkQueue<K> {
    shared: Arc<Shared<K>>,
}

struct Shared<K> {
    state: Mutex<State<K>>,
    retries: Mutex<RateLimiter<K>>,
    /// Woken whenever a waiting worker might now get a key: one was added
    /// or moved earlier, a claim was dropped, the cap rose, or shutdown.
    changed: Notify,
    observer: Arc<dyn QueueObserver>,
}

struct State<K> {
    slots: Slots<K>,
    concurrency: usize,
    shut_down: bool,
}

impl<K> Shared<K> {
    // A panic elsewhere (an observer, say) leaves the slots consistent, since
    // observers are called after each change; the queue keeps working.
    fn state(&self) -> MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn retries(&self) -> MutexGuard<'_, RateLimiter<K>> {
        self.retries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        WorkQueue {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K> fmt::Debug for WorkQueue<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.state();
        f.debug_struct("WorkQueue")
            .field("waiting", &state.slots.len())
            .field("active", &state.slots.claimed())
            .field("concurrency", &state.concurrency)
            .field("shut_down", &state.shut_down)
            .finish()
    }
}

impl<K: Clone + Eq + Hash + Send + Sync + 'static> WorkQueue<K> {
    /// An empty queue. The observer is called with the queue's lock held, so
    /// that gauges see changes in order; it must be quick and must not call
    /// back into this queue.
    pub fn new(config: QueueConfig, observer: Arc<dyn QueueObserver>) -> Self {
        let retries = RateLimiter::new(
            Backoff::new(config.backoff_base, config.backoff_max),
            TokenBucket::new(config.qps, config.burst, Instant::now()),
        );
        WorkQueue {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    slots: Slots::new(config.low_priority_lag),
                    concurrency: config.concurrency,
                    shut_down: false,
                }),
                retries: Mutex::new(retries),
                changed: Notify::new(),
                observer,
            }),
        }
    }

    /// Makes `key` ready now, at [`Priority::High`]. A key already waiting
    /// keeps its slot and becomes ready now if it was delayed; a key held by
    /// a worker comes back once the worker is done. Ignored after
    /// [`shutdown`](Self::shutdown).
    pub fn add(&self, key: K) {
        self.add_with(key, Priority::High);
    }

    /// Makes `key` ready after `delay`, at [`Priority::High`]. A key already
    /// waiting keeps its slot and whichever time is earlier, so this never
    /// postpones it. Ignored after [`shutdown`](Self::shutdown).
    pub fn add_after(&self, key: K, delay: Duration) {
        self.add_after_with(key, delay, Priority::High);
    }

    /// [`add`](Self::add) at `priority`. A key already waiting, or held by a
    /// worker, keeps the higher of its priority and this one: `Low` never
    /// lowers a key, `High` raises one, which keeps the time it has been
    /// ready since.
    pub fn add_with(&self, key: K, priority: Priority) {
        self.enqueue(key, Instant::now(), priority, false);
    }

    /// [`add_after`](Self::add_after) at `priority`, merged as in
    /// [`add_with`](Self::add_with).
    pub fn add_after_with(&self, key: K, delay: Duration, priority: Priority) {
        self.enqueue(key, deadline(delay), priority, false);
    }

    /// Re-adds `key` after a failed reconcile and returns its delay: the
    /// longer of its own backoff (`backoff_base * 2^retries`, capped at
    /// `backoff_max`) and the wait for a token from the bucket shared by all
    /// keys. Counts a retry, until [`forget`](Self::forget).
    pub fn add_rate_limited(&self, key: K) -> Duration {
        let delay = self.shared.retries().when(key.clone(), Instant::now());
        self.enqueue(key, deadline(delay), Priority::High, true);
        delay
    }

    /// Clears `key`'s backoff; call it when a reconcile succeeds, or when the
    /// object is gone, since retry counts are kept until then.
    pub fn forget(&self, key: &K) {
        self.shared.retries().forget(key);
    }

    /// How often `key` was re-added with [`add_rate_limited`](Self::add_rate_limited)
    /// since it was last forgotten.
    pub fn retries(&self, key: &K) -> u32 {
        self.shared.retries().retries(key)
    }

    fn enqueue(&self, key: K, due: Instant, priority: Priority, retry: bool) {
        let shared = &*self.shared;
        let mut state = shared.state();
        if state.shut_down {
            return;
        }
        let before = state.slots.len();
        let moved = state.slots.add(key, due, priority);
        shared.observer.added();
        if retry {
            shared.observer.retried();
        }
        let depth = state.slots.len();
        if depth != before {
            shared.observer.depth(depth);
        }
        drop(state);
        if moved {
            shared.changed.notify_waiters();
        }
    }

    /// Waits for a ready key and a free worker slot, and hands the key out.
    /// Among ready keys, `High` ones go first and each priority is first
    /// ready, first served, until a `Low` key ages past the lag (see the
    /// module docs). Returns `None` once
    /// the queue is shut down, at once: keys still waiting are dropped.
    ///
    /// Cancel safe: a key is taken only in the poll that returns it.
    pub async fn next(&self) -> Option<Claim<K>> {
        let shared = &self.shared;
        loop {
            // Registered before looking, so a change made after the look
            // wakes this worker instead of being missed.
            let mut changed = pin!(shared.changed.notified());
            changed.as_mut().enable();
            let wake_at = {
                let mut state = shared.state();
                if state.shut_down {
                    return None;
                }
                if state.slots.claimed() >= state.concurrency {
                    None
                } else {
                    let now = Instant::now();
                    if let Some((key, ready_since)) = state.slots.take(now) {
                        let waited = now.saturating_duration_since(ready_since);
                        shared.observer.waited(waited);
                        shared.observer.depth(state.slots.len());
                        shared.observer.active(state.slots.claimed());
                        return Some(Claim {
                            key,
                            since: now,
                            waited,
                            shared: Arc::clone(shared),
                        });
                    }
                    state.slots.next_due()
                }
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        () = changed => {}
                        () = sleep_until(at) => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    /// Changes the most keys out with workers at once. Claims already out
    /// are kept; lowering the cap only holds back the next hand-outs.
    pub fn set_concurrency(&self, concurrency: usize) {
        self.shared.state().concurrency = concurrency;
        self.shared.changed.notify_waiters();
    }

    /// The number of keys waiting, ready or delayed (see the type's docs).
    #[must_use]
    pub fn len(&self) -> usize {
        self.shared.state().slots.len()
    }

    /// Whether no key is waiting.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops the queue: [`next`](Self::next) returns `None` from now on,
    /// waiting keys are dropped and later adds ignored. Claims already out
    /// stay valid until dropped.
    pub fn shutdown(&self) {
        let shared = &*self.shared;
        let mut state = shared.state();
        if state.shut_down {
            return;
        }
        state.shut_down = true;
        let dropped = state.slots.len();
        state.slots.clear_waiting();
        if dropped > 0 {
            shared.observer.depth(0);
        }
        drop(state);
        shared.changed.notify_waiters();
    }
}

/// When something `delay` from now is due. A delay too long to represent is
/// as good as never; tokio uses the same 30-year horizon for that.
fn deadline(delay: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(delay)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}

/// A key handed to a worker by [`WorkQueue::next`].
///
/// While the claim lives the key is not handed out again; adds of the same
/// key meanwhile are merged and remembered, and the key becomes ready again
/// (at the earliest requested time, at the highest requested priority) when
/// the claim is dropped, as with client-go's dirty and processing sets. Dropping the claim, also by a
/// panic unwinding the worker, frees the worker slot.
#[must_use = "dropping the claim at once ends the work on its key"]
pub struct Claim<K: Clone + Eq + Hash> {
    key: K,
    since: Instant,
    waited: Duration,
    shared: Arc<Shared<K>>,
}

impl<K: Clone + Eq + Hash> Claim<K> {
    /// The key to work on.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// How long the key was ready before a worker took it (the queue wait
    /// the work-queue metrics count).
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

impl<K: Clone + Eq + Hash + fmt::Debug> fmt::Debug for Claim<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claim").field("key", &self.key).finish()
    }
}

impl<K: Clone + Eq + Hash> Drop for Claim<K> {
    fn drop(&mut self) {
        let shared = &*self.shared;
        let mut state = shared.state();
        let now = Instant::now();
        state.slots.release(&self.key, now);
        shared
            .observer
            .worked(now.saturating_duration_since(self.since));
        shared.observer.active(state.slots.claimed());
        drop(state);
        shared.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests;
