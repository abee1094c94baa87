//! The compile cage: components are compiled in a worker process under
//! limits, never in the host.
//!
//! Compiling is the one thing the host does with a module's bytes before
//! any check of its behaviour, and Cranelift's cost is not bounded by the
//! size of its input: a 72 KB component of one function with 10,000 live
//! values took 11 s of one core, a 1.8 MB one of 200,000 tiny functions
//! 61 s and 1 GiB of the host's memory (see ARCHITECTURE.md, threat model).
//! So a component is compiled by the host's own binary, re-executed as
//! `bosun compile-worker` ([`super::worker`]), which reads the component on
//! its standard input and writes the serialized artifact on its standard
//! output, under:
//!
//! - a **size cap**, checked by the host before anything parses the bytes;
//! - **CPU time** (`RLIMIT_CPU`: SIGXCPU, then SIGKILL a second later), and
//!   a wall-clock kill by the host as a backstop for a worker that gets no
//!   CPU ([`CompileLimits::wall_clock`]);
//! - **memory** (`RLIMIT_DATA`: every private writable mapping — heap and
//!   anonymous maps — of the worker; an allocation past it fails and the
//!   worker aborts saying so); its output is capped at the same size;
//! - **no files** (`RLIMIT_FSIZE` 0, `RLIMIT_CORE` 0), an empty
//!   environment, a lower CPU priority (nice 10, so the threads serving
//!   calls go first when both want a core), the first place in line for
//!   the kernel's OOM killer (`oom_score_adj` 1000), and death with the
//!   thread that started it (`PR_SET_PDEATHSIG`);
//! - a **bounded concurrency**: at most [`Cage::concurrency`] workers at
//!   once, each compiling on one thread.
//!
//! The worker is trusted no more than the compile cache: it compiles
//! hostile input and may have been subverted by it. Its output reaches the
//! host only through a pipe the host reads into a file only the host has
//! open, capped in size; that file then goes through the cache's own
//! checks ([`super::cache::CompileCache::admit`]) or, without a cache, is
//! mapped from the host's private scratch directory, and wasmtime checks
//! the artifact's header and engine compatibility either way. Native code
//! itself cannot be verified: a compiler bug that lets a component take
//! over the worker can make it return other code, exactly as the same bug
//! would have in-process. The cage bounds resources; it does not make the
//! compiler correct.

mod limits;
mod process;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use limits::{CompileLimits, LimitHit};
use process::{Killed, Outcome, Status, confine, reap};

/// The hidden subcommand of the `bosun` binary that compiles one component.
pub const WORKER_SUBCOMMAND: &str = "compile-worker";

/// Worker exit status: the component is not valid WebAssembly (or not a
/// component wasmtime accepts); the message is on standard error.
pub(super) const EXIT_INVALID: i32 = 65;
/// Worker exit status: the compiler ran out of memory and said so (rather
/// than aborting).
pub(super) const EXIT_OUT_OF_MEMORY: i32 = 66;
/// Worker exit status: the worker itself failed (no engine, no input).
pub(super) const EXIT_WORKER_FAILED: i32 = 70;

/// The most of a worker's standard error kept for a message.
const STDERR_KEPT: usize = 2048;

/// How an engine compiles components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compiler {
    /// In worker processes under limits (see the module's notes): what the
    /// `bosun` binary always does.
    Caged {
        /// The worker program: a `bosun` binary of this very build (its
        /// artifacts must match this engine; a mismatch is refused).
        program: PathBuf,
        /// The bounds on each compile.
        limits: CompileLimits,
        /// How many compiles may run at once.
        concurrency: usize,
    },
    /// In this process, as wasmtime does by default: Cranelift on every
    /// core, with **no bound** on time, memory or size. A hostile component
    /// can then take the process's memory and cores for minutes. Only for
    /// embedders that compile components they trust.
    InProcess,
}

