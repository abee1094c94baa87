//! Shards: 1, 2 and 3 replicas of `bosun run --sharded` over N Mirrors
//! (10,000 by default), each on a fresh control plane: the converge rate
//! from the replicas' start to every Mirror synced, each replica's resident
//! memory and CPU once converged, and — with two or more — how long the
//! buckets take to move when a replica is killed (to the rest holding all
//! 64) and when it starts again (to its share settled: the held counts
//! unchanged for [`SETTLED`]).
//!
//! The table's second column is the single replica's figure, so the ratio
//! column reads "n shards against one"; the target is resident
//! memory per replica at 3 shards ≤ 0.4× one.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::controllers::{Binaries, Controller, Side, http_get};
use super::mib;
use super::mirrors::{self, Marks};
use super::report::Row;

const NAMESPACE: &str = "shards";
const REPLICAS: [usize; 3] = [1, 2, 3];
const TIMEOUT: Duration = Duration::from_secs(900);
/// How long the held counts must stay unchanged for a join to count as
/// settled.
const SETTLED: Duration = Duration::from_secs(3);
const SHARD_ARGS: [&str; 7] = [
    "--sharded",
    "--lease-duration",
    "4s",
    "--renew-deadline",
    "3s",
    "--retry-period",
    "500ms",
];

/// What one run with n replicas measured.
#[derive(Debug, Clone, Default)]
pub struct ShardRun {
    /// Mirrors synced per second, from the replicas' start.
    pub rate: f64,
    /// Resident bytes of each replica once converged.
    pub rss: Vec<u64>,
    /// CPU seconds of each replica once converged.
    pub cpu: Vec<f64>,
    /// From a replica killed to the others holding every bucket.
    pub leave: Option<Duration>,
    /// From the replica started again to the buckets settled.
    pub join: Option<Duration>,
}

fn start(
    binaries: &Binaries,
    mirror: &Path,
    kubeconfig: &Path,
    replica: usize,
    log: &Path,
) -> Result<Controller> {
    let mut args: Vec<String> = vec![
        "--grant-declared".into(),
        "--module".into(),
        mirror.display().to_string(),
        "--replica-id".into(),
        format!("r{replica}"),
    ];
    args.extend(SHARD_ARGS.iter().map(|a| (*a).to_owned()));
    Controller::host_side(Side::Bosun, binaries, &args, kubeconfig, log)
}

