//! The Go cnat (`examples/cnat-go`, built with the Go SDK by mainline Go
//! and made a component with the WASI preview1 reactor adapter) on the
//! real binary: it loads through the same path as production, `bosun
//! reconcile` prints for it what it prints for the Rust cnat on the same
//! inputs, and a panic comes back as a retryable error, not a trap;
//! README's Go block runs as written.

mod cnat_beside_rust;

use cnat_beside_rust::{guest, readme_block, run_cnat_block, sample, yaml};
use serde_json::{Value, json};

/// This file's compile cache.
const CACHE: &str = "go-guest-test-cache";

fn bosun(args: &[&str]) -> std::process::Output {
    cnat_beside_rust::bosun(CACHE, args)
}

fn reconcile_both(args: &[&str]) -> (Value, Value) {
    cnat_beside_rust::reconcile_both(CACHE, "cnat-go", args)
}

#[test]
fn go_cnat_prints_the_same_desired_pod_as_rust_cnat_when_due() {
    let at = sample("examples/cnat/samples/at.yaml");
    let (rust, go) = reconcile_both(&["--object", &at, "--now", "2026-12-01T10:00:00Z"]);
    assert_eq!(go["apply"][0]["kind"], "Pod", "{go:#}");
    assert_eq!(
        go["apply"][0]["spec"]["containers"][0]["command"],
        json!(["echo", "YAY"])
    );
    assert_eq!(go["events"][0]["reason"], "Started", "{go:#}");
    assert_eq!(go, rust);
}

#[test]
fn go_cnat_waits_for_the_schedule_as_rust_cnat_does() {
    let at = sample("examples/cnat/samples/at.yaml");
    let (rust, go) = reconcile_both(&["--object", &at, "--now", "2026-12-01T09:00:00Z"]);
    assert_eq!(go["status"]["phase"], "PENDING");
    assert_eq!(go["requeueAfterMs"], 3_600_000);
    assert_eq!(go, rust);
}

#[test]
fn go_cnat_reports_done_for_a_succeeded_pod_as_rust_cnat_does() {
    // The observed child crosses the boundary as a list of strings, the
    // status as an option: both lifted and lowered by the SDK's glue.
    let dir = tempfile::tempdir().unwrap();
    let (object_file, children) =
        cnat_beside_rust::running_at_with_a_succeeded_pod(CACHE, dir.path());

    let (rust, go) = reconcile_both(&[
        "--object",
        object_file.to_str().unwrap(),
        "--children",
        children.to_str().unwrap(),
    ]);
    assert_eq!(go["status"]["phase"], "DONE");
    assert_eq!(go["events"][0]["reason"], "Done");
    assert_eq!(go, rust);
}

#[test]
fn go_cnat_fails_a_bad_schedule_permanently_as_rust_cnat_does() {
    cnat_beside_rust::assert_bad_schedule_is_permanent_in_both(CACHE, "cnat-go");
}

#[test]
fn a_go_panic_is_a_retryable_error_with_its_frames_not_a_trap() {
    // An At without a spec: the Rust type refuses the object outright, the
    // Go code dereferences a nil *AtSpec when it reads the schedule.
    let dir = tempfile::tempdir().unwrap();
    let mut object: Value = serde_yaml::from_str(
        &std::fs::read_to_string(sample("examples/cnat/samples/at.yaml")).unwrap(),
    )
    .unwrap();
    object.as_object_mut().unwrap().remove("spec");
    let file = dir.path().join("at.yaml");
    std::fs::write(&file, serde_yaml::to_string(&object).unwrap()).unwrap();
    let out = bosun(&[
        "reconcile",
        &guest("cnat-go"),
        "--object",
        file.to_str().unwrap(),
        "--now",
        "2026-12-01T10:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "retryable error UncaughtPanic: panic: runtime error: invalid memory address or nil pointer dereference"
        ),
        "{err}"
    );
    assert!(
        err.contains("main.Cnat.Reconcile("),
        "the panic's frames: {err}"
    );
    assert!(!err.contains("trap"), "{err}");
}

#[test]
fn go_cnat_declares_what_rust_cnat_declares() {
    let inspect = |package: &str| {
        let mut report = yaml(&bosun(&["inspect", &guest(package)]));
        let object = report.as_object_mut().unwrap();
        for varying in ["sha256", "loadTimeMs", "loadedFrom"] {
            object.remove(varying);
        }
        report
    };
    let (rust, go) = (inspect("cnat"), inspect("cnat-go"));
    assert_eq!(go["module"]["primary"]["plural"], "ats");
    assert_eq!(go, rust);
}

#[test]
fn the_readme_go_block_runs_as_written() {
    let lines = readme_block("<!-- tested: go-sdk -->");
    for step in [
        "go test",
        "go build -buildmode=c-shared",
        "cargo xtask go-component",
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
            .any(|l| l.starts_with("ok")
                && l.contains("github.com/bosun-dev/bosun/examples/cnat-go")),
        "go test ran: {stdout}"
    );
}

/// Writes `value` as YAML into `dir/name` and returns the path.
fn file(dir: &std::path::Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_yaml::to_string(value).unwrap()).unwrap();
    path.display().to_string()
}

fn config_map(name: &str, namespace: &str, tier: &str, text: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"tier": tier}},
        "data": {"text": text},
    })
}

