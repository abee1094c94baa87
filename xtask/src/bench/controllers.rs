//! The two controllers under test, run as processes, and what `/proc` says
//! of them (CPU seconds, resident memory).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Which side of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The bosun host running the cnat component.
    Bosun,
    /// `native-controller --module cnat`: kube-runtime's Controller.
    Native,
    /// The host from another build (`--before-binary`), for the scenarios
    /// that compare the host with an earlier version of itself.
    Before,
}

impl Side {
    /// Both sides, in the order each scenario runs them.
    pub const BOTH: [Side; 2] = [Side::Bosun, Side::Native];

    /// The name used in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Side::Bosun => "bosun",
            Side::Native => "native",
            Side::Before => "bosun-before",
        }
    }
}

/// The programs and files a run starts.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The `bosun` host.
    pub bosun: PathBuf,
    /// The native baseline, `native-controller`.
    pub native: PathBuf,
    /// The cnat component the host loads.
    pub cnat: PathBuf,
    /// The host's compile cache, kept across runs so that only the first
    /// start compiles the component.
    pub cache_dir: PathBuf,
    /// The host from another build (`--before-binary`), if any, and its own
    /// compile cache (another build may not read this one's artifacts).
    pub before: Option<(PathBuf, PathBuf)>,
}

impl Binaries {
    /// The host binary of `side` (`Bosun` or `Before`) and its compile cache.
    pub fn host(&self, side: Side) -> Result<(&Path, &Path)> {
        match side {
            Side::Bosun => Ok((&self.bosun, &self.cache_dir)),
            Side::Before => self
                .before
                .as_ref()
                .map(|(binary, cache)| (binary.as_path(), cache.as_path()))
                .context("no --before-binary given"),
            Side::Native => bail!("the native side is not a host"),
        }
    }

    /// The host sides a scenario comparing builds runs: bosun, and the
    /// before build when one was given.
    pub fn host_sides(&self) -> Vec<Side> {
        let mut sides = vec![Side::Bosun];
        if self.before.is_some() {
            sides.push(Side::Before);
        }
        sides
    }
}

/// A running controller, killed when dropped.
pub struct Controller {
    child: Child,
    side: Side,
    /// The host's telemetry port (bosun only).
    pub telemetry_port: Option<u16>,
    log: PathBuf,
}

impl Controller {
    /// Starts `side` against the cluster of `kubeconfig`, logging to `log`.
    /// `extra` goes to the host only (`--resync 5s`).
    pub fn start(
        side: Side,
        binaries: &Binaries,
        kubeconfig: &Path,
        log: &Path,
        extra: &[&str],
    ) -> Result<Controller> {
        match side {
            Side::Bosun => Controller::host(
                binaries,
                std::slice::from_ref(&binaries.cnat),
                kubeconfig,
                log,
                extra,
            ),
            Side::Native => Controller::native(binaries, &["--module", "cnat"], kubeconfig, log),
            Side::Before => bail!("the burst scenario runs no before side"),
        }
    }

