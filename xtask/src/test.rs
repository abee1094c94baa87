//! `cargo xtask test`: the whole test suite, as CI runs it.
//!
//! 1. the control plane (built once, then reused from its cache);
//! 2. the guests, built once for every test binary;
//! 3. `cargo test --workspace`, with any extra arguments passed through.

use std::process::Command;
use std::time::Instant;

use anyhow::{Result, bail};

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
