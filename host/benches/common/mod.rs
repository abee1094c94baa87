//! What the benchmarks share.

use std::time::{Duration, Instant};

/// Median of `rounds` timings of `f`, each over `batch` calls.
pub fn median_per_call(rounds: usize, batch: u32, mut f: impl FnMut()) -> Duration {
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..batch {
                f();
            }
            started.elapsed() / batch
        })
        .collect();
    samples.sort();
    samples[rounds / 2]
}
