//! The engine with real components: the examples and the deliberately
//! misbehaving guest, built from source by the test setup.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use bosun::engine::bindings::{
    Event, EventType, Failure, FinalizeResponse, ReconcileError, Request, Response, Trigger,
};
use bosun::engine::{
    CallContext, CallError, CompileSource, Contract, Engine, EngineConfig, Limits, LoadError,
    Module,
};
use bosun::objects::StaticObjects;
use bosun::plan::{Plan, PlanContext, plan_response};
use bosun::validate::ValidationError;
use jiff::Timestamp;
use serde_json::{Value, json};

static ENGINE: LazyLock<Engine> =
    LazyLock::new(|| Engine::new(EngineConfig::default()).expect("engine"));
static MODULES: LazyLock<Mutex<Vec<(String, Module)>>> = LazyLock::new(Mutex::default);

fn module(package: &str) -> Module {
    let mut modules = MODULES.lock().unwrap();
    if let Some((_, module)) = modules.iter().find(|(name, _)| name == package) {
        return module.clone();
    }
    let path = bosun_testenv::guests::path(package).expect("guests build");
    let module = ENGINE
        .load_file(&path)
        .unwrap_or_else(|e| panic!("{package} loads: {e}"));
    modules.push((package.to_owned(), module.clone()));
    module
}

fn request(object: &Value, children: &[Value]) -> Request {
    Request {
        object: object.to_string(),
        children: children.iter().map(Value::to_string).collect(),
        settings: None,
        trigger: Trigger::Manual,
        attempt: 1,
    }
}

fn at_clock(now: &str) -> CallContext {
    CallContext {
        clock: Some(now.parse().unwrap()),
        ..CallContext::default()
    }
}

// ---------------------------------------------------------------- cnat

fn at(phase: Option<&str>) -> Value {
    let mut at = json!({
        "apiVersion": "cnat.programming-kubernetes.info/v1alpha1", "kind": "At",
        "metadata": {"name": "example-at", "namespace": "demo", "uid": "a7c0ffee-0000-4000-8000-000000000001", "generation": 1},
        "spec": {"schedule": "2026-12-01T10:00:00Z", "command": "echo YAY"}
    });
    if let Some(phase) = phase {
        at["status"] = json!({"phase": phase});
    }
    at
}

/// One reconcile of `object` through the cnat component, validated and planned.
fn cnat(object: &Value, children: &[Value], now: &str) -> Result<Plan, ReconcileError> {
    let response = module("cnat")
        .reconcile(&request(object, children), &at_clock(now))
        .expect("the call completes")?;
    let now: Timestamp = now.parse().unwrap();
    Ok(plan_response(
        module("cnat").meta(),
        &PlanContext::OFFLINE,
        object,
        children,
        response,
        now,
    )
    .expect("valid output"))
}

#[test]
fn cnat_waits_for_a_future_schedule_and_requeues_for_the_remaining_time() {
    let plan = cnat(&at(None), &[], "2026-12-01T09:15:30Z").unwrap();
    assert!(plan.apply.is_empty(), "no pod before the schedule");
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(44 * 60 + 30)));
    assert_eq!(plan.status.unwrap()["phase"], "PENDING");
}

#[test]
fn cnat_creates_the_pod_exactly_as_specified_when_due() {
    let plan = cnat(&at(Some("PENDING")), &[], "2026-12-01T10:00:00Z").unwrap();
    assert_eq!(plan.status.as_ref().unwrap()["phase"], "RUNNING");
    assert_eq!(plan.requeue_after, None);
    assert_eq!(plan.apply.len(), 1);
    assert_eq!(
        plan.apply[0],
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "example-at-pod",
                "namespace": "demo",
                "labels": {"app": "example-at"},
                "ownerReferences": [{
                    "apiVersion": "cnat.programming-kubernetes.info/v1alpha1",
                    "kind": "At",
                    "name": "example-at",
                    "uid": "a7c0ffee-0000-4000-8000-000000000001",
                    "controller": true,
                    "blockOwnerDeletion": true
                }]
            },
            "spec": {
                "containers": [{"name": "busybox", "image": "busybox", "command": ["echo", "YAY"]}],
                "restartPolicy": "OnFailure"
            }
        })
    );
    assert_eq!(plan.events[0].reason, "Started");
}

#[test]
fn cnat_is_done_once_the_pod_succeeded() {
    let running = at(Some("RUNNING"));
    let mut pod = cnat(&running, &[], "2026-12-01T10:00:05Z")
        .unwrap()
        .apply
        .remove(0);
    pod["status"] = json!({"phase": "Running"});
    let plan = cnat(&running, std::slice::from_ref(&pod), "2026-12-01T10:00:10Z").unwrap();
    assert_eq!(plan.status.unwrap()["phase"], "RUNNING");

    pod["status"] = json!({"phase": "Succeeded"});
    let plan = cnat(&running, &[pod], "2026-12-01T10:00:20Z").unwrap();
    assert_eq!(plan.status.unwrap()["phase"], "DONE");
    assert_eq!(
        plan.apply.len(),
        1,
        "the finished pod stays desired, so it is not pruned"
    );
    assert!(plan.prune.is_empty());
}

