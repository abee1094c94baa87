//! The hosts' resident memory and open file descriptors, sampled from
//! `/proc` every few seconds, and whether they stay flat after warm-up.
//!
//! The workload keeps each lane's population of objects steady (creates
//! balance deletes), so what a host must hold does not grow with time;
//! what grows with time is a leak. Each host process is a series of its
//! own (a failover ends one and starts another); a series is judged on its
//! samples after its first [`Thresholds::warm_up`], and only when those
//! span at least [`Thresholds::window`]: a shorter one is reported, not
//! judged. Judged by two measures that must both pass the threshold:
//!
//! - the growth the least-squares line predicts over the window, and
//! - the mean of the last quarter of the window over the first quarter's
//!
//! so a single spike (a compile, a burst after an API server restart)
//! does not fail a run, and a steady climb does.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::bench::controllers;

/// One sample of one host process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Since the soak started.
    pub at: Duration,
    /// Resident memory, bytes.
    pub rss: u64,
    /// Open file descriptors.
    pub fds: usize,
    /// CPU seconds so far.
    pub cpu: f64,
    /// Reconciles so far (`controller_runtime_reconcile_total`), when
    /// `/metrics` answered.
    pub reconciles: Option<f64>,
}

/// One host process's samples.
#[derive(Debug, Clone)]
pub struct Series {
    /// The instance (`steady`, `pair-2`, a Pod).
    pub id: String,
    /// Its pid.
    pub pid: u32,
    /// Its samples, in order.
    pub samples: Vec<Sample>,
}

/// Every series, by instance.
#[derive(Debug, Default)]
pub struct Samples {
    series: BTreeMap<(String, u32), Series>,
}

impl Samples {
    /// Samples process `pid` of instance `id` now (`at` since the start),
    /// with its reconcile count read from `/metrics`.
    pub fn sample(&mut self, id: &str, pid: u32, at: Duration, reconciles: Option<f64>) {
        let (Ok((rss, _)), Ok(fds), Ok(cpu)) = (
            controllers::rss_of(pid),
            controllers::open_fds_of(pid),
            controllers::cpu_seconds_of(pid),
        ) else {
            return;
        };
        self.series
            .entry((id.to_owned(), pid))
            .or_insert_with(|| Series {
                id: id.to_owned(),
                pid,
                samples: Vec::new(),
            })
            .samples
            .push(Sample {
                at,
                rss,
                fds,
                cpu,
                reconciles,
            });
    }

    /// Every series, in the order the instances first appeared.
    pub fn series(&self) -> Vec<&Series> {
        let mut all: Vec<&Series> = self.series.values().collect();
        all.sort_by_key(|s| s.samples.first().map(|s| s.at));
        all
    }
}

/// What counts as a leak.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// The start of a series left out (the first reconciles of everything,
    /// modules compiled and mapped, pools and caches filled).
    pub warm_up: Duration,
    /// The least span after warm-up a series must have to be judged.
    pub window: Duration,
    /// Growth over the window that fails a series: this many bytes ...
    pub rss_bytes: u64,
    /// ... or this share of its median, whichever is larger.
    pub rss_share: f64,
    /// Open descriptors more, last quarter against the first.
    pub fds: f64,
}

impl Thresholds {
    /// The soak's thresholds; see README ("Soak") for why these.
    pub fn new(warm_up: Duration) -> Thresholds {
        Thresholds {
            warm_up,
            window: Duration::from_secs(5 * 60),
            rss_bytes: 16 << 20,
            rss_share: 0.10,
            fds: 16.0,
        }
    }
}

