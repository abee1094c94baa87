//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! Each subcommand lives in a module of its own; `main` only parses and dispatches.

mod control_plane;
mod demo;
mod demo_offline;
mod features;
mod go_component;
mod guests;
mod prepare;
mod test;

use anyhow::Result;
use clap::{Parser, Subcommand};
use xtask::{bench, image, soak};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "bosun's build, test and demo automation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build (or reuse) kube-apiserver and etcd from Go modules into the cache.
    ControlPlane(control_plane::Args),
    /// Build the example and test reconcilers as Wasm components.
    BuildGuests,
    /// Make a Go reconciler's core module (GOOS=wasip1 -buildmode=c-shared)
    /// a component, with the Go SDK's WIT and the preview1 reactor adapter.
    GoComponent(go_component::Args),
    /// Run the whole test suite: control plane, guests, then `cargo test --workspace`.
    Test(test::Args),
    /// The main job: start a local control plane, run bosun with the example
    /// reconcilers, create sample objects and show what happens.
    Demo(demo::Args),
    /// Check that `cargo xtask`, the host binary and the test build share
    /// their dependencies (see workspace-hack/Cargo.toml).
    CheckFeatures,
    /// Build the container image as an OCI layout and archive, without a
    /// daemon, reproducibly; prints its digest.
    Image(image::Args),
    /// bosun beside a native kube-rs controller doing the same work:
    /// converge rate, latency, API requests, memory and CPU, as ratios.
    /// Writes target/bench/bench.md and bench.json.
    // Boxed: its many sizes make it the largest variant by far.
    Bench(Box<bench::Args>),
    /// The hosts under a steady workload and chaos (hot swaps, API server
    /// restarts, failovers, hostile guests) for --minutes, then checks
    /// that every object converged, nothing was written outside a grant,
    /// no reconcile was lost and memory stayed flat. Writes
    /// target/soak/report.md and .json.
    Soak(Box<soak::Args>),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::ControlPlane(args) => control_plane::run(args),
        Command::BuildGuests => guests::run(),
        Command::GoComponent(args) => go_component::run(args),
        Command::Test(args) => test::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Image(args) => image::run(args),
        Command::CheckFeatures => features::run(),
        Command::Bench(args) => {
            control_plane::ensure(false, control_plane::Output::Verbose)?;
            bench::run(*args).map(|_| ())
        }
        Command::Soak(args) => {
            control_plane::ensure(false, control_plane::Output::Verbose)?;
            let outcome = soak::run(*args)?;
            if !outcome.report.passed() {
                anyhow::bail!(
                    "the soak failed ({}): see {}",
                    outcome.report.failures.len(),
                    outcome.markdown.display()
                );
            }
            Ok(())
        }
    }
}