#[test]
fn cnat_reports_a_bad_schedule_as_a_permanent_error() {
    let mut bad = at(None);
    bad["spec"]["schedule"] = json!("tomorrow at noon");
    match cnat(&bad, &[], "2026-12-01T10:00:00Z") {
        Err(ReconcileError::Permanent(failure)) => {
            assert_eq!(failure.reason, "InvalidSchedule");
            assert!(
                failure.message.contains("tomorrow at noon"),
                "{}",
                failure.message
            );
        }
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

#[test]
fn metadata_is_read_once_at_load() {
    let cnat = module("cnat");
    let meta = cnat.meta();
    assert_eq!(
        (
            meta.name.as_str(),
            meta.primary.kind.as_str(),
            meta.primary.plural.as_str()
        ),
        ("cnat", "At", "ats")
    );
    assert_eq!(
        meta.owns
            .iter()
            .map(|k| k.kind.as_str())
            .collect::<Vec<_>>(),
        ["Pod"]
    );
    let webapp = module("webapp");
    let owned: Vec<_> = webapp.meta().owns.iter().map(|k| k.to_string()).collect();
    assert_eq!(owned, ["Deployment.apps/v1", "Service.v1"]);
    assert_eq!(cnat.digest().len(), 64);
}

// ------------------------------------------------------------ misbehaving

/// A Misbehave object asking for `mode`.
fn config_map(mode: &str) -> Value {
    json!({
        "apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave",
        "metadata": {"name": format!("cm-{mode}"), "namespace": "demo", "uid": "c0ffee00-0000-4000-8000-000000000002"},
        "spec": {"mode": mode}
    })
}

fn misbehave(mode: &str, limits: Limits) -> Result<Result<Response, ReconcileError>, CallError> {
    call_misbehave(&module("misbehave"), mode, limits)
}

/// One call of the loaded misbehave `guest` in `mode`.
fn call_misbehave(
    guest: &Module,
    mode: &str,
    limits: Limits,
) -> Result<Result<Response, ReconcileError>, CallError> {
    let ctx = CallContext {
        limits,
        ..CallContext::default()
    };
    guest.reconcile(&request(&config_map(mode), &[]), &ctx)
}

fn misbehave_plan(mode: &str) -> Result<Plan, ValidationError> {
    let response = misbehave(mode, Limits::default())
        .expect("the call completes")
        .expect("the guest answers");
    plan_response(
        module("misbehave").meta(),
        &PlanContext::OFFLINE,
        &config_map(mode),
        &[],
        response,
        Timestamp::now(),
    )
}

/// After each failure the same module must still serve a good call.
fn still_serves() {
    let plan = misbehave_plan("ok").expect("a good call still works");
    assert_eq!(plan.apply[0]["metadata"]["name"], "cm-ok-child");
}

#[test]
fn a_guest_that_loops_forever_is_stopped_at_its_deadline() {
    let _turn = CPU_BOUND.lock().unwrap_or_else(|p| p.into_inner());
    let limits = Limits {
        timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    // Loaded before the clock starts: loading compiles, behind other tests'
    // compiles, and is not what the deadline bounds.
    let guest = module("misbehave");
    let started = std::time::Instant::now();
    let error = call_misbehave(&guest, "loop", limits).unwrap_err();
    assert!(
        matches!(error, CallError::Timeout { ref module, .. } if module == "misbehave"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped near its deadline, took {:?}",
        started.elapsed()
    );
    assert!(
        error.to_string().contains("raise the module's timeout"),
        "{error}"
    );
    still_serves();
}

/// Tests that decide by CPU time take turns: a crowded CPU in one must not
/// starve a loop another expects to be charged for.
static CPU_BOUND: Mutex<()> = Mutex::new(());

/// A CPU other work crowds: `hogs` threads spin on it at normal priority
/// until dropped. A thread [`Crowded::enter`]s it to run there.
struct Crowded {
    cpu: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
    hogs: Vec<std::thread::JoinHandle<()>>,
}

impl Crowded {
    fn new(hogs: usize) -> Self {
        // The first CPU this process may run on.
        // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
        let mut allowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        assert_eq!(unsafe { libc::sched_getaffinity(0, size, &mut allowed) }, 0);
        let cpu = (0..libc::CPU_SETSIZE as usize)
            .find(|&cpu| unsafe { libc::CPU_ISSET(cpu, &allowed) })
            .expect("some CPU is allowed");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hogs = (0..hogs)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    pin_to(cpu);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        Crowded { cpu, stop, hogs }
    }

    /// Runs `f` on a thread of its own on the crowded CPU, at `nice`.
    fn run<R: Send + 'static>(&self, nice: i32, f: impl FnOnce() -> R + Send + 'static) -> R {
        let cpu = self.cpu;
        std::thread::spawn(move || {
            pin_to(cpu);
            // SAFETY: setpriority on this thread's own id.
            let tid = unsafe { libc::gettid() } as libc::id_t;
            assert_eq!(
                unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) },
                0
            );
            f()
        })
        .join()
        .expect("the crowded thread")
    }
}

impl Drop for Crowded {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for hog in self.hogs.drain(..) {
            let _ = hog.join();
        }
    }
}

fn pin_to(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; the calls take this thread's set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0
        );
    }
}

/// A fresh load of the misbehave guest: what its calls use is its own,
/// not shared with other tests' calls of the cached one.
fn fresh_misbehave() -> Module {
    let path = bosun_testenv::guests::path("misbehave").expect("guests build");
    ENGINE.load_file(&path).expect("misbehave loads")
}

