//! Building the Go guest (`examples/cnat-go`, built with `sdks/go`) as a
//! Wasm component.
//!
//! Also the test guests `tests/guests/reads-go`, which crosses the glue's
//! reads, settings and children for `host/tests/go_guest.rs`, and
//! `tests/guests/http-probe-go`, which sends one HTTP request through the
//! SDK's client for `host/tests/go_http.rs` (see [`http_probe_reaching`]).
//!
//! The Go counterpart of [`crate::python_guests`] and
//! [`crate::typescript_guests`]: one builder shared by `cargo xtask test`
//! and every test that loads the component ([`crate::guests::path`] routes
//! the names in [`PACKAGES`] here). It copies `sdks/go` and the example
//! under `<target>/go/src` (keeping their relative layout, which the
//! example's `replace` of the SDK relies on), runs the machine's Go
//! (`GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared`), and makes the
//! core module a component in-process ([`crate::go_component`]) into
//! `<target>/go/guests/<package>.wasm`.
//!
//! A build costs a few seconds of CPU (Go caches its packages), so it runs
//! at most once per process and is skipped when a digest of its inputs (the
//! SDK, the example, `go version`) matches the one recorded beside the
//! component. A file lock keeps test processes that start together from
//! building into one another.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::guests::{BuildError, target_dir, workspace_root};
use crate::staging::{self, io, lock, run};

/// The Go guests, each a directory holding a main package: the example
/// `examples/cnat-go` and the test guests `tests/guests/reads-go` and
/// `tests/guests/http-probe-go`.
pub const PACKAGES: [&str; 3] = ["cnat-go", "reads-go", "http-probe-go"];

/// http-probe-go declaring (and sending to) `origin` instead of its
/// default: a copy of the built component with the origin patched in place
/// (see [`crate::guests::http_probe_reaching`]).
pub fn http_probe_reaching(origin: &str) -> Result<PathBuf, BuildError> {
    crate::guests::http_probe_reaching("http-probe-go", origin)
}

/// Where the sources of `package` live, relative to the repository's root
/// (and to the staging directory, so a `replace` of the SDK by relative
/// path holds in both).
fn source_dir(package: &str) -> PathBuf {
    if package.starts_with("cnat") {
        Path::new("examples").join(package)
    } else {
        Path::new("tests").join("guests").join(package)
    }
}

/// Where the staged sources and the components live.
pub fn dir() -> PathBuf {
    target_dir().join("go")
}

/// True for the name of a Go guest.
pub fn is_go(package: &str) -> bool {
    PACKAGES.contains(&package)
}

/// Builds `package` if its inputs changed (once per process) and returns
/// its component.
pub fn path(package: &str) -> Result<PathBuf, BuildError> {
    static BUILT: crate::staging::Built = Mutex::new(Vec::new());
    if !is_go(package) {
        return Err(BuildError::new(format!(
            "{package:?} is not a Go guest (those are {PACKAGES:?})"
        )));
    }
    crate::staging::once(&BUILT, package, || build(package))
}

/// The staged copy of `relative` (a directory of the repository) that the
/// last build of `package` compiled: where `go test` runs the suites.
pub fn staged(package: &str, relative: &str) -> Result<PathBuf, BuildError> {
    path(package)?;
    Ok(dir().join("src").join(relative))
}

