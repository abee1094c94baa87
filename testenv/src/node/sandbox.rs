//! The node's own network and mount namespaces, held by a placeholder
//! process, and the way the node's processes enter them and its cgroup.
//!
//! Like a kind node's container, minus the container: the node's
//! processes see the machine's files but have their own network (a veth
//! to the host, the Pods' bridge, kube-proxy's iptables rules) and their
//! own mounts (the kubelet's volumes, containerd's snapshots and Pod
//! network namespaces, and private `tmpfs`es over `/run`, `/var/lib` and
//! `/var/log`, where the kubelet, containerd and the CNI plugins write
//! their fixed paths). When the last process in them dies, the kernel
//! takes the namespaces, and with them every interface, route, iptables
//! chain, per-namespace sysctl and mount the node made: nothing of it can
//! outlive the node, whoever kills it.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::cgroup::Cgroup;
use super::error::NodeError;
use crate::process::ManagedProcess;

/// Where the node's mount namespace puts a `tmpfs` of its own: paths the
/// kubelet, containerd, runc and the CNI plugins write to whatever they
/// are told (`/run/containerd/s` for shim sockets, `/var/lib/cni` for
/// cached results, `/var/log/containers`, `/run/xtables.lock`).
const PRIVATE_TMPFS: [&str; 3] = ["/run", "/var/lib", "/var/log"];

/// The `PATH` the node's programs run with, whatever the caller's: runc,
/// iptables and ip live in the `sbin` directories, which a user's `PATH`
/// may lack.
pub(crate) const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The ids of the sandboxes this process holds, for the exit hook of a
/// process-wide node (whose `Drop` never runs).
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The ids of the sandboxes this process still holds.
pub(crate) fn live() -> Vec<String> {
    LIVE.lock().map(|l| l.clone()).unwrap_or_default()
}

/// A node's cgroup and namespaces.
#[derive(Debug)]
pub(crate) struct Sandbox {
    cgroup: Cgroup,
    holder: ManagedProcess,
    net: File,
    mnt: File,
    procs: Arc<Vec<CString>>,
}

