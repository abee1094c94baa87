//! The Python SDK's HTTP client inside a component, on the real binary:
//! `tests/guests/http-probe-python` sends one request through
//! `wasi:http/outgoing-handler` to a loopback server, and `bosun reconcile`
//! shows what came back, or the error the SDK classified.

mod http_probe;

use std::process::Output;
use std::sync::atomic::Ordering;

use http_probe::{echo_server, probe_object};
use serde_json::{Value, json};

fn bosun(args: &[&str]) -> Output {
    http_probe::bosun("python-guest-test-cache", args)
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

#[test]
fn a_python_guests_request_to_a_dead_port_is_a_retryable_http_connection() {
    http_probe::a_dead_port_is_a_retryable_http_connection(
        "python-guest-test-cache",
        bosun_testenv::python_guests::http_probe_reaching,
    );
}
