//! `bosun build` for a Go module (`bosun new --lang go`, or any module
//! requiring the Go SDK): mainline Go builds the core module for wasip1
//! (`-buildmode=c-shared`), then `bosun-componentize` makes it a component
//! against the SDK's WIT with the WASI preview1 reactor adapter — no
//! wasm-tools, nothing but Go on the machine.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use super::toolchain::{output, run};
use crate::cli::new::GO_SDK_MODULE;

/// Whether `dir` holds a Go reconciler rather than a crate.
pub(super) fn is_project(dir: &Path) -> bool {
    !dir.join("Cargo.toml").is_file()
        && std::fs::read_to_string(dir.join("go.mod"))
            .is_ok_and(|module| module.contains(GO_SDK_MODULE))
}

/// Builds the module in `dir`; returns the component's path.
pub(super) fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = &dir
        .canonicalize()
        .with_context(|| format!("{} does not exist", dir.display()))?;
    let sdk = sdk_dir(dir)?;
    let component = output(dir)?;
    let core = component.with_extension("core.wasm");
    eprintln!(
        "building {} (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared)",
        core.display()
    );
    run(
        Command::new("go")
            .current_dir(dir)
            .env("GOOS", "wasip1")
            .env("GOARCH", "wasm")
            .args(["build", "-buildmode=c-shared", "-o"])
            .arg(&core)
            .arg("."),
        "go build (Go 1.24 or newer)",
    )?;
    let bytes = std::fs::read(&core).with_context(|| format!("reading {}", core.display()))?;
    eprintln!(
        "making {} a component (the SDK's WIT, the preview1 reactor adapter)",
        component.display()
    );
    let made = bosun_componentize::componentize(&bytes, &sdk.join("wit"))?;
    std::fs::write(&component, made).with_context(|| format!("writing {}", component.display()))?;
    Ok(component)
}

/// The Go SDK's directory as the module resolves it (a `replace` to a
/// checkout, as `bosun new` writes, or the module cache).
fn sdk_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    let out = Command::new("go")
        .current_dir(dir)
        .args(["list", "-m", "-f", "{{.Dir}}", GO_SDK_MODULE])
        .output()
        .context("running go list (is Go installed?)")?;
    let found = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || found.is_empty() {
        bail!(
            "cannot find the Go SDK ({GO_SDK_MODULE}) from {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(PathBuf::from(found))
}