/// A series measured and judged.
#[derive(Debug, Clone)]
pub struct Trend {
    /// The instance.
    pub id: String,
    /// Its pid.
    pub pid: u32,
    /// From its first to its last sample.
    pub lived: (Duration, Duration),
    /// Samples taken.
    pub samples: usize,
    /// Resident memory min, median, max over the whole series, bytes.
    pub rss: (u64, u64, u64),
    /// Open descriptors min, max over the whole series.
    pub fds: (usize, usize),
    /// (resident bytes, open descriptors) at the first sample, the first
    /// after warm-up (none when the series ended before), and the last.
    pub marks: [Option<(u64, usize)>; 3],
    /// CPU seconds over the series.
    pub cpu: f64,
    /// Reconciles the process counted, as last read (a killed process's
    /// last few seconds are missing).
    pub reconciles: f64,
    /// The span judged (after warm-up), if it was long enough.
    pub judged: Option<Duration>,
    /// After warm-up: resident memory slope, MiB per hour.
    pub rss_slope: f64,
    /// After warm-up: growth of the quarter means, bytes.
    pub rss_growth: f64,
    /// After warm-up: descriptors slope, per hour.
    pub fds_slope: f64,
    /// After warm-up: growth of the quarter means, descriptors.
    pub fds_growth: f64,
    /// Why it fails, if it does.
    pub leak: Option<String>,
}

/// Measures and judges each series. `led_from`: when each instance of
/// the pair took the Lease (since the start); a standby holds no modules
/// and no caches, so a pair host's warm-up starts when it begins to lead.
pub fn trends(
    samples: &Samples,
    thresholds: Thresholds,
    led_from: &BTreeMap<String, Duration>,
) -> Vec<Trend> {
    samples
        .series()
        .into_iter()
        .filter(|s| !s.samples.is_empty())
        .map(|series| trend(series, thresholds, led_from.get(&series.id).copied()))
        .collect()
}

fn trend(series: &Series, thresholds: Thresholds, led_from: Option<Duration>) -> Trend {
    let all = &series.samples;
    let first = all[0].at;
    let last = all[all.len() - 1].at;
    let warm_from = led_from.map_or(first, |led| led.max(first));
    let mut rss: Vec<u64> = all.iter().map(|s| s.rss).collect();
    rss.sort_unstable();
    let fds_min = all.iter().map(|s| s.fds).min().unwrap_or(0);
    let fds_max = all.iter().map(|s| s.fds).max().unwrap_or(0);
    let warm: Vec<&Sample> = all
        .iter()
        .filter(|s| s.at >= warm_from + thresholds.warm_up)
        .collect();
    let span = warm
        .last()
        .zip(warm.first())
        .map_or(Duration::ZERO, |(l, f)| l.at.saturating_sub(f.at));
    let points = |f: &dyn Fn(&Sample) -> f64| -> Vec<(f64, f64)> {
        warm.iter().map(|s| (s.at.as_secs_f64(), f(s))).collect()
    };
    let rss_points = points(&|s| s.rss as f64);
    let fds_points = points(&|s| s.fds as f64);
    let rss_slope = slope(&rss_points);
    let fds_slope = slope(&fds_points);
    let rss_growth = quarter_growth(&rss_points);
    let fds_growth = quarter_growth(&fds_points);
    let median = rss[rss.len() / 2];
    let judged = (span >= thresholds.window).then_some(span);
    let leak = judged.and_then(|span| {
        let limit = (thresholds.rss_bytes as f64).max(thresholds.rss_share * median as f64);
        let predicted = rss_slope * span.as_secs_f64();
        let mut why = Vec::new();
        if predicted > limit && rss_growth > limit {
            why.push(format!(
                "resident memory grew {:.1} MiB over {:.0} min after warm-up ({:.1} MiB/h; the limit is {:.1} MiB)",
                rss_growth / MIB,
                span.as_secs_f64() / 60.0,
                rss_slope * 3600.0 / MIB,
                limit / MIB
            ));
        }
        let fds_predicted = fds_slope * span.as_secs_f64();
        if fds_predicted > thresholds.fds && fds_growth > thresholds.fds {
            why.push(format!(
                "open descriptors grew by {fds_growth:.0} over {:.0} min after warm-up (the limit is {:.0})",
                span.as_secs_f64() / 60.0,
                thresholds.fds
            ));
        }
        (!why.is_empty()).then(|| why.join("; "))
    });
    Trend {
        id: series.id.clone(),
        pid: series.pid,
        lived: (first, last),
        samples: all.len(),
        rss: (rss[0], median, rss[rss.len() - 1]),
        fds: (fds_min, fds_max),
        marks: [
            all.first().map(|s| (s.rss, s.fds)),
            warm.first().map(|s| (s.rss, s.fds)),
            all.last().map(|s| (s.rss, s.fds)),
        ],
        cpu: all[all.len() - 1].cpu - all[0].cpu,
        reconciles: all.iter().rev().find_map(|s| s.reconciles).unwrap_or(0.0),
        judged,
        rss_slope: rss_slope * 3600.0 / MIB,
        rss_growth,
        fds_slope: fds_slope * 3600.0,
        fds_growth,
        leak,
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// The least-squares slope of `points` (y per x), 0 for fewer than two.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let covariance: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let variance: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if variance == 0.0 {
        0.0
    } else {
        covariance / variance
    }
}

