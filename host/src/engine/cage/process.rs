//! One worker process: the limits set on it between fork and exec, and
//! how it ended (exit status or signal, CPU time, whether the host killed
//! it).

use std::ffi::CStr;
use std::process::Child;
use std::time::{Duration, Instant};

use super::{CageError, CompileLimits};

/// Why the host ended a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Killed {
    /// It was still running at the wall clock.
    WallClock,
    /// Its output went past the artifact cap (the memory limit).
    ArtifactTooLarge,
    /// The host could not keep its output.
    HostFailed,
}

/// How a worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    /// It exited with this status.
    Exited(i32),
    /// This signal ended it.
    Signaled(i32),
}

#[derive(Debug)]
pub(super) struct Outcome {
    /// Its exit status, or the signal that ended it.
    pub status: Status,
    /// CPU time the worker used, user and system.
    pub cpu: Duration,
    /// Why the host killed it, if it did.
    pub killed: Option<Killed>,
}

/// Waits for the worker (killing it at `deadline`, or now if `killed`)
/// and collects its status and CPU time.
pub(super) fn reap(
    child: &mut Child,
    deadline: Instant,
    mut killed: Option<Killed>,
) -> Result<Outcome, CageError> {
    let pid = child.id() as libc::pid_t;
    loop {
        if killed.is_none() && Instant::now() >= deadline {
            killed = Some(Killed::WallClock);
        }
        if killed.is_some() {
            // SAFETY: `pid` is our child and not yet reaped, so it is not
            // another process's pid.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let mut status: libc::c_int = 0;
        // SAFETY: an all-zero rusage is a valid value to overwrite.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let flags = if killed.is_some() { 0 } else { libc::WNOHANG };
        // SAFETY: plain out-parameters; `pid` is our child.
        let reaped = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        if reaped == pid {
            let time = |t: libc::timeval| {
                Duration::from_secs(t.tv_sec.max(0) as u64)
                    + Duration::from_micros(t.tv_usec.max(0) as u64)
            };
            let status = if libc::WIFEXITED(status) {
                Status::Exited(libc::WEXITSTATUS(status))
            } else {
                Status::Signaled(libc::WTERMSIG(status))
            };
            return Ok(Outcome {
                status,
                cpu: time(usage.ru_utime) + time(usage.ru_stime),
                killed,
            });
        }
        if reaped < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(CageError::Unavailable(format!(
                    "lost the compile worker: {error}"
                )));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The limits and hardening applied in the worker between fork and exec.
/// Only async-signal-safe calls.
pub(super) fn confine(limits: &CompileLimits) -> std::io::Result<()> {
    fn set(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> std::io::Result<()> {
        let limit = libc::rlimit {
            rlim_cur: soft as libc::rlim_t,
            rlim_max: hard as libc::rlim_t,
        };
        // SAFETY: a plain struct passed by pointer.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    let cpu = limits.cpu_seconds();
    // SIGXCPU at the soft limit, SIGKILL at the hard one a second later.
    set(libc::RLIMIT_CPU, cpu, cpu + 1)?;
    set(libc::RLIMIT_DATA, limits.memory_bytes, limits.memory_bytes)?;
    // The worker writes no file (its artifact goes down a pipe) and
    // leaves no core dump of a hostile compile on the disk.
    set(libc::RLIMIT_FSIZE, 0, 0)?;
    set(libc::RLIMIT_CORE, 0, 0)?;
    // SAFETY: setpriority, prctl, open, write and close are
    // async-signal-safe and take plain values.
    unsafe {
        // Behind the threads serving calls when both want a core.
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
        // A host that dies takes its worker with it.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        // First in line for the OOM killer, before the host.
        const OOM: &CStr = c"/proc/self/oom_score_adj";
        let fd = libc::open(OOM.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            libc::write(fd, b"1000".as_ptr().cast(), 4);
            libc::close(fd);
        }
    }
    Ok(())
}