/// A replica's `bosun_shard_buckets_held`.
async fn held(replica: &Controller) -> f64 {
    let Some(port) = replica.telemetry_port else {
        return 0.0;
    };
    let Ok((_, text)) = http_get(([127, 0, 0, 1], port).into(), "/metrics").await else {
        return 0.0;
    };
    text.lines()
        .find_map(|l| l.strip_prefix("bosun_shard_buckets_held "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn all_held(replicas: &[Controller]) -> Vec<f64> {
    let mut counts = Vec::new();
    for replica in replicas {
        counts.push(held(replica).await);
    }
    counts
}

/// Runs `n` sharded replicas over `objects` Mirrors.
pub async fn run(
    binaries: &Binaries,
    mirror: &Path,
    n: usize,
    objects: usize,
    out: &Path,
) -> Result<ShardRun> {
    let (env, client) = mirrors::control_plane(&[NAMESPACE]).await?;
    let sources = (0..100)
        .map(|k| {
            mirrors::config_map(
                NAMESPACE,
                &format!("src-{k:03}"),
                BTreeMap::from([("v".to_owned(), k.to_string())]),
                BTreeMap::new(),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    mirrors::create_config_maps(&client, sources).await?;
    let list = (0..objects)
        .map(|i| {
            mirrors::mirror(
                NAMESPACE,
                &format!("m-{i:05}"),
                &format!("src-{:03}", i % 100),
                None,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    mirrors::create_mirrors(&client, list).await?;
    let marks = |o: &kube::api::DynamicObject| {
        if mirrors::is_synced(o) {
            vec!["synced".to_owned()]
        } else {
            Vec::new()
        }
    };
    let watch = Marks::start(&client, &mirrors::mirror_resource(), NAMESPACE, marks).await?;
    let kubeconfig = mirrors::kubeconfig(&env)?;
    let log = |r: usize, attempt: &str| out.join(format!("bosun-shards-{n}-r{r}{attempt}.log"));

    let started = Instant::now();
    let mut replicas = (1..=n)
        .map(|r| start(binaries, mirror, kubeconfig, r, &log(r, "")))
        .collect::<Result<Vec<_>>>()?;
    loop {
        if watch.count("synced") >= objects {
            break;
        }
        for replica in &mut replicas {
            replica.check_alive()?;
        }
        if started.elapsed() > TIMEOUT {
            bail!(
                "{} of {objects} Mirrors synced within {TIMEOUT:?}",
                watch.count("synced")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let converged = watch.last("synced").unwrap_or_else(Instant::now);
    let mut run = ShardRun {
        rate: objects as f64 / converged.saturating_duration_since(started).as_secs_f64(),
        ..ShardRun::default()
    };
    // Let the last writes' watch events reach every cache.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for replica in &replicas {
        run.rss.push(replica.rss()?.0);
        run.cpu.push(replica.cpu_seconds()?);
    }
    if n < 2 {
        return Ok(run);
    }

    // The last replica is killed: the rest take its buckets once its Lease
    // lapses.
    let Some(gone) = replicas.pop() else {
        return Ok(run);
    };
    gone.kill()?;
    let killed = Instant::now();
    loop {
        if all_held(&replicas).await.iter().sum::<f64>() >= 64.0 {
            run.leave = Some(killed.elapsed());
            break;
        }
        if killed.elapsed() > TIMEOUT {
            bail!("the buckets of a killed replica did not move within {TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // It starts again: its share comes back.
    let joined = Instant::now();
    replicas.push(start(binaries, mirror, kubeconfig, n, &log(n, "-again"))?);
    let mut last = all_held(&replicas).await;
    let mut changed = Instant::now();
    loop {
        let counts = all_held(&replicas).await;
        if counts != last {
            last = counts;
            changed = Instant::now();
        }
        let returned = last.last().copied().unwrap_or(0.0) > 0.0;
        if returned && last.iter().sum::<f64>() == 64.0 && changed.elapsed() >= SETTLED {
            run.join = Some(changed.saturating_duration_since(joined));
            break;
        }
        for replica in &mut replicas {
            replica.check_alive()?;
        }
        if joined.elapsed() > TIMEOUT {
            bail!("a replica that started again got no buckets within {TIMEOUT:?}: {last:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(run)
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// Runs 1, 2 and 3 replicas `repeats` times each and makes the rows, each
/// against the single replica.
pub async fn rows(
    binaries: &Binaries,
    mirror: &Path,
    objects: usize,
    repeats: usize,
    out: &Path,
) -> Result<(Vec<Row>, String)> {
    let mut runs: Vec<(usize, ShardRun)> = Vec::new();
    for repeat in 0..repeats {
        for n in REPLICAS {
            eprintln!(
                "bench: shards, {n} sharded replicas over {objects} Mirrors (repeat {}/{repeats}) …",
                repeat + 1
            );
            let run = mirrors::retried(&format!("shards, {n} replicas"), || {
                run(binaries, mirror, n, objects, out)
            })
            .await?;
            eprintln!(
                "bench:   {:.0} Mirrors/s; RSS {:?} MiB; CPU {:?} s; leave {:?}; join {:?}",
                run.rate,
                run.rss.iter().map(|b| mib(*b).round()).collect::<Vec<_>>(),
                run.cpu
                    .iter()
                    .map(|c| (c * 10.0).round() / 10.0)
                    .collect::<Vec<_>>(),
                run.leave,
                run.join,
            );
            runs.push((n, run));
        }
    }
    type Figure = dyn Fn(&ShardRun) -> Option<f64>;
    let of = |n: usize, f: &Figure| -> Vec<f64> {
        runs.iter()
            .filter(|(m, _)| *m == n)
            .filter_map(|(_, r)| f(r))
            .collect()
    };
    let figures: [(&str, &'static str, &Figure); 6] = [
        ("converge rate", "objects/s", &|r| Some(r.rate)),
        ("RSS per replica (mean) once converged", "MiB", &|r| {
            Some(mean(&r.rss.iter().map(|b| mib(*b)).collect::<Vec<_>>()))
        }),
        ("RSS of all replicas once converged", "MiB", &|r| {
            Some(r.rss.iter().map(|b| mib(*b)).sum())
        }),
        ("CPU per replica (mean) to converge", "s", &|r| {
            Some(mean(&r.cpu))
        }),
        (
            "replica killed → its buckets held by the rest (lease 4s)",
            "s",
            &|r| r.leave.map(|d| d.as_secs_f64()),
        ),
        ("replica started again → buckets settled", "s", &|r| {
            r.join.map(|d| d.as_secs_f64())
        }),
    ];
    let mut rows = Vec::new();
    for (what, unit, f) in figures {
        for n in REPLICAS {
            let values = of(n, f);
            if values.is_empty() {
                continue;
            }
            let single = if n == 1 { Vec::new() } else { of(1, f) };
            rows.push(Row::new(
                format!(
                    "(l) shards, {objects} Mirrors, {n} sharded replicas: {what} (vs 1 replica)"
                ),
                unit,
                values,
                single,
            ));
        }
    }
    let note = format!(
        "shards: {objects} Mirrors, 1, 2 and 3 replicas of bosun run --sharded --lease-duration 4s --renew-deadline 3s --retry-period 500ms, each a fresh control plane, {repeats} runs each; the second column is the single replica's figure (ratio = n replicas / 1); leave = last replica SIGKILLed to the rest holding 64 buckets, join = it started again to the held counts unchanged for 3 s"
    );
    Ok((rows, note))
}
