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
//! The guests have the same trap: the tests build every guest in one cargo
//! run, while `bosun build examples/webapp` and README's blocks build one.
//! Where those resolve a dependency's features differently, the lone build
//! writes a different `target/wasm32-wasip2/guest/webapp.wasm` over the one
//! a running test has loaded (a concurrent test saw its component change
//! between two pushes). So each guest alone must build the very units the
//! build of all of them does.
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
    check_guests()
}

/// Each example built alone (as `bosun build` and README build them)
/// against all guests built together (as the tests do).
fn check_guests() -> Result<()> {
    use bosun_testenv::guests::{PACKAGES, PROFILE, TARGET};
    let examples = examples()?;
    let build = ["build", "--profile", PROFILE, "--target", TARGET];
    let mut all_args = build.to_vec();
    for package in PACKAGES {
        all_args.extend(["--package", package]);
    }
    let all = units(&all_args)?;
    let mut differing = Vec::new();
    for package in &examples {
        let mut alone_args = build.to_vec();
        alone_args.extend(["--package", package.as_str()]);
        for unit in units(&alone_args)?.difference(&all) {
            differing.push(format!(
                "{package} alone: {} ({}) with features [{}]",
                unit.0,
                unit.1,
                unit.3.join(", ")
            ));
        }
    }
    if !differing.is_empty() {
        bail!(
            "these guest units differ when a guest is built alone; give the \
             dependency the same features in every guest's Cargo.toml:\n  {}",
            differing.join("\n  ")
        );
    }
    println!(
        "check-features: each example alone ({}) builds the units of the guest build ({} units)",
        examples.join(", "),
        all.len()
    );
    Ok(())
}

/// The packages under `examples/` that are guests.
fn examples() -> Result<Vec<String>> {
    let root = bosun_testenv::guests::workspace_root().join("examples");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&root).with_context(|| format!("listing {}", root.display()))? {
        let manifest = entry?.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        // The first `name = "…"` of a Cargo.toml is its package's.
        let name = text.lines().find_map(|line| {
            let value = line.trim().strip_prefix("name")?.trim().strip_prefix('=')?;
            Some(value.trim().trim_matches('"').to_owned())
        });
        if let Some(name) = name.filter(|n| bosun_testenv::guests::PACKAGES.contains(&n.as_str())) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
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