#[test]
fn a_loop_that_never_got_the_cpu_is_the_hosts_fault_not_the_guests() {
    let _turn = CPU_BOUND.lock().unwrap_or_else(|p| p.into_inner());
    let limits = Limits {
        timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let guest = fresh_misbehave();
    // The host is busy elsewhere: the call's thread shares its CPU with a
    // spinning thread that outranks it, and gets a sliver of its deadline.
    let crowded = Crowded::new(1);
    let error = crowded
        .run(19, move || call_misbehave(&guest, "loop", limits))
        .unwrap_err();
    drop(crowded);
    let CallError::Starved {
        ref module,
        limit,
        cpu,
    } = error
    else {
        panic!("expected a starved call, got {error}");
    };
    assert_eq!((module.as_str(), limit), ("misbehave", limits.timeout));
    assert!(cpu < limits.timeout / 2, "{error}");
    assert_eq!(error.kind(), "Starved");
    assert_eq!(error.fault(), bosun::engine::Fault::Host);
    assert!(
        error.to_string().contains("give the host more CPU"),
        "{error}"
    );
}

#[test]
fn a_module_that_crowds_out_its_own_calls_answers_for_their_deadlines() {
    let _turn = CPU_BOUND.lock().unwrap_or_else(|p| p.into_inner());
    let limits = Limits {
        timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let guest = fresh_misbehave();
    // Six loops of one module on one CPU: none gets half its deadline, but
    // the module used all of it. Starving itself is no way out of
    // quarantine.
    let crowded = Crowded::new(0);
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let guest = guest.clone();
            let cpu = crowded.cpu;
            std::thread::spawn(move || {
                pin_to(cpu);
                call_misbehave(&guest, "loop", limits)
            })
        })
        .collect();
    for call in calls {
        let error = call.join().expect("call thread").unwrap_err();
        assert!(matches!(error, CallError::Timeout { .. }), "{error}");
        assert_eq!(error.fault(), bosun::engine::Fault::Guest);
    }
}

#[test]
fn a_guest_blocked_in_a_wasi_call_is_stopped_at_its_deadline() {
    let limits = Limits {
        timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    // Loaded before the clock starts: loading compiles, behind other tests'
    // compiles, and is not what the deadline bounds.
    let guest = module("misbehave");
    for mode in ["sleep", "poll-far"] {
        let started = std::time::Instant::now();
        let error = call_misbehave(&guest, mode, limits).unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(error, CallError::Blocked { ref module, limit } if module == "misbehave" && limit == limits.timeout),
            "{mode}: {error}"
        );
        // The deadline, a tick and the scheduling of two cores: not the
        // ten seconds (or the hour) the guest asked for.
        assert!(
            took < Duration::from_secs(2),
            "{mode}: held the call for {took:?}"
        );
        assert!(
            error.to_string().contains("waiting in a host call"),
            "{error}"
        );
        still_serves();
    }
}

#[test]
fn host_buffers_a_guest_sizes_are_capped() {
    // 64 MiB of random bytes would be allocated on the host, outside the
    // guest's memory cap: refused, and the call fails rather than the host.
    let error = misbehave("random-flood", Limits::default()).unwrap_err();
    assert!(matches!(error, CallError::Trap { .. }), "{error}");
    assert!(error.to_string().contains("exceeds limit"), "{error}");
    still_serves();
}

#[test]
fn output_is_bounded_in_count_not_only_bytes() {
    for (mode, what) in [("many-children", "children"), ("many-events", "events")] {
        let error = misbehave(mode, Limits::default()).unwrap_err();
        assert!(
            matches!(error, CallError::TooMany { what: w, count: 100_000, .. } if w == what),
            "{mode}: {error}"
        );
        assert_eq!(error.fault(), bosun::engine::Fault::Guest);
    }
    // Log lines past the limit are dropped, the call goes on.
    let response = misbehave("many-logs", Limits::default())
        .expect("the call completes")
        .expect("the guest answers");
    assert_eq!(response.children.len(), 1);
    still_serves();
}

#[test]
fn a_long_error_message_is_cut_and_a_zero_requeue_raised_to_the_floor() {
    let limits = Limits::default();
    match misbehave("long-error", limits).expect("the call completes") {
        Err(ReconcileError::Permanent(failure)) => {
            assert!(
                failure.message.len() <= limits.message_bytes,
                "{}",
                failure.message.len()
            );
            assert!(failure.message.ends_with('…'));
        }
        other => panic!("expected a permanent error, got {other:?}"),
    }
    let plan = misbehave_plan("zero-requeue").expect("valid output");
    assert_eq!(plan.requeue_after, Some(limits.min_requeue));
}

#[test]
fn a_request_too_large_for_the_guest_fails_that_object_not_the_module() {
    let limits = Limits {
        memory_bytes: 8 << 20,
        ..Limits::default()
    };
    let mut big = config_map("ok");
    big["spec"]["padding"] = json!("x".repeat(3 << 20));
    let ctx = CallContext {
        limits,
        ..CallContext::default()
    };
    let error = module("misbehave")
        .reconcile(&request(&big, &[]), &ctx)
        .unwrap_err();
    assert!(
        matches!(error, CallError::RequestTooLarge { .. }),
        "{error}"
    );
    assert_eq!(error.fault(), bosun::engine::Fault::Input);
    // Big enough to exhaust the guest's memory while parsing, though it fit:
    // still the data's doing.
    let mut large = config_map("ok");
    large["spec"]["padding"] = json!(vec!["x"; 350_000]);
    let error = module("misbehave")
        .reconcile(&request(&large, &[]), &ctx)
        .unwrap_err();
    assert!(matches!(error, CallError::MemoryLimit { .. }), "{error}");
    assert_eq!(error.fault(), bosun::engine::Fault::Input);
    still_serves();
}

#[test]
fn metadata_runs_under_a_deadline() {
    for (variant, blocked) in [("slow-metadata", true), ("spin-metadata", false)] {
        let path = bosun_testenv::guests::misbehave_declaring(variant).expect("variant");
        // A spin that missed the deadline for want of CPU (the engine tests
        // run in parallel on two cores) is `HostStarved`, which the host
        // tries again later: so does this test, a few times.
        let (error, took) = (0..5)
            .map(|_| {
                let started = std::time::Instant::now();
                let error = ENGINE.load_file(&path).map(|_| ()).unwrap_err();
                (error, started.elapsed())
            })
            .find(|(error, _)| error.reason() != "HostStarved")
            .unwrap_or_else(|| panic!("{variant}: starved five times in a row"));
        let LoadError::Metadata { source, .. } = &error else {
            panic!("{variant}: expected a failed metadata call, got {error}");
        };
        if blocked {
            assert!(
                matches!(**source, CallError::Blocked { .. }),
                "{variant}: {error}"
            );
        } else {
            assert!(
                matches!(**source, CallError::Timeout { .. }),
                "{variant}: {error}"
            );
        }
        assert!(
            took < Duration::from_secs(5),
            "{variant}: load took {took:?}"
        );
    }
}

