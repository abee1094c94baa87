//! The TypeScript SDK's and cnat-typescript's own `node --test` suites, run
//! in the staged copies `typescript_guests` builds from (their packages
//! installed by `npm ci` there), so `cargo test` covers them as it covers
//! the Rust and Python SDKs' tests.

use std::path::Path;
use std::process::Command;

use bosun_testenv::typescript_guests;

fn npm_test(dir: &Path) {
    let out = Command::new("npm")
        .current_dir(dir)
        .args(["--no-audit", "--no-fund", "--loglevel=warn", "test"])
        .output()
        .expect("npm test runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "npm test in {} failed:\n{report}",
        dir.display()
    );
    // node --test's summary: at least one test passed, none failed.
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("# pass ") && l != "# pass 0"),
        "no test ran in {}:\n{report}",
        dir.display()
    );
    assert!(report.contains("# fail 0"), "{report}");
}

/// The staged copy of `relative` (a directory of the repository), with
/// its packages installed: building the guest stages and installs both.
fn staged(relative: &str) -> std::path::PathBuf {
    typescript_guests::path("cnat-typescript")
        .unwrap_or_else(|e| panic!("building cnat-typescript: {e}"));
    typescript_guests::dir().join("src").join(relative)
}

#[test]
fn the_typescript_sdk_passes_its_tests() {
    npm_test(&staged("sdks/typescript"));
}

#[test]
fn cnat_typescript_passes_its_tests() {
    npm_test(&staged("examples/cnat-typescript"));
}
