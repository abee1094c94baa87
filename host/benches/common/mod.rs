//! What the benchmarks share.

// Each benchmark links this module and uses part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

pub mod counting;

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

/// Two sides timed in alternating rounds of `batch` calls each, so that both
/// see the same machine (a noisy neighbour, a frequency change): the medians
/// per call, and the quartiles of the per-round ratio `b / a`.
pub struct Paired {
    pub a: Duration,
    pub b: Duration,
    /// The 25th, 50th and 75th percentile of `b / a` over the rounds.
    pub ratio: [f64; 3],
}

/// Times `a` and `b` in `rounds` alternating rounds of `batch` calls.
pub fn paired(rounds: usize, batch: u32, mut a: impl FnMut(), mut b: impl FnMut()) -> Paired {
    let time = |f: &mut dyn FnMut()| {
        let started = Instant::now();
        for _ in 0..batch {
            f();
        }
        started.elapsed() / batch
    };
    let mut a_times = Vec::with_capacity(rounds);
    let mut b_times = Vec::with_capacity(rounds);
    let mut ratios = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let (ta, tb) = (time(&mut a), time(&mut b));
        a_times.push(ta);
        b_times.push(tb);
        ratios.push(tb.as_secs_f64() / ta.as_secs_f64());
    }
    a_times.sort();
    b_times.sort();
    ratios.sort_by(f64::total_cmp);
    let quantile = |q: usize| ratios[(rounds - 1) * q / 4];
    Paired {
        a: a_times[rounds / 2],
        b: b_times[rounds / 2],
        ratio: [quantile(1), quantile(2), quantile(3)],
    }
}

/// A due `At` whose JSON is about `kb` KiB, padded with annotations as real
/// objects are (last-applied-configuration, tooling notes).
pub fn at_of_size(kb: usize) -> cnat::At {
    let mut at = cnat::At {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("bench".into()),
            namespace: Some("default".into()),
            uid: Some("0b7e4c1a-1111-4222-8333-444455556666".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: cnat::AtSpec {
            schedule: "2026-12-01T10:00:00Z".into(),
            command: "echo YAY".into(),
        },
        status: None,
    };
    let mut annotations = std::collections::BTreeMap::new();
    let mut i = 0;
    while serde_json::to_vec(&at).unwrap().len() < kb * 1024 {
        annotations.insert(format!("bench.bosun.dev/note-{i}"), "x".repeat(100));
        at.metadata.annotations = Some(annotations.clone());
        i += 1;
    }
    at
}
