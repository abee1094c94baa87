//! The Go SDK's and cnat-go's own `go test` suites, run in the staged
//! copies `go_guests` builds from, so `cargo test` covers them as it covers
//! the Rust, Python and TypeScript SDKs' tests.

use std::path::Path;

use bosun_testenv::go_guests;

fn go_test(dir: &Path) {
    let out = go_guests::go()
        .current_dir(dir)
        .args(["test", "-count=1", "-v", "./..."])
        .output()
        .expect("go test runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "go test in {} failed:\n{report}",
        dir.display()
    );
    // -v prints a line per test: at least one passed, none failed.
    assert!(
        report.lines().any(|l| l.starts_with("--- PASS: ")),
        "no test ran in {}:\n{report}",
        dir.display()
    );
    assert!(!report.contains("--- FAIL"), "{report}");
}

/// The staged copy of `relative` (a directory of the repository): building
/// the guest stages both the SDK and the example.
fn staged(relative: &str) -> std::path::PathBuf {
    go_guests::staged("cnat-go", relative).unwrap_or_else(|e| panic!("building cnat-go: {e}"))
}

#[test]
fn the_go_sdk_passes_its_tests() {
    go_test(&staged("sdks/go"));
}

#[test]
fn cnat_go_passes_its_tests() {
    go_test(&staged("examples/cnat-go"));
}

#[test]
fn the_go_sdks_wit_is_the_contract() {
    let root = bosun_testenv::guests::workspace_root();
    let contract = std::fs::read_to_string(root.join("wit/reconciler.wit")).unwrap();
    let copy = std::fs::read_to_string(root.join("sdks/go/wit/reconciler.wit")).unwrap();
    assert!(
        copy == contract,
        "sdks/go/wit/reconciler.wit differs from wit/reconciler.wit; copy it over (and check abi_wasip1.go's layouts)"
    );
}
