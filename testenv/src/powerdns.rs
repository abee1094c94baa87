//! [`PowerDns`]: a real PowerDNS authoritative server on loopback, for the
//! DNS-record operator's tests and the demo.
//!
//! It runs Debian's `pdns_server` (packages `pdns-server` and
//! `pdns-backend-sqlite3`) the way [`crate::TestEnv`] runs kube-apiserver:
//! a config directory in a temporary directory, the gsqlite3 backend on a
//! database created there from the package's schema (with the `sqlite3`
//! program), DNS (UDP and TCP) and the HTTP API on free loopback ports, an
//! API key generated per run, no daemon, no guardian, ready once
//! `GET /api/v1/servers/localhost` answers 200, and the process group
//! killed on drop. [`PowerDns::stop`] and [`PowerDns::start_again`] take it
//! down and bring it back on the same ports with the same data, for
//! outage tests; [`PowerDns::restart_with_key`] rotates the key.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::Error;
use crate::process::{self, ManagedProcess};
use crate::tools;

/// The server binary of Debian's `pdns-server`.
pub const PDNS_SERVER: &str = "pdns_server";

/// What to install when something is missing.
pub const INSTALL: &str = "apt-get install pdns-server pdns-backend-sqlite3 sqlite3";

/// Where Debian's `pdns-backend-sqlite3` puts the gsqlite3 schema.
const SCHEMAS: [&str; 2] = [
    "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql",
    "/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql",
];

/// How many times startup is retried when a reserved port was taken meanwhile.
const PORT_ATTEMPTS: usize = 3;

/// A running PowerDNS server; dropping it kills the process and removes its files.
#[derive(Debug)]
pub struct PowerDns {
    process: Option<ManagedProcess>,
    binary: PathBuf,
    dns_port: u16,
    api_port: u16,
    api_key: String,
    dir: TempDir,
}

/// A failure answered by the PowerDNS API, or no answer.
#[derive(Debug, thiserror::Error)]
#[error("{method} {path}: {message}")]
pub struct ApiError {
    /// The method.
    pub method: String,
    /// The API path.
    pub path: String,
    /// The status (0 when there was no answer).
    pub status: u16,
    /// What went wrong (the body, or the I/O error).
    pub message: String,
}

impl PowerDns {
    /// Whether `pdns_server` is installed here (on `PATH` or in `/usr/sbin`).
    pub fn installed() -> bool {
        find_server().is_some()
    }

    /// Starts PowerDNS on free loopback ports and waits until its API answers.
    ///
    /// Fails when `pdns_server`, the gsqlite3 schema or `sqlite3` is
    /// missing (saying what to install), when it exits during startup
    /// (quoting its log), or when the API does not answer within 30 s.
    pub fn start() -> Result<PowerDns, Error> {
        Self::start_with(None)
    }

    /// Starts PowerDNS with its API on `127.0.0.1:api_port` (its DNS port
    /// free), for a module built to reach that origin: the demo runs it
    /// where `examples/dnsrecord` looks by default (8081). Fails as
    /// [`PowerDns::start`] does, and when that port is taken.
    pub fn start_at(api_port: u16) -> Result<PowerDns, Error> {
        Self::start_with(Some(api_port))
    }

