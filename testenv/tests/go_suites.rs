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
fn the_go_sdks_wit_is_the_published_http_world() {
    // The SDK ships wit/http as it is (the reconciler world with
    // wasi:http's outgoing-handler), so a Go guest is embedded against the
    // world every language's bindings come from; its deps carry
    // wit/reconciler.wit itself.
    let root = bosun_testenv::guests::workspace_root();
    let published = wit_files(&root.join("wit/http"));
    assert!(published.len() > 2, "wit/http holds its world and deps");
    assert!(
        wit_files(&root.join("sdks/go/wit")) == published,
        "sdks/go/wit differs from wit/http; copy wit/http over it (and check abi_wasip1.go's and wasihttp_wasip1.go's layouts)"
    );
    let contract = std::fs::read_to_string(root.join("wit/reconciler.wit")).unwrap();
    let copy =
        std::fs::read_to_string(root.join("sdks/go/wit/deps/bosun-reconciler/reconciler.wit"))
            .unwrap();
    assert!(
        copy == contract,
        "sdks/go/wit's reconciler.wit is not wit/reconciler.wit"
    );
}

/// Every `.wit` file under `dir`, by its path relative to `dir`.
fn wit_files(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, String> {
    let mut found = std::collections::BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "wit") {
                let text = std::fs::read_to_string(&path).unwrap();
                found.insert(path.strip_prefix(dir).unwrap().to_path_buf(), text);
            }
        }
    }
    found
}
