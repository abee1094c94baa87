//! [`Registry`]: a real container registry on loopback, for tests that push
//! and pull images.
//!
//! It runs Debian's `docker-registry` (the CNCF distribution registry, v2
//! API) the way [`crate::TestEnv`] runs kube-apiserver: a config written to
//! a temporary directory, a free loopback port, storage in that directory,
//! ready once `GET /v2/` answers 200, and the process group killed on drop.
//! It speaks plain HTTP, so clients pass `--tls-verify=false` (skopeo) for it.
//! [`Registry::start_with_auth`] starts one that lets a single user in, by
//! HTTP basic authentication against an htpasswd file.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::Error;
use crate::process::{self, ManagedProcess};
use crate::tools;

/// The registry binary Debian's `docker-registry` package installs.
pub const REGISTRY: &str = "docker-registry";

/// How many times startup is retried when the reserved port was taken meanwhile.
const PORT_ATTEMPTS: usize = 3;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A running registry; dropping it kills the process and removes its storage.
#[derive(Debug)]
pub struct Registry {
    process: ManagedProcess,
    address: String,
    dir: TempDir,
}

impl Registry {
    /// Starts a registry on a free loopback port and waits until it answers.
    ///
    /// Fails when `docker-registry` is not on `PATH` (`apt-get install
    /// docker-registry`), when it exits during startup (quoting its log), or
    /// when `/v2/` does not answer 200 within 30 s.
    pub fn start() -> Result<Registry, Error> {
        Self::start_with(LOOPBACK, None)
    }

    /// [`Registry::start`] listening on `ip` instead of loopback: the
    /// node's docker.io mirror listens on the host's end of the node's
    /// link, where containerd (in the node's network namespace) reaches it.
    pub fn start_on(ip: IpAddr) -> Result<Registry, Error> {
        Self::start_with(ip, None)
    }

    /// Starts a registry, as [`start`](Self::start), that answers only
    /// `username` with `password` (HTTP basic authentication; everyone else
    /// gets 401).
    pub fn start_with_auth(username: &str, password: &str) -> Result<Registry, Error> {
        Self::start_with(LOOPBACK, Some((username, password)))
    }

    fn start_with(ip: IpAddr, user: Option<(&str, &str)>) -> Result<Registry, Error> {
        let binary = tools::find(REGISTRY).ok_or(Error::ToolMissing {
            tool: REGISTRY,
            install: "apt-get install docker-registry",
        })?;
        let mut attempt = 1;
        loop {
            match Self::start_once(&binary, ip, user) {
                Err(Error::Process(failure))
                    if attempt < PORT_ATTEMPTS
                        && failure.tail.contains("address already in use") =>
                {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn start_once(
        binary: &Path,
        ip: IpAddr,
        user: Option<(&str, &str)>,
    ) -> Result<Registry, Error> {
        let dir = tempfile::Builder::new()
            .prefix("bosun-registry-")
            .tempdir()
            .map_err(Error::io(
                "creating temporary directory",
                std::env::temp_dir(),
            ))?;
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).map_err(Error::io("creating directory", &storage))?;
        let [port] = crate::env::free_ports()?;
        let address = SocketAddr::new(ip, port).to_string();
        let htpasswd = match user {
            Some((username, password)) => {
                let path = dir.path().join("htpasswd");
                // bcrypt is the only hash the registry accepts; the lowest
                // cost keeps startup quick.
                let hash = bcrypt::hash(password, 4)
                    .map_err(std::io::Error::other)
                    .map_err(Error::io("hashing the htpasswd password", &path))?;
                std::fs::write(&path, format!("{username}:{hash}\n"))
                    .map_err(Error::io("writing the htpasswd file", &path))?;
                Some(path)
            }
            None => None,
        };
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            config_yaml(&address, &storage, htpasswd.as_deref()),
        )
        .map_err(Error::io("writing the registry config", &config))?;
        let mut process = ManagedProcess::spawn(
            REGISTRY,
            binary,
            &["serve".to_owned(), config.display().to_string()],
            dir.path(),
            dir.path().join("registry.log"),
        )?;
        // With authentication, `/v2/` answers 401 to the anonymous probe.
        let ready = if user.is_some() { "401" } else { "200" };
        wait_ready(&mut process, &address, ready, Duration::from_secs(30))?;
        Ok(Registry {
            process,
            address,
            dir,
        })
    }

    /// The registry's process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// `127.0.0.1:<port>` (or the address it was started on), the
    /// registry's host for image references
    /// (`docker://127.0.0.1:5000/bosun:0.1.0`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The registry's log file.
    pub fn log(&self) -> &Path {
        &self.process.log
    }

    /// Its temporary directory (config, storage, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The distribution registry's config: filesystem storage in the temporary
/// directory, loopback only, no access log (the test reads the log when it
/// fails, and wants the errors), basic authentication when `htpasswd` is given.
fn config_yaml(address: &str, storage: &Path, htpasswd: Option<&Path>) -> String {
    // JSON strings are valid YAML scalars and quote any path safely.
    let quoted = |path: &Path| serde_json::Value::String(path.display().to_string());
    let auth = htpasswd.map_or_else(String::new, |path| {
        format!(
            "auth:
  htpasswd:
    realm: bosun-test
    path: {}
",
            quoted(path)
        )
    });
    let storage = quoted(storage);
    format!(
        "version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: {address}
{auth}"
    )
}

/// Polls `GET /v2/` until it answers `status` (200, or 401 when it wants
/// credentials), failing early if the process exits.
fn wait_ready(
    process: &mut ManagedProcess,
    address: &str,
    status: &str,
    timeout: Duration,
) -> Result<(), Error> {
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    loop {
        if let Some(status) = process.try_wait() {
            return Err(process.exited(status).into());
        }
        if started.elapsed() > timeout {
            return Err(Error::RegistryNotReady {
                timeout,
                last,
                log: process.log.clone(),
                tail: process::tail(&process.log, 30),
            });
        }
        match status_line(address, "/v2/") {
            Ok(line) if line.split_whitespace().nth(1) == Some(status) => return Ok(()),
            Ok(line) => last = line,
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The status line of a plain HTTP/1.1 GET: enough to know the registry is
/// up, without an HTTP client for one probe.
fn status_line(address: &str, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    Ok(text.lines().next().unwrap_or_default().to_owned())
}
