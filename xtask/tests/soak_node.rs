//! Two minutes of `cargo xtask soak --node`, as CI runs it: the pair as
//! the shipped image (`cargo xtask image` of the debug host) in the
//! shipped Deployment's Pods on testenv's real node, the steady host a
//! process beside it; the workload's Pods really run, and the children of
//! the primaries it deletes are left to kube-controller-manager's garbage
//! collector. The chaos deletes the leader's Pod, then force-deletes the
//! next, restarts the kubelet and the API server, hot-swaps webapp and
//! pokes the hostile guests; then every check, and no orphan left.
//!
//! Like the other node tests it needs root and the node's packages, and
//! skips (saying what to install) where they are missing, except under
//! `CI=true`. The logs, the audit log and the report stay in
//! `target/soak-node-test/`.

use std::time::Duration;

use xtask::soak::hosts::FailoverKind;
use xtask::soak::{self, Args};

#[test]
fn two_minutes_on_a_node_fail_over_by_pod_survive_the_kubelet_and_leave_no_orphan() {
    if let Err(why) = bosun_testenv::node::available() {
        assert!(
            !bosun_testenv::tools::in_ci(),
            "CI must run the node-backed tests: {why}"
        );
        eprintln!("skipped: {why}");
        return;
    }
    let Some(_) =
        bosun_testenv::tools::for_test("kubectl", "kubectl 1.27 or newer").expect("kubectl in CI")
    else {
        return;
    };
    let out = bosun_testenv::guests::target_dir().join("soak-node-test");
    let outcome = soak::run(Args {
        minutes: 2.0,
        debug: true,
        node: true,
        // Two failovers in two minutes: the leader's Pod deleted, then the
        // next leader's force-deleted.
        failover_every: Duration::from_secs(60),
        // Two kubelet restarts, the first before any failover.
        kubelet_every: Duration::from_secs(50),
        out: Some(out),
        ..Args::default()
    })
    .expect("the soak runs");
    let report = &outcome.report;
    assert!(report.passed(), "the soak failed:\n{}", report.markdown());

    let changes = report.changes_made();
    assert!(changes >= 150, "{changes} changes");
    for action in [
        "hot swap of webapp in the steady lane",
        "hot swap of webapp in the pair lane",
        "API server restarted",
        "failover: leader Pod deleted",
        "kubelet restarted",
        "hostile guests poked",
    ] {
        assert!(
            report.events.iter().any(|e| e.what.starts_with(action)),
            "no {action}: {:?}",
            report.events
        );
    }
    assert!(
        report
            .failovers
            .iter()
            .any(|f| f.kind == FailoverKind::DeletePod),
        "{:?}",
        report.failovers
    );
    assert!(
        report.failovers.iter().all(|f| f.replaced.is_some()),
        "{:?}",
        report.failovers
    );
    assert!(
        !report.kubelet_restarts.is_empty(),
        "{:?}",
        report.kubelet_restarts
    );
    let orphans = report.orphans.as_ref().expect("the orphan check ran");
    assert!(orphans.orphans.is_empty(), "{:?}", orphans.orphans);
    assert!(
        orphans.collected_total() > 0,
        "the garbage collector deleted nothing: {orphans:?}"
    );
    assert!(
        report.lost.seen.len() > 100,
        "{} seen",
        report.lost.seen.len()
    );
    // The sampler found the Pods' hosts on the machine.
    assert!(
        report
            .trends
            .iter()
            .any(|t| t.id.starts_with("bosun-") && t.samples >= 5),
        "{:?}",
        report.trends
    );

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&outcome.json).expect("report.json"))
            .expect("report.json parses");
    assert_eq!(json["passed"], true);
    let markdown = std::fs::read_to_string(&outcome.markdown).expect("report.md");
    assert!(markdown.contains("## No orphan left"));
}
