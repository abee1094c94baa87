//! How long a failed key waits before its retry: client-go's
//! `MaxOfRateLimiter` over an `ItemExponentialFailureRateLimiter` and a
//! `BucketRateLimiter`. Time is passed in, so the arithmetic is tested
//! without a clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// The retry delay for a key: the longer of its own backoff and the wait for
/// a token from the bucket shared by all keys of the queue.
#[derive(Debug)]
pub(super) struct RateLimiter<K> {
    backoff: Backoff<K>,
    bucket: TokenBucket,
}

impl<K: Eq + Hash> RateLimiter<K> {
    pub(super) fn new(backoff: Backoff<K>, bucket: TokenBucket) -> Self {
        RateLimiter { backoff, bucket }
    }

    /// Counts a failure of `key` and returns how long to wait before retrying.
    /// Both limiters are charged, as in client-go, so a key's backoff grows
    /// even while the bucket is the binding limit.
    pub(super) fn when(&mut self, key: K, now: Instant) -> Duration {
        let backoff = self.backoff.when(key);
        let bucket = self.bucket.reserve(now);
        backoff.max(bucket)
    }

    pub(super) fn forget(&mut self, key: &K) {
        self.backoff.forget(key);
    }

    pub(super) fn retries(&self, key: &K) -> u32 {
        self.backoff.retries(key)
    }
}

/// Per-key exponential backoff: `base * 2^failures`, capped at `max`.
#[derive(Debug)]
pub(super) struct Backoff<K> {
    base: Duration,
    max: Duration,
    failures: HashMap<K, u32>,
}

impl<K: Eq + Hash> Backoff<K> {
    pub(super) fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            failures: HashMap::new(),
        }
    }

    fn when(&mut self, key: K) -> Duration {
        let failures = self.failures.entry(key).or_insert(0);
        let exponent = *failures;
        *failures = failures.saturating_add(1);
        // Past 2^31 the factor overflows long after the cap was reached, so
        // an overflow simply means "the cap".
        2u32.checked_pow(exponent)
            .and_then(|factor| self.base.checked_mul(factor))
            .map_or(self.max, |delay| delay.min(self.max))
    }

    fn forget(&mut self, key: &K) {
        self.failures.remove(key);
    }

    fn retries(&self, key: &K) -> u32 {
        self.failures.get(key).copied().unwrap_or(0)
    }
}

/// A token bucket with reservations, as `golang.org/x/time/rate` behind
/// client-go's `BucketRateLimiter`: every call takes a token, going into
/// debt when none is left, and is told how long until its token exists.
#[derive(Debug)]
pub(super) struct TokenBucket {
    /// Tokens per second; `None` when the bucket is off.
    qps: Option<f64>,
    burst: f64,
    /// Negative while later callers hold reservations on future tokens.
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. A `qps` that is not a positive finite number turns the
    /// bucket off (as `rate.Inf` does); a `burst` of 0 is taken as 1, since a
    /// bucket that cannot hold a token would never let a retry through.
    pub(super) fn new(qps: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            qps: (qps.is_finite() && qps > 0.0).then_some(qps),
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn reserve(&mut self, now: Instant) -> Duration {
        let Some(qps) = self.qps else {
            return Duration::ZERO;
        };
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * qps).min(self.burst);
        self.last = self.last.max(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::try_from_secs_f64(-self.tokens / qps).unwrap_or(Duration::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1000);

    fn millis(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn backoff_doubles_from_base_and_caps() {
        let mut backoff = Backoff::new(BASE, MAX);
        let delays: Vec<_> = (0..5).map(|_| backoff.when("a")).collect();
        assert_eq!(
            delays,
            [millis(5), millis(10), millis(20), millis(40), millis(80)]
        );
        assert_eq!(backoff.retries(&"a"), 5);

        // 5 ms * 2^18 is about 1311 s, so the cap holds from the 19th failure
        // on, and keeps holding where 2^n no longer fits in a u32.
        let later: Vec<_> = (5..100).map(|_| backoff.when("a")).collect();
        assert_eq!(later[17 - 5], millis(5 << 17));
        assert!(later[18 - 5..].iter().all(|&delay| delay == MAX));
    }

    #[test]
    fn backoff_is_per_key_and_forget_resets_it() {
        let mut backoff = Backoff::new(BASE, MAX);
        backoff.when("a");
        backoff.when("a");
        assert_eq!(backoff.when("b"), BASE);

        backoff.forget(&"a");
        assert_eq!(backoff.retries(&"a"), 0);
        assert_eq!(backoff.when("a"), BASE);
        assert_eq!(backoff.retries(&"b"), 1);
    }

    #[test]
    fn bucket_lets_the_burst_through_then_spaces_calls_by_qps() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(4.0, 3, now);
        let delays: Vec<_> = (0..5).map(|_| bucket.reserve(now)).collect();
        assert_eq!(
            delays,
            [
                Duration::ZERO,
                Duration::ZERO,
                Duration::ZERO,
                millis(250),
                millis(500)
            ]
        );
    }

    #[test]
    fn bucket_refills_with_time_but_not_past_the_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(4.0, 2, start);
        bucket.reserve(start);
        bucket.reserve(start);
        assert_eq!(bucket.reserve(start), millis(250));

        // The reservation above spent the token of the first 250 ms.
        let later = start + millis(500);
        assert_eq!(bucket.reserve(later), Duration::ZERO);
        assert_eq!(bucket.reserve(later), millis(250));

        // A long idle spell refills only up to the burst.
        let idle = later + Duration::from_secs(60);
        assert_eq!(bucket.reserve(idle), Duration::ZERO);
        assert_eq!(bucket.reserve(idle), Duration::ZERO);
        assert_eq!(bucket.reserve(idle), millis(250));
    }

    #[test]
    fn bucket_without_a_positive_rate_never_delays() {
        let now = Instant::now();
        for qps in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut bucket = TokenBucket::new(qps, 1, now);
            assert!((0..10).all(|_| bucket.reserve(now) == Duration::ZERO));
        }
    }

    #[test]
    fn retry_delay_is_the_longer_of_backoff_and_bucket() {
        let now = Instant::now();
        let mut limiter = RateLimiter::new(Backoff::new(BASE, MAX), TokenBucket::new(4.0, 1, now));
        // Token available: the backoff decides.
        assert_eq!(limiter.when("a", now), BASE);
        // Bucket empty: its 250 ms beats b's first 5 ms.
        assert_eq!(limiter.when("b", now), millis(250));
        // Both were charged: b's next backoff is the doubled one.
        assert_eq!(limiter.retries(&"b"), 1);
        limiter.forget(&"b");
        assert_eq!(limiter.retries(&"b"), 0);
    }
}
