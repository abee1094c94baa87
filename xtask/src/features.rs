//! `cargo xtask check-features`: checks that the builds this project runs
//! share their dependencies.
//!
//! Cargo resolves features per build, so `cargo xtask` (xtask alone), the
//! host binary tests start (`cargo build -p bosun --bin bosun`) and
//! `cargo test --workspace` can each ask for a dependency with different
//! features and build it, and everything above it, once per build. The
//! `workspace-hack` crate asks for the union; this check compares the three
//! builds' unit graphs and names every unit the test build would not share,
//! which is what to add to `workspace-hack/Cargo.toml`.
//!
//! The unit graph is an unstable cargo output; `RUSTC_BOOTSTRAP=1` lets a
//! stable cargo print it. Nothing is built.

use std::collections::BTreeSet;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// One unit of a build: what makes cargo build a crate once more.
type Unit = (String, String, String, Vec<String>, String);

pub fn run() -> Result<()> {
    let test = units(&["test", "--workspace", "--no-run"])?;
    let mut extra = BTreeSet::new();
    for (what, args) in [
        (
            "cargo xtask",
            &["build", "-p", "xtask", "--bin", "xtask"][..],
        ),
        (
            "the host binary",
            &["build", "-p", "bosun", "--bin", "bosun"][..],
        ),
    ] {
        for unit in units(args)?.difference(&test) {
            extra.insert(format!(
                "{what}: {} ({}, {}) with features [{}]",
                unit.0,
                unit.1,
                unit.2,
                unit.3.join(", ")
            ));
        }
    }
    if !extra.is_empty() {
        bail!(
            "these units build again besides `cargo test --workspace`'s; \
             add their features to workspace-hack/Cargo.toml:\n  {}",
            extra.into_iter().collect::<Vec<_>>().join("\n  ")
        );
    }
    println!(
        "check-features: `cargo xtask` and the host binary share every unit with `cargo test --workspace` ({} units)",
        test.len()
    );
    Ok(())
}

fn units(args: &[&str]) -> Result<BTreeSet<Unit>> {
    let output = bosun_testenv::guests::cargo()
        .args(args)
        .args(["--unit-graph", "-Z", "unstable-options"])
        .env("RUSTC_BOOTSTRAP", "1")
        .output()
        .context("running cargo --unit-graph")?;
    if !output.status.success() {
        bail!(
            "cargo {} --unit-graph failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let graph: Value =
        serde_json::from_slice(&output.stdout).context("parsing cargo's unit graph")?;
    let mut set = BTreeSet::new();
    for unit in graph["units"].as_array().into_iter().flatten() {
        let mut profile = unit["profile"].clone();
        // Cargo names the test build's profile differently without building
        // its dependencies differently.
        if let Some(p) = profile.as_object_mut() {
            p.remove("name");
        }
        let package = unit["pkg_id"].as_str().unwrap_or_default();
        let package = package.rsplit('#').next().unwrap_or(package).to_owned();
        let features = unit["features"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect();
        set.insert((
            package,
            unit["target"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            unit["mode"].as_str().unwrap_or_default().to_owned(),
            features,
            profile.to_string(),
        ));
    }
    Ok(set)
}