impl Sandbox {
    /// Makes the cgroup `bosun-testenv/<id>` and starts the placeholder
    /// (`sleep infinity`) in new network and mount namespaces inside it.
    pub fn create(id: &str, dir: &Path) -> Result<Sandbox, NodeError> {
        super::cgroup::sweep_stale();
        let cgroup = Cgroup::create(id).map_err(NodeError::setup(format!(
            "creating the node's cgroup bosun-testenv/{id}"
        )))?;
        let procs = Arc::new(cstrings(cgroup.procs_files().iter().map(|p| p.as_path()))?);
        let tmpfs = cstrings(PRIVATE_TMPFS.iter().map(Path::new))?;
        let mut command = Command::new("sleep");
        command
            .arg("infinity")
            .current_dir(dir)
            .env("PATH", SYSTEM_PATH);
        let join = Arc::clone(&procs);
        // SAFETY: between fork and exec the closure only makes raw
        // syscalls (open, write, unshare, mount) on memory allocated
        // before the fork.
        unsafe {
            command.pre_exec(move || {
                join_cgroup(&join)?;
                check(libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWNET))?;
                // Mounts the machine makes still reach the node; none of
                // the node's reach the machine.
                check(libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_SLAVE,
                    std::ptr::null(),
                ))?;
                for target in &tmpfs {
                    check(libc::mount(
                        c"tmpfs".as_ptr(),
                        target.as_ptr(),
                        c"tmpfs".as_ptr(),
                        libc::MS_NOSUID | libc::MS_NODEV,
                        c"mode=755".as_ptr().cast(),
                    ))?;
                }
                Ok(())
            });
        }
        let holder = ManagedProcess::start(
            "node namespaces (sleep)",
            command,
            dir.join("namespaces.log"),
        )
        .map_err(|e| NodeError::Setup {
            what: "starting the process holding the node's namespaces".into(),
            source: io::Error::other(e.to_string()),
        })?;
        let ns = |kind: &str| {
            let path = format!("/proc/{}/ns/{kind}", holder.id());
            File::open(&path).map_err(NodeError::setup(format!("opening {path}")))
        };
        let (net, mnt) = (ns("net")?, ns("mnt")?);
        if let Ok(mut live) = LIVE.lock() {
            live.push(id.to_owned());
        }
        Ok(Sandbox {
            cgroup,
            holder,
            net,
            mnt,
            procs,
        })
    }

    /// The pid of the placeholder (`ip link … netns <pid>` moves an
    /// interface into the node's network namespace).
    pub fn holder_pid(&self) -> u32 {
        self.holder.id()
    }

    /// The node's cgroup (for the kubelet's `cgroupRoot`).
    pub fn cgroup(&self) -> &Cgroup {
        &self.cgroup
    }

    /// A command that runs `program` in the node: in its cgroup's `system`
    /// leaf and its namespaces, in `cwd`.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>, cwd: &Path) -> Command {
        let procs = Arc::clone(&self.procs);
        let (net, mnt) = (self.net.as_raw_fd(), self.mnt.as_raw_fd());
        let cwd_c = CString::new(cwd.as_os_str().as_bytes()).unwrap_or_else(|_| c"/".to_owned());
        let mut command = Command::new(program);
        command.current_dir(cwd).env("PATH", SYSTEM_PATH);
        // SAFETY: raw syscalls only, on memory allocated before the fork;
        // the namespace files stay open as long as `self`, which outlives
        // every spawn made through it.
        unsafe {
            command.pre_exec(move || {
                join_cgroup(&procs)?;
                check(libc::setns(net, libc::CLONE_NEWNET))?;
                check(libc::setns(mnt, libc::CLONE_NEWNS))?;
                // Entering a mount namespace moves the working directory to
                // its root.
                check(libc::chdir(cwd_c.as_ptr()))?;
                Ok(())
            });
        }
        command
    }

    /// Runs a short command in the node and returns its stdout; an error
    /// quoting its output when it fails.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String, NodeError> {
        let mut command = self.command(program, Path::new("/"));
        command.args(args);
        output(command)
    }

    /// Kills every process of the node (the placeholder, containerd, its
    /// shims and containers, the kubelet, kube-proxy), which takes the
    /// namespaces with them, and removes the cgroup.
    pub fn destroy(&mut self) -> Result<(), NodeError> {
        let killed = self.cgroup.kill_all(Duration::from_secs(20));
        self.holder.kill();
        if let Ok(mut live) = LIVE.lock() {
            live.retain(|id| id != self.cgroup.id());
        }
        killed.map_err(NodeError::setup("killing the node's processes"))?;
        self.cgroup
            .remove()
            .map_err(NodeError::setup("removing the node's cgroup"))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Err(e) = self.destroy() {
            eprintln!("bosun-testenv: tearing the node down: {e}");
        }
    }
}

/// Runs a command on the machine (not in the node) and returns its stdout.
pub(crate) fn output(mut command: Command) -> Result<String, NodeError> {
    let line = format!(
        "{} {}",
        command.get_program().to_string_lossy(),
        command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(NodeError::setup(format!("running `{line}`")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(NodeError::Command {
            command: line,
            status: out.status.to_string(),
            output: format!("{}{}", String::from_utf8_lossy(&out.stderr), stdout)
                .trim()
                .to_owned(),
        });
    }
    Ok(stdout)
}

/// Moves the calling process into the node's `system` leaf, in every
/// hierarchy. Async-signal-safe.
fn join_cgroup(procs: &[CString]) -> io::Result<()> {
    for file in procs {
        // SAFETY: raw syscalls on a NUL-terminated path and a static buffer.
        unsafe {
            let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            check(fd)?;
            let written = libc::write(fd, c"0".as_ptr().cast(), 1);
            libc::close(fd);
            if written != 1 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn cstrings<'a>(paths: impl Iterator<Item = &'a Path>) -> Result<Vec<CString>, NodeError> {
    paths
        .map(|p| {
            CString::new(p.as_os_str().as_bytes()).map_err(|_| NodeError::Setup {
                what: format!("{} holds a NUL byte", p.display()),
                source: io::Error::from(io::ErrorKind::InvalidInput),
            })
        })
        .collect()
}

/// Paths under the harness directory a node uses, made once.
pub(crate) fn mkdirs(root: &Path, dirs: &[&str]) -> Result<Vec<PathBuf>, NodeError> {
    dirs.iter()
        .map(|d| {
            let path = root.join(d);
            std::fs::create_dir_all(&path)
                .map_err(NodeError::setup(format!("creating {}", path.display())))?;
            Ok(path)
        })
        .collect()
}
