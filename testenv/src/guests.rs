//! Building the example and test reconcilers as Wasm components.
//!
//! One piece of code shared by `cargo xtask build-guests` and by every test
//! or benchmark that loads a component: they call [`build`] (or [`path`]),
//! which runs `cargo build --profile guest --target wasm32-wasip2` for all guests
//! once per process. Cargo makes that a quick no-op when nothing changed, so
//! tests never run against a stale component and need no separate build step.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The target guests are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// The guest packages: the examples (cnat, webapp, mirror, the PowerDNS
/// operator dnsrecord), webapp's second version, the deliberately bad test guest, the
/// test guest with a finalizer, and ports of k8s.io/sample-controller and
/// kube-rs's controller-rs run against their own CRDs, and cnat under a
/// kind patched in per copy for the benchmark's many-modules scenario, and
/// a reconciler built directly against the frozen `bosun:reconciler@0.1.0`
/// (the host must keep serving it).
pub const PACKAGES: [&str; 11] = [
    "cnat",
    "webapp",
    "mirror",
    "webapp-next",
    "dnsrecord",
    "misbehave",
    "janitor",
    "samplecontroller",
    "documents",
    "cnat-fleet",
    "contract-0-1",
];

/// Why the guests could not be built.
#[derive(Debug, Clone)]
pub struct BuildError(String);

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

impl BuildError {
    pub(crate) fn new(message: String) -> Self {
        BuildError(message)
    }
}

/// The workspace root (the directory holding the workspace `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testenv lives one level below the workspace root")
        .to_owned()
}

/// The cargo profile guests are built with (release, without debug info).
pub const PROFILE: &str = "guest";

/// Cargo's target directory: `CARGO_TARGET_DIR`, else `target/` in the workspace.
pub fn target_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    if target.is_absolute() {
        target
    } else {
        workspace_root().join(target)
    }
}

/// Where the built components land: `<target dir>/wasm32-wasip2/guest/`.
pub fn out_dir() -> PathBuf {
    target_dir().join(TARGET).join(PROFILE)
}

/// Builds every guest (once per process) and returns the directory holding
/// the `.wasm` files.
pub fn build() -> Result<PathBuf, BuildError> {
    static BUILT: OnceLock<Result<PathBuf, BuildError>> = OnceLock::new();
    BUILT.get_or_init(build_now).clone()
}

/// Builds the guests if needed and returns the component of `package`
/// (for instance `cnat`). The Python guests (`cnat-python`) come from
/// [`crate::python_guests`], the TypeScript one (`cnat-typescript`) from
/// [`crate::typescript_guests`], the Go one (`cnat-go`) from
/// [`crate::go_guests`], each built only when asked for.
pub fn path(package: &str) -> Result<PathBuf, BuildError> {
    if crate::python_guests::is_python(package) {
        return crate::python_guests::path(package);
    }
    if crate::go_guests::is_go(package) {
        return crate::go_guests::path(package);
    }
    if crate::typescript_guests::is_typescript(package) {
        return crate::typescript_guests::path(package);
    }
    let file = build()?.join(format!("{}.wasm", package.replace('-', "_")));
    if file.is_file() {
        Ok(file)
    } else {
        Err(BuildError(format!(
            "the build finished but {} is missing",
            file.display()
        )))
    }
}

fn build_now() -> Result<PathBuf, BuildError> {
    ensure_target()?;
    let mut command = cargo();
    command
        .current_dir(workspace_root())
        .args(["build", "--profile", PROFILE, "--target", TARGET]);
    for package in PACKAGES {
        command.args(["--package", package]);
    }
    let status = command
        .status()
        .map_err(|e| BuildError(format!("cannot run cargo to build the guests: {e}")))?;
    if !status.success() {
        return Err(BuildError(format!(
            "building the guests failed ({status}); run `cargo xtask build-guests` to see why"
        )));
    }
    Ok(out_dir())
}

