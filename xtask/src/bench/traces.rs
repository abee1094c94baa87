//! Traces: what exporting a trace of every reconcile costs. The same burst
//! as the concurrency scenario (N due cnat `At`s from 8 parallel clients,
//! the host already running) against a host with traces off, and with
//! `--otlp-endpoint` to a real Jaeger sampling 100% and 1% of reconciles;
//! the time from the last create to every object converged, the CPU spent
//! and the resident memory, each traced side against traces off.

use std::path::Path;

use anyhow::Result;

use super::concurrency::{CLIENTS, ConcurrencyRun, burst_from_clients};
use super::controllers::{Binaries, Controller};
use super::mib;
use super::mirrors;
use super::report::Row;

/// The shares of reconciles traced, beside traces off.
const RATIOS: [f64; 2] = [1.0, 0.01];

fn name(ratio: Option<f64>) -> String {
    match ratio {
        None => "traces off".into(),
        Some(ratio) => format!("traces at {}%", ratio * 100.0),
    }
}

/// Runs every side `repeats` times, alternating, against one Jaeger, and
/// makes the rows: each traced side against traces off.
pub async fn rows(
    binaries: &Binaries,
    objects: usize,
    repeats: usize,
    out: &Path,
) -> Result<(Vec<Row>, String)> {
    let jaeger = bosun_testenv::jaeger::Jaeger::start()
        .map_err(|e| anyhow::anyhow!("starting Jaeger for the traces scenario: {e}"))?;
    let endpoint = jaeger.otlp_endpoint();
    let mut sides = vec![None];
    sides.extend(RATIOS.map(Some));
    let mut runs: Vec<(Option<f64>, ConcurrencyRun)> = Vec::new();
    for repeat in 0..repeats {
        for &ratio in &sides {
            eprintln!(
                "bench: traces, {objects} Ats from {CLIENTS} clients, {} (repeat {}/{repeats}) …",
                name(ratio),
                repeat + 1
            );
            let run = mirrors::retried(&format!("traces, {}", name(ratio)), || {
                burst_from_clients(objects, |kubeconfig| {
                    let ratio_arg = ratio.map(|r| r.to_string()).unwrap_or_default();
                    let mut extra = vec![];
                    if ratio.is_some() {
                        extra = vec![
                            "--otlp-endpoint",
                            endpoint.as_str(),
                            "--trace-sample-ratio",
                            ratio_arg.as_str(),
                        ];
                    }
                    Controller::host(
                        binaries,
                        std::slice::from_ref(&binaries.cnat),
                        kubeconfig,
                        &out.join(format!(
                            "bosun-traces-{}.log",
                            name(ratio).replace([' ', '%', '.'], "-")
                        )),
                        &extra,
                    )
                })
            })
            .await?;
            eprintln!(
                "bench:   last create → all converged {:.2}s, {:.1} CPU-s, {:.1} MiB",
                run.tail.as_secs_f64(),
                run.cpu,
                mib(run.rss)
            );
            runs.push((ratio, run));
        }
    }
    let of = |ratio: Option<f64>, f: &dyn Fn(&ConcurrencyRun) -> f64| -> Vec<f64> {
        runs.iter()
            .filter(|(r, _)| *r == ratio)
            .map(|(_, run)| f(run))
            .collect()
    };
    type Figure = dyn Fn(&ConcurrencyRun) -> f64;
    let metrics: [(&str, &'static str, &Figure); 3] = [
        ("last create → every status", "s", &|r| {
            r.tail.as_secs_f64()
        }),
        ("CPU", "s", &|r| r.cpu),
        ("RSS once converged", "MiB", &|r| mib(r.rss)),
    ];
    let mut rows = Vec::new();
    for (what, unit, f) in metrics {
        for ratio in RATIOS {
            rows.push(Row::new(
                format!(
                    "(k) {what}, {objects} Ats from {CLIENTS} clients: {} vs traces off",
                    name(Some(ratio))
                ),
                unit,
                of(Some(ratio), f),
                of(None, f),
            ));
        }
    }
    let note = format!(
        "traces: {objects} cnat Ats created by {CLIENTS} parallel clients, bosun exporting to a local Jaeger at 100% and 1% against traces off, {repeats} runs each (the ratio column is traced/off)"
    );
    Ok((rows, note))
}
