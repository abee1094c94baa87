//! Where the control-plane binaries (`kube-apiserver`, `etcd`) and the
//! node's (`kubelet`, `kube-controller-manager`, `kube-scheduler`,
//! `kube-proxy`, `pause`) live.
//!
//! One piece of code shared by the harness ([`crate::TestEnv`]) and by
//! `cargo xtask control-plane`, which builds them:
//!
//! 1. If `KUBEBUILDER_ASSETS` is set (and non-empty), it must name a directory
//!    holding `kube-apiserver` and `etcd`; those are used and nothing is built.
//! 2. Otherwise the binaries live in the cache directory
//!    `$XDG_CACHE_HOME/bosun/control-plane/<kube version>/` (falling back to
//!    `~/.cache/bosun/...`), outside `target/` so that `cargo clean` does not
//!    throw away a 15-minute Go build. `BOSUN_CONTROL_PLANE_CACHE` overrides the
//!    `…/bosun/control-plane` root.
//!
//! The cache directory holds a stamp file recording the Kubernetes version and a
//! SHA-256 of the Go module sources (`go.mod`, `go.sum`, every `main.go`), so a
//! change to the pinned versions is noticed and rebuilt. All seven binaries
//! come from one Go module and one `go build`; a `KUBEBUILDER_ASSETS`
//! directory may hold only the first two, and then the tests that need a
//! node say so ([`locate_node`]).

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Environment variable naming a directory with prebuilt `kube-apiserver` and `etcd`.
pub const KUBEBUILDER_ASSETS: &str = "KUBEBUILDER_ASSETS";
/// Environment variable overriding the cache root (default `$XDG_CACHE_HOME/bosun/control-plane`).
pub const CACHE_ENV: &str = "BOSUN_CONTROL_PLANE_CACHE";
/// File name of the kube-apiserver binary.
pub const KUBE_APISERVER: &str = "kube-apiserver";
/// File name of the etcd binary.
pub const ETCD: &str = "etcd";
/// File name of the kubelet binary.
pub const KUBELET: &str = "kubelet";
/// File name of the kube-controller-manager binary.
pub const KUBE_CONTROLLER_MANAGER: &str = "kube-controller-manager";
/// File name of the kube-scheduler binary.
pub const KUBE_SCHEDULER: &str = "kube-scheduler";
/// File name of the kube-proxy binary.
pub const KUBE_PROXY: &str = "kube-proxy";
/// File name of the sandbox ("pause") program packed into the node's pause image.
pub const PAUSE: &str = "pause";
/// Every binary `cargo xtask control-plane` builds, in build order.
pub const BINARIES: [&str; 7] = [
    KUBE_APISERVER,
    ETCD,
    KUBELET,
    KUBE_CONTROLLER_MANAGER,
    KUBE_SCHEDULER,
    KUBE_PROXY,
    PAUSE,
];
/// File name of the stamp written next to the binaries after a successful build.
pub const STAMP_FILE: &str = "bosun-control-plane.stamp";

/// The Go module sources the binaries are built from, embedded at compile time so
/// the harness and xtask agree on the fingerprint.
const SOURCES: [(&str, &str); 9] = [
    ("go.mod", include_str!("../../xtask/control-plane/go.mod")),
    ("go.sum", include_str!("../../xtask/control-plane/go.sum")),
    (
        "cmd/kube-apiserver/main.go",
        include_str!("../../xtask/control-plane/cmd/kube-apiserver/main.go"),
    ),
    (
        "cmd/etcd/main.go",
        include_str!("../../xtask/control-plane/cmd/etcd/main.go"),
    ),
    (
        "cmd/kubelet/main.go",
        include_str!("../../xtask/control-plane/cmd/kubelet/main.go"),
    ),
    (
        "cmd/kube-controller-manager/main.go",
        include_str!("../../xtask/control-plane/cmd/kube-controller-manager/main.go"),
    ),
    (
        "cmd/kube-scheduler/main.go",
        include_str!("../../xtask/control-plane/cmd/kube-scheduler/main.go"),
    ),
    (
        "cmd/kube-proxy/main.go",
        include_str!("../../xtask/control-plane/cmd/kube-proxy/main.go"),
    ),
    (
        "cmd/pause/main.go",
        include_str!("../../xtask/control-plane/cmd/pause/main.go"),
    ),
];

