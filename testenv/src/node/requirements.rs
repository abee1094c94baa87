//! What a machine needs for a node, checked before anything starts, so a
//! machine without it gets one message naming every package.

use std::path::Path;

use super::error::NodeError;

/// The programs and files a node uses, with the Debian package of each.
const NEEDED: [(&str, &str); 13] = [
    ("containerd", "containerd"),
    ("containerd-shim-runc-v2", "containerd"),
    ("ctr", "containerd"),
    ("runc", "runc"),
    ("/usr/lib/cni/bridge", "containernetworking-plugins"),
    ("/usr/lib/cni/host-local", "containernetworking-plugins"),
    ("/usr/lib/cni/loopback", "containernetworking-plugins"),
    ("iptables", "iptables"),
    ("iptables-restore", "iptables"),
    ("ip", "iproute2"),
    (super::images::BUSYBOX, "busybox-static"),
    ("skopeo", "skopeo"),
    ("docker-registry", "docker-registry"),
];

/// How to install everything [`NEEDED`] names at once.
pub const INSTALL: &str = "apt-get install containerd runc containernetworking-plugins iptables conntrack busybox-static skopeo docker-registry";

/// Checks root, the cgroup mounts and every program; the error names
/// all that is missing and the packages to install.
pub fn check() -> Result<(), NodeError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(NodeError::Unavailable {
            missing: "root: a node makes network and mount namespaces, cgroups, \
                      mounts and interfaces"
                .into(),
            install: "run as root (CI does)".into(),
        });
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if !mountinfo.contains(" - cgroup") {
        return Err(NodeError::Unavailable {
            missing: "a mounted cgroup hierarchy".into(),
            install: "mount cgroups (v1 or v2) under /sys/fs/cgroup".into(),
        });
    }
    let mut missing = Vec::new();
    let mut packages: Vec<&str> = Vec::new();
    for (program, package) in NEEDED {
        let found = if program.starts_with('/') {
            Path::new(program).is_file()
        } else {
            crate::tools::find(program).is_some()
                || Path::new("/usr/sbin").join(program).is_file()
                || Path::new("/sbin").join(program).is_file()
        };
        if !found {
            missing.push(program);
            if !packages.contains(&package) {
                packages.push(package);
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(NodeError::Unavailable {
        missing: format!("{} (not found)", missing.join(", ")),
        install: format!(
            "Install them: apt-get install {} (.ci/run installs everything a node needs: {INSTALL})",
            packages.join(" ")
        ),
    })
}