/// Installs the wasm32-wasip2 target through rustup when it is missing.
fn ensure_target() -> Result<(), BuildError> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match installed {
        // No rustup: the toolchain is managed some other way; let cargo say
        // whether the target is there.
        Err(_) => Ok(()),
        Ok(out)
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == TARGET) =>
        {
            Ok(())
        }
        Ok(_) => {
            let status = Command::new("rustup")
                .args(["target", "add", TARGET])
                .status()
                .map_err(|e| BuildError(format!("cannot run rustup: {e}")))?;
            if status.success() {
                Ok(())
            } else {
                Err(BuildError(format!(
                    "`rustup target add {TARGET}` failed ({status})"
                )))
            }
        }
    }
}

/// The webapp example's second version: the same module (name, kinds) in a
/// new version that labels every child with `examples.bosun.dev/revision`
/// (`tests/guests/webapp-next`, the webapp source built with
/// `WEBAPP_REVISION=2`). Built with the other guests, in one cargo run.
pub fn webapp_next() -> Result<PathBuf, BuildError> {
    path("webapp-next")
}

/// The dnsrecord example declaring `origin` (`http://127.0.0.1:<port>`,
/// where a test's PowerDNS answers) instead of its default: modules reach
/// only origins they declared and were granted, and a test's PowerDNS runs
/// on a free port. Built with `DNSRECORD_ORIGIN` into its own target
/// directory (`target/guest-variants`), once per origin and process; a new
/// origin rebuilds only the dnsrecord crate.
pub fn dnsrecord_for_origin(origin: &str) -> Result<PathBuf, BuildError> {
    static BUILT: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, path)) = built.iter().find(|(o, _)| o == origin) {
        return Ok(path.clone());
    }
    ensure_target()?;
    let target_dir = workspace_root().join("target").join("guest-variants");
    let status = cargo()
        .current_dir(workspace_root())
        .env("DNSRECORD_ORIGIN", origin)
        .args([
            "build",
            "--profile",
            PROFILE,
            "--target",
            TARGET,
            "--package",
            "dnsrecord",
            "--target-dir",
        ])
        .arg(&target_dir)
        .status()
        .map_err(|e| {
            BuildError(format!(
                "cannot run cargo to build dnsrecord for {origin}: {e}"
            ))
        })?;
    if !status.success() {
        return Err(BuildError(format!(
            "building dnsrecord for {origin} failed ({status})"
        )));
    }
    // Copied aside: the next origin's build overwrites the built file.
    let file = target_dir.join(format!(
        "dnsrecord-{}.wasm",
        origin.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    ));
    std::fs::copy(
        target_dir.join(TARGET).join(PROFILE).join("dnsrecord.wasm"),
        &file,
    )
    .map_err(|e| {
        BuildError(format!(
            "copying the dnsrecord build to {}: {e}",
            file.display()
        ))
    })?;
    built.push((origin.to_owned(), file.clone()));
    Ok(file)
}

/// The marker before the origin an `http-probe-<language>` guest declares.
const PROBE_ORIGIN_MARKER: &[u8] = b"HTTP-PROBE-ORIGIN=";

/// The room for the origin after the marker.
const PROBE_ORIGIN_BYTES: usize = 64;

/// The probe guest `package` (`http-probe-python`, `-typescript`, `-go`:
/// each sends one request through its SDK's HTTP client) declaring, and
/// sending to, `origin` instead of its default: a copy of the built
/// component with the origin patched in place (each guest keeps it in a
/// padded string after [`PROBE_ORIGIN_MARKER`]), so a test can point it at
/// a server on a port chosen at run time. Written to
/// `target/guest-variants/<package>-<hash>.wasm`.
pub fn http_probe_reaching(package: &str, origin: &str) -> Result<PathBuf, BuildError> {
    if origin.len() > PROBE_ORIGIN_BYTES || !origin.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(BuildError(format!(
            "{origin:?} does not fit {package}'s origin"
        )));
    }
    let tag = hex::encode(&Sha256::digest(origin.as_bytes())[..8]);
    patched(
        package,
        PROBE_ORIGIN_MARKER,
        PROBE_ORIGIN_BYTES,
        origin,
        &format!("{package}-{tag}.wasm"),
    )
}