#[test]
fn a_guest_that_allocates_without_bound_hits_its_memory_cap() {
    let limits = Limits {
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let error = misbehave("hog", limits).unwrap_err();
    assert!(
        matches!(error, CallError::MemoryLimit { limit_mib: 32, .. }),
        "{error}"
    );
    still_serves();
}

#[test]
fn a_guest_panic_is_reported_with_its_message() {
    let error = misbehave("panic", Limits::default()).unwrap_err();
    match &error {
        CallError::Panic { message, .. } => assert!(
            message.contains("deliberate panic for cm-panic"),
            "{message}"
        ),
        other => panic!("expected a panic, got {other}"),
    }
    still_serves();
}

#[test]
fn output_past_the_size_limit_is_refused() {
    let limits = Limits {
        memory_bytes: 256 << 20,
        output_bytes: 1 << 20,
        ..Limits::default()
    };
    let error = misbehave("flood", limits).unwrap_err();
    assert!(
        matches!(error, CallError::OutputTooLarge { limit, .. } if limit == 1 << 20),
        "{error}"
    );
    still_serves();
}

#[test]
fn malformed_or_forbidden_output_fails_validation_and_plans_no_write() {
    type Expect = fn(&ValidationError) -> bool;
    let cases: [(&str, Expect); 5] = [
        ("garbage", |e| {
            matches!(e, ValidationError::ChildNotJson { .. })
        }),
        ("no-kind", |e| {
            matches!(
                e,
                ValidationError::ChildField {
                    field: "apiVersion",
                    ..
                }
            )
        }),
        (
            "trespass",
            |e| matches!(e, ValidationError::UndeclaredKind { kind, .. } if kind == "Secret"),
        ),
        (
            "other-namespace",
            |e| matches!(e, ValidationError::WrongNamespace { namespace, .. } if namespace == "kube-system"),
        ),
        (
            "forge-owner",
            |e| matches!(e, ValidationError::ForgedOwner { owner, .. } if owner == "someone-else"),
        ),
    ];
    for (mode, expected) in cases {
        let error = misbehave_plan(mode).expect_err(mode);
        assert!(expected(&error), "{mode}: unexpected {error:?}");
        still_serves();
    }
}

#[test]
fn reads_of_undeclared_kinds_are_refused() {
    let outcome = misbehave("read-secret", Limits::default()).expect("the call completes");
    match outcome {
        Err(ReconcileError::Retryable(failure)) => {
            assert!(
                failure.message.contains("Err("),
                "the guest saw an error: {}",
                failure.message
            );
            assert!(
                failure
                    .message
                    .contains("not a kind module misbehave declared"),
                "{}",
                failure.message
            );
        }
        other => panic!("expected the guest to report the refused read, got {other:?}"),
    }
}

#[test]
fn guest_errors_come_back_typed() {
    assert!(
        matches!(misbehave("retry", Limits::default()), Ok(Err(ReconcileError::Retryable(f))) if f.reason == "NotYet")
    );
    assert!(matches!(
        misbehave("permanent", Limits::default()),
        Ok(Err(ReconcileError::Permanent(_)))
    ));
}

#[test]
fn calls_run_concurrently_in_fresh_instances() {
    let handles: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let mut object = config_map("ok");
                object["metadata"]["name"] = json!(format!("cm-{i}"));
                let response = module("misbehave")
                    .reconcile(&request(&object, &[]), &CallContext::default())
                    .unwrap()
                    .unwrap();
                assert!(response.children[0].contains(&format!("cm-{i}-child")));
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
}

#[test]
fn guest_reads_are_answered_within_the_primary_namespace() {
    let labelled = |namespace: &str, name: &str, team: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": namespace, "labels": {"team": team}}})
    };
    let source = StaticObjects::new([
        labelled("demo", "mine", "a"),
        labelled("demo", "other-team", "b"),
        labelled("elsewhere", "not-mine", "a"),
        labelled("kube-system", "secrets-in-here", "a"),
    ]);
    let ctx = CallContext {
        objects: Arc::new(source),
        ..CallContext::default()
    };
    let response = module("misbehave")
        .reconcile(&request(&config_map("read-around"), &[]), &ctx)
        .unwrap()
        .unwrap();
    let status: Value = serde_json::from_str(response.status.as_deref().unwrap()).unwrap();
    assert_eq!(
        status["listed"],
        json!(["demo/mine"]),
        "only its own namespace, filtered by the selector"
    );
    let elsewhere = status["elsewhere"].as_str().unwrap();
    assert!(
        elsewhere.starts_with("Err(") && elsewhere.contains("outside this object's namespace"),
        "{elsewhere}"
    );
}

// ----------------------------------------------------------------- loading

#[test]
fn what_is_not_a_component_is_refused_with_a_reason() {
    let cases: [(&[u8], &str); 4] = [
        (b"", "it is empty"),
        (b"\0asm\x01\0\0\0", "core WebAssembly module"),
        (b"#!/bin/sh\necho hi\n", "magic bytes"),
        (b"\0asm\x0d\0\x01\0garbage", "failed to compile"),
    ];
    for (bytes, expected) in cases {
        let error = ENGINE.load("bad.wasm", bytes).map(|_| ()).unwrap_err();
        assert!(
            matches!(
                error,
                LoadError::NotAComponent { .. } | LoadError::Compile { .. }
            ),
            "{error}"
        );
        assert!(
            error.to_string().contains(expected),
            "{expected:?} not in: {error}"
        );
        assert!(
            error.to_string().contains("bad.wasm"),
            "names the source: {error}"
        );
    }
}