/// The `k8s.io/kubernetes` version required by the control-plane Go module
/// (for instance `v1.35.4`).
///
/// Read from the embedded `go.mod`; `None` only if that file lost its
/// `k8s.io/kubernetes` requirement, which the unit tests below rule out.
pub fn kube_version() -> Option<&'static str> {
    module_version(SOURCES[0].1, "k8s.io/kubernetes")
}

/// The `go.etcd.io/etcd/server/v3` version required by the control-plane Go module.
pub fn etcd_version() -> Option<&'static str> {
    module_version(SOURCES[0].1, "go.etcd.io/etcd/server/v3")
}

/// Finds `<module> <version>` on a `require` line of a go.mod.
fn module_version<'a>(go_mod: &'a str, module: &str) -> Option<&'a str> {
    go_mod.lines().find_map(|line| {
        let line = line.trim().strip_prefix("require").unwrap_or(line).trim();
        let mut words = line.split_whitespace();
        if words.next()? == module {
            words.next().filter(|v| v.starts_with('v'))
        } else {
            None
        }
    })
}

/// Hex SHA-256 over the embedded Go module sources; recorded in the stamp file.
pub fn source_fingerprint() -> String {
    let mut hasher = Sha256::new();
    for (name, text) in SOURCES {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// The exact contents of the stamp file for the current sources.
pub fn expected_stamp() -> String {
    format!(
        "k8s.io/kubernetes {}\ngo.etcd.io/etcd/server/v3 {}\nsources-sha256 {}\n",
        kube_version().unwrap_or("unknown"),
        etcd_version().unwrap_or("unknown"),
        source_fingerprint()
    )
}

/// The cache root: `$BOSUN_CONTROL_PLANE_CACHE`, else
/// `$XDG_CACHE_HOME/bosun/control-plane`, else `$HOME/.cache/bosun/control-plane`.
pub fn cache_root() -> Result<PathBuf, AssetsError> {
    if let Some(dir) = non_empty_env(CACHE_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let base = match non_empty_env("XDG_CACHE_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => match non_empty_env("HOME") {
            Some(home) => Path::new(&home).join(".cache"),
            None => return Err(AssetsError::NoCacheDir),
        },
    };
    Ok(base.join("bosun").join("control-plane"))
}

/// The versioned cache directory the binaries are built into, e.g.
/// `~/.cache/bosun/control-plane/v1.35.4`.
pub fn cache_dir() -> Result<PathBuf, AssetsError> {
    let version = kube_version().ok_or(AssetsError::NoKubeVersion)?;
    Ok(cache_root()?.join(version))
}

/// Where a set of binaries came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetsOrigin {
    /// The directory named by `KUBEBUILDER_ASSETS`.
    KubebuilderAssets,
    /// bosun's cache directory, built by `cargo xtask control-plane`.
    Cache,
}

impl fmt::Display for AssetsOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AssetsOrigin::KubebuilderAssets => write!(f, "{KUBEBUILDER_ASSETS}"),
            AssetsOrigin::Cache => write!(f, "the bosun control-plane cache"),
        }
    }
}

/// A located pair of control-plane binaries.
#[derive(Debug, Clone)]
pub struct Assets {
    /// The directory holding both binaries.
    pub dir: PathBuf,
    /// Path of the `kube-apiserver` binary.
    pub kube_apiserver: PathBuf,
    /// Path of the `etcd` binary.
    pub etcd: PathBuf,
    /// Where the directory came from.
    pub origin: AssetsOrigin,
}

