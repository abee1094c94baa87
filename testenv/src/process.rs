//! Child processes that cannot outlive the harness.
//!
//! Each child runs in its own process group, and [`ManagedProcess`]'s `Drop`
//! kills the whole group with SIGKILL and reaps it; `Drop` runs when a test
//! panics, too. For a test binary that is itself killed (or exits with a
//! `TestEnv` still alive in a `static`), Linux children also get
//! `PR_SET_PDEATHSIG(SIGKILL)`. That signal fires when the *thread* that forked
//! the child exits, not the process, so all children are forked by one spawner
//! thread that lives as long as the process (a test's own thread, or a tokio
//! blocking thread, would die early and take the control plane with it).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;

use crate::error::{Error, ProcessFailure};

type SpawnRequest = (Command, mpsc::SyncSender<io::Result<Child>>);

/// A running control-plane process; killed (with its process group) on drop.
#[derive(Debug)]
pub(crate) struct ManagedProcess {
    pub binary: &'static str,
    pub path: PathBuf,
    pub log: PathBuf,
    child: Child,
}

impl ManagedProcess {
    /// Starts `path args…` with stdout and stderr appended to `log`.
    pub fn spawn(
        binary: &'static str,
        path: &Path,
        args: &[String],
        cwd: &Path,
        log: PathBuf,
    ) -> Result<Self, Error> {
        let mut command = Command::new(path);
        command.args(args).current_dir(cwd);
        Self::start(binary, command, log)
    }

    /// Starts `command` (program, arguments, directory, environment and
    /// any `pre_exec` hook already set: the node's processes enter its
    /// cgroup and namespaces that way) in a process group of its own, with
    /// stdout and stderr appended to `log`.
    pub fn start(binary: &'static str, mut command: Command, log: PathBuf) -> Result<Self, Error> {
        let path = PathBuf::from(command.get_program());
        let out = File::create(&log).map_err(Error::io("creating log file", &log))?;
        let err = out
            .try_clone()
            .map_err(Error::io("creating log file", &log))?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        #[cfg(target_os = "linux")]
        {
            let parent = std::process::id();
            // SAFETY: the closure runs between fork and exec and only makes
            // async-signal-safe libc calls (prctl, getppid).
            unsafe {
                command.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    // The parent may have died before prctl took effect.
                    if libc::getppid() as u32 != parent {
                        return Err(io::Error::other("parent exited before exec"));
                    }
                    Ok(())
                });
            }
        }
        let child = spawn_from_long_lived_thread(command).map_err(|e| ProcessFailure {
            binary,
            path: path.clone(),
            reason: format!("could not be started: {e}"),
            tail: String::new(),
            log: log.clone(),
        })?;
        Ok(ManagedProcess {
            binary,
            path,
            log,
            child,
        })
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The failure to report when the process exited during startup.
    pub fn exited(&self, status: ExitStatus) -> ProcessFailure {
        ProcessFailure {
            binary: self.binary,
            path: self.path.clone(),
            reason: format!("exited during startup ({status})"),
            log: self.log.clone(),
            tail: tail(&self.log, 30),
        }
    }

    /// Kills the process group and reaps the child.
    pub fn kill(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        if let Ok(pgid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: plain syscall; the group id is our child's pid (process_group(0)).
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_from_long_lived_thread(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        let spawned = std::thread::Builder::new()
            .name("bosun-testenv-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            });
        if let Err(e) = spawned {
            // Without the thread every request below fails with a clear error.
            eprintln!("bosun-testenv: cannot start spawner thread: {e}");
        }
        tx
    });
    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
    sender
        .send((command, reply_tx))
        .map_err(|_| io::Error::other("the bosun-testenv spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("the bosun-testenv spawner thread is gone"))?
}

/// The last `lines` lines of a log file (at most the last 64 KiB are read).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            all[start..]
                .iter()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        }
        Err(e) => format!("    <cannot read {}: {e}>", path.display()),
    }
}