impl Compiler {
    /// Caged, running `program`, with the default limits and concurrency.
    pub fn caged(program: impl Into<PathBuf>) -> Self {
        Compiler::Caged {
            program: program.into(),
            limits: CompileLimits::default(),
            concurrency: Compiler::default_concurrency(),
        }
    }

    /// The default for this process: caged, re-executing this very binary
    /// (`/proc/self/exe`, so an upgrade of the file on disk changes
    /// nothing), when it is a `bosun` binary; in process otherwise (a test
    /// binary, an embedder), which is unbounded.
    pub fn for_this_process() -> Self {
        let is_bosun = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.file_name().map(|name| name == "bosun"))
            .unwrap_or(false);
        if is_bosun {
            Compiler::caged(THIS_EXECUTABLE)
        } else {
            Compiler::InProcess
        }
    }

    /// Half the cores the process may use, at least one: each compile runs
    /// on one thread, so at least half the cores stay with the calls, and
    /// the memory compiles take at once is at most this many times their
    /// limit.
    pub fn default_concurrency() -> usize {
        std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
    }
}

/// This very executable, whatever became of its file.
pub const THIS_EXECUTABLE: &str = "/proc/self/exe";

/// Compiles components in worker processes; see the module's notes.
#[derive(Debug)]
pub struct Cage {
    program: PathBuf,
    limits: CompileLimits,
    slots: Slots,
}

/// Why a compile in the cage produced no artifact.
#[derive(Debug)]
pub(super) enum CageError {
    /// A limit was hit: the component's doing.
    Limit(LimitHit),
    /// The compiler refused the component (or crashed on it): its message.
    Invalid(String),
    /// The cage could not do its work, through no fault of the component
    /// (no worker, a worker starved or killed from outside): try again.
    Unavailable(String),
}

impl Cage {
    /// A cage running `program` (a `bosun` binary of this very build, so
    /// that its artifacts match this engine) with `limits`, at most
    /// `concurrency` compiles at once (at least one).
    pub fn new(program: impl Into<PathBuf>, limits: CompileLimits, concurrency: usize) -> Self {
        Cage {
            program: program.into(),
            limits,
            slots: Slots::new(concurrency.max(1)),
        }
    }

    /// The limits every compile runs under.
    pub fn limits(&self) -> &CompileLimits {
        &self.limits
    }