    /// Starts one host running `modules`, each granted what it declares.
    pub fn host(
        binaries: &Binaries,
        modules: &[PathBuf],
        kubeconfig: &Path,
        log: &Path,
        extra: &[&str],
    ) -> Result<Controller> {
        let mut args = vec!["--grant-declared".to_owned()];
        for module in modules {
            args.push("--module".into());
            args.push(module.display().to_string());
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        Controller::host_side(Side::Bosun, binaries, &args, kubeconfig, log)
    }

    /// Starts the host of `side` (`Bosun`, or `Before`: the other build)
    /// as `bosun run ARGS`, its telemetry on a free port.
    pub fn host_side(
        side: Side,
        binaries: &Binaries,
        args: &[String],
        kubeconfig: &Path,
        log: &Path,
    ) -> Result<Controller> {
        let (binary, cache) = binaries.host(side)?;
        Controller::bosun_at(binary, cache, args, &[], kubeconfig, log).map(|mut controller| {
            controller.side = side;
            controller
        })
    }

    /// Starts `binary` as `bosun run ARGS` with its compile cache in
    /// `cache`, `env` added to its environment, its telemetry on a free
    /// port.
    pub fn bosun_at(
        binary: &Path,
        cache: &Path,
        args: &[String],
        env: &[(&str, &str)],
        kubeconfig: &Path,
        log: &Path,
    ) -> Result<Controller> {
        let port = free_port()?;
        let mut command = Command::new(binary);
        command
            .arg("run")
            .args(args)
            .args(["--telemetry-addr", &format!("127.0.0.1:{port}")])
            .env("BOSUN_CACHE_DIR", cache)
            .envs(env.iter().copied());
        Controller::spawn(Side::Bosun, command, Some(port), kubeconfig, log)
    }

    /// Starts one native controller process with `args`.
    pub fn native(
        binaries: &Binaries,
        args: &[&str],
        kubeconfig: &Path,
        log: &Path,
    ) -> Result<Controller> {
        let mut command = Command::new(&binaries.native);
        command.args(args);
        Controller::spawn(Side::Native, command, None, kubeconfig, log)
    }

    /// Starts one native controller process with `args`, serving its
    /// reconcile count on a free port (`--metrics-addr`), read as the
    /// host's is ([`Controller::reconciles`]).
    pub fn native_counted(
        binaries: &Binaries,
        args: &[&str],
        kubeconfig: &Path,
        log: &Path,
    ) -> Result<Controller> {
        let port = free_port()?;
        let mut command = Command::new(&binaries.native);
        command
            .args(args)
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")]);
        Controller::spawn(Side::Native, command, Some(port), kubeconfig, log)
    }

    /// The process's reconciles so far (`controller_runtime_reconcile_total`
    /// from its `/metrics`: the host's, or a counted native controller's).
    pub async fn reconciles(&self) -> Result<f64> {
        let port = self
            .telemetry_port
            .context("this controller serves no reconcile count")?;
        let (_, text) = http_get(([127, 0, 0, 1], port).into(), "/metrics")
            .await
            .with_context(|| format!("reading the {} controller's /metrics", self.side.name()))?;
        Ok(super::counters::reconciles(&text))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL: no graceful step-down), and
    /// waits for it.
    pub fn kill(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    fn spawn(
        side: Side,
        mut command: Command,
        telemetry_port: Option<u16>,
        kubeconfig: &Path,
        log: &Path,
    ) -> Result<Controller> {
        let log_file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        command
            .env("KUBECONFIG", kubeconfig)
            // What an operator runs in production: warnings only, on both sides.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        let child = command
            .spawn()
            .with_context(|| format!("starting the {} controller", side.name()))?;
        Ok(Controller {
            child,
            side,
            telemetry_port,
            log: log.to_owned(),
        })
    }

    /// Fails, quoting the log, when the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "the {} controller exited ({status}); the end of its log:\n{}",
                self.side.name(),
                tail.join("\n")
            );
        }
        Ok(())
    }

    /// CPU seconds (user + system) the process has used so far.
    pub fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds_of(self.child.id())
    }

    /// (resident now, peak resident) in bytes.
    pub fn rss(&self) -> Result<(u64, u64)> {
        rss_of(self.child.id())
    }

    /// The file descriptors the process holds open.
    pub fn open_fds(&self) -> Result<usize> {
        open_fds_of(self.child.id())
    }

    /// Where the process logs.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The process's exit status, once it has exited.
    pub fn exited(&mut self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Sends SIGTERM (a graceful stop: a leader hands its Lease over) and
    /// waits up to `grace` for the exit, then kills it.
    pub fn terminate(mut self, grace: std::time::Duration) -> Result<()> {
        // SAFETY: a plain syscall on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let started = std::time::Instant::now();
        while self.child.try_wait()?.is_none() {
            if started.elapsed() > grace {
                self.child.kill()?;
                self.child.wait()?;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(())
    }
}

/// CPU seconds (user + system) process `pid` has used so far.
pub fn cpu_seconds_of(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields start after its ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the file, 12 and 13 after the name.
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i)
            .context("a short /proc/PID/stat")?
            .parse::<f64>()?)
    };
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((ticks(11)? + ticks(12)?) / per_second)
}

/// (resident now, peak resident) of process `pid`, in bytes.
pub fn rss_of(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in /proc/PID/status"))?;
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .context("a field without a value")?
            .parse()?;
        Ok(kib * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// How many file descriptors process `pid` holds open (the entries of
/// `/proc/PID/fd`; reading another user's needs root).
pub fn open_fds_of(pid: u32) -> Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("reading /proc/{pid}/fd"))?
        .count())
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `GET path` on a controller's telemetry address, over one plain HTTP/1.1
/// connection: (status, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
