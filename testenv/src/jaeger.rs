//! [`Jaeger`]: a real OpenTelemetry trace receiver on loopback, for tests
//! that check the traces the host exports.
//!
//! It runs Jaeger v2 (`jaeger`, built from `github.com/jaegertracing/jaeger`
//! v1.75.0 with the Go toolchain; `.ci/run` builds it) the way
//! [`crate::TestEnv`] runs kube-apiserver: a config written to a temporary
//! directory with free loopback ports for its OTLP/HTTP receiver and its
//! query API, traces kept in memory, ready once the query API answers, and
//! the process group killed on drop. [`Jaeger::traces`] reads what it
//! received through the same API its UI uses.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::Error;
use crate::process::{self, ManagedProcess};
use crate::tools;

/// The binary.
pub const JAEGER: &str = "jaeger";

/// How to install it, as `.ci/run` does.
pub const INSTALL: &str =
    "go build -o ~/go/bin/jaeger github.com/jaegertracing/jaeger/cmd/jaeger (v1.75.0; see .ci/run)";

/// A running Jaeger; dropping it kills the process and removes its directory.
#[derive(Debug)]
pub struct Jaeger {
    process: ManagedProcess,
    otlp: String,
    query: String,
    _dir: TempDir,
}

impl Jaeger {
    /// Starts Jaeger on free loopback ports and waits until its query API
    /// answers (60 s at most: its first start on a loaded machine is slow).
    pub fn start() -> Result<Jaeger, Error> {
        let binary = tools::find(JAEGER).ok_or(Error::ToolMissing {
            tool: JAEGER,
            install: INSTALL,
        })?;
        let dir = tempfile::Builder::new()
            .prefix("bosun-jaeger-")
            .tempdir()
            .map_err(Error::io(
                "creating temporary directory",
                std::env::temp_dir(),
            ))?;
        let [otlp, query, query_grpc] = crate::env::free_ports()?;
        let otlp = format!("127.0.0.1:{otlp}");
        let query = format!("127.0.0.1:{query}");
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            config_yaml(&otlp, &query, &format!("127.0.0.1:{query_grpc}")),
        )
        .map_err(Error::io("writing the jaeger config", &config))?;
        let mut process = ManagedProcess::spawn(
            JAEGER,
            &binary,
            &["--config".to_owned(), config.display().to_string()],
            dir.path(),
            dir.path().join("jaeger.log"),
        )?;
        wait_ready(&mut process, &query, Duration::from_secs(60))?;
        Ok(Jaeger {
            process,
            otlp,
            query,
            _dir: dir,
        })
    }

    /// The OTLP/HTTP endpoint's base URL (`http://127.0.0.1:<port>`), for
    /// `--otlp-endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn otlp_endpoint(&self) -> String {
        format!("http://{}", self.otlp)
    }

    /// The traces of `service` Jaeger holds (its query API's
    /// `/api/traces`, as JSON: `data` is the list of traces, each with its
    /// `spans` and `processes`).
    pub fn traces(&self, service: &str) -> std::io::Result<serde_json::Value> {
        let body = get(
            &self.query,
            &format!("/api/traces?service={service}&limit=1000"),
        )?;
        serde_json::from_str(&body).map_err(std::io::Error::other)
    }

    /// Jaeger's log file.
    pub fn log(&self) -> &Path {
        &self.process.log
    }
}

/// Jaeger v2's all-in-one configuration, narrowed: OTLP over HTTP in,
/// memory storage, the query API; no other receiver, no self-telemetry
/// port (two instances must not collide).
fn config_yaml(otlp: &str, query: &str, query_grpc: &str) -> String {
    format!(
        "service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memory
    http:
      endpoint: {query}
    grpc:
      endpoint: {query_grpc}
  jaeger_storage:
    backends:
      memory:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      http:
        endpoint: {otlp}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memory
"
    )
}

fn wait_ready(process: &mut ManagedProcess, query: &str, timeout: Duration) -> Result<(), Error> {
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    loop {
        if let Some(status) = process.try_wait() {
            return Err(process.exited(status).into());
        }
        if started.elapsed() > timeout {
            return Err(Error::JaegerNotReady {
                timeout,
                last,
                log: process.log.clone(),
                tail: process::tail(&process.log, 30),
            });
        }
        match get(query, "/api/services") {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A plain HTTP/1.1 GET's body (answers 200 only), without an HTTP client
/// for a few probes.
fn get(address: &str, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP head"))?;
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let body = &response[split + 4..];
    let status = head.lines().next().unwrap_or_default().to_owned();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(std::io::Error::other(format!("{path}: {status}")));
    }
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_vec()
    };
    String::from_utf8(body).map_err(std::io::Error::other)
}

/// A chunked body's bytes.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&body[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
        let rest = &body[end + 2..];
        match size {
            Some(size) if size > 0 && rest.len() >= size => {
                out.extend_from_slice(&rest[..size]);
                body = rest[size..].strip_prefix(b"\r\n").unwrap_or(&rest[size..]);
            }
            _ => break,
        }
    }
    out
}
