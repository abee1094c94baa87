//! Building the Python guests (`examples/cnat-python`, the test guest
//! `tests/guests/http-probe-python`) as Wasm components.
//!
//! The Python counterpart of [`crate::guests`]: one builder shared by
//! `cargo xtask test` (which builds before any test runs) and every test
//! that loads a Python component ([`crate::guests::path`] routes the names
//! in [`PACKAGES`] here). It makes a venv under `<target>/python/venv` with
//! the pinned toolchain from PyPI, installs `sdks/python` into it, and runs
//! the SDK's own `python -m bosun build` (componentize-py) for each
//! guest, into `<target>/python/guests/<package>.wasm`.
//!
//! A build costs about 10 s of CPU and ~400 MB, so it runs at most once per
//! process and is skipped when a digest of its inputs (the SDK, the
//! example's Python files, the pinned toolchain) matches the one recorded
//! beside the component. A file lock keeps test processes that start
//! together from building into one another.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::guests::{BuildError, target_dir, workspace_root};
use crate::staging::{self, io, lock, run};

/// componentize-py, pinned: it embeds its own CPython (3.14 in 0.25.1) and
/// generates the bindings, so another version is another component.
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

/// What the venv holds besides componentize-py: setuptools builds the SDK's
/// wheel (installed without build isolation, so no second download per
/// build), pytest runs the SDK's and the examples' own tests.
pub const TOOLS: [&str; 3] = [COMPONENTIZE_PY, "setuptools==84.2.1", "pytest==9.2.0"];

/// The Python guests, each a directory with an `app.py`: the example
/// `examples/cnat-python`, and `tests/guests/http-probe-python`, which sends
/// one HTTP request through the SDK's client (see [`http_probe_reaching`]).
pub const PACKAGES: [&str; 2] = ["cnat-python", "http-probe-python"];

/// Where the sources of `package` live.
fn source_dir(package: &str) -> PathBuf {
    let root = workspace_root();
    if package.starts_with("cnat") {
        root.join("examples").join(package)
    } else {
        root.join("tests").join("guests").join(package)
    }
}

/// http-probe-python declaring (and sending to) `origin` instead of its
/// default: a copy of the built component with the origin patched in place
/// (see [`crate::guests::http_probe_reaching`]), so a test can point it at
/// a server on a port chosen at run time.
pub fn http_probe_reaching(origin: &str) -> Result<PathBuf, BuildError> {
    crate::guests::http_probe_reaching("http-probe-python", origin)
}

/// Where the venv, the staged SDK and the components live.
pub fn dir() -> PathBuf {
    target_dir().join("python")
}

/// True for the name of a Python guest.
pub fn is_python(package: &str) -> bool {
    PACKAGES.contains(&package)
}

/// Builds `package` if its inputs changed (once per process) and returns
/// its component.
pub fn path(package: &str) -> Result<PathBuf, BuildError> {
    static BUILT: crate::staging::Built = Mutex::new(Vec::new());
    if !is_python(package) {
        return Err(BuildError::new(format!(
            "{package:?} is not a Python guest (those are {PACKAGES:?})"
        )));
    }
    crate::staging::once(&BUILT, package, || build(package))
}

/// The venv's Python, with [`TOOLS`] installed (made on first use).
pub fn venv_python() -> Result<PathBuf, BuildError> {
    let dir = dir();
    std::fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
    let _lock = lock(&dir)?;
    ensure_venv(&dir)
}

fn build(package: &str) -> Result<PathBuf, BuildError> {
    let dir = dir();
    std::fs::create_dir_all(dir.join("guests")).map_err(|e| io("creating", &dir, e))?;
    let _lock = lock(&dir)?;
    let python = ensure_venv(&dir)?;
    let sdk = workspace_root().join("sdks").join("python");
    let source = source_dir(package);
    let digest = staging::inputs_digest(&TOOLS, &[&sdk, &source], skipped)?;
    let out = dir.join("guests").join(format!("{package}.wasm"));
    let stamp = dir.join("guests").join(format!("{package}.inputs"));
    if out.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == digest) {
        return Ok(out);
    }

    eprintln!(
        "python guests: installing sdks/python into {}",
        dir.join("venv").display()
    );
    // Staged outside the source tree: setuptools writes build/ and
    // *.egg-info beside the sources it builds.
    let staged = dir.join("sdk");
    if staged.exists() {
        std::fs::remove_dir_all(&staged).map_err(|e| io("removing", &staged, e))?;
    }
    staging::copy_tree(&sdk, &staged, skipped)?;
    run(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--no-deps"])
            .args(["--no-build-isolation", "--force-reinstall"])
            .arg(&staged),
        "installing sdks/python",
    )?;

    eprintln!(
        "python guests: componentizing {} with {COMPONENTIZE_PY} (about 10 s on 2 cores)",
        source.display()
    );
    let partial = dir
        .join("guests")
        .join(format!("{package}.wasm.{}", std::process::id()));
    run(
        Command::new(&python)
            .current_dir(&source)
            .args(["-m", "bosun", "build", "app", "-p"])
            .arg(&source)
            .arg("-o")
            .arg(&partial),
        &format!("componentizing {}", source.display()),
    )?;
    std::fs::rename(&partial, &out).map_err(|e| io("writing", &out, e))?;
    std::fs::write(&stamp, &digest).map_err(|e| io("writing", &stamp, e))?;
    Ok(out)
}

/// Makes the venv and installs [`TOOLS`] unless its stamp says they are there.
fn ensure_venv(dir: &Path) -> Result<PathBuf, BuildError> {
    let venv = dir.join("venv");
    let python = venv.join("bin").join("python");
    let stamp = venv.join("bosun-tools");
    let wanted = TOOLS.join("\n");
    if python.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(python);
    }
    eprintln!(
        "python guests: making a venv at {} with {} from PyPI",
        venv.display(),
        TOOLS.join(", ")
    );
    let interpreter = std::env::var_os("BOSUN_PYTHON").unwrap_or_else(|| "python3".into());
    run(
        Command::new(&interpreter)
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
        "making the venv (python3 -m venv; set BOSUN_PYTHON to use another interpreter)",
    )?;
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(TOOLS),
        "installing the pinned Python toolchain from PyPI",
    )?;
    std::fs::write(&stamp, &wanted).map_err(|e| io("writing", &stamp, e))?;
    Ok(python)
}

/// What neither the build nor the digest should see: caches, bytecode and
/// what an in-tree `pip install` leaves behind.
fn skipped(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    matches!(
        name.as_ref(),
        "__pycache__" | ".pytest_cache" | "build" | ".venv"
    ) || name.ends_with(".pyc")
        || name.ends_with(".egg-info")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_moves_with_a_source_file_and_ignores_bytecode() {
        let dir = tempfile_dir();
        std::fs::write(dir.join("app.py"), "x = 1\n").unwrap();
        let first = staging::inputs_digest(&TOOLS, &[&dir], skipped).unwrap();
        std::fs::create_dir_all(dir.join("__pycache__")).unwrap();
        std::fs::write(dir.join("__pycache__").join("app.pyc"), "junk").unwrap();
        assert_eq!(
            staging::inputs_digest(&TOOLS, &[&dir], skipped).unwrap(),
            first,
            "bytecode is no input"
        );
        std::fs::write(dir.join("app.py"), "x = 2\n").unwrap();
        assert_ne!(
            staging::inputs_digest(&TOOLS, &[&dir], skipped).unwrap(),
            first,
            "a source change is"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_python_guests_are_built_here() {
        assert!(is_python("cnat-python"));
        assert!(path("cnat").is_err());
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bosun-py-digest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
