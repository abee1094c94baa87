//! What the builders of guests in other languages ([`crate::python_guests`],
//! [`crate::typescript_guests`], [`crate::go_guests`]) share: a digest of
//! their inputs, a copy of a source tree to stage, a lock across test
//! processes, and running the toolchain. Each builder says which files are
//! no input (`skipped`).

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::guests::BuildError;

/// Whether a file or directory is left out of the digest and the copy.
pub(crate) type Skipped = fn(&Path) -> bool;

/// One sha256 over the toolchain `pins` and every file under `dirs` that
/// is not `skipped`, in a stable order.
pub(crate) fn inputs_digest(
    pins: &[&str],
    dirs: &[&Path],
    skipped: Skipped,
) -> Result<String, BuildError> {
    let mut hasher = Sha256::new();
    hasher.update(pins.join("\n"));
    for dir in dirs {
        let mut files = Vec::new();
        walk(dir, &mut files, skipped)?;
        files.sort();
        for file in files {
            let bytes = std::fs::read(&file).map_err(|e| io("reading", &file, e))?;
            let name = file.strip_prefix(dir).unwrap_or(&file);
            hasher.update(name.to_string_lossy().as_bytes());
            hasher.update([0]);
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, skipped: Skipped) -> Result<(), BuildError> {
    for entry in std::fs::read_dir(dir).map_err(|e| io("reading", dir, e))? {
        let path = entry.map_err(|e| io("reading", dir, e))?.path();
        if skipped(&path) {
            continue;
        }
        if path.is_dir() {
            walk(&path, files, skipped)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

/// Copies the tree `from` to `to`, leaving out what is `skipped`, and
/// removes what `to` holds that `from` no longer does (a file the source
/// dropped or moved would otherwise stay in the staged copy and be built
/// with it). What is skipped stays as the build left it: `node_modules`,
/// a venv, the built outputs.
pub(crate) fn copy_tree(from: &Path, to: &Path, skipped: Skipped) -> Result<(), BuildError> {
    std::fs::create_dir_all(to).map_err(|e| io("creating", to, e))?;
    for entry in std::fs::read_dir(to).map_err(|e| io("reading", to, e))? {
        let staged = entry.map_err(|e| io("reading", to, e))?.path();
        let source = from.join(staged.file_name().unwrap_or_default());
        if source.exists() || skipped(&source) {
            continue;
        }
        let removed = if staged.is_dir() {
            std::fs::remove_dir_all(&staged)
        } else {
            std::fs::remove_file(&staged)
        };
        removed.map_err(|e| io("removing the stale", &staged, e))?;
    }
    for entry in std::fs::read_dir(from).map_err(|e| io("reading", from, e))? {
        let path = entry.map_err(|e| io("reading", from, e))?.path();
        if skipped(&path) {
            continue;
        }
        let target = to.join(path.file_name().unwrap_or_default());
        if path.is_dir() {
            copy_tree(&path, &target, skipped)?;
        } else {
            std::fs::copy(&path, &target).map_err(|e| io("copying", &path, e))?;
        }
    }
    Ok(())
}

/// Holds an exclusive lock on `<dir>/.lock` until dropped.
pub(crate) fn lock(dir: &Path) -> Result<File, BuildError> {
    let path = dir.join(".lock");
    let mut file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io("opening", &path, e))?;
    file.lock().map_err(|e| io("locking", &path, e))?;
    // The holder's pid, for whoever finds a build waiting on it.
    let _ = writeln!(file, "{}", std::process::id());
    Ok(file)
}

/// Runs `command`; `what` names it in the error.
pub(crate) fn run(command: &mut Command, what: &str) -> Result<(), BuildError> {
    let status = command
        .status()
        .map_err(|e| BuildError::new(format!("{what}: cannot run {command:?}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::new(format!(
            "{what} failed ({status}): {command:?}"
        )))
    }
}

pub(crate) fn io(doing: &str, path: &Path, e: std::io::Error) -> BuildError {
    BuildError::new(format!("{doing} {}: {e}", path.display()))
}

/// What each builder remembers of its builds in this process: one result
/// per package.
pub(crate) type Built = std::sync::Mutex<Vec<(String, Result<PathBuf, BuildError>)>>;

/// `package`'s build, run at most once per process: the result remembered
/// in `built`, else `build`'s, remembered.
pub(crate) fn once(
    built: &Built,
    package: &str,
    build: impl FnOnce() -> Result<PathBuf, BuildError>,
) -> Result<PathBuf, BuildError> {
    let mut built = built
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, result)) = built.iter().find(|(p, _)| p == package) {
        return result.clone();
    }
    let result = build();
    built.push((package.to_owned(), result.clone()));
    result
}
