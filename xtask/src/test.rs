//! `cargo xtask test`: the whole test suite, as CI runs it.
//!
//! 1. the control plane (built once, then reused from its cache), the
//!    guests and the host binary the end-to-end tests load, built before any
//!    test runs, the Go build beside the Rust ones (see `prepare`);
//! 2. the Python guests (`bosun_testenv::python_guests`: a venv under
//!    `target/python` with the pinned componentize-py from PyPI), then the
//!    TypeScript one (`bosun_testenv::typescript_guests`: npm ci under
//!    `target/typescript`), then the Go one (`bosun_testenv::go_guests`:
//!    the machine's Go under `target/go`);
//! 3. `cargo test --workspace`, with any extra arguments passed through.

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
    // What the end-to-end tests would otherwise build inside a running test,
    // competing for the CPU with tests that wait on timeouts.
    crate::prepare::prepare(|text| eprintln!("test: {text}"))?;
    // Only the tests load the Python guests; the demo does without them.
    eprintln!(
        "test: building the Python guests: a venv with componentize-py from PyPI, then examples/cnat-python and the Python test guest (cold: about 1 min; then instant)"
    );
    for package in bosun_testenv::python_guests::PACKAGES {
        bosun_testenv::python_guests::path(package)
            .map_err(|e| anyhow::anyhow!("building the Python guest {package}: {e}"))?;
    }
    eprintln!(
        "test: building the TypeScript guests: npm ci of sdks/typescript, examples/cnat-typescript and the TypeScript test guest under target/typescript, then bosun-build (cold: under 1 min; then instant)"
    );
    for package in bosun_testenv::typescript_guests::PACKAGES {
        bosun_testenv::typescript_guests::path(package)
            .map_err(|e| anyhow::anyhow!("building the TypeScript guest {package}: {e}"))?;
    }
    eprintln!(
        "test: building the Go guests: examples/cnat-go and the Go test guests with the machine's Go (GOOS=wasip1) under target/go, made a component with the preview1 reactor adapter (cold: seconds; then instant)"
    );
    for package in bosun_testenv::go_guests::PACKAGES {
        bosun_testenv::go_guests::path(package)
            .map_err(|e| anyhow::anyhow!("building the Go guest {package}: {e}"))?;
    }
    eprintln!(
        "test: cargo test --workspace {}",
        args.cargo_test_args.join(" ")
    );
    // Without xtask's own crate variables, so the suite's build and the
    // builds its tests start share one set of dependencies instead of
    // rebuilding ring, rustls and kube for each other.
    let status = bosun_testenv::guests::cargo()
        .args(["test", "--workspace"])
        .args(&args.cargo_test_args)
        .status()?;
    eprintln!("test: finished in {:.0}s", started.elapsed().as_secs_f64());
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}
