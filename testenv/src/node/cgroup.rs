//! The node's cgroup: every process of the node lives below it, so that
//! tearing the node down is killing one subtree.
//!
//! containerd's shims daemonise and the containers run in PID namespaces
//! of their own: neither is a child the harness could wait for or a process
//! group it could signal. What they cannot leave is their cgroup. The
//! harness makes `bosun-testenv/<id>` in every cgroup hierarchy, starts
//! containerd, the kubelet and kube-proxy in its `system` leaf (shims
//! inherit it), and gives the kubelet `<id>` as its `cgroupRoot`, so every
//! Pod's cgroup is below it too. Teardown freezes the subtree, kills every
//! process in it and removes the directories; a subtree left by a test
//! process that was itself killed is found by its dead owner's pid in the
//! name and swept at the next start.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The directory under each hierarchy's root that holds the nodes.
const PARENT: &str = "bosun-testenv";
/// The leaf the node's own processes (not its Pods) run in.
const SYSTEM: &str = "system";

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone)]
struct Hierarchy {
    mount: PathBuf,
    v2: bool,
    cpuset: bool,
    freezer: bool,
}

/// A node's subtree, in every hierarchy.
#[derive(Debug)]
pub(crate) struct Cgroup {
    id: String,
    hierarchies: Vec<Hierarchy>,
}

impl Cgroup {
    /// Creates `bosun-testenv/<id>/system` in every hierarchy.
    pub fn create(id: &str) -> io::Result<Cgroup> {
        let hierarchies = hierarchies()?;
        if hierarchies.is_empty() {
            return Err(io::Error::other("no cgroup hierarchy is mounted"));
        }
        let cgroup = Cgroup {
            id: id.to_owned(),
            hierarchies,
        };
        for hierarchy in &cgroup.hierarchies {
            if hierarchy.v2 {
                enable_controllers(&hierarchy.mount)?;
            }
            let parent = hierarchy.mount.join(PARENT);
            let node = parent.join(id);
            for dir in [&parent, &node, &node.join(SYSTEM)] {
                match fs::create_dir(dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(annotate(e, dir)),
                }
                if hierarchy.cpuset {
                    inherit_cpuset(dir)?;
                }
                if hierarchy.v2 && dir != &node.join(SYSTEM) {
                    enable_controllers(dir)?;
                }
            }
        }
        Ok(cgroup)
    }

    /// The node's id (`node-<pid>-<n>`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The subtree as the kubelet's `cgroupRoot` names it (`/bosun-testenv/<id>`).
    pub fn root(&self) -> String {
        format!("/{PARENT}/{}", self.id)
    }

