//! containerd for the node: its configuration (every path under the
//! harness's directory), starting it in the node, and importing images
//! with `ctr`.
//!
//! Two settings this machine needs (see `real-node-on-these-machines`):
//! `restrict_oom_score_adj`, because the sandbox lacks `CAP_SYS_RESOURCE`
//! and runc could not give the pause container its -998; and no systemd
//! cgroups. Registries: `docker.io` is served by the node's mirror
//! ([`super::images::Mirror`]) through `hosts.toml` (`server` replaces
//! the upstream, so nothing is asked of Docker Hub), and every other pull
//! goes to a proxy on a closed port of the node's loopback, so an image
//! nobody loaded fails at once, locally, saying so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::error::NodeError;
use super::sandbox::{self, Sandbox};
use crate::process::{self, ManagedProcess};

/// The sandbox image containerd runs for every Pod, as its config names it.
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// A running containerd.
#[derive(Debug)]
pub(crate) struct Containerd {
    process: ManagedProcess,
    socket: PathBuf,
}

/// Where containerd keeps things, under the node's directory.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub cni_conf_dir: PathBuf,
    pub hosts_dir: PathBuf,
}

impl Paths {
    pub fn under(node_dir: &Path) -> Paths {
        let dir = node_dir.join("containerd");
        Paths {
            socket: dir.join("containerd.sock"),
            config: dir.join("config.toml"),
            hosts_dir: dir.join("certs.d"),
            cni_conf_dir: node_dir.join("cni/net.d"),
            dir,
        }
    }
}

/// containerd's `config.toml`.
pub(crate) fn config(paths: &Paths) -> String {
    let q = |path: &Path| serde_json::Value::String(path.display().to_string()).to_string();
    format!(
        r#"version = 2
root = {root}
state = {state}
# Plugins that would only log that this machine lacks their filesystem.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = {socket}

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  enable_unprivileged_ports = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = {runc}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = {cni}
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = {hosts}
"#,
        root = q(&paths.dir.join("root")),
        state = q(&paths.dir.join("state")),
        socket = q(&paths.socket),
        opt = q(&paths.dir.join("opt")),
        runc = q(&paths.dir.join("runc")),
        cni = q(&paths.cni_conf_dir),
        hosts = q(&paths.hosts_dir),
    )
}

/// The `hosts.toml` making `registry` (e.g. `docker.io`) resolve and pull
/// from `mirror` (`http://ip:port`) and nowhere else.
pub(crate) fn hosts_toml(mirror: &str) -> String {
    format!(
        "server = \"{mirror}\"\n\n[host.\"{mirror}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
    )
}

impl Containerd {
    /// Writes the configuration and starts containerd in the node; ready
    /// once `ctr version` answers on its socket. `mirror_ip` is the one
    /// address (besides loopback) containerd may reach without the closed
    /// proxy.
    pub fn start(
        sandbox: &Sandbox,
        paths: &Paths,
        mirror_ip: &str,
        timeout: Duration,
    ) -> Result<Containerd, NodeError> {
        std::fs::write(&paths.config, config(paths)).map_err(NodeError::setup(format!(
            "writing {}",
            paths.config.display()
        )))?;
        let mut command = sandbox.command("containerd", &paths.dir);
        command
            .arg("--config")
            .arg(&paths.config)
            .args(["--log-level", "info"])
            // A pull from anywhere but the mirror fails here, locally.
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("NO_PROXY", mirror_ip);
        let mut process =
            ManagedProcess::start("containerd", command, paths.dir.join("containerd.log"))
                .map_err(|e| NodeError::Setup {
                    what: "starting containerd".into(),
                    source: std::io::Error::other(e.to_string()),
                })?;
        let started = Instant::now();
        let mut last = String::from("no socket yet");
        loop {
            if let Some(status) = process.try_wait() {
                return Err(NodeError::NotReady {
                    component: "containerd",
                    timeout,
                    last: format!("exited ({status})"),
                    tail: process::tail(&process.log, 30),
                    log: process.log.clone(),
                });
            }
            if paths.socket.exists() {
                match ctr(&paths.socket, &["version"]) {
                    Ok(_) => break,
                    Err(e) => last = e.to_string(),
                }
            }
            if started.elapsed() > timeout {
                return Err(NodeError::NotReady {
                    component: "containerd",
                    timeout,
                    last,
                    tail: process::tail(&process.log, 30),
                    log: process.log.clone(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Containerd {
            process,
            socket: paths.socket.clone(),
        })
    }

    /// The CRI endpoint the kubelet talks to.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Imports an OCI archive into the `k8s.io` namespace (where the CRI
    /// looks) as `base_name:<tag in the archive>`, as `kind load` does.
    pub fn import(&self, archive: &Path, base_name: &str) -> Result<(), NodeError> {
        ctr(
            &self.socket,
            &[
                "--namespace",
                "k8s.io",
                "images",
                "import",
                "--base-name",
                base_name,
                &archive.display().to_string(),
            ],
        )
        .map(|_| ())
    }

    /// Gives an image a second name (`ctr images tag`).
    pub fn tag(&self, source: &str, target: &str) -> Result<(), NodeError> {
        ctr(
            &self.socket,
            &[
                "--namespace",
                "k8s.io",
                "images",
                "tag",
                "--force",
                source,
                target,
            ],
        )
        .map(|_| ())
    }

    /// The names of the images in the `k8s.io` namespace.
    pub fn images(&self) -> Result<Vec<String>, NodeError> {
        let list = ctr(
            &self.socket,
            &["--namespace", "k8s.io", "images", "list", "--quiet"],
        )?;
        Ok(list.lines().map(str::to_owned).collect())
    }

    /// containerd's log file.
    pub fn log(&self) -> &Path {
        &self.process.log
    }
}

/// `ctr --address <socket> …`, run on the machine: the socket is a file,
/// reachable from any network namespace.
fn ctr(socket: &Path, args: &[&str]) -> Result<String, NodeError> {
    let mut command = Command::new("ctr");
    command.arg("--address").arg(socket).args(args);
    sandbox::output(command)
}
