//! `cargo xtask build-guests`: builds the example and test reconcilers as Wasm
//! components and says where they are.

use anyhow::{Context, Result};
use bosun_testenv::guests;

pub fn run() -> Result<()> {
    let dir = build()?;
    for package in guests::PACKAGES {
        let file = dir.join(format!("{}.wasm", package.replace('-', "_")));
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        println!("{} ({} KiB)", file.display(), size / 1024);
    }
    Ok(())
}

/// Builds the guests and returns the directory holding them.
pub fn build() -> Result<std::path::PathBuf> {
    eprintln!(
        "guests: cargo build --profile {} --target {} ({})",
        guests::PROFILE,
        guests::TARGET,
        guests::PACKAGES.join(", ")
    );
    guests::build().context("building the guests")
}
