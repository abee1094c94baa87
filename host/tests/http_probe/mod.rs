//! What the HTTP probe guests' tests share (`python_http.rs`,
//! `ts_http.rs`, `go_http.rs`): each probe sends one request through its
//! SDK's client, as its ConfigMap's data says, and reports the answer in its
//! status; these tests run it with `bosun reconcile` on the real binary
//! against a loopback server.

#![allow(dead_code)] // each test file uses its own part

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

/// `bosun ARGS` with its module cache in `target/<cache>`.
pub fn bosun(cache: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bosun"))
        .args(args)
        .env(
            "BOSUN_CACHE_DIR",
            bosun_testenv::guests::target_dir().join(cache),
        )
        .env_remove("RUST_LOG")
        .output()
        .expect("bosun runs")
}

/// An origin on loopback where nothing listens: a port just bound and let
/// go, so a connection to it is refused.
pub fn dead_origin() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let origin = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    origin
}

/// A loopback server answering `/missing` with 404 and anything else with
/// 200 and a JSON echo of the method, path, `X-Probe` header and body it
/// read; counts the requests. Stops with the process.
pub fn echo_server() -> (String, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match stream.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                    })
                    .unwrap_or_default()
            };
            let body = if header("transfer-encoding").eq_ignore_ascii_case("chunked") {
                read_chunked(&mut stream)
            } else {
                let length: usize = header("content-length").parse().unwrap_or(0);
                let mut body = vec![0u8; length];
                let _ = stream.read_exact(&mut body);
                body
            };
            count.fetch_add(1, Ordering::SeqCst);
            let mut request_line = head.lines().next().unwrap_or_default().split(' ');
            let (method, path) = (
                request_line.next().unwrap_or_default(),
                request_line.next().unwrap_or_default(),
            );
            let (status, answer) = if path == "/missing" {
                ("404 Not Found", "no such thing".to_owned())
            } else {
                let echo = json!({
                    "method": method,
                    "path": path,
                    "probe": header("x-probe"),
                    "body": String::from_utf8_lossy(&body),
                });
                ("200 OK", echo.to_string())
            };
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                )
                .as_bytes(),
            );
        }
    });
    (origin, served)
}

/// A chunked request body (a body of unknown length goes out this way),
/// read to its last chunk.
fn read_chunked(stream: &mut std::net::TcpStream) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => line.push(byte[0]),
                _ => return body,
            }
        }
        let size = usize::from_str_radix(String::from_utf8_lossy(&line).trim(), 16).unwrap_or(0);
        let mut chunk = vec![0u8; size + 2];
        if stream.read_exact(&mut chunk).is_err() || size == 0 {
            return body;
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

pub fn probe_object(dir: &Path, data: Value) -> String {
    let path = dir.join("probe.yaml");
    let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "probe", "namespace": "default"}, "data": data});
    std::fs::write(&path, serde_yaml::to_string(&object).unwrap()).unwrap();
    path.display().to_string()
}

/// A probe component reaching a given origin (`*_guests::http_probe_reaching`).
pub type Reaching = fn(&str) -> Result<std::path::PathBuf, bosun_testenv::guests::BuildError>;

fn module(reaching: Reaching, origin: &str) -> String {
    reaching(origin)
        .unwrap_or_else(|e| panic!("{e}"))
        .display()
        .to_string()
}

/// A POST with a header and a JSON body to a granted origin: the server
/// sees all three, and the status shows the 200 and the body it answered.
pub fn sends_and_reads_the_answer(cache: &str, reaching: Reaching) {
    let (origin, served) = echo_server();
    let module = module(reaching, &origin);
    let dir = tempfile::tempdir().unwrap();
    let object = probe_object(
        dir.path(),
        json!({"method": "POST", "path": "/things?x=1", "body": "hi"}),
    );
    let out = bosun(
        cache,
        &[
            "reconcile",
            &module,
            "--object",
            &object,
            "--allow-http",
            &origin,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_yaml::from_slice(&out.stdout).unwrap();
    let status = &report["status"];
    assert_eq!(status["code"], 200, "{report}");
    assert_eq!(status["type"], "application/json");
    let echo: Value = serde_json::from_str(status["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        echo,
        json!({"method": "POST", "path": "/things?x=1", "probe": "1",
               "body": "{\"sent\":\"hi\"}"})
    );
    assert_eq!(served.load(Ordering::SeqCst), 1);
}

/// A declared origin the operator did not grant: refused by the host
/// before anything goes out, a retryable `HttpRefused`.
pub fn ungranted_is_a_retryable_http_refused(cache: &str, reaching: Reaching) {
    let (origin, served) = echo_server();
    let module = module(reaching, &origin);
    let dir = tempfile::tempdir().unwrap();
    let object = probe_object(dir.path(), json!({}));
    let out = bosun(cache, &["reconcile", &module, "--object", &object]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "retryable error HttpRefused: GET {origin}/ refused by the host"
        )),
        "{err}"
    );
    assert_eq!(
        served.load(Ordering::SeqCst),
        0,
        "a refused request went out"
    );
}

/// A 404 through `errorForStatus`: a permanent `HttpStatus` quoting the
/// server's body.
pub fn a_404_is_a_permanent_http_status(cache: &str, reaching: Reaching) {
    let (origin, _served) = echo_server();
    let module = module(reaching, &origin);
    let dir = tempfile::tempdir().unwrap();
    let object = probe_object(dir.path(), json!({"path": "/missing"}));
    let out = bosun(
        cache,
        &[
            "reconcile",
            &module,
            "--object",
            &object,
            "--allow-http",
            &origin,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "permanent error HttpStatus: GET {origin}/missing failed: status 404: no such thing"
        )),
        "{err}"
    );
}

/// A granted origin where nothing listens: the connection is refused, a
/// retryable `HttpConnection`.
pub fn a_dead_port_is_a_retryable_http_connection(cache: &str, reaching: Reaching) {
    let origin = dead_origin();
    let module = module(reaching, &origin);
    let dir = tempfile::tempdir().unwrap();
    let object = probe_object(dir.path(), json!({}));
    let out = bosun(
        cache,
        &[
            "reconcile",
            &module,
            "--object",
            &object,
            "--allow-http",
            &origin,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "retryable error HttpConnection: GET {origin}/ connection failed: ConnectionRefused"
        )),
        "{err}"
    );
}
