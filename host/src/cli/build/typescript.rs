//! `bosun build` for a TypeScript package (`bosun new --lang typescript`,
//! or any package depending on `@bosun/sdk` with its reconciler in
//! `src/app.ts`): `npm install` the first time, the package's own tsc,
//! then the SDK's `bosun-build` with the componentize-qjs it pins.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

use super::toolchain::{output, run};

/// Whether `dir` holds a TypeScript reconciler rather than a crate.
pub(super) fn is_project(dir: &Path) -> bool {
    !dir.join("Cargo.toml").is_file()
        && std::fs::read_to_string(dir.join("package.json"))
            .is_ok_and(|package| package.contains("\"@bosun/sdk\""))
}

/// Builds the package in `dir`; returns the component's path.
pub(super) fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = &dir
        .canonicalize()
        .with_context(|| format!("{} does not exist", dir.display()))?;
    // A `file:` dependency is linked, not built, and npm runs its
    // `prepare` (tsc) with the SDK's own node_modules: the SDK's `npm ci`
    // (its pinned tsc and componentize-qjs) comes first.
    if let Some(sdk) = linked_sdk(dir)?
        && (!sdk.join("dist").join("src").join("component.js").is_file()
            || !sdk.join("node_modules").join("componentize-qjs").is_dir())
    {
        eprintln!(
            "building the SDK at {} (npm ci: its pinned tsc and componentize-qjs)",
            sdk.display()
        );
        run(
            Command::new("npm")
                .current_dir(&sdk)
                .args(["ci", "--no-audit", "--no-fund"]),
            "npm ci in the SDK (Debian: apt-get install npm)",
        )?;
    }
    let sdk = dir.join("node_modules").join("@bosun").join("sdk");
    if !sdk.join("bin").join("bosun-build.mjs").is_file() {
        eprintln!(
            "installing {}'s dependencies (npm install: the SDK, tsc)",
            dir.display()
        );
        run(
            Command::new("npm")
                .current_dir(dir)
                .args(["install", "--no-audit", "--no-fund"]),
            "npm install",
        )?;
    }
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("{} is missing after npm install", sdk.display()))?;
    eprintln!("compiling {} (tsc)", dir.display());
    run(
        Command::new("npm")
            .current_dir(dir)
            .args(["exec", "--no", "--", "tsc"]),
        "tsc",
    )?;
    let component = output(dir)?;
    eprintln!(
        "building {} with componentize-qjs (bosun-build dist/src/app.js)",
        component.display()
    );
    run(
        Command::new("node")
            .current_dir(dir)
            .arg(sdk.join("bin").join("bosun-build.mjs"))
            .args(["dist/src/app.js", "-o"])
            .arg(&component),
        "bosun-build",
    )?;
    Ok(component)
}

/// The SDK's directory when package.json depends on it by `file:` path
/// (as `bosun new` writes it); None when it comes from a registry.
fn linked_sdk(dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let text = std::fs::read_to_string(dir.join("package.json"))
        .with_context(|| format!("reading {}", dir.join("package.json").display()))?;
    let package: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", dir.join("package.json").display()))?;
    let Some(path) = package["dependencies"]["@bosun/sdk"]
        .as_str()
        .and_then(|spec| spec.strip_prefix("file:"))
    else {
        return Ok(None);
    };
    Ok(Some(dir.join(path)))
}
