//! The Python SDK's HTTP client inside a component, on the real binary:
//! `tests/guests/http-probe-python` sends one request through
//! `wasi:http/outgoing-handler` to a loopback server, and `bosun reconcile`
//! shows what came back, or the error the SDK classified — the scenarios
//! every SDK's probe goes through (`http_probe`).

mod http_probe;

use bosun_testenv::python_guests::http_probe_reaching;

const CACHE: &str = "python-guest-test-cache";

#[test]
fn a_python_guest_sends_through_wasi_http_and_reads_the_answer() {
    http_probe::sends_and_reads_the_answer(CACHE, http_probe_reaching);
}

#[test]
fn a_python_guests_request_the_host_refuses_is_a_retryable_http_refused() {
    http_probe::ungranted_is_a_retryable_http_refused(CACHE, http_probe_reaching);
}

#[test]
fn a_404_from_a_python_guests_request_is_a_permanent_http_status() {
    http_probe::a_404_is_a_permanent_http_status(CACHE, http_probe_reaching);
}

#[test]
fn a_python_guests_request_to_a_dead_port_is_a_retryable_http_connection() {
    http_probe::a_dead_port_is_a_retryable_http_connection(CACHE, http_probe_reaching);
}
