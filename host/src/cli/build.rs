//! `bosun build`: a reconciler crate (or a Python project, `python.rs`, a
//! TypeScript package, `typescript.rs`, or a Go module, `go.rs`)
//! built as a Wasm component, checked against the host's world by loading
//! it in the engine, and described: where it is, its size and digest, what
//! it declares, and the grant it needs.

mod go;
mod python;
mod toolchain;
mod typescript;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::output::{fail, print};
use super::{EXIT_LOAD_FAILED, OutputFormat};
use crate::engine::Engine;

/// The target components are built for.
const TARGET: &str = "wasm32-wasip2";

/// Arguments of `bosun build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The crate (a directory with Cargo.toml, or the manifest itself), a
    /// Python project (a directory with app.py) or a TypeScript package (a
    /// package.json depending on @bosun/sdk) or a Go module (a go.mod
    /// requiring the Go SDK).
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// The package to build, when the manifest is a workspace of several.
    #[arg(short, long)]
    pub package: Option<String>,
    /// The cargo profile (default: `guest` when the workspace defines it,
    /// as `bosun new` does, else `release`).
    #[arg(long)]
    pub profile: Option<String>,
    /// Output format of the report.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
}

pub(super) fn run(args: &BuildArgs, engine: &Engine) -> anyhow::Result<ExitCode> {
    let component = if python::is_project(&args.path) {
        python::build(&args.path)?
    } else if typescript::is_project(&args.path) {
        typescript::build(&args.path)?
    } else if go::is_project(&args.path) {
        go::build(&args.path)?
    } else {
        build_crate(args)?
    };
    let bytes = std::fs::read(&component).with_context(|| {
        format!(
            "the build finished but {} is missing: is the crate's [lib] crate-type cdylib?",
            component.display()
        )
    })?;
    let module = match engine.load(&component.display().to_string(), &bytes) {
        Ok(module) => module,
        Err(error) => return Ok(fail(EXIT_LOAD_FAILED, &error)),
    };
    let grant = crate::grants::GrantFile {
        module: module.meta().name.clone(),
        permissions: crate::grants::requested(module.meta()),
    };
    let report = json!({
        "component": component.display().to_string(),
        "size": bytes.len(),
        "sha256": module.digest(),
        "contract": module.contract().package(),
        "module": module.meta(),
        "permissions": grant.permissions,
        "loadTimeMs": module.load_time().as_secs_f64() * 1000.0,
    });
    print(args.output, &report)?;
    Ok(ExitCode::SUCCESS)
}

/// Builds the crate `args` names with cargo; returns the component's path.
fn build_crate(args: &BuildArgs) -> anyhow::Result<PathBuf> {
    let manifest = if args.path.is_dir() {
        args.path.join("Cargo.toml")
    } else {
        args.path.clone()
    };
    if !manifest.is_file() {
        bail!(
            "{} is not a crate (no Cargo.toml), a Python project (no app.py) or a TypeScript package (no package.json depending on @bosun/sdk) or a Go module (no go.mod requiring the Go SDK): make one with bosun new",
            args.path.display()
        );
    }
    ensure_target()?;
    let metadata = cargo_metadata(&manifest)?;
    let package = pick_package(&metadata, &manifest, args.package.as_deref())?;
    let workspace_root = PathBuf::from(metadata["workspace_root"].as_str().unwrap_or("."));
    let profile = match &args.profile {
        Some(profile) => profile.clone(),
        None if defines_guest_profile(&workspace_root) => "guest".to_owned(),
        None => "release".to_owned(),
    };
    eprintln!("building {package} for {TARGET} ({profile} profile)");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--lib",
            "--target",
            TARGET,
            "--profile",
            &profile,
            "--package",
            &package,
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status})");
    }
    let target_dir = PathBuf::from(metadata["target_directory"].as_str().unwrap_or("target"));
    let profile_dir = match profile.as_str() {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    };
    Ok(target_dir
        .join(TARGET)
        .join(profile_dir)
        .join(format!("{}.wasm", package.replace('-', "_"))))
}

/// Installs the wasm32-wasip2 target through rustup when it is missing.
fn ensure_target() -> anyhow::Result<()> {
    let installed = match Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    {
        Ok(out) => out,
        Err(_) => {
            eprintln!(
                "rustup not found: make sure your toolchain has the {TARGET} target (with rustup: rustup target add {TARGET})"
            );
            return Ok(());
        }
    };
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        return Ok(());
    }
    eprintln!("installing the {TARGET} target (rustup target add {TARGET})");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .context("running rustup")?;
    if !status.success() {
        bail!("rustup target add {TARGET} failed ({status})");
    }
    Ok(())
}

fn cargo_metadata(manifest: &Path) -> anyhow::Result<Value> {
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(manifest)
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("reading cargo metadata")
}

/// The package to build: the one named, or the manifest's own, or the only
/// one with a library.
fn pick_package(metadata: &Value, manifest: &Path, asked: Option<&str>) -> anyhow::Result<String> {
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    let name = |p: &Value| p["name"].as_str().unwrap_or_default().to_owned();
    if let Some(asked) = asked {
        return packages
            .iter()
            .map(name)
            .find(|n| n == asked)
            .with_context(|| format!("there is no package {asked} in {}", manifest.display()));
    }
    let manifest = manifest
        .canonicalize()
        .unwrap_or_else(|_| manifest.to_owned());
    if let Some(own) = packages.iter().find(|p| {
        p["manifest_path"]
            .as_str()
            .is_some_and(|m| Path::new(m) == manifest)
    }) {
        return Ok(name(own));
    }
    match packages.as_slice() {
        [only] => Ok(name(only)),
        _ => bail!(
            "{} is a workspace of several packages; say which with --package",
            manifest.display()
        ),
    }
}

fn defines_guest_profile(workspace_root: &Path) -> bool {
    std::fs::read_to_string(workspace_root.join("Cargo.toml"))
        .is_ok_and(|toml| toml.lines().any(|l| l.trim() == "[profile.guest]"))
}
