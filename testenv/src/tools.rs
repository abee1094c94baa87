//! External programs some tests need (skopeo, docker-registry, kubectl,
//! helm): found on `PATH`, and skipped outside CI when missing.
//!
//! `.ci/run` installs every one of them, so under `CI=true` a missing tool
//! fails the test; on a developer's machine the test says what to install
//! and passes without running, so `cargo test` still works with Rust and Go
//! alone.

use std::path::PathBuf;

/// The executable `name` on `PATH`, if there is one.
pub fn find(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Whether this runs in CI (`CI=true`, as `.ci/run` is run).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| matches!(v.trim(), "true" | "1" | "yes"))
}

/// Why a test could not find the program it needs, in CI.
#[derive(Debug)]
pub struct Missing {
    /// The program.
    pub tool: &'static str,
    /// How to install it.
    pub install: &'static str,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is not on PATH; .ci/run installs it ({})",
            self.tool, self.install
        )
    }
}

impl std::error::Error for Missing {}

/// For a test that needs `tool`: its path; `Ok(None)` when it is missing
/// outside CI (the skip is printed, with `install`); an error in CI.
pub fn for_test(tool: &'static str, install: &'static str) -> Result<Option<PathBuf>, Missing> {
    match find(tool) {
        Some(path) => Ok(Some(path)),
        None if in_ci() => Err(Missing { tool, install }),
        None => {
            eprintln!("skipped: {tool} is not on PATH (install: {install})");
            Ok(None)
        }
    }
}
