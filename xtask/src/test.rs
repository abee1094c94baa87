//! `cargo xtask test`: the whole test suite, as CI runs it.
//!
//! 1. the control plane (built once, then reused from its cache);
//! 2. the guests, the host binary and the second webapp version the
//!    end-to-end tests load, built once before any test runs;
//! 3. `cargo test --workspace`, with any extra arguments passed through.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

#[derive(clap::Args)]
pub struct Args {
    /// Extra arguments for `cargo test` (after `--`), e.g. `-- --nocapture`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    cargo_test_args: Vec<String>,
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    crate::control_plane::ensure(false)?;
    crate::guests::build()?;
    // What the end-to-end tests would otherwise build inside a running test,
    // competing for the CPU with tests that wait on timeouts.
    eprintln!(
        "test: building the bosun binary and the second webapp version for the end-to-end tests"
    );
    bosun_testenv::guests::host_binary().context("building bosun")?;
    bosun_testenv::guests::webapp_revision("2").context("building the second webapp version")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "test: cargo test --workspace {}",
        args.cargo_test_args.join(" ")
    );
    let status = Command::new(cargo)
        .args(["test", "--workspace"])
        .args(&args.cargo_test_args)
        .status()?;
    eprintln!("test: finished in {:.0}s", started.elapsed().as_secs_f64());
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}