/// The mean of the last quarter of `points` minus the first quarter's.
pub fn quarter_growth(points: &[(f64, f64)]) -> f64 {
    let quarter = points.len() / 4;
    if quarter == 0 {
        return 0.0;
    }
    let mean = |p: &[(f64, f64)]| p.iter().map(|p| p.1).sum::<f64>() / p.len() as f64;
    mean(&points[points.len() - quarter..]) - mean(&points[..quarter])
}

/// Samples the instances every `every` until `stop` is set; the instances
/// are asked for each time (they come and go).
pub async fn run<F, Fut>(
    started: Instant,
    every: Duration,
    mut instances: F,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Samples
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Vec<(String, u32, std::net::SocketAddr)>>,
{
    let mut samples = Samples::default();
    loop {
        let at = started.elapsed();
        for (id, pid, telemetry) in instances().await {
            let reconciles = controllers::http_get(telemetry, "/metrics")
                .await
                .ok()
                .map(|(_, text)| crate::bench::counters::reconciles(&text));
            samples.sample(&id, pid, at, reconciles);
        }
        if *stop.borrow() {
            return samples;
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(f: impl Fn(f64) -> (u64, usize)) -> Samples {
        let mut samples = Samples::default();
        let mut series = Series {
            id: "h".into(),
            pid: 1,
            samples: Vec::new(),
        };
        for i in 0..400 {
            let t = i as f64 * 5.0;
            let (rss, fds) = f(t);
            series.samples.push(Sample {
                at: Duration::from_secs_f64(t),
                rss,
                fds,
                cpu: 0.0,
                reconciles: None,
            });
        }
        samples.series.insert(("h".into(), 1), series);
        samples
    }

    #[test]
    fn a_flat_host_with_a_spike_passes_and_a_climbing_one_fails() {
        let thresholds = Thresholds::new(Duration::from_secs(300));
        let flat = series(|t| {
            let spike = if (900.0..910.0).contains(&t) {
                200 << 20
            } else {
                0
            };
            ((60 << 20 | ((t as u64 % 7) << 18)) + spike, 20)
        });
        let trend = &trends(&flat, thresholds, &BTreeMap::new())[0];
        assert!(trend.judged.is_some());
        assert!(trend.leak.is_none(), "{trend:?}");
        // 1 MiB a minute: 26 MiB over the judged 26 minutes.
        let climbing = series(|t| ((60 << 20) + (t / 60.0 * (1 << 20) as f64) as u64, 20));
        let trend = &trends(&climbing, thresholds, &BTreeMap::new())[0];
        assert!(
            trend
                .leak
                .as_deref()
                .is_some_and(|w| w.contains("resident memory")),
            "{trend:?}"
        );
        let fds = series(|t| (60 << 20, 20 + (t / 30.0) as usize));
        assert!(
            trends(&fds, thresholds, &BTreeMap::new())[0]
                .leak
                .as_deref()
                .is_some_and(|w| w.contains("descriptors"))
        );
    }

    #[test]
    fn a_short_series_is_measured_not_judged() {
        let mut samples = Samples::default();
        samples.series.insert(
            ("h".into(), 1),
            Series {
                id: "h".into(),
                pid: 1,
                samples: (0..24)
                    .map(|i| Sample {
                        at: Duration::from_secs(i * 5),
                        rss: (60 << 20) + i * (4 << 20),
                        fds: 20,
                        cpu: 0.0,
                        reconciles: None,
                    })
                    .collect(),
            },
        );
        let trend = &trends(
            &samples,
            Thresholds::new(Duration::from_secs(40)),
            &BTreeMap::new(),
        )[0];
        assert!(trend.judged.is_none() && trend.leak.is_none());
        assert!(trend.rss_slope > 0.0);
    }
}
