//! Reads a guest makes to attack the host: each is bounded before the host
//! works for it. A test binary of its own, so that the process's resident
//! memory is this test's alone.

use std::time::{Duration, Instant};

use bosun::engine::bindings::{Request, Trigger};
use bosun::engine::{CallContext, CallError, Engine, EngineConfig, Limits};
use bosun::objects::StaticObjects;
use serde_json::{Value, json};

fn request(mode: &str) -> Request {
    let object = json!({
        "apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave",
        "metadata": {"name": mode, "namespace": "demo", "uid": "c0ffee00-0000-4000-8000-000000000009"},
        "spec": {"mode": mode}
    });
    Request {
        object: object.to_string(),
        children: vec![],
        settings: None,
        trigger: Trigger::Manual,
        attempt: 1,
    }
}

/// The resident memory of this process, from /proc.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

fn config_maps(count: usize) -> StaticObjects {
    StaticObjects::new((0..count).map(|at| {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{at}"), "namespace": "demo", "labels": {"n": at.to_string()}},
            "data": {"k": "v"},
        })
    }))
}

fn status(response: &bosun::engine::bindings::Response) -> Value {
    serde_json::from_str(response.status.as_deref().expect("a status")).expect("JSON")
}

#[test]
fn hostile_reads_are_bounded_before_the_host_works_for_them() {
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let path = bosun_testenv::guests::path("misbehave").expect("guests build");
    let module = engine.load_file(&path).expect("misbehave loads");
    let limits = Limits::default();

    // A 60 MB label selector (the reproduction: 18 s and 2.1 GB
    // of host memory before): refused before it is parsed, within the
    // deadline, and the host grows by less than the guest's memory cap.
    let ctx = CallContext {
        objects: std::sync::Arc::new(config_maps(100)),
        limits,
        ..CallContext::default()
    };
    let before = resident_bytes();
    let started = Instant::now();
    let outcome = module
        .reconcile(&request("select-flood"), &ctx)
        .expect("the call completes")
        .expect("the guest answers");
    let took = started.elapsed();
    let grew = resident_bytes().saturating_sub(before);
    let error = status(&outcome)["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("60000000 bytes long"),
        "the guest was told why: {error}"
    );
    assert!(took < 2 * limits.timeout, "the call took {took:?}");
    assert!(
        grew < limits.memory_bytes as u64,
        "the host grew by {} MiB for one hostile selector",
        grew >> 20
    );
    eprintln!(
        "60 MB selector: {took:?}, host resident memory +{} MiB",
        grew >> 20
    );

    // A list that would run past the call's deadline in the host ends the
    // call there, and the error says the host call was where the time went.
    let short = Limits {
        timeout: Duration::from_millis(20),
        ..limits
    };
    let many = CallContext {
        objects: std::sync::Arc::new(config_maps(200_000)),
        limits: short,
        ..CallContext::default()
    };
    let started = Instant::now();
    let error = module
        .reconcile(&request("list-all"), &many)
        .expect_err("the list runs into the deadline");
    assert!(
        matches!(
            error,
            CallError::HostCallOverran {
                call: "list-objects",
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(error.kind(), "HostCallDeadline");
    assert!(error.to_string().contains("in the host"), "{error}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "the call ended {:?} after it started",
        started.elapsed()
    );

    // Within the deadline, a list answers, and stops collecting at the
    // guest's memory cap rather than building the whole answer first.
    let small = Limits {
        memory_bytes: 4 << 20,
        ..limits
    };
    let capped = CallContext {
        objects: std::sync::Arc::new(config_maps(100_000)),
        limits: small,
        ..CallContext::default()
    };
    let outcome = module
        .reconcile(&request("list-all"), &capped)
        .expect("the call completes")
        .expect("the guest answers");
    let refused = status(&outcome)["listed"]["Err"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(refused.contains("more than 4 MiB"), "{}", status(&outcome));
}
