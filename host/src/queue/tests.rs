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
