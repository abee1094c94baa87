//! What the tests of cnat in another language share: the binary run with a
//! compile cache of the file's own, cnat's reports made comparable, and
//! README's tested block of the language run as written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

pub fn guest(package: &str) -> String {
    bosun_testenv::guests::path(package)
        .unwrap_or_else(|e| panic!("building {package}: {e}"))
        .display()
        .to_string()
}

pub fn sample(path: &str) -> String {
    root().join(path).display().to_string()
}

/// Runs the binary with the compile cache `cache` (under the target
/// directory), shared by one file's tests: a cold compile of an
/// interpreter's component takes seconds, each test would pay it.
pub fn bosun(cache: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bosun"))
        .args(args)
        .env(
            "BOSUN_CACHE_DIR",
            bosun_testenv::guests::target_dir().join(cache),
        )
        .env_remove("RUST_LOG")
        .output()
        .expect("bosun runs")
}

pub fn yaml(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "bosun failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not YAML ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// The report without what differs from run to run: the stand-in uid in
/// ownerReferences.
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

/// `bosun reconcile <module> args` for the Rust cnat and for `package`,
/// each report made comparable.
pub fn reconcile_both(cache: &str, package: &str, args: &[&str]) -> (Value, Value) {
    let run = |package: &str| {
        let module = guest(package);
        let mut all = vec!["reconcile", module.as_str()];
        all.extend_from_slice(args);
        comparable(yaml(&bosun(cache, &all)))
    };
    (run("cnat"), run(package))
}

/// Runs the bad-schedule sample through the Rust cnat and `package`;
/// asserts each exits 1 with the same permanent `InvalidSchedule` error.
pub fn assert_bad_schedule_is_permanent_in_both(cache: &str, package: &str) {
    let bad = sample("examples/cnat/samples/bad-schedule.yaml");
    for package in ["cnat", package] {
        let out = bosun(cache, &["reconcile", &guest(package), "--object", &bad]);
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

/// A RUNNING At and, as its observed child, the Pod the Rust cnat desires
/// for it once Succeeded: files in `dir`, returned as (object, children).
pub fn running_at_with_a_succeeded_pod(cache: &str, dir: &Path) -> (PathBuf, PathBuf) {
    let at = sample("examples/cnat/samples/at.yaml");
    let running = yaml(&bosun(
        cache,
        &[
            "reconcile",
            &guest("cnat"),
            "--object",
            &at,
            "--now",
            "2026-12-01T10:00:00Z",
        ],
    ));
    let mut pod = running["apply"][0].clone();
    pod["status"] = json!({"phase": "Succeeded"});
    let children = dir.join("pod.yaml");
    std::fs::write(&children, serde_yaml::to_string(&pod).unwrap()).unwrap();
    let mut object: Value = serde_yaml::from_str(&std::fs::read_to_string(&at).unwrap()).unwrap();
    object["status"] = json!({"phase": "RUNNING"});
    let object_file = dir.join("at.yaml");
    std::fs::write(&object_file, serde_yaml::to_string(&object).unwrap()).unwrap();
    (object_file, children)
}

/// The lines of README's ```sh block after `marker`, comments and blank
/// lines left out.
pub fn readme_block(marker: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let start = readme
        .find(marker)
        .unwrap_or_else(|| panic!("README has the block marked {marker}"))
        + marker.len();
    let block = readme[start..]
        .trim_start()
        .strip_prefix("```sh\n")
        .expect("a ```sh block right after the marker");
    let block = &block[..block.find("```").expect("the block ends")];
    block
        .lines()
        .map(|line| line.split(" # ").next().unwrap_or(line).trim())
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Runs `lines` from the repository's root in one shell (so `cd` and a
/// venv's activation carry over), with the binary under test first on
/// `PATH`, and checks that cnat's block ran to its end: `bosun inspect`
/// printed the module's grant and `bosun reconcile` the Pod for the
/// sample At. Returns what it printed.
pub fn run_cnat_block(lines: &[String], cache: &str) -> String {
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
            bosun_testenv::guests::target_dir().join(cache),
        )
        .env_remove("RUST_LOG")
        .env_remove("VIRTUAL_ENV")
        .output()
        .expect("bash runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the block failed ({}):\n{script}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
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
    stdout
}

/// Records `package`'s reconcile of the sample At when it is due
/// (`bosun reconcile --record`) into `dir/at.json`, and writes beside it
/// `dir/at-altered.json`, the same recording with another recorded status:
/// a harness test that agrees with the first must fail on the second.
/// Returns both paths.
pub fn record_cnat(cache: &str, package: &str, dir: &Path) -> (PathBuf, PathBuf) {
    let recording = dir.join("at.json");
    let out = bosun(
        cache,
        &[
            "reconcile",
            &guest(package),
            "--object",
            &sample("examples/cnat/samples/at.yaml"),
            "--now",
            "2026-12-01T10:00:00Z",
            "--record",
            recording.to_str().unwrap(),
        ],
    );
    assert_eq!(yaml(&out)["status"]["phase"], "RUNNING");
    let mut recorded: Value = serde_json::from_slice(&std::fs::read(&recording).unwrap()).unwrap();
    assert_eq!(recorded["call"], "reconcile");
    assert_eq!(
        recorded["outcome"]["response"]["children"][0]["kind"], "Pod",
        "{recorded:#}"
    );
    recorded["outcome"]["response"]["status"]["phase"] = json!("DONE");
    let altered = dir.join("at-altered.json");
    std::fs::write(&altered, serde_json::to_vec(&recorded).unwrap()).unwrap();
    (recording, altered)
}
