//! The Python SDK's HTTP client inside a component, on the real binary:
//! `tests/guests/http-probe-python` sends one request through
//! `wasi:http/outgoing-handler` to a loopback server, and `bosun reconcile`
//! shows what came back, or the error the SDK classified.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

fn bosun(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bosun"))
        .args(args)
        .env(
            "BOSUN_CACHE_DIR",
            bosun_testenv::guests::target_dir().join("python-guest-test-cache"),
        )
        .env_remove("RUST_LOG")
        .output()
        .expect("bosun runs")
}

/// A loopback server answering `/missing` with 404 and anything else with
/// 200 and a JSON echo of the method, path, `X-Probe` header and body it
/// read; counts the requests. Stops with the process.
fn echo_server() -> (String, Arc<AtomicUsize>) {
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

fn probe_object(dir: &Path, data: Value) -> String {
    let path = dir.join("probe.yaml");
    let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "probe", "namespace": "default"}, "data": data});
    std::fs::write(&path, serde_yaml::to_string(&object).unwrap()).unwrap();
    path.display().to_string()
}

#[test]
fn a_python_guest_sends_through_wasi_http_and_reads_the_answer() {
    let (origin, served) = echo_server();
    let module = bosun_testenv::python_guests::http_probe_reaching(&origin)
        .unwrap_or_else(|e| panic!("{e}"))
        .display()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let object = probe_object(
        dir.path(),
        json!({"method": "POST", "path": "/things?x=1", "body": "hi"}),
    );
    let out = bosun(&[
        "reconcile",
        &module,
        "--object",
        &object,
        "--allow-http",
        &origin,
    ]);
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

#[test]
fn a_python_guests_request_the_host_refuses_is_a_retryable_http_refused() {
    let (origin, served) = echo_server();
    let module = bosun_testenv::python_guests::http_probe_reaching(&origin)
        .unwrap_or_else(|e| panic!("{e}"))
        .display()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let object = probe_object(dir.path(), json!({}));
    // Declared, but not allowed: refused by the host before anything goes out.
    let out = bosun(&["reconcile", &module, "--object", &object]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("retryable error HttpRefused: GET ") && err.contains("refused by the host"),
        "{err}"
    );
    assert_eq!(
        served.load(Ordering::SeqCst),
        0,
        "a refused request went out"
    );
}

#[test]
fn a_404_from_a_python_guests_request_is_a_permanent_http_status() {
    let (origin, _served) = echo_server();
    let module = bosun_testenv::python_guests::http_probe_reaching(&origin)
        .unwrap_or_else(|e| panic!("{e}"))
        .display()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let object = probe_object(dir.path(), json!({"path": "/missing"}));
    let out = bosun(&[
        "reconcile",
        &module,
        "--object",
        &object,
        "--allow-http",
        &origin,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("permanent error HttpStatus: GET ")
            && err.contains("/missing failed: status 404: no such thing"),
        "{err}"
    );
}