#[test]
fn a_component_of_another_world_is_refused() {
    let error = ENGINE
        .load("empty.wat", b"(component)")
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(error, LoadError::WrongWorld { .. }), "{error}");
    assert!(
        error.to_string().contains("bosun:reconciler/reconciler"),
        "{error}"
    );
}

#[test]
fn the_compile_cache_skips_cranelift_on_the_second_load() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(EngineConfig {
        cache_dir: Some(dir.path().to_owned()),
        ..EngineConfig::default()
    })
    .unwrap();
    let path = bosun_testenv::guests::path("misbehave").unwrap();
    let first = engine.load_file(&path).unwrap();
    assert_eq!(first.compile_source(), CompileSource::Compiled);
    let second = engine.load_file(&path).unwrap();
    assert_eq!(second.compile_source(), CompileSource::Cache);
    assert_eq!(first.digest(), second.digest());
    second
        .reconcile(&request(&config_map("ok"), &[]), &CallContext::default())
        .unwrap()
        .unwrap();

    // A damaged entry is dropped and the component compiled again. (Replaced
    // through a rename, as any writer must: the loaded entry is mapped into
    // memory, and truncating a mapped file in place kills the process.)
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let damaged = path.with_extension("damaged");
        std::fs::write(&damaged, b"damaged").unwrap();
        std::fs::rename(&damaged, &path).unwrap();
    }
    let third = engine.load_file(&path).unwrap();
    assert_eq!(third.compile_source(), CompileSource::Compiled);
}

#[test]
fn the_compile_cache_loads_only_what_it_wrote_from_a_directory_of_its_own() {
    let path = bosun_testenv::guests::path("misbehave").unwrap();
    let cache_in = |dir: &std::path::Path| {
        Engine::new(EngineConfig {
            cache_dir: Some(dir.to_owned()),
            ..EngineConfig::default()
        })
        .unwrap()
    };
    // A real artifact, written by another cache (another key): planted in
    // this cache, it is native code this host did not write.
    let (theirs, ours) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    cache_in(theirs.path()).load_file(&path).unwrap();
    let engine = cache_in(ours.path());
    engine
        .load_file(bosun_testenv::guests::path("cnat").unwrap())
        .unwrap();
    for entry in std::fs::read_dir(theirs.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().contains(".cwasm") {
            std::fs::copy(entry.path(), ours.path().join(entry.file_name())).unwrap();
        }
    }
    let planted = engine.load_file(&path).unwrap();
    assert_eq!(
        planted.compile_source(),
        CompileSource::Compiled,
        "an entry under another key is not loaded"
    );
    assert_eq!(
        engine.load_file(&path).unwrap().compile_source(),
        CompileSource::Cache,
        "what this cache wrote itself is"
    );
    // Its own entry, changed on disk after it was written: dropped, compiled.
    for entry in std::fs::read_dir(ours.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().ends_with(".cwasm") {
            let mut bytes = std::fs::read(entry.path()).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
            // Renamed over it: a module already loaded keeps the file it mapped.
            let changed = ours.path().join("changed");
            std::fs::write(&changed, bytes).unwrap();
            std::fs::rename(&changed, entry.path()).unwrap();
        }
    }
    assert_eq!(
        engine.load_file(&path).unwrap().compile_source(),
        CompileSource::Compiled,
        "a changed entry is not loaded"
    );
    assert_eq!(
        engine.load_file(&path).unwrap().compile_source(),
        CompileSource::Cache,
        "and is written again"
    );

    // A directory others may write to is refused: everything compiles.
    let shared = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let engine = cache_in(shared.path());
    engine.load_file(&path).unwrap();
    assert_eq!(
        engine.load_file(&path).unwrap().compile_source(),
        CompileSource::Compiled
    );
    assert!(
        engine
            .cache()
            .and_then(|c| c.refused())
            .is_some_and(|why| why.contains("lets others in")),
        "the refusal says why"
    );
}