    /// Compiles `bytes` in a worker, waiting for a free slot first. The
    /// artifact comes back in a file under `scratch` (a directory private
    /// to the host) that only this process has open, rewound.
    pub(super) fn compile(
        &self,
        bytes: &[u8],
        scratch: &Path,
    ) -> Result<tempfile::NamedTempFile, CageError> {
        let unavailable = |what: &str, e: std::io::Error| {
            CageError::Unavailable(format!("{what} in {}: {e}", scratch.display()))
        };
        // The slot first: loads waiting for one hold no copy of their bytes.
        let _slot = self.slots.take();
        // The input as a file, not a pipe: the worker reads it at its own
        // pace, and the host need not write and read at once.
        let mut input =
            tempfile::tempfile_in(scratch).map_err(|e| unavailable("no room for the input", e))?;
        input
            .write_all(bytes)
            .and_then(|()| input.seek(SeekFrom::Start(0)).map(drop))
            .map_err(|e| unavailable("cannot write the input", e))?;
        let mut output = tempfile::NamedTempFile::new_in(scratch)
            .map_err(|e| unavailable("no room for the artifact", e))?;

        let started = Instant::now();
        let mut child = self.spawn(input)?;
        let result = self.supervise(&mut child, output.as_file_mut(), started);
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(size) => tracing::debug!(
                elapsed_ms,
                artifact_bytes = size,
                "compiled in the compile worker"
            ),
            Err(error) => tracing::debug!(elapsed_ms, ?error, "the compile worker failed"),
        }
        result?;
        output
            .as_file_mut()
            .seek(SeekFrom::Start(0))
            .map_err(|e| unavailable("cannot read the artifact back", e))?;
        Ok(output)
    }

    fn spawn(&self, input: File) -> Result<Child, CageError> {
        let limits = self.limits;
        let mut command = Command::new(&self.program);
        command
            .arg(WORKER_SUBCOMMAND)
            .env_clear()
            .current_dir("/")
            .stdin(input)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: between fork and exec only async-signal-safe calls are
        // made (setrlimit, setpriority, prctl, open, write, close), on
        // values computed before the fork; nothing allocates.
        unsafe {
            command.pre_exec(move || confine(&limits));
        }
        command.spawn().map_err(|e| {
            CageError::Unavailable(format!(
                "cannot start the compile worker {}: {e}",
                self.program.display()
            ))
        })
    }

    /// Copies the worker's output into `artifact` until it exits, killing
    /// it at the wall clock or past the artifact cap; then says how it went.
    /// Returns the artifact's size.
    fn supervise(
        &self,
        child: &mut Child,
        artifact: &mut File,
        started: Instant,
    ) -> Result<u64, CageError> {
        let deadline = started + self.limits.wall_clock();
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let mut message = Vec::new();
        let mut size: u64 = 0;
        let mut chunk = vec![0u8; 64 << 10];
        let mut killed: Option<Killed> = None;
        let mut write_failed: Option<std::io::Error> = None;
        while stdout.is_some() || stderr.is_some() {
            let now = Instant::now();
            if now >= deadline {
                killed = Some(Killed::WallClock);
                break;
            }
            let wait = (deadline - now).min(Duration::from_millis(250));
            let mut fds: Vec<libc::pollfd> = [
                stdout.as_ref().map(AsRawFd::as_raw_fd),
                stderr.as_ref().map(AsRawFd::as_raw_fd),
            ]
            .into_iter()
            .flatten()
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
            // SAFETY: `fds` is a live array of that many pollfd structs.
            let ready = unsafe {
                libc::poll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    wait.as_millis() as libc::c_int,
                )
            };
            if ready <= 0 {
                continue;
            }
            let readable = |fd: i32| fds.iter().any(|p| p.fd == fd && p.revents != 0);
            if let Some(out) = stdout.as_mut().filter(|o| readable(o.as_raw_fd())) {
                match out.read(&mut chunk) {
                    Ok(0) | Err(_) => stdout = None,
                    Ok(n) => {
                        size += n as u64;
                        if size > self.limits.memory_bytes {
                            killed = Some(Killed::ArtifactTooLarge);
                            break;
                        }
                        if let Err(e) = artifact.write_all(&chunk[..n]) {
                            write_failed = Some(e);
                            killed = Some(Killed::HostFailed);
                            break;
                        }
                    }
                }
            }
            if let Some(err) = stderr.as_mut().filter(|e| readable(e.as_raw_fd())) {
                match err.read(&mut chunk) {
                    Ok(0) | Err(_) => stderr = None,
                    Ok(n) => {
                        let room = STDERR_KEPT.saturating_sub(message.len());
                        message.extend_from_slice(&chunk[..n.min(room)]);
                    }
                }
            }
        }
        // Both pipes closed (or the worker is being killed): it must exit
        // now; one that closed its pipes and lingers is killed at the wall
        // clock all the same.
        let outcome = reap(child, deadline, killed)?;
        let message = shown(&message);
        if let Some(e) = write_failed {
            return Err(CageError::Unavailable(format!(
                "cannot write the artifact: {e}"
            )));
        }
        self.judge(outcome, &message, size)
    }

    /// What a worker's end says about the component.
    fn judge(&self, outcome: Outcome, message: &str, size: u64) -> Result<u64, CageError> {
        let time = LimitHit::Time {
            seconds: self.limits.cpu_seconds(),
        };
        let memory = LimitHit::Memory {
            bytes: self.limits.memory_bytes,
        };
        let used_its_time =
            outcome.cpu >= Duration::from_secs(self.limits.cpu_seconds()).mul_f64(0.9);
        let out_of_memory = message.contains("memory allocation of")
            || message.contains("out of memory")
            || message.contains("Cannot allocate memory");
        match (outcome.killed, outcome.status) {
            (Some(Killed::ArtifactTooLarge), _) => Err(CageError::Limit(memory)),
            (Some(Killed::HostFailed), _) => Err(CageError::Unavailable(
                "the host could not keep the artifact".into(),
            )),
            (Some(Killed::WallClock), _) if used_its_time => Err(CageError::Limit(time)),
            (Some(Killed::WallClock), _) => Err(CageError::Unavailable(format!(
                "the compile worker got only {:.1} s of CPU in {} s: the host is too busy",
                outcome.cpu.as_secs_f64(),
                self.limits.wall_clock().as_secs()
            ))),
            (None, Status::Exited(0)) if size == 0 => Err(CageError::Invalid(
                "the compile worker returned no artifact".into(),
            )),
            (None, Status::Exited(0)) => Ok(size),
            (None, Status::Exited(EXIT_OUT_OF_MEMORY)) => Err(CageError::Limit(memory)),
            (None, Status::Exited(EXIT_INVALID)) if out_of_memory => Err(CageError::Limit(memory)),
            (None, Status::Exited(EXIT_INVALID)) => Err(CageError::Invalid(message.to_owned())),
            (None, Status::Exited(EXIT_WORKER_FAILED)) => Err(CageError::Unavailable(format!(
                "the compile worker failed: {message}"
            ))),
            (None, Status::Signaled(libc::SIGXCPU)) => Err(CageError::Limit(time)),
            (None, Status::Signaled(libc::SIGKILL)) if used_its_time => {
                Err(CageError::Limit(time))
            }
            // Killed by someone else: in a container, most likely the
            // kernel's OOM killer for the container's memory limit (the
            // worker is first in its line). Not the component's limit, so
            // not remembered.
            (None, Status::Signaled(libc::SIGKILL)) => Err(CageError::Unavailable(
                "the compile worker was killed from outside, most likely by the kernel's OOM killer: the host's memory limit (its container's) leaves less room than --compile-memory-limit-mib times --compile-concurrency".into(),
            )),
            (None, _) if out_of_memory => Err(CageError::Limit(memory)),
            (None, Status::Exited(code)) => Err(CageError::Invalid(format!(
                "the compiler failed (exit status {code}): {message}"
            ))),
            (None, Status::Signaled(signal)) => Err(CageError::Invalid(format!(
                "the compiler crashed on it (signal {signal}): {message}"
            ))),
        }
    }
}

/// A worker's standard error as a message may quote it: printable
/// characters only, lines joined, cut to size.
fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut shown: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if bytes.len() >= STDERR_KEPT {
        shown.push('…');
    }
    shown
}

/// A counting semaphore for blocking threads: the compile slots.
#[derive(Debug)]
struct Slots {
    max: usize,
    taken: Mutex<usize>,
    freed: Condvar,
}

/// A compile slot, given back on drop.
struct Slot<'a>(&'a Slots);

impl Slots {
    fn new(max: usize) -> Self {
        Slots {
            max,
            taken: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    fn take(&self) -> Slot<'_> {
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        while *taken >= self.max {
            taken = self
                .freed
                .wait(taken)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *taken += 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut taken = self.0.taken.lock().unwrap_or_else(PoisonError::into_inner);
        *taken -= 1;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workers_message_is_quoted_printable_and_short() {
        let noisy = b"line one\n\x1b[31mred\x1b[0m\tand\0more".to_vec();
        assert_eq!(shown(&noisy), "line one [31mred [0m and more");
        let long = vec![b'x'; STDERR_KEPT];
        assert!(shown(&long).ends_with('…'));
    }
}
