//! Two minutes of the soak, as CI runs it: the debug host, both lanes, the
//! workload, hot swaps in each lane, an API server restart, a failover of
//! the pair and the hostile guests, then every check: converged, nothing
//! written outside a grant, no reconcile lost.
//!
//! Two minutes judge no leak (a host's series must span five minutes
//! after its warm-up; `cargo xtask soak --minutes 30` does); everything
//! else is judged as in a long run. The logs, the audit log and the report
//! stay in `target/soak-test/`.

use xtask::soak::{self, Args};

#[test]
fn two_minutes_of_chaos_converge_within_the_grants_and_lose_nothing() {
    let out = bosun_testenv::guests::target_dir().join("soak-test");
    let outcome = soak::run(Args {
        minutes: 2.0,
        debug: true,
        out: Some(out),
        ..Args::default()
    })
    .expect("the soak runs");
    let report = &outcome.report;
    assert!(report.passed(), "the soak failed:\n{}", report.markdown());

    // Something happened, of every kind.
    let changes = report.changes_made();
    assert!(changes >= 200, "{changes} changes");
    for module in ["cnat", "webapp", "mirror", "misbehave"] {
        assert!(
            report.changes.keys().any(|(m, _)| m == module),
            "no change of {module}: {:?}",
            report.changes
        );
    }
    for action in [
        "hot swap of webapp in the steady lane",
        "hot swap of webapp in the pair lane",
        "API server restarted",
        "failover",
        "hostile guests poked",
    ] {
        assert!(
            report.events.iter().any(|e| e.what.starts_with(action)),
            "no {action}: {:?}",
            report.events
        );
    }
    assert_eq!(report.failovers.len(), 1, "{:?}", report.failovers);
    assert!(
        report.recorded > 200 && report.lost.seen.len() > 100,
        "{} recorded, {} seen",
        report.recorded,
        report.lost.seen.len()
    );
    assert!(
        report.reconciles() > 200.0,
        "{} reconciles",
        report.reconciles()
    );
    assert!(report.attacks.len() >= 2 * 16, "{:?}", report.attacks);
    assert!(report.bystanders.0 >= 15);
    assert!(
        report.audit.granted.values().sum::<u64>() > 100,
        "{:?}",
        report.audit
    );
    assert!(
        report
            .trends
            .iter()
            .any(|t| t.id == "steady" && t.samples >= 15),
        "{:?}",
        report.trends
    );

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&outcome.json).expect("report.json"))
            .expect("report.json parses");
    assert_eq!(json["passed"], true);
    let markdown = std::fs::read_to_string(&outcome.markdown).expect("report.md");
    assert!(markdown.contains("## No reconcile lost"));
}