    /// The `cgroup.procs` files a process writes `0` to, to move itself
    /// into the node's `system` leaf (one per hierarchy).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.hierarchies
            .iter()
            .map(|h| self.dir(h).join(SYSTEM).join("cgroup.procs"))
            .collect()
    }

    fn dir(&self, hierarchy: &Hierarchy) -> PathBuf {
        hierarchy.mount.join(PARENT).join(&self.id)
    }

    /// Every process in the subtree, in any hierarchy.
    pub fn pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for hierarchy in &self.hierarchies {
            collect_pids(&self.dir(hierarchy), &mut pids);
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Kills every process in the subtree and waits (up to `timeout`) until
    /// none is left. Frozen first where a freezer exists, so nothing forks
    /// away between reading the list and the signal.
    pub fn kill_all(&self, timeout: Duration) -> io::Result<()> {
        let freezer = self
            .hierarchies
            .iter()
            .find(|h| h.freezer || h.v2)
            .map(|h| (h.v2, self.dir(h)));
        if let Some((v2, dir)) = &freezer {
            let _ = freeze(dir, *v2, true);
        }
        let started = Instant::now();
        loop {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for pid in &pids {
                // SAFETY: plain syscall; a pid that is gone meanwhile is ESRCH.
                unsafe {
                    libc::kill(*pid, libc::SIGKILL);
                }
            }
            if started.elapsed() > timeout {
                if let Some((v2, dir)) = &freezer {
                    let _ = freeze(dir, *v2, false);
                }
                return Err(io::Error::other(format!(
                    "processes {pids:?} of cgroup {} survived SIGKILL for {timeout:?}",
                    self.root()
                )));
            }
            // A frozen task dies only once thawed: let it go, then look again.
            if let Some((v2, dir)) = &freezer {
                let _ = freeze(dir, *v2, false);
                std::thread::sleep(Duration::from_millis(20));
                let _ = freeze(dir, *v2, true);
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Some((v2, dir)) = &freezer {
            let _ = freeze(dir, *v2, false);
        }
        Ok(())
    }

    /// Removes the subtree's directories, deepest first (their processes
    /// must be gone: [`Cgroup::kill_all`]); the shared parent goes too
    /// once no node is left in it.
    pub fn remove(&self) -> io::Result<()> {
        let mut first_error = None;
        for hierarchy in &self.hierarchies {
            if let Err(e) = remove_tree(&self.dir(hierarchy)) {
                first_error.get_or_insert(e);
            }
            // Another node may still be there: then it stays.
            let _ = fs::remove_dir(hierarchy.mount.join(PARENT));
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Kills every process of the node `id` and removes its cgroup.
pub(crate) fn kill_and_remove(id: &str) {
    let Ok(hierarchies) = hierarchies() else {
        return;
    };
    let cgroup = Cgroup {
        id: id.to_owned(),
        hierarchies,
    };
    let _ = cgroup.kill_all(Duration::from_secs(10));
    let _ = cgroup.remove();
}

/// Kills and removes the subtrees whose owner (the pid in `node-<pid>-…`)
/// is gone: what a test process killed before its teardown left behind.
pub(crate) fn sweep_stale() {
    let Ok(hierarchies) = hierarchies() else {
        return;
    };
    let mut stale = Vec::new();
    for hierarchy in &hierarchies {
        let Ok(entries) = fs::read_dir(hierarchy.mount.join(PARENT)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(owner) = owner_pid(&name)
                && !alive(owner)
                && !stale.contains(&name)
            {
                stale.push(name);
            }
        }
    }
    for id in stale {
        let cgroup = Cgroup {
            id: id.clone(),
            hierarchies: hierarchies.clone(),
        };
        tracing::warn!(cgroup = %cgroup.root(), "removing a node left by a test process that died");
        let _ = cgroup.kill_all(Duration::from_secs(10));
        let _ = cgroup.remove();
    }
}

/// The pid in a node id `node-<pid>-<n>`.
pub(crate) fn owner_pid(id: &str) -> Option<i32> {
    id.strip_prefix("node-")?.split('-').next()?.parse().ok()
}

/// Whether a process with this pid exists.
pub(crate) fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    unsafe { libc::kill(pid, 0) == 0 || *libc::__errno_location() == libc::EPERM }
}

/// The mounted hierarchies, from `/proc/self/mountinfo`: every cgroup v1
/// mount (each controller, and named ones such as `name=systemd`) and the
/// cgroup v2 one. In hybrid mode the v2 mount holds no controllers, but
/// the kubelet and runc make their directories there too.
fn hierarchies() -> io::Result<Vec<Hierarchy>> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    let mut v1 = Vec::new();
    let mut v2 = None;
    for line in mountinfo.lines() {
        // `… mount-point options - fstype source super-options`
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = before.split(' ').collect();
        let mut after = after.split(' ');
        let fstype = after.next().unwrap_or_default();
        let options = after.nth(1).unwrap_or_default();
        let Some(mount) = fields.get(4) else { continue };
        let mount = PathBuf::from(mount.replace("\\040", " "));
        match fstype {
            "cgroup" => v1.push(Hierarchy {
                cpuset: options.split(',').any(|o| o == "cpuset"),
                freezer: options.split(',').any(|o| o == "freezer"),
                mount,
                v2: false,
            }),
            "cgroup2" => {
                v2 = Some(Hierarchy {
                    mount,
                    v2: true,
                    cpuset: false,
                    freezer: false,
                })
            }
            _ => {}
        }
    }
    // v1 first: its freezer is the one to use when both are there.
    Ok(v1.into_iter().chain(v2).collect())
}

/// A cpuset cgroup starts with no CPUs and no memory nodes, and a process
/// cannot join it until it has some: copy the parent's.
fn inherit_cpuset(dir: &Path) -> io::Result<()> {
    let parent = dir
        .parent()
        .ok_or_else(|| io::Error::other("a cgroup without a parent"))?;
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let mine = fs::read_to_string(dir.join(file)).unwrap_or_default();
        if mine.trim().is_empty() {
            let theirs = fs::read_to_string(parent.join(file)).map_err(|e| annotate(e, parent))?;
            fs::write(dir.join(file), theirs.trim()).map_err(|e| annotate(e, dir))?;
        }
    }
    Ok(())
}

/// cgroup v2: hands the controllers `dir` has down to its children.
fn enable_controllers(dir: &Path) -> io::Result<()> {
    let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let wanted: Vec<String> = available
        .split_whitespace()
        .map(|c| format!("+{c}"))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    fs::write(dir.join("cgroup.subtree_control"), wanted.join(" ")).map_err(|e| annotate(e, dir))
}

fn freeze(dir: &Path, v2: bool, frozen: bool) -> io::Result<()> {
    if v2 {
        fs::write(dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })
    } else {
        fs::write(
            dir.join("freezer.state"),
            if frozen { "FROZEN" } else { "THAWED" },
        )
    }
}

fn collect_pids(dir: &Path, into: &mut Vec<i32>) {
    if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
        into.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_pids(&entry.path(), into);
            }
        }
    }
}

/// Removes a cgroup directory and its children, deepest first. A cgroup
/// whose last process just died can refuse briefly (EBUSY): retried.
fn remove_tree(dir: &Path) -> io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path())?;
            }
        }
    }
    let started = Instant::now();
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if started.elapsed() > Duration::from_secs(5) => return Err(annotate(e, dir)),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn annotate(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_is_the_pid_in_the_name() {
        assert_eq!(owner_pid("node-1234-0"), Some(1234));
        assert_eq!(owner_pid("node-x-0"), None);
        assert_eq!(owner_pid("kubepods"), None);
    }

    #[test]
    fn this_process_is_alive() {
        assert!(alive(std::process::id() as i32));
    }
}