/// Waits until `module`'s code is let go, or fails after `within`.
fn wait_unloaded(module: &Module, within: Duration) {
    let started = std::time::Instant::now();
    while module.is_resident() {
        assert!(
            started.elapsed() < within,
            "the idle module's code was not let go within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_idle_modules_code_is_let_go_and_mapped_again_from_the_cache_on_its_next_call() {
    let dir = tempfile::tempdir().unwrap();
    let idle = Duration::from_millis(300);
    let engine = Engine::new(EngineConfig {
        cache_dir: Some(dir.path().to_owned()),
        unload_idle_after: Some(idle),
        ..EngineConfig::default()
    })
    .unwrap();
    let cnat = engine
        .load_file(bosun_testenv::guests::path("cnat").unwrap())
        .unwrap();
    let due = || {
        cnat.reconcile(&request(&at(None), &[]), &at_clock("2026-12-01T10:00:01Z"))
            .expect("the call completes")
            .expect("cnat succeeds")
    };
    let before = due();
    assert!(cnat.is_resident());

    // A module in use keeps its code: calls closer together than `idle`.
    for _ in 0..6 {
        std::thread::sleep(idle / 3);
        due();
        assert!(cnat.is_resident(), "a module in use was unloaded");
    }

    wait_unloaded(&cnat, idle * 10);
    let after = due();
    assert!(cnat.is_resident(), "the call mapped the code again");
    assert_eq!(after.children, before.children);
    assert_eq!(after.status, before.status);

    // Code the cache no longer holds cannot come back: the call says so,
    // and what to do, instead of running something else — whether the
    // artifact was changed on disk while the module was idle, or removed.
    let artifacts = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.to_string_lossy().ends_with(".cwasm"))
            .collect::<Vec<_>>()
    };
    let refused = |what: &str| {
        let error = cnat
            .reconcile(&request(&at(None), &[]), &at_clock("2026-12-01T10:00:01Z"))
            .expect_err(&format!("an artifact {what} on disk is not run"));
        assert!(matches!(error, CallError::Reload { .. }), "{what}: {error}");
        let message = error.to_string();
        assert!(
            message.contains("no longer in the compile cache")
                && message.contains("re-apply its ReconcilerModule"),
            "{what}: {message}"
        );
        assert!(!cnat.is_resident(), "{what}: nothing was mapped");
    };

    wait_unloaded(&cnat, idle * 10);
    for path in artifacts() {
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    refused("changed");

    // Loading the component again (what re-applying its ReconcilerModule
    // does) writes a good artifact, and the module runs from it again.
    engine
        .load_file(bosun_testenv::guests::path("cnat").unwrap())
        .unwrap();
    assert_eq!(due().children, before.children);

    wait_unloaded(&cnat, idle * 10);
    let removed = artifacts();
    assert!(!removed.is_empty());
    removed
        .iter()
        .for_each(|path| std::fs::remove_file(path).unwrap());
    refused("removed");
}

#[test]
fn without_a_cache_a_modules_code_stays() {
    let engine = Engine::new(EngineConfig {
        cache_dir: None,
        unload_idle_after: Some(Duration::from_millis(100)),
        ..EngineConfig::default()
    })
    .unwrap();
    let cnat = engine
        .load_file(bosun_testenv::guests::path("cnat").unwrap())
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(cnat.is_resident(), "there is nothing to map it again from");
    cnat.reconcile(&request(&at(None), &[]), &at_clock("2026-12-01T10:00:01Z"))
        .expect("the call completes")
        .expect("cnat succeeds");
}

// ------------------------------------------------------ contract versions

/// A Misbehave object for the contract-0-1 guest, in `demo`.
fn echo_object(name: &str, mode: Option<&str>) -> Value {
    let mut object = json!({
        "apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave",
        "metadata": {"name": name, "namespace": "demo", "uid": "c0ffee00-0000-4000-8000-000000000101"},
        "spec": {}
    });
    if let Some(mode) = mode {
        object["spec"]["mode"] = json!(mode);
    }
    object
}

/// What contract-0-1 may read: its source ConfigMap and two labelled ones,
/// one of them in another namespace.
fn echo_reads() -> CallContext {
    let config_map = |namespace: &str, name: &str, labelled: bool, greeting: &str| {
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"greeting": greeting}});
        if labelled {
            cm["metadata"]["labels"] = json!({"tests.bosun.dev/source": "yes"});
        }
        cm
    };
    CallContext {
        objects: Arc::new(StaticObjects::new([
            config_map("demo", "hello-source", false, "hi from 0.2.0's host"),
            config_map("demo", "labelled", true, ""),
            config_map("elsewhere", "labelled-elsewhere", true, ""),
        ])),
        ..CallContext::default()
    }
}

fn echo_request(object: &Value, trigger: Trigger) -> Request {
    Request {
        trigger,
        attempt: 2,
        ..request(object, &[])
    }
}

/// The status contract-0-1 reported.
fn echoed(response: &Response) -> Value {
    serde_json::from_str(response.status.as_deref().expect("a status")).unwrap()
}

#[test]
fn a_component_built_against_0_1_0_loads_and_says_which_contract_it_targets() {
    let old = module("contract-0-1");
    assert_eq!(old.contract(), Contract::V0_1);
    assert_eq!(old.contract().package(), "bosun:reconciler@0.1.0");
    assert_eq!(old.meta().name, "contract-0-1");
    assert_eq!(old.meta().primary.kind, "Misbehave");
    let owned: Vec<_> = old.meta().owns.iter().map(|k| k.to_string()).collect();
    assert_eq!(owned, ["ConfigMap.v1"]);
    // What the SDK builds targets the current version.
    assert_eq!(module("cnat").contract(), Contract::CURRENT);
    assert_eq!(Contract::CURRENT.package(), "bosun:reconciler@0.2.0");
}

#[test]
fn a_0_1_0_component_answers_in_the_current_types() {
    let object = echo_object("hello", None);
    let response = module("contract-0-1")
        .reconcile(
            &echo_request(&object, Trigger::ObjectChanged),
            &echo_reads(),
        )
        .expect("the call completes")
        .expect("the guest succeeds");
    assert_eq!(
        response,
        Response {
            children: vec![
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "hello-echo"},
                       "data": {"read": "hi from 0.2.0's host"}})
                .to_string()
            ],
            status: Some(
                json!({"contract": "0.1.0", "trigger": "object-changed", "attempt": 2,
                       "read": "hi from 0.2.0's host", "listed": ["labelled"]})
                .to_string()
            ),
            requeue_after_ms: None,
            events: vec![Event {
                event_type: EventType::Normal,
                reason: "Echoed".into(),
                note: "read \"hi from 0.2.0's host\" on object-changed".into(),
                action: "Reconcile".into(),
            }],
        }
    );
    // The host's checks and plan apply as to any module.
    let plan = plan_response(
        module("contract-0-1").meta(),
        &PlanContext::OFFLINE,
        &object,
        &[],
        response,
        Timestamp::now(),
    )
    .expect("valid output");
    assert_eq!(plan.apply[0]["metadata"]["namespace"], "demo");
    assert_eq!(
        plan.apply[0]["metadata"]["ownerReferences"][0]["name"],
        "hello"
    );
}

