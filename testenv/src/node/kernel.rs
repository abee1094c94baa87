//! The machine-wide sysctls the kubelet sets, and putting them back.
//!
//! At start the kubelet sets `vm.overcommit_memory`, `vm.panic_on_oom`,
//! `kernel.panic`, `kernel.panic_on_oops` and the root keyring quotas to
//! the values it wants; unlike the network's, these are not per
//! namespace, so they outlive the node. Every node on the machine (in any
//! process) holds a claim in a ledger under `/run/bosun-testenv`, locked
//! with `flock`: the first claim records the values as they were, and the
//! last release writes them back. A claim whose process is dead (a test
//! killed before its teardown) counts for nothing, so the next node's
//! start or end restores what it left.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::cgroup::alive;

/// The sysctls the kubelet changes (`setupKernelTunables` in its
/// container manager).
pub(crate) const KNOBS: [&str; 6] = [
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

const DIR: &str = "/run/bosun-testenv";

/// One node's claim on the ledger, released on drop.
#[derive(Debug)]
pub(crate) struct Claim {
    holder: String,
}

impl Claim {
    /// Claims the ledger for `node_id` of this process, recording the
    /// current values if nobody alive holds a claim.
    pub fn take(node_id: &str) -> io::Result<Claim> {
        let holder = format!("{} {node_id}", std::process::id());
        with_ledger(|ledger| {
            ledger.prune();
            if ledger.holders.is_empty() {
                // Whatever a dead claimant left is put back first, so the
                // values recorded now are the machine's own.
                ledger.restore();
                ledger.values = read_knobs();
            }
            ledger.holders.push(holder.clone());
            Ok(())
        })?;
        Ok(Claim { holder })
    }

    /// Releases the claim; the last one alive writes the values back.
    pub fn release(&self) -> io::Result<()> {
        with_ledger(|ledger| {
            ledger.holders.retain(|h| h != &self.holder);
            ledger.prune();
            if ledger.holders.is_empty() {
                ledger.restore();
                ledger.values.clear();
            }
            Ok(())
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            eprintln!("bosun-testenv: restoring the kernel settings the kubelet changed: {e}");
        }
    }
}

/// Releases every claim this process holds: for the exit hook of a
/// process-wide node, whose `Drop` never runs.
pub(crate) fn release_all_of_this_process() {
    let pid = format!("{} ", std::process::id());
    let _ = with_ledger(|ledger| {
        ledger.holders.retain(|h| !h.starts_with(&pid));
        ledger.prune();
        if ledger.holders.is_empty() {
            ledger.restore();
            ledger.values.clear();
        }
        Ok(())
    });
}

#[derive(Debug, Default, PartialEq)]
struct Ledger {
    values: Vec<(String, String)>,
    holders: Vec<String>,
}

impl Ledger {
    fn parse(text: &str) -> Ledger {
        let mut ledger = Ledger::default();
        for line in text.lines() {
            if let Some(holder) = line.strip_prefix("holder ") {
                ledger.holders.push(holder.to_owned());
            } else if let Some((knob, value)) = line.split_once(' ') {
                ledger.values.push((knob.to_owned(), value.to_owned()));
            }
        }
        ledger
    }

    fn render(&self) -> String {
        let mut text = String::new();
        for (knob, value) in &self.values {
            text.push_str(&format!("{knob} {value}\n"));
        }
        for holder in &self.holders {
            text.push_str(&format!("holder {holder}\n"));
        }
        text
    }

    fn prune(&mut self) {
        self.holders.retain(|h| {
            h.split(' ')
                .next()
                .and_then(|pid| pid.parse().ok())
                .is_some_and(alive)
        });
    }

    fn restore(&self) {
        for (knob, value) in &self.values {
            if let Err(e) = fs::write(Path::new("/proc/sys").join(knob), value) {
                eprintln!("bosun-testenv: restoring {knob} to {value}: {e}");
            }
        }
    }
}

fn read_knobs() -> Vec<(String, String)> {
    KNOBS
        .iter()
        .filter_map(|knob| {
            let value = fs::read_to_string(Path::new("/proc/sys").join(knob)).ok()?;
            Some(((*knob).to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// Runs `change` on the ledger under an exclusive lock and writes it back
/// (or removes it when empty).
fn with_ledger(change: impl FnOnce(&mut Ledger) -> io::Result<()>) -> io::Result<()> {
    fs::create_dir_all(DIR)?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(Path::new(DIR).join("kernel-sysctls.lock"))?;
    let _guard = Flock::exclusive(&lock)?;
    let path = ledger_path();
    let mut ledger = Ledger::parse(&fs::read_to_string(&path).unwrap_or_default());
    change(&mut ledger)?;
    if ledger.values.is_empty() && ledger.holders.is_empty() {
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    } else {
        let partial = path.with_extension("partial");
        fs::write(&partial, ledger.render())?;
        fs::rename(&partial, &path)?;
    }
    Ok(())
}

fn ledger_path() -> PathBuf {
    Path::new(DIR).join("kernel-sysctls")
}

struct Flock<'a>(&'a File);

impl<'a> Flock<'a> {
    fn exclusive(file: &'a File) -> io::Result<Flock<'a>> {
        // SAFETY: flock on a descriptor we own for the guard's lifetime.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Flock(file))
    }
}

impl Drop for Flock<'_> {
    fn drop(&mut self) {
        // SAFETY: unlocks what `exclusive` locked.
        unsafe {
            libc::flock(self.0.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_round_trips_and_forgets_the_dead() {
        let text = "kernel/panic 1\nvm/overcommit_memory 0\nholder 1 node-1-0\nholder 999999999 node-999999999-0\n";
        let mut ledger = Ledger::parse(text);
        assert_eq!(Ledger::parse(&ledger.render()), ledger);
        ledger.prune();
        assert_eq!(
            ledger.holders,
            ["1 node-1-0"],
            "pid 1 lives; the other does not"
        );
        assert_eq!(ledger.values.len(), 2);
    }
}
