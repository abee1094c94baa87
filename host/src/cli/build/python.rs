//! `bosun build` for a Python project (`bosun new --lang python`, or any
//! directory whose `app.py` defines `WitWorld = bosun.export(...)`): the
//! project's `.venv` — made from its `requirements.txt` the first time —
//! runs the Python SDK's `python -m bosun build`, with the componentize-py
//! the SDK pins, so every build of a project uses the same toolchain.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use super::toolchain::{output, run};

/// Whether `dir` holds a Python reconciler rather than a crate.
pub(super) fn is_project(dir: &Path) -> bool {
    dir.join("app.py").is_file() && !dir.join("Cargo.toml").is_file()
}

/// Builds the project in `dir`; returns the component's path.
pub(super) fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = &dir
        .canonicalize()
        .with_context(|| format!("{} does not exist", dir.display()))?;
    let venv = dir.join(".venv");
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        let requirements = dir.join("requirements.txt");
        if !requirements.is_file() {
            bail!(
                "{} has no .venv and no requirements.txt to make one from: create .venv there with the SDK's build toolchain (pip install './sdks/python[build]' from a bosun checkout)",
                dir.display()
            );
        }
        eprintln!(
            "creating {} from requirements.txt (python3 -m venv, pip install; the first time downloads componentize-py, about 40 MB)",
            venv.display()
        );
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv (Debian: apt-get install python3-venv)",
        )?;
        run(
            Command::new(venv.join("bin").join("pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(&requirements),
            "pip install -r requirements.txt",
        )?;
    }
    let component = output(dir)?;
    eprintln!(
        "building {} with componentize-py (python -m bosun build app)",
        component.display()
    );
    run(
        Command::new(&python)
            .current_dir(dir)
            .args(["-m", "bosun", "build", "app", "-o"])
            .arg(&component),
        "python -m bosun build",
    )?;
    Ok(component)
}