fn build(package: &str) -> Result<PathBuf, BuildError> {
    let dir = dir();
    std::fs::create_dir_all(dir.join("guests")).map_err(|e| io("creating", &dir, e))?;
    let _lock = lock(&dir)?;
    let root = workspace_root();
    let sdk = root.join("sdks").join("go");
    let source = root.join(source_dir(package));
    let toolchain = go_version()?;
    let digest = staging::inputs_digest(&[&toolchain], &[&sdk, &source], skipped)?;
    let out = dir.join("guests").join(format!("{package}.wasm"));
    let stamp = dir.join("guests").join(format!("{package}.inputs"));
    let staged = dir.join("src");
    let staged_sdk = staged.join("sdks").join("go");
    let staged_example = staged.join(source_dir(package));
    if out.is_file()
        && staged_example.is_dir()
        && std::fs::read_to_string(&stamp).is_ok_and(|s| s == digest)
    {
        return Ok(out);
    }

    // Staged afresh: a file deleted from the sources must not linger in
    // the copy Go compiles.
    for (from, to) in [(&sdk, &staged_sdk), (&source, &staged_example)] {
        if to.exists() {
            std::fs::remove_dir_all(to).map_err(|e| io("removing", to, e))?;
        }
        staging::copy_tree(from, to, skipped)?;
    }
    let core = dir
        .join("guests")
        .join(format!("{package}.core.wasm.{}", std::process::id()));
    eprintln!(
        "go guests: building {} with {toolchain} (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared; a few seconds cold)",
        source.display()
    );
    run(
        go().args(["build", "-buildmode=c-shared", "-trimpath", "-o"])
            .arg(&core)
            .arg(".")
            .env("GOOS", "wasip1")
            .env("GOARCH", "wasm")
            .current_dir(&staged_example),
        &format!("building {}", source_dir(package).display()),
    )?;
    eprintln!(
        "go guests: making {} a component (the WASI preview1 reactor adapter, the SDK's WIT: reconciler-http)",
        core.display()
    );
    let bytes = std::fs::read(&core).map_err(|e| io("reading", &core, e))?;
    let _ = std::fs::remove_file(&core);
    let component = crate::go_component::componentize(&bytes, &staged_sdk.join("wit"))?;
    let partial = dir
        .join("guests")
        .join(format!("{package}.wasm.{}", std::process::id()));
    std::fs::write(&partial, component).map_err(|e| io("writing", &partial, e))?;
    std::fs::rename(&partial, &out).map_err(|e| io("writing", &out, e))?;
    std::fs::write(&stamp, &digest).map_err(|e| io("writing", &stamp, e))?;
    Ok(out)
}

/// The machine's `go`, never fetching another toolchain (a go.mod's `go`
/// line could ask for one) nor any module: the SDK and the guests need
/// none beyond the standard library, and the staged tree holds the SDK.
pub fn go() -> Command {
    let mut command = Command::new("go");
    command
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=readonly");
    command
}

/// `go version`'s line: another toolchain is another component.
fn go_version() -> Result<String, BuildError> {
    let out = go()
        .arg("version")
        .output()
        .map_err(|e| BuildError::new(format!("go guests: cannot run go: {e}")))?;
    if !out.status.success() {
        return Err(BuildError::new(format!(
            "go version failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// What neither the build nor the digest should see: components and core
/// modules an in-tree build leaves behind.
fn skipped(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(".wasm"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_moves_with_a_source_file_and_ignores_built_modules() {
        let dir = std::env::temp_dir().join(format!("bosun-go-digest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("main.go"), "package main\n").unwrap();
        let first = staging::inputs_digest(&["go1"], &[&dir], skipped).unwrap();
        std::fs::write(dir.join("cnat-go.core.wasm"), "junk").unwrap();
        assert_eq!(
            staging::inputs_digest(&["go1"], &[&dir], skipped).unwrap(),
            first,
            "a built module is no input"
        );
        assert_ne!(
            staging::inputs_digest(&["go2"], &[&dir], skipped).unwrap(),
            first,
            "the toolchain is"
        );
        std::fs::write(dir.join("main.go"), "package main // changed\n").unwrap();
        assert_ne!(
            staging::inputs_digest(&["go1"], &[&dir], skipped).unwrap(),
            first,
            "a source change is"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_go_guests_are_built_here() {
        assert!(is_go("cnat-go") && is_go("reads-go") && is_go("http-probe-go"));
        assert!(path("cnat").is_err());
    }
}
