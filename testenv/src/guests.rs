//! Building the example and test reconcilers as Wasm components.
//!
//! One piece of code shared by `cargo xtask build-guests` and by every test
//! or benchmark that loads a component: they call [`build`] (or [`path`]),
//! which runs `cargo build --profile guest --target wasm32-wasip2` for all guests
//! once per process. Cargo makes that a quick no-op when nothing changed, so
//! tests never run against a stale component and need no separate build step.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The target guests are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// The guest packages: the examples, the deliberately bad test guest, and
/// the test guest with a finalizer.
pub const PACKAGES: [&str; 4] = ["cnat", "webapp", "misbehave", "janitor"];

/// Why the guests could not be built.
#[derive(Debug, Clone)]
pub struct BuildError(String);

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

/// The workspace root (the directory holding the workspace `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testenv lives one level below the workspace root")
        .to_owned()
}

/// The cargo profile guests are built with (release, without debug info).
pub const PROFILE: &str = "guest";

/// Where the built components land: `<target dir>/wasm32-wasip2/guest/`.
pub fn out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        workspace_root().join(target)
    };
    target.join(TARGET).join(PROFILE)
}

/// Builds every guest (once per process) and returns the directory holding
/// the `.wasm` files.
pub fn build() -> Result<PathBuf, BuildError> {
    static BUILT: OnceLock<Result<PathBuf, BuildError>> = OnceLock::new();
    BUILT.get_or_init(build_now).clone()
}

/// Builds the guests if needed and returns the component of `package`
/// (for instance `cnat`).
pub fn path(package: &str) -> Result<PathBuf, BuildError> {
    let file = build()?.join(format!("{}.wasm", package.replace('-', "_")));
    if file.is_file() {
        Ok(file)
    } else {
        Err(BuildError(format!(
            "the build finished but {} is missing",
            file.display()
        )))
    }
}

fn build_now() -> Result<PathBuf, BuildError> {
    ensure_target()?;
    let mut command = cargo();
    command
        .current_dir(workspace_root())
        .args(["build", "--profile", PROFILE, "--target", TARGET]);
    for package in PACKAGES {
        command.args(["--package", package]);
    }
    let status = command
        .status()
        .map_err(|e| BuildError(format!("cannot run cargo to build the guests: {e}")))?;
    if !status.success() {
        return Err(BuildError(format!(
            "building the guests failed ({status}); run `cargo xtask build-guests` to see why"
        )));
    }
    Ok(out_dir())
}

/// Installs the wasm32-wasip2 target through rustup when it is missing.
fn ensure_target() -> Result<(), BuildError> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match installed {
        // No rustup: the toolchain is managed some other way; let cargo say
        // whether the target is there.
        Err(_) => Ok(()),
        Ok(out)
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == TARGET) =>
        {
            Ok(())
        }
        Ok(_) => {
            let status = Command::new("rustup")
                .args(["target", "add", TARGET])
                .status()
                .map_err(|e| BuildError(format!("cannot run rustup: {e}")))?;
            if status.success() {
                Ok(())
            } else {
                Err(BuildError(format!(
                    "`rustup target add {TARGET}` failed ({status})"
                )))
            }
        }
    }
}

/// A second build of the webapp example with `WEBAPP_REVISION` set: the
/// same module (name, kinds) in a new version that labels every child with
/// `examples.bosun.dev/revision`. Built once per process into its own target
/// directory (`target/guest-variants`), so it never overwrites the regular
/// component other tests use.
pub fn webapp_revision(revision: &str) -> Result<PathBuf, BuildError> {
    static BUILT: OnceLock<Result<PathBuf, BuildError>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            ensure_target()?;
            let target_dir = workspace_root().join("target").join("guest-variants");
            let status = cargo()
                .current_dir(workspace_root())
                .env("WEBAPP_REVISION", revision)
                .args([
                    "build",
                    "--profile",
                    PROFILE,
                    "--target",
                    TARGET,
                    "--package",
                    "webapp",
                    "--target-dir",
                ])
                .arg(&target_dir)
                .status()
                .map_err(|e| {
                    BuildError(format!("cannot run cargo to build the webapp variant: {e}"))
                })?;
            if !status.success() {
                return Err(BuildError(format!(
                    "building the webapp variant failed ({status})"
                )));
            }
            Ok(target_dir.join(TARGET).join(PROFILE).join("webapp.wasm"))
        })
        .clone()
}

/// Builds the `bosun` host binary (debug profile, once per process) and
/// returns its path, for end-to-end tests that run it as operators do.
pub fn host_binary() -> Result<PathBuf, BuildError> {
    static BUILT: OnceLock<Result<PathBuf, BuildError>> = OnceLock::new();
    BUILT.get_or_init(|| build_host("dev", "debug")).clone()
}

/// Builds the `bosun` host binary with the release profile (once per
/// process), for benchmarks that time the host as it ships.
pub fn host_binary_release() -> Result<PathBuf, BuildError> {
    static BUILT: OnceLock<Result<PathBuf, BuildError>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_host("release", "release"))
        .clone()
}

fn build_host(profile: &str, directory: &str) -> Result<PathBuf, BuildError> {
    let status = cargo()
        .current_dir(workspace_root())
        .args([
            "build",
            "--profile",
            profile,
            "--package",
            "bosun",
            "--bin",
            "bosun",
        ])
        .status()
        .map_err(|e| BuildError(format!("cannot run cargo to build bosun: {e}")))?;
    if !status.success() {
        return Err(BuildError(format!(
            "building the bosun binary ({profile} profile) failed ({status})"
        )));
    }
    out_dir()
        .parent()
        .and_then(Path::parent)
        .map(|target| target.join(directory).join("bosun"))
        .ok_or_else(|| BuildError("no target directory".into()))
}

/// A `cargo` command that builds as a top-level `cargo build` would.
///
/// Inside a test, cargo has set variables describing the test's own crate
/// (`CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`, …). Build scripts such as ring's
/// declare them as inputs, so passing them on would make this nested build
/// and the outer one rebuild each other's dependencies every time.
fn cargo() -> Command {
    const CRATE_SCOPED: [&str; 8] = [
        "CARGO_PKG_",
        "CARGO_BIN_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        if CRATE_SCOPED
            .iter()
            .any(|prefix| name_text.starts_with(prefix))
        {
            command.env_remove(&name);
        }
    }
    command
}