    fn start_with(fixed_api_port: Option<u16>) -> Result<PowerDns, Error> {
        let binary = find_server().ok_or(Error::ToolMissing {
            tool: PDNS_SERVER,
            install: INSTALL,
        })?;
        let schema =
            SCHEMAS
                .iter()
                .map(Path::new)
                .find(|p| p.is_file())
                .ok_or(Error::ToolMissing {
                    tool: "the gsqlite3 schema of pdns-backend-sqlite3",
                    install: INSTALL,
                })?;
        let sqlite = tools::find("sqlite3").ok_or(Error::ToolMissing {
            tool: "sqlite3",
            install: INSTALL,
        })?;
        let dir = tempfile::Builder::new()
            .prefix("bosun-powerdns-")
            .tempdir()
            .map_err(Error::io(
                "creating temporary directory",
                std::env::temp_dir(),
            ))?;
        create_database(&sqlite, schema, &dir.path().join("pdns.sqlite3"))?;
        let [dns_port, free_api_port] = crate::env::free_ports()?;
        let api_port = fixed_api_port.unwrap_or(free_api_port);
        let mut server = PowerDns {
            process: None,
            binary,
            dns_port,
            api_port,
            api_key: random_key()?,
            dir,
        };
        let mut attempt = 1;
        loop {
            match server.launch() {
                Err(Error::Process(failure))
                    if attempt < PORT_ATTEMPTS
                        && (failure.tail.contains("in use")
                            || failure.tail.contains("Unable to bind")) =>
                {
                    attempt += 1;
                    let [dns_port, api_port] = crate::env::free_ports()?;
                    server.dns_port = dns_port;
                    server.api_port = fixed_api_port.unwrap_or(api_port);
                }
                Err(e) => return Err(e),
                Ok(()) => return Ok(server),
            }
        }
    }

    fn launch(&mut self) -> Result<(), Error> {
        let config = self.dir.path().join("pdns.conf");
        std::fs::write(&config, self.config())
            .map_err(Error::io("writing the PowerDNS config", &config))?;
        let mut process = ManagedProcess::spawn(
            PDNS_SERVER,
            &self.binary,
            &[format!("--config-dir={}", self.dir.path().display())],
            self.dir.path(),
            self.dir.path().join("pdns.log"),
        )?;
        self.wait_ready(&mut process, Duration::from_secs(30))?;
        self.process = Some(process);
        Ok(())
    }

    fn config(&self) -> String {
        let dir = self.dir.path().display();
        format!(
            "launch=gsqlite3
gsqlite3-database={dir}/pdns.sqlite3
local-address=127.0.0.1
local-port={dns}
daemon=no
guardian=no
disable-syslog=yes
write-pid=no
socket-dir={dir}
security-poll-suffix=
api=yes
api-key={key}
webserver=yes
webserver-address=127.0.0.1
webserver-port={api}
webserver-allow-from=127.0.0.1/32
loglevel=4
",
            dns = self.dns_port,
            api = self.api_port,
            key = self.api_key,
        )
    }

