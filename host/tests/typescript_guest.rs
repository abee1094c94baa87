//! The TypeScript cnat (`examples/cnat-typescript`, built with the
//! TypeScript SDK) on the real binary: `bosun reconcile` prints for it what
//! it prints for the Rust cnat on the same inputs, and an uncaught
//! exception comes back as a retryable error, not a trap; README's
//! TypeScript block runs as written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn guest(package: &str) -> String {
    bosun_testenv::guests::path(package)
        .unwrap_or_else(|e| panic!("building {package}: {e}"))
        .display()
        .to_string()
}

fn sample(path: &str) -> String {
    root().join(path).display().to_string()
}

/// Runs the binary with a compile cache shared by this file's tests.
fn bosun(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bosun"))
        .args(args)
        .env(
            "BOSUN_CACHE_DIR",
            bosun_testenv::guests::target_dir().join("typescript-guest-test-cache"),
        )
        .env_remove("RUST_LOG")
        .output()
        .expect("bosun runs")
}

fn yaml(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "bosun failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not YAML ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// The report without the stand-in uid in ownerReferences, which differs
/// from run to run.
fn comparable(mut report: Value) -> Value {
    if let Some(apply) = report["apply"].as_array_mut() {
        for child in apply {
            if let Some(owners) = child["metadata"]["ownerReferences"].as_array_mut() {
                for owner in owners {
                    owner["uid"] = json!("<uid>");
                }
            }
        }
    }
    report
}

fn reconcile_both(args: &[&str]) -> (Value, Value) {
    let run = |package: &str| {
        let module = guest(package);
        let mut all = vec!["reconcile", module.as_str()];
        all.extend_from_slice(args);
        comparable(yaml(&bosun(&all)))
    };
    (run("cnat"), run("cnat-typescript"))
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
fn typescript_cnat_fails_a_bad_schedule_permanently_as_rust_cnat_does() {
    let bad = sample("examples/cnat/samples/bad-schedule.yaml");
    for package in ["cnat", "cnat-typescript"] {
        let out = bosun(&["reconcile", &guest(package), "--object", &bad]);
        assert_eq!(out.status.code(), Some(1), "{package}");
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or_else(|| panic!("{package}: no error line in {err}"));
        assert!(
            line.contains(
                "permanent error InvalidSchedule: schedule \"next tuesday\" is not in the layout 2006-01-02T15:04:05Z"
            ),
            "{package}: {line}"
        );
    }
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
    const MARKER: &str = "<!-- tested: typescript-sdk -->";
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let start = readme
        .find(MARKER)
        .expect("README has the tested TypeScript block")
        + MARKER.len();
    let block = readme[start..]
        .trim_start()
        .strip_prefix("```sh\n")
        .expect("a ```sh block right after the marker");
    let block = &block[..block.find("```").expect("the block ends")];
    let lines: Vec<&str> = block
        .lines()
        .map(|line| line.split(" # ").next().unwrap_or(line).trim())
        .filter(|line| !line.is_empty())
        .collect();
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
    let bin = Path::new(env!("CARGO_BIN_EXE_bosun")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = format!("set -euo pipefail\n{}\n", lines.join("\n"));
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(root())
        .env("PATH", path)
        .env(
            "BOSUN_CACHE_DIR",
            bosun_testenv::guests::target_dir().join("typescript-guest-test-cache"),
        )
        .env_remove("RUST_LOG")
        .output()
        .expect("bash runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the block failed ({}):\n{script}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("# pass ") && l != "# pass 0"),
        "node --test ran: {stdout}"
    );
    assert!(
        stdout.contains("fieldManager: bosun/cnat"),
        "inspect ran: {stdout}"
    );
    let report: Value =
        serde_yaml::from_str(&stdout[stdout.rfind("apply:").expect("the reconcile report")..])
            .expect("the reconcile report is YAML");
    assert_eq!(report["status"]["phase"], "RUNNING", "{stdout}");
    assert_eq!(report["apply"][0]["metadata"]["name"], "example-at-pod");
}
