//! What building a Python or TypeScript project shares: running its
//! toolchain's commands and where the component goes.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// Runs `command`; `what` names it in the error when it fails.
pub(super) fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Where the component of the project in `dir` goes, its directory made.
pub(super) fn output(dir: &Path) -> anyhow::Result<PathBuf> {
    let component = crate::cli::new::script_component_path(dir);
    if let Some(parent) = component.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    Ok(component)
}
