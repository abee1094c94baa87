//! The TypeScript cnat (`examples/cnat-typescript`, built with the
//! TypeScript SDK) on the real binary: `bosun reconcile` prints for it what
//! it prints for the Rust cnat on the same inputs, and an uncaught
//! exception comes back as a retryable error, not a trap; README's
//! TypeScript block runs as written.

mod cnat_beside_rust;

use cnat_beside_rust::{guest, readme_block, run_cnat_block, sample, yaml};
use serde_json::{Value, json};

/// This file's compile cache.
const CACHE: &str = "typescript-guest-test-cache";

fn bosun(args: &[&str]) -> std::process::Output {
    cnat_beside_rust::bosun(CACHE, args)
}

fn reconcile_both(args: &[&str]) -> (Value, Value) {
    cnat_beside_rust::reconcile_both(CACHE, "cnat-typescript", args)
}

#[test]
fn typescript_cnat_prints_the_same_desired_pod_as_rust_cnat_when_due() {
    let at = sample("examples/cnat/samples/at.yaml");
    let (rust, typescript) = reconcile_both(&["--object", &at, "--now", "2026-12-01T10:00:00Z"]);
    assert_eq!(typescript["apply"][0]["kind"], "Pod", "{typescript:#}");
    assert_eq!(
        typescript["apply"][0]["spec"]["containers"][0]["command"],
        json!(["echo", "YAY"])
    );
    assert_eq!(typescript, rust);
}

#[test]
fn typescript_cnat_waits_for_the_schedule_as_rust_cnat_does() {
    let at = sample("examples/cnat/samples/at.yaml");
    let (rust, typescript) = reconcile_both(&["--object", &at, "--now", "2026-12-01T09:00:00Z"]);
    assert_eq!(typescript["status"]["phase"], "PENDING");
    assert_eq!(typescript["requeueAfterMs"], 3_600_000);
    assert_eq!(typescript, rust);
}

#[test]
fn typescript_cnat_reports_done_for_a_succeeded_pod_as_rust_cnat_does() {
    let dir = tempfile::tempdir().unwrap();
    let (object_file, children) =
        cnat_beside_rust::running_at_with_a_succeeded_pod(CACHE, dir.path());

    let (rust, typescript) = reconcile_both(&[
        "--object",
        object_file.to_str().unwrap(),
        "--children",
        children.to_str().unwrap(),
    ]);
    assert_eq!(typescript["status"]["phase"], "DONE");
    assert_eq!(typescript["events"][0]["reason"], "Done");
    assert_eq!(typescript, rust);
}

#[test]
fn typescript_cnat_fails_a_bad_schedule_permanently_as_rust_cnat_does() {
    cnat_beside_rust::assert_bad_schedule_is_permanent_in_both(CACHE, "cnat-typescript");
}

#[test]
fn an_uncaught_typescript_exception_is_a_retryable_error_with_its_stack() {
    // An At whose spec has no command: the Rust type refuses the object
    // outright, the TypeScript code meets a TypeError when the schedule is due.
    let dir = tempfile::tempdir().unwrap();
    let mut object: Value = serde_yaml::from_str(
        &std::fs::read_to_string(sample("examples/cnat/samples/at.yaml")).unwrap(),
    )
    .unwrap();
    object["spec"].as_object_mut().unwrap().remove("command");
    let file = dir.path().join("at.yaml");
    std::fs::write(&file, serde_yaml::to_string(&object).unwrap()).unwrap();
    let out = bosun(&[
        "reconcile",
        &guest("cnat-typescript"),
        "--object",
        file.to_str().unwrap(),
        "--now",
        "2026-12-01T10:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("retryable error UncaughtException: TypeError: cannot read property 'split' of undefined"),
        "{err}"
    );
    assert!(err.contains("at pod ("), "the stack's frames: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn typescript_cnat_declares_what_rust_cnat_declares() {
    let inspect = |package: &str| {
        let mut report = yaml(&bosun(&["inspect", &guest(package)]));
        let object = report.as_object_mut().unwrap();
        for varying in ["sha256", "loadTimeMs", "loadedFrom"] {
            object.remove(varying);
        }
        report
    };
    let (rust, typescript) = (inspect("cnat"), inspect("cnat-typescript"));
    assert_eq!(typescript["module"]["primary"]["plural"], "ats");
    assert_eq!(typescript, rust);
}

#[test]
fn the_readme_typescript_block_runs_as_written() {
    let lines = readme_block("<!-- tested: typescript-sdk -->");
    for step in [
        "npm test",
        "npm run build",
        "bosun inspect",
        "bosun reconcile",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(step)),
            "the block lacks {step:?}: {lines:#?}"
        );
    }
    let stdout = run_cnat_block(&lines, CACHE);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("# pass ") && l != "# pass 0"),
        "node --test ran: {stdout}"
    );
}

/// Issue 22's "each SDK's harness can load a recording as a test fixture",
/// through the path a user takes: `bosun reconcile --record` on the
/// TypeScript cnat's component, then `npm test` (tsc and `node --test`) in
/// its staged copy, whose test/recording.test.ts loads the recording into
/// `Harness.fromRecording` and compares the harness's outcome with the
/// recorded one (and fails when they differ).
#[test]
fn typescript_cnat_recorded_by_bosun_is_a_node_test_fixture_that_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let (recording, altered) = cnat_beside_rust::record_cnat(CACHE, "cnat-typescript", dir.path());
    // Recording built the component, which staged the example (and its
    // packages) here.
    let staged = bosun_testenv::typescript_guests::dir().join("src/examples/cnat-typescript");
    let npm_test = |recording: &std::path::Path| {
        let out = std::process::Command::new("npm")
            .current_dir(&staged)
            .args(["--no-audit", "--no-fund", "--loglevel=warn", "test"])
            .env("BOSUN_RECORDING", recording)
            .output()
            .expect("npm test runs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let report = npm_test(&recording);
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("ok ") && l.contains("reaches the recorded outcome"))
            && report.contains("# fail 0"),
        "{report}"
    );
    let report = npm_test(&altered);
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("not ok") && l.contains("reaches the recorded outcome")),
        "{report}"
    );
    assert!(report.contains("'DONE'"), "{report}");
}