/// Why the control-plane binaries could not be located.
#[derive(Debug)]
pub enum AssetsError {
    /// `KUBEBUILDER_ASSETS` is set but a binary is missing there.
    KubebuilderAssetsIncomplete {
        /// The directory named by `KUBEBUILDER_ASSETS`.
        dir: PathBuf,
        /// The binaries not found in it.
        missing: Vec<&'static str>,
    },
    /// The cache directory lacks the binaries or their stamp.
    NotBuilt {
        /// The cache directory that was searched.
        dir: PathBuf,
    },
    /// The cache holds binaries built from different Go module sources.
    Stale {
        /// The cache directory.
        dir: PathBuf,
    },
    /// Neither `XDG_CACHE_HOME`, `HOME` nor `BOSUN_CONTROL_PLANE_CACHE` is set.
    NoCacheDir,
    /// The embedded go.mod has no `k8s.io/kubernetes` requirement.
    NoKubeVersion,
}

impl fmt::Display for AssetsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AssetsError::KubebuilderAssetsIncomplete { dir, missing } => write!(
                f,
                "{KUBEBUILDER_ASSETS}={} lacks {}; point it at a directory with \
                 kube-apiserver and etcd, or unset it and run `cargo xtask control-plane`",
                dir.display(),
                missing.join(" and ")
            ),
            AssetsError::NotBuilt { dir } => write!(
                f,
                "kube-apiserver and etcd are not built in {}; run `cargo xtask control-plane` \
                 (or set {KUBEBUILDER_ASSETS} to a directory holding them)",
                dir.display()
            ),
            AssetsError::Stale { dir } => write!(
                f,
                "the control plane in {} was built from other Go module sources; \
                 run `cargo xtask control-plane` to rebuild it",
                dir.display()
            ),
            AssetsError::NoCacheDir => write!(
                f,
                "cannot find a cache directory: set XDG_CACHE_HOME, HOME or {CACHE_ENV}"
            ),
            AssetsError::NoKubeVersion => {
                write!(
                    f,
                    "xtask/control-plane/go.mod does not require k8s.io/kubernetes"
                )
            }
        }
    }
}

impl std::error::Error for AssetsError {}

/// Locates `kube-apiserver` and `etcd`: `KUBEBUILDER_ASSETS` first, else the cache
/// directory (which must carry a stamp matching the current sources).
pub fn locate() -> Result<Assets, AssetsError> {
    if let Some(dir) = non_empty_env(KUBEBUILDER_ASSETS) {
        let dir = PathBuf::from(dir);
        let assets = in_dir(&dir, AssetsOrigin::KubebuilderAssets);
        let missing = assets.missing();
        if !missing.is_empty() {
            return Err(AssetsError::KubebuilderAssetsIncomplete { dir, missing });
        }
        return Ok(assets);
    }
    let dir = cache_dir()?;
    let assets = in_dir(&dir, AssetsOrigin::Cache);
    if !assets.missing().is_empty() {
        return Err(AssetsError::NotBuilt { dir });
    }
    match std::fs::read_to_string(dir.join(STAMP_FILE)) {
        Ok(stamp) if stamp == expected_stamp() => Ok(assets),
        Ok(_) => Err(AssetsError::Stale { dir }),
        Err(_) => Err(AssetsError::NotBuilt { dir }),
    }
}

/// The binaries' paths inside `dir` (whether or not they exist).
pub fn in_dir(dir: &Path, origin: AssetsOrigin) -> Assets {
    Assets {
        dir: dir.to_path_buf(),
        kube_apiserver: dir.join(KUBE_APISERVER),
        etcd: dir.join(ETCD),
        origin,
    }
}

impl Assets {
    /// Names of the binaries that are not regular files in [`Assets::dir`].
    pub fn missing(&self) -> Vec<&'static str> {
        [(KUBE_APISERVER, &self.kube_apiserver), (ETCD, &self.etcd)]
            .into_iter()
            .filter(|(_, path)| !path.is_file())
            .map(|(name, _)| name)
            .collect()
    }
}

/// The node's binaries, beside the control plane's.
#[derive(Debug, Clone)]
pub struct NodeAssets {
    /// Path of the `kubelet` binary.
    pub kubelet: PathBuf,
    /// Path of the `kube-controller-manager` binary.
    pub kube_controller_manager: PathBuf,
    /// Path of the `kube-scheduler` binary.
    pub kube_scheduler: PathBuf,
    /// Path of the `kube-proxy` binary.
    pub kube_proxy: PathBuf,
    /// Path of the static `pause` program.
    pub pause: PathBuf,
}

