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
    /// API server, so a few in flight hide that latency, while the cap keeps
    /// one busy module from taking every instance and thread. Default 4;
    /// 0 hands out nothing until raised with [`WorkQueue::set_concurrency`].
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
            concurrency: 4,
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
                        shared
                            .observer
                            .waited(now.saturating_duration_since(ready_since));
                        shared.observer.depth(state.slots.len());
                        shared.observer.active(state.slots.claimed());
                        return Some(Claim {
                            key,
                            since: now,
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
    shared: Arc<Shared<K>>,
}

impl<K: Clone + Eq + Hash> Claim<K> {
    /// The key to work on.
    pub fn key(&self) -> &K {
        &self.key
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
mod tests {
    use std::collections::HashSet;
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::{FutureExt, poll};

    use super::*;

    /// Long enough that only a missed wake-up, never a slow machine, hits it.
    const PATIENCE: Duration = Duration::from_secs(10);
    const HOUR: Duration = Duration::from_secs(3600);

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Event {
        Added,
        Retried,
        Depth(usize),
        Waited,
        Worked,
        Active(usize),
    }

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Event>>);

    impl Recorder {
        fn take(&self) -> Vec<Event> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    impl QueueObserver for Recorder {
        fn added(&self) {
            self.0.lock().unwrap().push(Event::Added);
        }
        fn retried(&self) {
            self.0.lock().unwrap().push(Event::Retried);
        }
        fn depth(&self, depth: usize) {
            self.0.lock().unwrap().push(Event::Depth(depth));
        }
        fn waited(&self, _: Duration) {
            self.0.lock().unwrap().push(Event::Waited);
        }
        fn worked(&self, _: Duration) {
            self.0.lock().unwrap().push(Event::Worked);
        }
        fn active(&self, workers: usize) {
            self.0.lock().unwrap().push(Event::Active(workers));
        }
    }

    struct Quiet;
    impl QueueObserver for Quiet {}

    fn queue(concurrency: usize) -> WorkQueue<&'static str> {
        let config = QueueConfig {
            concurrency,
            ..QueueConfig::default()
        };
        WorkQueue::new(config, Arc::new(Quiet))
    }

    fn queue_with_lag(low_priority_lag: Duration) -> WorkQueue<&'static str> {
        let config = QueueConfig {
            low_priority_lag,
            ..QueueConfig::default()
        };
        WorkQueue::new(config, Arc::new(Quiet))
    }

    fn drain(queue: &WorkQueue<&'static str>) -> Vec<&'static str> {
        let claims: Vec<_> = std::iter::from_fn(|| ready_now(queue)).collect();
        claims.iter().map(|claim| *claim.key()).collect()
    }

    async fn within<F: Future>(future: F) -> F::Output {
        tokio::time::timeout(PATIENCE, future)
            .await
            .expect("a waiting worker was never woken")
    }

    fn ready_now(queue: &WorkQueue<&'static str>) -> Option<Claim<&'static str>> {
        queue.next().now_or_never().flatten()
    }

    #[tokio::test]
    async fn duplicate_adds_merge_into_one_claim() {
        let queue = queue(4);
        queue.add("a");
        queue.add("a");
        queue.add_after("a", HOUR);
        assert_eq!(queue.len(), 1);

        let claim = ready_now(&queue).expect("a is ready");
        assert_eq!(*claim.key(), "a");
        assert!(queue.is_empty());
        assert!(ready_now(&queue).is_none(), "a was handed out twice");
    }

    #[tokio::test]
    async fn delayed_key_is_handed_out_at_its_time_and_not_before() {
        let queue = queue(4);
        let delay = Duration::from_millis(30);
        let start = Instant::now();
        queue.add_after("a", delay);

        let mut next = pin!(queue.next());
        assert!(poll!(next.as_mut()).is_pending());
        let claim = within(next).await.expect("a fell due");
        assert_eq!(*claim.key(), "a");
        assert!(Instant::now() >= start + delay);
    }

    #[tokio::test]
    async fn earlier_time_wakes_a_sleeping_worker_and_later_does_not_postpone() {
        let queue = queue(4);
        queue.add_after("a", HOUR);
        let mut next = pin!(queue.next());
        assert!(poll!(next.as_mut()).is_pending());

        queue.add_after("a", Duration::from_millis(10));
        queue.add_after("a", 2 * HOUR);
        assert_eq!(queue.len(), 1);
        let claim = within(next).await.expect("a fell due");
        assert_eq!(*claim.key(), "a");
    }

    #[tokio::test]
    async fn add_makes_a_delayed_key_ready_now() {
        let queue = queue(4);
        queue.add_after("a", HOUR);
        let mut next = pin!(queue.next());
        assert!(poll!(next.as_mut()).is_pending());

        queue.add("a");
        let claim = within(next).await.expect("a is ready");
        assert_eq!(*claim.key(), "a");
    }

    #[tokio::test]
    async fn first_ready_is_first_served() {
        let queue = queue(4);
        for key in ["c", "a", "b", "a"] {
            queue.add(key);
        }
        let claims: Vec<_> = std::iter::from_fn(|| ready_now(&queue)).collect();
        let keys: Vec<_> = claims.iter().map(|claim| *claim.key()).collect();
        assert_eq!(keys, ["c", "a", "b"]);
    }

    #[tokio::test]
    async fn key_readded_while_claimed_comes_back_once_after_drop() {
        let queue = queue(4);
        queue.add("a");
        let claim = ready_now(&queue).expect("a is ready");

        queue.add("a");
        queue.add("a");
        assert_eq!(queue.len(), 1);
        let mut next = pin!(queue.next());
        assert!(
            poll!(next.as_mut()).is_pending(),
            "a was handed out twice at once"
        );

        drop(claim);
        let again = within(next).await.expect("a came back");
        assert_eq!(*again.key(), "a");
        drop(again);
        assert!(ready_now(&queue).is_none(), "a came back more than once");
    }

    #[tokio::test]
    async fn concurrency_cap_holds_until_a_claim_drops() {
        let queue = queue(2);
        for key in ["a", "b", "c", "d", "e"] {
            queue.add(key);
        }
        let first = ready_now(&queue).expect("a is ready");
        let _second = ready_now(&queue).expect("b is ready");

        let mut third = pin!(queue.next());
        assert!(poll!(third.as_mut()).is_pending(), "a third worker started");
        assert_eq!(queue.len(), 3);

        drop(first);
        let third = within(third).await.expect("c is ready");
        assert_eq!(*third.key(), "c");
        assert!(ready_now(&queue).is_none(), "a third worker started");
    }

    #[tokio::test]
    async fn set_concurrency_applies_to_the_next_hand_outs() {
        let queue = queue(1);
        for key in ["a", "b", "c"] {
            queue.add(key);
        }
        let first = ready_now(&queue).expect("a is ready");
        let mut second = pin!(queue.next());
        assert!(poll!(second.as_mut()).is_pending());

        queue.set_concurrency(2);
        let second = within(second).await.expect("b is ready");
        assert_eq!(*second.key(), "b");

        // Lowering the cap keeps both claims but holds back c until the
        // number out is below it again.
        queue.set_concurrency(1);
        drop(first);
        assert!(ready_now(&queue).is_none());
        drop(second);
        assert_eq!(ready_now(&queue).map(|claim| *claim.key()), Some("c"));
    }

    #[tokio::test]
    async fn panicking_worker_frees_its_slot() {
        let queue = queue(1);
        queue.add("a");
        queue.add("b");
        let claim = ready_now(&queue).expect("a is ready");
        let worker = tokio::spawn(async move {
            let _claim = claim;
            panic!("reconcile blew up");
        });
        assert!(worker.await.is_err());
        assert_eq!(ready_now(&queue).map(|claim| *claim.key()), Some("b"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn workers_never_hold_one_key_at_once() {
        const ROUNDS: usize = 200;
        // Fewer keys than free slots, so a wrongly offered key is taken.
        let queue = queue(4);
        let held = Arc::new(Mutex::new(HashSet::new()));
        let done = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for _ in 0..4 {
            let (queue, held, done) = (queue.clone(), Arc::clone(&held), Arc::clone(&done));
            workers.push(tokio::spawn(async move {
                while let Some(claim) = queue.next().await {
                    let key = *claim.key();
                    assert!(
                        held.lock().unwrap().insert(key),
                        "{key} held by two workers"
                    );
                    // Re-adding the key while holding it, then holding it
                    // across a real pause, gives other workers the time to
                    // take it if the queue wrongly offered it.
                    queue.add(key);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    held.lock().unwrap().remove(&key);
                    if done.fetch_add(1, Ordering::SeqCst) + 1 == ROUNDS {
                        queue.shutdown();
                    }
                }
            }));
        }
        queue.add("a");
        queue.add("b");
        for worker in workers {
            within(worker).await.expect("a worker failed");
        }
        assert!(done.load(Ordering::SeqCst) >= ROUNDS);
    }

    #[tokio::test]
    async fn retry_delays_double_from_the_base_and_forget_resets_them() {
        let queue = queue(4);
        let delays: Vec<_> = (0..3).map(|_| queue.add_rate_limited("a")).collect();
        let ms = Duration::from_millis;
        assert_eq!(delays, [ms(5), ms(10), ms(20)]);
        assert_eq!(queue.retries(&"a"), 3);
        assert_eq!(queue.len(), 1);

        queue.forget(&"a");
        assert_eq!(queue.retries(&"a"), 0);
        assert_eq!(queue.add_rate_limited("a"), ms(5));
    }

    #[tokio::test]
    async fn spent_burst_delays_retries_of_every_key() {
        let config = QueueConfig {
            qps: 0.01,
            burst: 2,
            ..QueueConfig::default()
        };
        let queue = WorkQueue::new(config, Arc::new(Quiet));
        assert_eq!(queue.add_rate_limited("a"), Duration::from_millis(5));
        assert_eq!(queue.add_rate_limited("b"), Duration::from_millis(5));
        // c has never failed, but the bucket is empty: it waits one token
        // period (100 s), less the moments since the queue was made.
        let delay = queue.add_rate_limited("c");
        assert!(delay > Duration::from_secs(90) && delay <= Duration::from_secs(100));
    }

    #[tokio::test]
    async fn shutdown_ends_next_and_drops_waiting_keys() {
        let queue = queue(1);
        queue.add("a");
        queue.add("b");
        queue.add_after("c", HOUR);
        let claim = ready_now(&queue).expect("a is ready");
        let mut waiting = pin!(queue.next());
        assert!(poll!(waiting.as_mut()).is_pending());

        queue.shutdown();
        assert!(within(waiting).await.is_none());
        assert!(queue.is_empty());
        queue.add("d");
        assert!(queue.is_empty(), "an add after shutdown was kept");

        // The claim in flight stays valid and its release frees nothing new.
        assert_eq!(*claim.key(), "a");
        drop(claim);
        assert!(queue.next().await.is_none());
    }

    #[tokio::test]
    async fn observer_sees_adds_retries_depth_and_workers() {
        use Event::*;
        let recorder = Arc::new(Recorder::default());
        let queue = WorkQueue::new(QueueConfig::default(), recorder.clone());

        queue.add("a");
        queue.add("a");
        queue.add_rate_limited("b");
        assert_eq!(
            recorder.take(),
            [Added, Depth(1), Added, Added, Retried, Depth(2)]
        );

        let claim = ready_now(&queue).expect("a is ready");
        assert_eq!(recorder.take(), [Waited, Depth(1), Active(1)]);

        queue.add("a");
        assert_eq!(recorder.take(), [Added, Depth(2)]);
        drop(claim);
        assert_eq!(recorder.take(), [Worked, Active(0)]);

        queue.shutdown();
        assert_eq!(recorder.take(), [Depth(0)]);
    }

    #[tokio::test]
    async fn high_priority_keys_go_ahead_of_ready_low_ones() {
        let queue = queue(16);
        queue.add_with("list-1", Priority::Low);
        queue.add_with("list-2", Priority::Low);
        queue.add_with("change-1", Priority::High);
        queue.add("change-2");
        queue.add_with("list-3", Priority::Low);
        queue.add_with("change-3", Priority::High);
        assert_eq!(
            drain(&queue),
            [
                "change-1", "change-2", "change-3", "list-1", "list-2", "list-3"
            ]
        );
    }

    #[tokio::test]
    async fn low_key_goes_ahead_of_newer_high_keys_only_once_older_than_the_lag() {
        let young = queue_with_lag(HOUR);
        young.add_with("list", Priority::Low);
        young.add("change");
        assert_eq!(drain(&young), ["change", "list"]);

        let lag = Duration::from_millis(20);
        let aged = queue_with_lag(lag);
        aged.add_with("list", Priority::Low);
        tokio::time::sleep(2 * lag).await;
        aged.add("change");
        assert_eq!(drain(&aged), ["list", "change"]);
    }

    #[tokio::test]
    async fn delayed_high_key_does_not_hold_back_a_ready_low_key() {
        let queue = queue(4);
        queue.add_after("requeue", HOUR);
        queue.add_with("list", Priority::Low);
        assert_eq!(drain(&queue), ["list"]);
        assert_eq!(queue.len(), 1, "the delayed key still waits");
    }

    #[tokio::test]
    async fn adding_high_raises_a_waiting_low_key() {
        let queue = queue(4);
        queue.add_with("a", Priority::Low);
        queue.add_with("b", Priority::Low);
        queue.add_after_with("c", HOUR, Priority::Low);
        queue.add_with("d", Priority::Low);

        queue.add("b");
        queue.add_with("c", Priority::High);
        queue.add_with("b", Priority::Low);
        assert_eq!(queue.len(), 4);
        assert_eq!(drain(&queue), ["b", "c", "a", "d"]);
    }

    #[tokio::test]
    async fn key_readded_while_claimed_keeps_the_higher_priority() {
        let queue = queue(4);
        queue.add("a");
        let claim = ready_now(&queue).expect("a is ready");
        queue.add("a");
        queue.add_with("a", Priority::Low);
        queue.add_with("list", Priority::Low);
        assert_eq!(queue.len(), 2);

        drop(claim);
        assert_eq!(drain(&queue), ["a", "list"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn storm_of_low_keys_lets_a_real_change_through_among_the_first_hand_outs() {
        const STORM: usize = 10_000;
        const CHANGE: usize = STORM;
        const ADDED_AFTER: usize = 100;
        let queue = WorkQueue::new(QueueConfig::default(), Arc::new(Quiet));
        for key in 0..STORM {
            queue.add_with(key, Priority::Low);
        }
        let handed_out = Arc::new(Mutex::new(Vec::new()));
        let mut workers = Vec::new();
        for _ in 0..QueueConfig::default().concurrency {
            let (queue, handed_out) = (queue.clone(), Arc::clone(&handed_out));
            workers.push(tokio::spawn(async move {
                while let Some(claim) = queue.next().await {
                    {
                        let mut order = handed_out.lock().unwrap();
                        order.push(*claim.key());
                        if order.len() == ADDED_AFTER {
                            queue.add(CHANGE);
                        }
                        if order.len() == STORM + 1 {
                            queue.shutdown();
                        }
                    }
                    tokio::task::yield_now().await;
                }
            }));
        }
        for worker in workers {
            within(worker).await.expect("a worker failed");
        }

        let order = handed_out.lock().unwrap();
        assert_eq!(order.len(), STORM + 1);
        let position = order.iter().position(|&key| key == CHANGE);
        // The other three workers may each have taken a storm key before the
        // change came and recorded it after; no one takes another before it.
        assert!(
            position.is_some_and(|at| at < ADDED_AFTER + 4),
            "the change was handed out at {position:?}"
        );
    }
}
