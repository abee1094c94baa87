//! The Python SDK's and the Python examples' own pytest suites, run in the
//! venv `python_guests` makes, so `cargo test` covers them as it covers the
//! Rust SDK's tests.

use std::path::Path;
use std::process::Command;

use bosun_testenv::guests::workspace_root;
use bosun_testenv::python_guests;

fn pytest(dir: &Path) {
    let python = python_guests::venv_python().unwrap_or_else(|e| panic!("the venv: {e}"));
    let out = Command::new(python)
        .current_dir(dir)
        // Against the SDK's sources, not the copy installed for builds.
        .env("PYTHONPATH", workspace_root().join("sdks/python/src"))
        // Nothing written into the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .output()
        .expect("pytest runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "pytest in {} failed:\n{report}",
        dir.display()
    );
    assert!(
        report.contains(" passed"),
        "no test ran in {}:\n{report}",
        dir.display()
    );
}

#[test]
fn the_python_sdk_passes_its_tests() {
    pytest(&workspace_root().join("sdks/python"));
}

#[test]
fn cnat_python_passes_its_tests() {
    pytest(&workspace_root().join("examples/cnat-python"));
}