/// Why the node's binaries could not be located.
#[derive(Debug)]
pub enum NodeAssetsError {
    /// The control plane itself is not there.
    ControlPlane(AssetsError),
    /// The directory holds the control plane but not these node binaries.
    Missing {
        /// The directory searched.
        dir: PathBuf,
        /// Where it came from.
        origin: AssetsOrigin,
        /// The binaries not found.
        missing: Vec<&'static str>,
    },
}

impl fmt::Display for NodeAssetsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeAssetsError::ControlPlane(e) => write!(f, "{e}"),
            NodeAssetsError::Missing {
                dir,
                origin: AssetsOrigin::KubebuilderAssets,
                missing,
            } => write!(
                f,
                "{KUBEBUILDER_ASSETS}={} lacks the node's {}; add them there, or unset \
                 {KUBEBUILDER_ASSETS} and run `cargo xtask control-plane`, which builds all of them",
                dir.display(),
                missing.join(", ")
            ),
            NodeAssetsError::Missing { dir, missing, .. } => write!(
                f,
                "{} lacks the node's {}; run `cargo xtask control-plane`",
                dir.display(),
                missing.join(", ")
            ),
        }
    }
}

impl std::error::Error for NodeAssetsError {}

/// Locates the node's binaries in the directory [`locate`] finds.
pub fn locate_node() -> Result<NodeAssets, NodeAssetsError> {
    let control_plane = locate().map_err(NodeAssetsError::ControlPlane)?;
    let dir = &control_plane.dir;
    let node = NodeAssets {
        kubelet: dir.join(KUBELET),
        kube_controller_manager: dir.join(KUBE_CONTROLLER_MANAGER),
        kube_scheduler: dir.join(KUBE_SCHEDULER),
        kube_proxy: dir.join(KUBE_PROXY),
        pause: dir.join(PAUSE),
    };
    let missing: Vec<&'static str> = [
        (KUBELET, &node.kubelet),
        (KUBE_CONTROLLER_MANAGER, &node.kube_controller_manager),
        (KUBE_SCHEDULER, &node.kube_scheduler),
        (KUBE_PROXY, &node.kube_proxy),
        (PAUSE, &node.pause),
    ]
    .into_iter()
    .filter(|(_, path)| !path.is_file())
    .map(|(name, _)| name)
    .collect();
    if missing.is_empty() {
        Ok(node)
    } else {
        Err(NodeAssetsError::Missing {
            dir: dir.clone(),
            origin: control_plane.origin,
            missing,
        })
    }
}

fn non_empty_env(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_go_mod() {
        let kube = kube_version().expect("go.mod requires k8s.io/kubernetes");
        assert!(
            kube.starts_with("v1.35."),
            "k8s-openapi is pinned to v1_35, got {kube}"
        );
        let etcd = etcd_version().expect("go.mod requires etcd server");
        assert!(etcd.starts_with("v3.6."), "{etcd}");
    }

    #[test]
    fn module_version_parses_block_and_single_line_requires() {
        let go_mod = "module x\n\nrequire k8s.io/kubernetes v1.35.4\nrequire (\n\tfoo v0.1.0 // indirect\n)\n";
        assert_eq!(module_version(go_mod, "k8s.io/kubernetes"), Some("v1.35.4"));
        assert_eq!(module_version(go_mod, "foo"), Some("v0.1.0"));
        assert_eq!(module_version(go_mod, "bar"), None);
        // A replace line is not a requirement.
        assert_eq!(module_version("replace foo => foo v1.0.0\n", "foo"), None);
    }

    #[test]
    fn stamp_names_versions_and_fingerprint() {
        let stamp = expected_stamp();
        assert!(stamp.contains("k8s.io/kubernetes v1.35."));
        assert!(stamp.contains(&source_fingerprint()));
        assert_eq!(source_fingerprint().len(), 64);
    }
}