    fn wait_ready(&self, process: &mut ManagedProcess, timeout: Duration) -> Result<(), Error> {
        let started = Instant::now();
        let mut last = String::from("no answer yet");
        loop {
            if let Some(status) = process.try_wait() {
                return Err(process.exited(status).into());
            }
            if started.elapsed() > timeout {
                return Err(Error::PowerDnsNotReady {
                    timeout,
                    last,
                    log: process.log.clone(),
                    tail: process::tail(&process.log, 30),
                });
            }
            match self.api("GET", "/api/v1/servers/localhost", None) {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server (the data stays), as an outage.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts the server again after [`stop`](Self::stop), on the same
    /// ports, with the same data and key.
    pub fn start_again(&mut self) -> Result<(), Error> {
        self.stop();
        self.launch()
    }

    /// Restarts the server with a new API key and returns it: the old one
    /// is refused from then on.
    pub fn restart_with_key(&mut self) -> Result<String, Error> {
        self.stop();
        self.api_key = random_key()?;
        self.launch()?;
        Ok(self.api_key.clone())
    }

    /// `http://127.0.0.1:<port>`, the API's origin (and base URL).
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// `127.0.0.1:<port>`, where the API answers.
    pub fn api_address(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.api_port))
    }

    /// The API key of this run (`X-API-Key`).
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// `127.0.0.1:<port>`, where it answers DNS.
    pub fn dns_address(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.dns_port))
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ManagedProcess::id)
    }

    /// Its log file.
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("pdns.log")
    }

    /// Creates a native zone `zone` (`example.org.`) with one NS record.
    pub fn create_zone(&self, zone: &str) -> Result<(), ApiError> {
        let body = serde_json::json!({
            "name": zone,
            "kind": "Native",
            "nameservers": [format!("ns1.{zone}")],
        });
        self.api("POST", "/api/v1/servers/localhost/zones", Some(&body))
            .map(drop)
    }

    /// The zone as the API returns it, with its rrsets.
    pub fn zone(&self, zone: &str) -> Result<serde_json::Value, ApiError> {
        self.api(
            "GET",
            &format!("/api/v1/servers/localhost/zones/{zone}"),
            None,
        )
    }

    /// The rrset `name`/`kind` of `zone` as the API holds it, if any.
    pub fn rrset(
        &self,
        zone: &str,
        name: &str,
        kind: &str,
    ) -> Result<Option<serde_json::Value>, ApiError> {
        let zone = self.zone(zone)?;
        Ok(zone["rrsets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["name"] == name && r["type"] == kind)
            .cloned())
    }

    /// Replaces an rrset's records and TTL by hand, as an administrator
    /// would (its comments stay).
    pub fn edit_rrset(
        &self,
        zone: &str,
        name: &str,
        kind: &str,
        ttl: u32,
        contents: &[&str],
    ) -> Result<(), ApiError> {
        let records: Vec<_> = contents
            .iter()
            .map(|c| serde_json::json!({"content": c, "disabled": false}))
            .collect();
        let body = serde_json::json!({"rrsets": [{
            "name": name, "type": kind, "ttl": ttl, "changetype": "REPLACE", "records": records,
        }]});
        self.api(
            "PATCH",
            &format!("/api/v1/servers/localhost/zones/{zone}"),
            Some(&body),
        )
        .map(drop)
    }

    /// Answers `name`/`kind` over DNS (UDP) from this server.
    pub fn query(
        &self,
        name: &str,
        kind: crate::dns::RecordKind,
    ) -> std::io::Result<crate::dns::Answer> {
        crate::dns::query(self.dns_address(), name, kind)
    }

    /// One API request with this run's key; the JSON body of a 2xx answer
    /// (`null` when empty), or the failure.
    pub fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, ApiError> {
        let failed = |status: u16, message: String| ApiError {
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            message,
        };
        let body = body.map(serde_json::Value::to_string).unwrap_or_default();
        let address = format!("127.0.0.1:{}", self.api_port);
        let (status, answer) = http1(&address, method, path, &self.api_key, &body)
            .map_err(|e| failed(0, e.to_string()))?;
        if !(200..300).contains(&status) {
            return Err(failed(status, format!("{status}: {}", answer.trim())));
        }
        if answer.trim().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_str(&answer).map_err(|e| failed(status, format!("not JSON: {e}")))
    }
}

impl Drop for PowerDns {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `pdns_server` on `PATH`, else where Debian puts it (`/usr/sbin` is not
/// on every user's `PATH`).
fn find_server() -> Option<PathBuf> {
    tools::find(PDNS_SERVER).or_else(|| {
        let path = Path::new("/usr/sbin").join(PDNS_SERVER);
        path.is_file().then_some(path)
    })
}

fn create_database(sqlite: &Path, schema: &Path, database: &Path) -> Result<(), Error> {
    let schema_file =
        std::fs::File::open(schema).map_err(Error::io("reading the schema", schema))?;
    let output = Command::new(sqlite)
        .arg(database)
        .stdin(schema_file)
        .output()
        .map_err(Error::io("running sqlite3", sqlite))?;
    if !output.status.success() {
        return Err(Error::Io {
            what: "creating the PowerDNS database",
            path: database.to_owned(),
            source: std::io::Error::other(String::from_utf8_lossy(&output.stderr).into_owned()),
        });
    }
    Ok(())
}

/// 32 hex digits from the kernel's random source.
fn random_key() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(Error::io("reading random bytes", "/dev/urandom"))?;
    Ok(hex::encode(bytes))
}

/// One HTTP/1.1 request with `Connection: close`, read to the end: the
/// status and the body. PowerDNS answers with a Content-Length, so no
/// chunked decoding is needed.
fn http1(
    address: &str,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nX-API-Key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP status in {head:?}")))?;
    Ok((status, body.to_owned()))
}