/// The marker before misbehave's declaration variant in its data.
const VARIANT_MARKER: &[u8] = b"MISBEHAVE-VARIANT=";

/// The room for a variant name after the marker.
const VARIANT_BYTES: usize = 30;

/// The misbehave component declaring `variant` instead of its own kinds
/// (see the table in `tests/guests/misbehave/src/lib.rs`): a copy of the
/// built component whose variant bytes are replaced in place, so every
/// hostile declaration costs no build of its own. Written to
/// `target/guest-variants/misbehave-<variant>.wasm`.
pub fn misbehave_declaring(variant: &str) -> Result<PathBuf, BuildError> {
    if variant.len() > VARIANT_BYTES || !variant.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(BuildError(format!(
            "{variant:?} is not a misbehave variant name"
        )));
    }
    patched(
        "misbehave",
        VARIANT_MARKER,
        VARIANT_BYTES,
        variant,
        &format!("misbehave-{variant}.wasm"),
    )
}

/// The marker before the HTTP origins misbehave declares.
const ORIGINS_MARKER: &[u8] = b"MISBEHAVE-ORIGINS=";

/// The room for the origins after the marker.
const ORIGINS_BYTES: usize = 256;

/// The misbehave component (default variant) declaring the HTTP `origins`
/// (patched in place as for [`misbehave_declaring`]), so tests can point it
/// at servers on ports chosen at run time. Written to
/// `target/guest-variants/misbehave-http-<hash>.wasm`.
pub fn misbehave_reaching(origins: &[&str]) -> Result<PathBuf, BuildError> {
    let list = origins.join(" ");
    if list.len() > ORIGINS_BYTES || !list.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(BuildError(format!(
            "{list:?} does not fit misbehave's origins"
        )));
    }
    let tag: u64 = list.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    patched(
        "misbehave",
        ORIGINS_MARKER,
        ORIGINS_BYTES,
        &list,
        &format!("misbehave-http-{tag:016x}.wasm"),
    )
}

/// The marker before the kind in cnat-fleet's data.
const FLEET_KIND_MARKER: &[u8] = b"FLEET-KIND=";

/// The room for the kind after the marker.
const FLEET_KIND_BYTES: usize = 16;

/// cnat's reconciler as module `cnat-<kind in lower case>`, reconciling
/// `fleet.bench.bosun.dev/v1alpha1` `kind` (plural: the kind in lower case
/// plus `s`) instead of `At` (`tests/guests/cnat-fleet`): a copy of the
/// built component with the kind patched in place, so the benchmark gets M
/// distinct modules from one build. `kind` is an upper-case letter then
/// letters and digits, at most 16. Written to
/// `target/guest-variants/cnat-fleet-<kind>.wasm`.
pub fn cnat_fleet(kind: &str) -> Result<PathBuf, BuildError> {
    let valid = kind.len() <= FLEET_KIND_BYTES
        && kind.starts_with(|c: char| c.is_ascii_uppercase())
        && kind.bytes().all(|b| b.is_ascii_alphanumeric());
    if !valid {
        return Err(BuildError(format!("{kind:?} is not a cnat-fleet kind")));
    }
    patched(
        "cnat-fleet",
        FLEET_KIND_MARKER,
        FLEET_KIND_BYTES,
        kind,
        &format!("cnat-fleet-{kind}.wasm"),
    )
}