fn probe(spec: Value) -> Value {
    json!({
        "apiVersion": "test.bosun.dev/v1", "kind": "Probe",
        "metadata": {"name": "probe", "namespace": "team", "uid": "u-1", "generation": 1},
        "spec": spec,
    })
}

#[test]
fn a_go_guests_reads_settings_and_children_cross_the_glue() {
    // The host lowers get-object's and list-objects' answers into the
    // guest's memory through its cabi_realloc, in the middle of a Go
    // import call: what reads-go reports is what it was given.
    let dir = tempfile::tempdir().unwrap();
    let object = file(
        dir.path(),
        "probe.yaml",
        &probe(
            json!({"get": "web", "missing": "nothing-here", "selector": "tier in (front,back)"}),
        ),
    );
    let objects: Vec<String> = [
        config_map("web", "team", "front", "hello, wörld"),
        config_map("db", "team", "back", "x"),
        config_map("cache", "team", "cache", "y"),
        config_map("elsewhere", "other", "front", "z"),
    ]
    .iter()
    .enumerate()
    .map(|(i, cm)| file(dir.path(), &format!("cm{i}.yaml"), cm))
    .collect();
    let owned = file(
        dir.path(),
        "secret.yaml",
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "probe-token", "namespace": "team"}}),
    );
    let settings = file(
        dir.path(),
        "settings.yaml",
        &json!({"level": 3, "name": "probe"}),
    );
    let module = guest("reads-go");
    let mut args = vec![
        "reconcile",
        module.as_str(),
        "--object",
        object.as_str(),
        "--children",
        owned.as_str(),
        "--settings",
        settings.as_str(),
        "--objects",
    ];
    args.extend(objects.iter().map(String::as_str));
    let report = yaml(&bosun(&args));
    let status = &report["status"];
    assert_eq!(status["got"], json!({"text": "hello, wörld"}), "{report:#}");
    assert_eq!(status["missing"], true);
    let mut listed: Vec<&str> = status["listed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, ["db", "web"], "in the namespace, by the selector");
    assert_eq!(status["children"], json!(["probe-token"]));
    assert_eq!(status["settings"], json!({"level": 3, "name": "probe"}));
    assert_eq!(status["trigger"], "manual");
}

#[test]
fn a_read_the_host_refuses_is_a_retryable_error_in_go() {
    let dir = tempfile::tempdir().unwrap();
    let object = file(dir.path(), "probe.yaml", &probe(json!({"forbidden": true})));
    let out = bosun(&["reconcile", &guest("reads-go"), "--object", &object]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("retryable error ReadFailed:"), "{err}");
    assert!(err.contains("Deployment"), "the host's reason: {err}");
}

#[test]
fn a_go_guests_finalize_crosses_the_glue() {
    let dir = tempfile::tempdir().unwrap();
    let owned = file(
        dir.path(),
        "secret.yaml",
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "probe-token", "namespace": "team"}}),
    );
    let module = guest("reads-go");
    let finalize = |spec: Value| {
        let object = file(dir.path(), "probe.yaml", &probe(spec));
        yaml(&bosun(&[
            "reconcile",
            &module,
            "--finalize",
            "--object",
            &object,
            "--children",
            &owned,
        ]))
    };
    let lingering = finalize(json!({"linger": true}));
    assert_eq!(lingering["result"], "Pending", "{lingering:#}");
    assert_eq!(lingering["requeueAfterMs"], 1500);
    assert_eq!(
        lingering["events"],
        json!([{"type": "Warning", "reason": "Lingering", "note": "1 children left", "action": "Cleanup"}])
    );
    let done = finalize(json!({}));
    assert_eq!(done["result"], "Done", "{done:#}");
    assert_eq!(done["events"], json!([]));
}

/// Issue 22's "each SDK's harness can load a recording as a test fixture",
/// through the path a user takes: `bosun reconcile --record` on the Go
/// cnat's component, then `go test` in its staged copy, whose
/// recording_test.go loads the recording with `bosuntest.FromRecordingFile`
/// and compares the harness's outcome with the recorded one (and fails
/// when they differ).
#[test]
fn go_cnat_recorded_by_bosun_is_a_go_test_fixture_that_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let (recording, altered) = cnat_beside_rust::record_cnat(CACHE, "cnat-go", dir.path());
    let staged = bosun_testenv::go_guests::staged("cnat-go", "examples/cnat-go")
        .unwrap_or_else(|e| panic!("building cnat-go: {e}"));
    let go_test = |recording: &std::path::Path| {
        let out = bosun_testenv::go_guests::go()
            .current_dir(&staged)
            .args([
                "test",
                "-count=1",
                "-v",
                "-run",
                "TestTheHarnessLoadedFromARecordingReachesTheRecordedOutcome",
                ".",
            ])
            .env("BOSUN_RECORDING", recording)
            .output()
            .expect("go test runs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let report = go_test(&recording);
    assert!(
        report.contains("--- PASS: TestTheHarnessLoadedFromARecordingReachesTheRecordedOutcome"),
        "{report}"
    );
    let report = go_test(&altered);
    assert!(
        report.contains("--- FAIL: TestTheHarnessLoadedFromARecordingReachesTheRecordedOutcome"),
        "{report}"
    );
    assert!(report.contains("recorded map[phase:DONE]"), "{report}");
}
