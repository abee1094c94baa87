//! What `demo` and `test` need before they start: the control plane, the
//! guests and the host binary.
//!
//! On a fresh machine all three are builds, and the Go one needs no Rust:
//! it runs on a thread of its own beside cargo's, so the cold start costs
//! about the longer of the two instead of their sum (each leaves cores idle
//! while it links or waits on its last crates).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};

use crate::control_plane::{self, Output};

/// The built pieces.
pub struct Prepared {
    /// The directory holding the guest components (`cnat.wasm`, …).
    pub guests: PathBuf,
    /// The `bosun` binary.
    pub bosun: PathBuf,
}

/// Builds (or finds up to date) the control plane, the guests and the host,
/// printing each step through `step` with what it costs on a cold 2-core
/// machine.
pub fn prepare(step: impl Fn(&str)) -> Result<Prepared> {
    let started = Instant::now();
    let control_plane = std::thread::spawn(|| control_plane::ensure(false, Output::Background));
    step(
        "building the guests: the examples and the test reconcilers as Wasm components (cold: about 3 min on 2 cores; then seconds)",
    );
    let guests = crate::guests::build()?;
    step("building the bosun host (cold: about 8 min on 2 cores; then seconds)");
    let bosun = bosun_testenv::guests::host_binary().context("building bosun")?;
    if !control_plane.is_finished() {
        step("waiting for the control plane's Go build to finish");
    }
    control_plane
        .join()
        .map_err(|_| anyhow!("the control-plane build panicked"))??;
    eprintln!(
        "prepare: control plane, guests and host ready after {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(Prepared { guests, bosun })
}
