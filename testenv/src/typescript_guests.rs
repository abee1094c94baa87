//! Building the TypeScript guests (`examples/cnat-typescript`, the test
//! guest `tests/guests/http-probe-typescript`) as Wasm components.
//!
//! The TypeScript counterpart of [`crate::python_guests`]: one builder
//! shared by `cargo xtask test` and every test that loads the component
//! ([`crate::guests::path`] routes the names in [`PACKAGES`] here). It
//! copies `sdks/typescript` and the example under `<target>/typescript/src`
//! (keeping their relative layout, which the example's `file:` dependency
//! on the SDK relies on), runs `npm ci` in both (the SDK's `prepare`
//! compiles it with tsc; the toolchain is pinned by each package-lock.json),
//! then the example's `npm run build`, which type-checks and runs the SDK's
//! `bosun-build` (componentize-qjs, QuickJS) into
//! `<target>/typescript/guests/<package>.wasm`.
//!
//! A build costs a few seconds of CPU once `npm ci` has its cache, so it
//! runs at most once per process and is skipped when a digest of its inputs
//! (the SDK and the example, lockfiles included) matches the one recorded
//! beside the component. A file lock keeps test processes that start
//! together from building into one another.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::guests::{BuildError, target_dir, workspace_root};
use crate::staging::{self, io, lock, run};

/// The TypeScript guests, each a directory with a package.json whose
/// `build` script takes the output path: the example
/// `examples/cnat-typescript`, and `tests/guests/http-probe-typescript`,
/// which sends one HTTP request through the SDK's client (see
/// [`http_probe_reaching`]).
pub const PACKAGES: [&str; 2] = ["cnat-typescript", "http-probe-typescript"];

/// Where the sources of `package` live, relative to the repository's root
/// (and to the staging directory, so a `file:` dependency on the SDK by
/// relative path holds in both).
fn source_dir(package: &str) -> PathBuf {
    if package.starts_with("cnat") {
        Path::new("examples").join(package)
    } else {
        Path::new("tests").join("guests").join(package)
    }
}

/// http-probe-typescript declaring (and sending to) `origin` instead of its
/// default: a copy of the built component with the origin patched in place
/// (see [`crate::guests::http_probe_reaching`]).
pub fn http_probe_reaching(origin: &str) -> Result<PathBuf, BuildError> {
    crate::guests::http_probe_reaching("http-probe-typescript", origin)
}

/// Where the staged sources and the components live.
pub fn dir() -> PathBuf {
    target_dir().join("typescript")
}

/// True for the name of a TypeScript guest.
pub fn is_typescript(package: &str) -> bool {
    PACKAGES.contains(&package)
}

/// Builds `package` if its inputs changed (once per process) and returns
/// its component.
pub fn path(package: &str) -> Result<PathBuf, BuildError> {
    static BUILT: crate::staging::Built = Mutex::new(Vec::new());
    if !is_typescript(package) {
        return Err(BuildError::new(format!(
            "{package:?} is not a TypeScript guest (those are {PACKAGES:?})"
        )));
    }
    crate::staging::once(&BUILT, package, || build(package))
}

fn build(package: &str) -> Result<PathBuf, BuildError> {
    let dir = dir();
    std::fs::create_dir_all(dir.join("guests")).map_err(|e| io("creating", &dir, e))?;
    let _lock = lock(&dir)?;
    let root = workspace_root();
    let sdk = root.join("sdks").join("typescript");
    let source = root.join(source_dir(package));
    let digest = staging::inputs_digest(&[], &[&sdk, &source], skipped)?;
    let out = dir.join("guests").join(format!("{package}.wasm"));
    let stamp = dir.join("guests").join(format!("{package}.inputs"));
    if out.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == digest) {
        return Ok(out);
    }

    // Staged outside the source tree: npm ci writes node_modules and tsc
    // dist/ beside the sources. node_modules is kept between builds, so a
    // rebuild after a source change skips the download.
    let staged = dir.join("src");
    let staged_sdk = staged.join("sdks").join("typescript");
    let staged_example = staged.join(source_dir(package));
    for (from, to) in [(&sdk, &staged_sdk), (&source, &staged_example)] {
        staging::copy_tree(from, to, skipped)?;
    }
    eprintln!(
        "typescript guests: npm ci in {} (the pinned tsc and componentize-qjs 0.4.5)",
        staged_sdk.display()
    );
    run(
        npm().arg("ci").current_dir(&staged_sdk),
        "npm ci in sdks/typescript",
    )?;
    run(
        npm().arg("ci").current_dir(&staged_example),
        &format!("npm ci in {}", source_dir(package).display()),
    )?;
    eprintln!(
        "typescript guests: building {} with bosun-build (QuickJS; a few seconds)",
        source.display()
    );
    let partial = dir
        .join("guests")
        .join(format!("{package}.wasm.{}", std::process::id()));
    run(
        npm()
            .args(["run", "build", "--"])
            .arg(&partial)
            .current_dir(&staged_example),
        &format!("building {}", source_dir(package).display()),
    )?;
    std::fs::rename(&partial, &out).map_err(|e| io("writing", &out, e))?;
    std::fs::write(&stamp, &digest).map_err(|e| io("writing", &stamp, e))?;
    Ok(out)
}

fn npm() -> Command {
    let mut command = Command::new("npm");
    // Quiet and offline-friendly: no audit or funding calls to the registry
    // beyond the packages themselves.
    command.args(["--no-audit", "--no-fund", "--loglevel=warn"]);
    command
}

/// What neither the build nor the digest should see: what npm, tsc and an
/// in-tree build leave behind.
fn skipped(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    matches!(name.as_ref(), "node_modules" | "dist") || name.ends_with(".wasm")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_moves_with_a_source_file_and_ignores_installed_packages() {
        let dir = std::env::temp_dir().join(format!("bosun-ts-digest-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("node_modules")).unwrap();
        std::fs::write(dir.join("app.ts"), "export const x = 1;\n").unwrap();
        let first = staging::inputs_digest(&[], &[&dir], skipped).unwrap();
        std::fs::write(dir.join("node_modules").join("junk.js"), "junk").unwrap();
        assert_eq!(
            staging::inputs_digest(&[], &[&dir], skipped).unwrap(),
            first,
            "node_modules is no input"
        );
        std::fs::write(dir.join("app.ts"), "export const x = 2;\n").unwrap();
        assert_ne!(
            staging::inputs_digest(&[], &[&dir], skipped).unwrap(),
            first,
            "a source change is"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_typescript_guests_are_built_here() {
        assert!(is_typescript("cnat-typescript") && is_typescript("http-probe-typescript"));
        assert!(path("cnat").is_err());
    }
}