#[test]
fn read_changed_reaches_a_0_1_0_component_as_resync() {
    let old = module("contract-0-1");
    let object = echo_object("hello", None);
    let trigger_seen = |trigger| {
        let response = old
            .reconcile(&echo_request(&object, trigger), &echo_reads())
            .expect("the call completes")
            .expect("the guest succeeds");
        echoed(&response)["trigger"].as_str().unwrap().to_owned()
    };
    assert_eq!(trigger_seen(Trigger::ReadChanged), "resync");
    // Every other trigger arrives as itself.
    let cases = [
        (Trigger::ObjectChanged, "object-changed"),
        (Trigger::ChildChanged, "child-changed"),
        (Trigger::Requeue, "requeue"),
        (Trigger::Retry, "retry"),
        (Trigger::Resync, "resync"),
        (Trigger::ModuleChanged, "module-changed"),
        (Trigger::Manual, "manual"),
    ];
    for (trigger, seen) in cases {
        assert_eq!(trigger_seen(trigger), seen, "{trigger:?}");
    }
}

#[test]
fn a_0_1_0_components_errors_and_finalize_come_back_in_the_current_types() {
    let old = module("contract-0-1");
    let call = |mode| {
        old.reconcile(
            &echo_request(&echo_object("hello", Some(mode)), Trigger::Manual),
            &echo_reads(),
        )
        .expect("the call completes")
    };
    assert_eq!(
        call("permanent"),
        Err(ReconcileError::Permanent(Failure {
            reason: "AskedToFail".into(),
            message: "spec.mode asks for a permanent error".into(),
        }))
    );
    assert_eq!(
        call("retryable"),
        Err(ReconcileError::Retryable(Failure {
            reason: "AskedToRetry".into(),
            message: "spec.mode asks for a retryable error".into(),
        }))
    );

    let object = echo_object("hello", None);
    let child =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hello-echo"}});
    let pending = old
        .finalize(&request(&object, &[child]), &CallContext::default())
        .expect("the call completes");
    assert_eq!(
        pending,
        Ok(FinalizeResponse {
            done: false,
            requeue_after_ms: Some(1000),
            events: vec![Event {
                event_type: EventType::Normal,
                reason: "Finalizing".into(),
                note: "1 children left".into(),
                action: "Reconcile".into(),
            }],
        })
    );
    let done = old
        .finalize(&request(&object, &[]), &CallContext::default())
        .expect("the call completes")
        .expect("the guest succeeds");
    assert!(done.done);
}

/// What the host logs on this thread while `f` runs, once a line
/// satisfies `wanted` (or after three tries).
///
/// tracing caches per log statement whether any subscriber wants it. The
/// cache is rebuilt for every statement when a subscriber is installed, but
/// a statement another test thread reaches for the first time meanwhile is
/// judged by that thread's subscriber (none) and cached so, and this thread
/// then misses it. Installing the subscriber again rebuilds the cache, so
/// `f` runs again under a fresh one until the line shows.
fn logged(wanted: impl Fn(&str) -> bool, mut f: impl FnMut()) -> String {
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut log = String::new();
    for _ in 0..3 {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer({
                let lines = lines.clone();
                move || lines.clone()
            })
            .finish();
        tracing::subscriber::with_default(subscriber, &mut f);
        log = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        if log.lines().any(&wanted) {
            break;
        }
    }
    log
}

#[test]
fn a_0_1_0_components_host_calls_are_answered() {
    let old = module("contract-0-1");
    let mut response = None;
    let log = logged(
        |line| line.contains("contract-0-1 reconciling nobody on requeue"),
        || {
            response = Some(
                old.reconcile(
                    &echo_request(&echo_object("nobody", None), Trigger::Requeue),
                    &echo_reads(),
                )
                .expect("the call completes")
                .expect("the guest succeeds"),
            )
        },
    );
    // log: through 0.1.0's log-level, into the host's log with the module and object.
    let line = log
        .lines()
        .find(|line| line.contains("contract-0-1 reconciling nobody on requeue"))
        .unwrap_or_else(|| panic!("the guest's log line is in the host's log:\n{log}"));
    assert!(
        line.contains("INFO")
            && line.contains("module=contract-0-1")
            && line.contains("demo/nobody"),
        "{line}"
    );
    // get-object: a miss is an answer; list-objects: within the namespace.
    let status = echoed(&response.unwrap());
    assert_eq!(status["read"], "absent");
    assert_eq!(status["listed"], json!(["labelled"]));

    // The load says which contract the module runs under.
    let loaded =
        |line: &str| line.contains("loaded module") && line.contains("module=contract-0-1");
    let log = logged(loaded, || {
        ENGINE
            .load_file(bosun_testenv::guests::path("contract-0-1").unwrap())
            .unwrap();
    });
    let line = log
        .lines()
        .find(|line| loaded(line))
        .unwrap_or_else(|| panic!("the load is logged:\n{log}"));
    assert!(line.contains("contract=bosun:reconciler@0.1.0"), "{line}");
}

#[test]
fn a_0_1_0_modules_code_is_let_go_when_idle_and_mapped_again_for_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let idle = Duration::from_millis(300);
    let engine = Engine::new(EngineConfig {
        cache_dir: Some(dir.path().to_owned()),
        unload_idle_after: Some(idle),
        ..EngineConfig::default()
    })
    .unwrap();
    let old = engine
        .load_file(bosun_testenv::guests::path("contract-0-1").unwrap())
        .unwrap();
    let call = || {
        old.reconcile(
            &echo_request(&echo_object("hello", None), Trigger::ReadChanged),
            &echo_reads(),
        )
        .expect("the call completes")
        .expect("the guest succeeds")
    };
    let before = call();
    wait_unloaded(&old, idle * 10);
    let after = call();
    assert!(old.is_resident(), "the call mapped the code again");
    assert_eq!(old.contract(), Contract::V0_1);
    assert_eq!(after, before);
    assert_eq!(echoed(&after)["trigger"], "resync");
}

