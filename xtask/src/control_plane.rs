//! `cargo xtask control-plane`: placeholder, owned by the control-plane work.

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> Result<()> {
    anyhow::bail!("not built yet")
}
