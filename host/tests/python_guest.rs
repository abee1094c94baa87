//! The Python cnat (`examples/cnat-python`, built with the Python SDK) on the
//! real binary: `bosun reconcile` and `bosun inspect` print for it what they
//! print for the Rust cnat on the same inputs.

mod cnat_beside_rust;

use cnat_beside_rust::{guest, readme_block, run_cnat_block, sample, yaml};
use serde_json::{Value, json};

/// This file's compile cache.
const CACHE: &str = "python-guest-test-cache";

fn bosun(args: &[&str]) -> std::process::Output {
    cnat_beside_rust::bosun(CACHE, args)
}

fn reconcile_both(args: &[&str]) -> (Value, Value) {
    cnat_beside_rust::reconcile_both(CACHE, "cnat-python", args)
}

#[test]
fn python_cnat_prints_the_same_desired_pod_as_rust_cnat_when_due() {
    let at = sample("examples/cnat/samples/at.yaml");
    let (rust, python) = reconcile_both(&["--object", &at, "--now", "2026-12-01T10:00:00Z"]);
    assert_eq!(python["apply"][0]["kind"], "Pod", "{python:#}");
    assert_eq!(
        python["apply"][0]["spec"]["containers"][0]["command"],
        json!(["echo", "YAY"])
    );
    assert_eq!(python, rust);
}

#[test]
fn python_cnat_waits_for_the_schedule_as_rust_cnat_does() {
    let at = sample("examples/cnat/samples/at.yaml");
    let (rust, python) = reconcile_both(&["--object", &at, "--now", "2026-12-01T09:00:00Z"]);
    assert_eq!(python["status"]["phase"], "PENDING");
    assert_eq!(python["requeueAfterMs"], 3_600_000);
    assert_eq!(python, rust);
}

#[test]
fn python_cnat_reports_done_for_a_succeeded_pod_as_rust_cnat_does() {
    let dir = tempfile::tempdir().unwrap();
    let (object_file, children) =
        cnat_beside_rust::running_at_with_a_succeeded_pod(CACHE, dir.path());

    let (rust, python) = reconcile_both(&[
        "--object",
        object_file.to_str().unwrap(),
        "--children",
        children.to_str().unwrap(),
    ]);
    assert_eq!(python["status"]["phase"], "DONE");
    assert_eq!(python["events"][0]["reason"], "Done");
    assert_eq!(python, rust);
}

#[test]
fn python_cnat_fails_a_bad_schedule_permanently_as_rust_cnat_does() {
    cnat_beside_rust::assert_bad_schedule_is_permanent_in_both(CACHE, "cnat-python");
}

#[test]
fn an_uncaught_python_exception_is_a_retryable_error_with_its_traceback() {
    // An At whose spec has no command: the Rust type refuses the object
    // outright, the Python code meets a KeyError when the schedule is due.
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
        &guest("cnat-python"),
        "--object",
        file.to_str().unwrap(),
        "--now",
        "2026-12-01T10:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("retryable error UncaughtException: KeyError: 'command'"),
        "{err}"
    );
    assert!(
        err.contains("in reconcile"),
        "the traceback's frames: {err}"
    );
    assert!(!err.contains("trap"), "{err}");
}

#[test]
fn python_cnat_declares_what_rust_cnat_declares() {
    let inspect = |package: &str| {
        let mut report = yaml(&bosun(&["inspect", &guest(package)]));
        let object = report.as_object_mut().unwrap();
        // What differs between two components of one module.
        for varying in ["sha256", "loadTimeMs", "loadedFrom"] {
            object.remove(varying);
        }
        report
    };
    let (rust, python) = (inspect("cnat"), inspect("cnat-python"));
    assert_eq!(python["module"]["primary"]["plural"], "ats");
    assert_eq!(python, rust);
}

/// README's "In Python" block, run as written from the repository's root
/// in one shell (so `cd` and the venv's activation carry over), with the
/// binary under test first on `PATH`.
#[test]
fn the_readme_python_block_runs_as_written() {
    let lines = readme_block("<!-- tested: python-sdk -->");
    for step in [
        "pip install",
        "pytest",
        "python -m bosun build",
        "bosun reconcile",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(step)),
            "the block lacks {step:?}: {lines:#?}"
        );
    }
    let stdout = run_cnat_block(&lines, CACHE);
    assert!(stdout.contains(" passed"), "pytest ran: {stdout}");
}

/// Issue 22's "each SDK's harness can load a recording as a test fixture",
/// through the path a user takes: `bosun reconcile --record` on the Python
/// cnat's component, then pytest on cnat-python's test that loads the
/// recording into `bosun.testing.Harness` and compares the harness's
/// outcome with the recorded one (and fails when they differ).
#[test]
fn python_cnat_recorded_by_bosun_is_a_pytest_fixture_that_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let (recording, altered) = cnat_beside_rust::record_cnat(CACHE, "cnat-python", dir.path());
    let python =
        bosun_testenv::python_guests::venv_python().unwrap_or_else(|e| panic!("the venv: {e}"));
    let pytest = |recording: &std::path::Path| {
        let out = std::process::Command::new(&python)
            .current_dir(cnat_beside_rust::root().join("examples/cnat-python"))
            .env(
                "PYTHONPATH",
                cnat_beside_rust::root().join("sdks/python/src"),
            )
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("BOSUN_RECORDING", recording)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .arg("tests/test_recording.py")
            .output()
            .expect("pytest runs");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), report)
    };
    let (passed, report) = pytest(&recording);
    assert!(passed && report.contains("1 passed"), "{report}");
    let (passed, report) = pytest(&altered);
    assert!(!passed && report.contains("1 failed"), "{report}");
    assert!(report.contains("'DONE'"), "{report}");
}