/// A copy of the built component of `package` with the `room` bytes after
/// `marker` replaced by `value` (space-padded), written to
/// `target/guest-variants/<file_name>`.
pub(crate) fn patched(
    package: &str,
    marker: &[u8],
    room: usize,
    value: &str,
    file_name: &str,
) -> Result<PathBuf, BuildError> {
    let built = path(package)?;
    let mut bytes = std::fs::read(&built)
        .map_err(|e| BuildError(format!("reading {}: {e}", built.display())))?;
    let mut found = bytes
        .windows(marker.len())
        .enumerate()
        .filter(|(_, w)| *w == marker)
        .map(|(at, _)| at);
    let at = match (found.next(), found.next()) {
        (Some(at), None) => at + marker.len(),
        (None, _) => {
            return Err(BuildError(format!(
                "{} has no {} marker",
                built.display(),
                String::from_utf8_lossy(marker)
            )));
        }
        (Some(_), Some(_)) => {
            return Err(BuildError(format!(
                "{} holds the {} marker more than once",
                built.display(),
                String::from_utf8_lossy(marker)
            )));
        }
    };
    if at + room > bytes.len() {
        return Err(BuildError(format!(
            "{} ends inside its {} room",
            built.display(),
            String::from_utf8_lossy(marker)
        )));
    }
    let mut padded = vec![b' '; room];
    padded[..value.len()].copy_from_slice(value.as_bytes());
    bytes[at..at + room].copy_from_slice(&padded);
    let dir = out_dir()
        .parent()
        .and_then(Path::parent)
        .map(|target| target.join("guest-variants"))
        .ok_or_else(|| BuildError("no target directory".into()))?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| BuildError(format!("creating {}: {e}", dir.display())))?;
    let file = dir.join(file_name);
    // Written aside and renamed: tests of other processes may be loading
    // it, and other threads of this one writing the same variant.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let write = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let partial = dir.join(format!("{file_name}.{}.{write}", std::process::id()));
    std::fs::write(&partial, bytes)
        .and_then(|()| std::fs::rename(&partial, &file))
        .map_err(|e| BuildError(format!("writing {}: {e}", file.display())))?;
    Ok(file)
}

/// Builds the `bosun` host binary (debug profile, once per process) and
/// returns its path, for end-to-end tests that run it as operators do.
pub fn host_binary() -> Result<PathBuf, BuildError> {
    static BUILT: OnceLock<Result<PathBuf, BuildError>> = OnceLock::new();
    BUILT.get_or_init(|| build_host("dev", "debug")).clone()
}

/// Builds the `bosun` host binary with the release profile (once per
/// process), for benchmarks that time the host as it ships.
pub fn host_binary_release() -> Result<PathBuf, BuildError> {
    static BUILT: OnceLock<Result<PathBuf, BuildError>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_host("release", "release"))
        .clone()
}

fn build_host(profile: &str, directory: &str) -> Result<PathBuf, BuildError> {
    let status = cargo()
        .current_dir(workspace_root())
        .args([
            "build",
            "--profile",
            profile,
            "--package",
            "bosun",
            "--bin",
            "bosun",
        ])
        .status()
        .map_err(|e| BuildError(format!("cannot run cargo to build bosun: {e}")))?;
    if !status.success() {
        return Err(BuildError(format!(
            "building the bosun binary ({profile} profile) failed ({status})"
        )));
    }
    Ok(target_dir().join(directory).join("bosun"))
}

/// A `cargo` command that builds as a top-level `cargo build` would.
///
/// Inside a test, or a program `cargo run` started (xtask), cargo has set
/// variables describing that crate (`CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`,
/// …). Build scripts such as ring's declare them as inputs, so passing them
/// on would make this nested build and the outer one rebuild each other's
/// dependencies every time.
pub fn cargo() -> Command {
    const CRATE_SCOPED: [&str; 8] = [
        "CARGO_PKG_",
        "CARGO_BIN_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        if CRATE_SCOPED
            .iter()
            .any(|prefix| name_text.starts_with(prefix))
        {
            command.env_remove(&name);
        }
    }
    command
}
