//! The benchmark harness itself, with tiny bursts and debug builds: every
//! row is produced and both sides converged (a run where either side does
//! not converge fails). Figures from such a run mean nothing, and nothing
//! here looks at them.
//!
//! Ignored by default — it starts about twenty control planes and builds
//! the native baseline — so CI skips it:
//! `cargo test -p xtask --test bench -- --ignored`.

use xtask::bench::{self, Args};

#[test]
#[ignore = "starts about twenty control planes and builds the native baseline; run with --ignored"]
fn every_row_is_produced_and_both_sides_converge() {
    let out = tempfile::tempdir().expect("a temporary directory");
    let outcome = bench::run(Args {
        quick: true,
        objects: vec![10, 20],
        repeats: Some(1),
        modules: vec![1, 3],
        objects_per_module: Some(2),
        mirrors: Some(10),
        read_changes: Some(5),
        storm_objects: Some(40),
        storm_probes: Some(3),
        failover_objects: Some(20),
        confined_objects: Some(30),
        concurrency_objects: Some(20),
        host_concurrency: vec![4],
        debug: true,
        out: Some(out.path().to_owned()),
        ..Args::default()
    })
    .expect("the benchmark runs and both sides converge");

    let metrics: Vec<&str> = outcome.rows.iter().map(|r| r.metric.as_str()).collect();
    for scenario in [
        "(a)", "(b)", "(c)", "(d)", "(e)", "(f)", "(g)", "(h)", "(i)", "(j)",
    ] {
        assert!(
            metrics.iter().any(|m| m.starts_with(scenario)),
            "no row for {scenario}: {metrics:?}"
        );
    }
    for row in &outcome.rows {
        assert!(!row.bosun.is_empty(), "{} has no bosun figure", row.metric);
        // The host's own counters, and failover (kube-rs has no leader
        // election): no native figure. The reads scenario counts both
        // sides' reconciles.
        let host_only = (row.metric.contains("reconciles") && !row.metric.starts_with("(f)"))
            || row.metric.contains("resync")
            || row.metric.contains("failover");
        assert_eq!(
            row.native.is_empty(),
            host_only,
            "{}: a native figure exactly where the native side has one",
            row.metric
        );
    }
    // Both sides wrote the Pod and the status of every object.
    for row in outcome
        .rows
        .iter()
        .filter(|r| r.metric.starts_with("(c) writes per"))
    {
        assert!(
            row.bosun.iter().chain(&row.native).all(|w| *w >= 2.0),
            "{row:?}"
        );
    }
    let markdown = std::fs::read_to_string(&outcome.markdown).expect("bench.md");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&outcome.json).expect("bench.json"))
            .expect("bench.json parses");
    assert_eq!(
        json["rows"].as_array().map(Vec::len),
        Some(outcome.rows.len())
    );
    for row in &outcome.rows {
        assert!(
            markdown.contains(&row.metric),
            "{} missing from bench.md",
            row.metric
        );
    }
}