// A component names the contract version it targets in its imports
// (`bosun:reconciler/host@0.1.0`). Hand-written ones below ask for what no
// build of the SDK would.

/// A component importing these `bosun:reconciler` interfaces, and nothing else.
fn importing(imports: &[&str]) -> String {
    let imports: String = imports
        .iter()
        .map(|name| format!("(import \"{name}\" (instance))"))
        .collect();
    format!("(component {imports})")
}

fn load_error(wat: &str) -> LoadError {
    ENGINE
        .load("hand-written.wat", wat.as_bytes())
        .map(|_| ())
        .expect_err("the load fails")
}

#[test]
fn a_component_targeting_a_version_the_host_does_not_serve_is_refused_saying_which() {
    for (import, asked) in [
        ("bosun:reconciler/host@0.9.0", "0.9.0"),
        ("bosun:reconciler/types@1.0.0", "1.0.0"),
        ("bosun:reconciler/host@0.2.0-rc.1", "0.2.0-rc.1"),
        ("bosun:reconciler/host", "unversioned"),
    ] {
        let error = load_error(&importing(&[import]));
        assert!(
            matches!(&error, LoadError::UnservedContract { asked: a, .. } if a == asked),
            "{import}: {error:?}"
        );
        let message = error.to_string();
        for needed in [
            "hand-written.wat",
            &format!("bosun:reconciler@{asked}"),
            "it serves bosun:reconciler@0.2.0, bosun:reconciler@0.1.0",
            "rebuild it",
        ] {
            assert!(message.contains(needed), "{needed:?} not in: {message}");
        }
    }
}

#[test]
fn a_component_importing_two_versions_at_once_is_refused() {
    let error = load_error(&importing(&[
        "bosun:reconciler/host@0.1.0",
        "bosun:reconciler/types@0.2.0",
    ]));
    assert!(
        matches!(error, LoadError::MixedContracts { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("several versions (0.1.0, 0.2.0)")
            && message.contains("targets exactly one")
            && message.contains("bosun:reconciler@0.2.0, bosun:reconciler@0.1.0"),
        "{message}"
    );
    // Two versions, one of them served: still two.
    let error = load_error(&importing(&[
        "bosun:reconciler/host@0.2.0",
        "bosun:reconciler/host@0.9.0",
    ]));
    assert!(
        matches!(error, LoadError::MixedContracts { .. }),
        "{error:?}"
    );
}

#[test]
fn the_versions_a_component_names_are_quoted_back_within_bounds() {
    // The message ends up in a ReconcilerModule's status.
    let long = format!("bosun:reconciler/host@0.9.0-{}", "x".repeat(10_000));
    let message = load_error(&importing(&[&long])).to_string();
    assert!(message.contains("bosun:reconciler@0.9.0-xxx"), "{message}");
    assert!(message.len() < 1024, "{} bytes", message.len());

    let many: Vec<String> = (3..40)
        .map(|minor| format!("bosun:reconciler/host@0.{minor}.0"))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let error = load_error(&importing(&many));
    assert!(
        matches!(&error, LoadError::MixedContracts { asked, more: 33, .. } if asked.len() == 4),
        "{error:?}"
    );
    assert!(error.to_string().contains("and 33 more"), "{error}");
}

/// A component that imports `bosun:reconciler@0.1.0` and exports only
/// `metadata`, returning 0.1.0's module-info, with `http-origins` or (as
/// before 0.1.0 gained it) without.
fn metadata_only_0_1_0(with_http_origins: bool) -> String {
    let http_origins = if with_http_origins {
        r#"(field "http-origins" (list string))"#
    } else {
        ""
    };
    format!(
        r#"(component
            (import "bosun:reconciler/host@0.1.0" (instance))
            (type $scope (enum "namespaced" "cluster"))
            (export $scope-x "scope" (type $scope))
            (type $api-kind (record
                (field "group" string) (field "version" string) (field "kind" string)
                (field "plural" string) (field "scope" $scope-x)))
            (export $api-kind-x "api-kind" (type $api-kind))
            (type $module-info (record
                (field "name" string) (field "version" string) (field "primary" $api-kind-x)
                (field "owns" (list $api-kind-x)) (field "reads" (list $api-kind-x))
                (field "finalizer" (option string)) {http_origins}))
            (export $module-info-x "module-info" (type $module-info))
            (core module $m
                (memory (export "memory") 1)
                (func (export "metadata") (result i32) unreachable))
            (core instance $i (instantiate $m))
            (func $metadata (result $module-info-x)
                (canon lift (core func $i "metadata") (memory (core memory $i "memory"))))
            (export "metadata" (func $metadata)))"#
    )
}

#[test]
fn a_0_1_0_component_missing_an_export_is_told_what_its_version_needs() {
    let error = load_error(&metadata_only_0_1_0(true));
    assert!(
        matches!(
            error,
            LoadError::WrongWorld {
                contract: Contract::V0_1,
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("bosun:reconciler/reconciler world of bosun:reconciler@0.1.0")
            && message.contains("reconcile"),
        "{message}"
    );
}

#[test]
fn a_component_built_before_0_1_0_gained_http_origins_is_told_to_rebuild() {
    let error = load_error(&metadata_only_0_1_0(false));
    assert!(
        matches!(error, LoadError::EarlyContract { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    for needed in [
        "hand-written.wat",
        "early draft of bosun:reconciler@0.1.0",
        "no http-origins",
        "rebuild it with a current bosun-sdk",
        "bosun:reconciler@0.2.0, bosun:reconciler@0.1.0",
    ] {
        assert!(message.contains(needed), "{needed:?} not in: {message}");
    }
}
