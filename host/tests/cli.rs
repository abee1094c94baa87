//! `bosun reconcile` and `bosun inspect` end to end: the real binary, the
//! built example components and the sample files shipped with them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn guest(package: &str) -> String {
    bosun_testenv::guests::path(package)
        .unwrap()
        .display()
        .to_string()
}

fn sample(path: &str) -> String {
    root().join(path).display().to_string()
}

fn bosun(args: &[&str]) -> Output {
    let cache = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_bosun"))
        .args(args)
        .env("BOSUN_CACHE_DIR", cache.path())
        .env_remove("RUST_LOG")
        .output()
        .expect("bosun runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn yaml(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "bosun failed ({}): {}",
        out.status,
        stderr(out)
    );
    serde_yaml::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not YAML ({e}): {}", stdout(out)))
}

fn write(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_yaml::to_string(value).unwrap()).unwrap();
    path.display().to_string()
}

#[test]
fn inspect_prints_the_module_metadata() {
    let report = yaml(&bosun(&["inspect", &guest("cnat")]));
    assert_eq!(report["module"]["name"], "cnat");
    assert_eq!(report["module"]["primary"]["kind"], "At");
    assert_eq!(report["module"]["primary"]["scope"], "namespaced");
    assert_eq!(report["module"]["owns"][0]["kind"], "Pod");
    assert_eq!(report["fieldManager"], "bosun/cnat");
    assert_eq!(report["sha256"].as_str().unwrap().len(), 64);
    // The permissions block a ReconcilerModule's spec.permissions takes.
    assert_eq!(
        report["permissions"]["reconciles"],
        json!({"group": "cnat.programming-kubernetes.info", "kind": "At"})
    );
    assert_eq!(
        report["permissions"]["owns"],
        json!([{"group": "", "kind": "Pod"}])
    );
}

#[test]
fn inspect_names_the_contract_version_a_component_targets() {
    let old = guest("contract-0-1");
    let report = yaml(&bosun(&["inspect", &old]));
    assert_eq!(report["contract"], "bosun:reconciler@0.1.0");
    assert_eq!(report["module"]["name"], "contract-0-1");
    let out = bosun(&["inspect", &old, "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["contract"], "bosun:reconciler@0.1.0");
    // What the SDK builds targets the current version.
    let report = yaml(&bosun(&["inspect", &guest("cnat")]));
    assert_eq!(report["contract"], "bosun:reconciler@0.2.0");
}

#[test]
fn reconcile_runs_a_0_1_0_component_offline_like_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let object = write(
        dir.path(),
        "echo.yaml",
        &json!({"apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave",
                "metadata": {"name": "echo", "namespace": "demo"}, "spec": {}}),
    );
    let source = write(
        dir.path(),
        "source.yaml",
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "echo-source", "namespace": "demo"},
                "data": {"greeting": "hello"}}),
    );
    let report = yaml(&bosun(&[
        "reconcile",
        &guest("contract-0-1"),
        "--object",
        &object,
        "--objects",
        &source,
    ]));
    assert_eq!(report["result"], "Success");
    assert_eq!(report["status"]["contract"], "0.1.0");
    assert_eq!(report["status"]["trigger"], "manual");
    assert_eq!(report["status"]["read"], "hello");
    assert_eq!(report["apply"][0]["metadata"]["name"], "echo-echo");
    assert_eq!(report["apply"][0]["data"]["read"], "hello");
    assert_eq!(report["events"][0]["reason"], "Echoed");
}

#[test]
fn version_lists_every_contract_version_served_newest_first() {
    let out = bosun(&["--version"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!(
            "bosun {} (serves bosun:reconciler@0.2.0, bosun:reconciler@0.1.0)",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn inspect_shows_the_origins_a_module_declares_and_the_grant_they_need() {
    let report = yaml(&bosun(&["inspect", &guest("dnsrecord")]));
    assert_eq!(
        report["module"]["httpOrigins"],
        json!(["http://127.0.0.1:8081"])
    );
    assert_eq!(
        report["permissions"]["http"],
        json!([{"origin": "http://127.0.0.1:8081"}])
    );
    // A module that declares none shows none.
    let report = yaml(&bosun(&["inspect", &guest("cnat")]));
    assert!(report["module"].get("httpOrigins").is_none(), "{report:?}");
}

#[test]
fn inspect_grant_prints_a_grant_file_bosun_run_accepts() {
    let out = bosun(&["inspect", &guest("webapp"), "--grant"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let grants = bosun::grants::parse_grants(&stdout(&out)).expect("a grant file");
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].module, "webapp");
    let owned: Vec<_> = grants[0]
        .permissions
        .owns
        .iter()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(owned, ["Service", "Deployment.apps"]);
    // Read in the order a person writes it: what it reconciles first.
    let text = stdout(&out);
    assert!(text.find("reconciles:") < text.find("owns:"), "{text}");
    assert!(!grants[0].permissions.cluster_scoped);
}

#[test]
fn reconcile_before_the_schedule_requeues_and_creates_nothing() {
    let out = bosun(&[
        "reconcile",
        &guest("cnat"),
        "--object",
        &sample("examples/cnat/samples/at.yaml"),
        "--now",
        "2026-12-01T09:00:00Z",
    ]);
    let report = yaml(&out);
    assert_eq!(report["result"], "Success");
    assert_eq!(report["apply"], json!([]));
    assert_eq!(report["status"]["phase"], "PENDING");
    assert_eq!(report["status"]["observedGeneration"], 1);
    assert_eq!(report["requeueAfter"], "1h0m0s");
    assert_eq!(report["requeueAfterMs"], 3_600_000);
}

#[test]
fn reconcile_when_due_prints_the_pod_as_it_would_be_applied() {
    let out = bosun(&[
        "reconcile",
        &guest("cnat"),
        "--object",
        &sample("examples/cnat/samples/at.yaml"),
        "--now",
        "2026-12-01T10:00:00Z",
    ]);
    let report = yaml(&out);
    assert_eq!(report["status"]["phase"], "RUNNING");
    let pod = &report["apply"][0];
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["metadata"]["name"], "example-at-pod");
    assert_eq!(pod["metadata"]["namespace"], "default");
    let owner = &pod["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "At");
    assert_eq!(owner["name"], "example-at");
    assert_eq!(owner["controller"], true);
    assert_eq!(
        owner["uid"].as_str().unwrap().len(),
        36,
        "a uid stands in for the server's"
    );
    assert_eq!(
        pod["spec"]["containers"][0]["command"],
        json!(["echo", "YAY"])
    );
    assert_eq!(report["events"][0]["reason"], "Started");
    assert_eq!(report["events"][0]["type"], "Normal");
}

#[test]
fn reconcile_with_a_succeeded_child_reports_done() {
    let dir = tempfile::tempdir().unwrap();
    let running = bosun(&[
        "reconcile",
        &guest("cnat"),
        "--object",
        &sample("examples/cnat/samples/at.yaml"),
        "--now",
        "2026-12-01T10:00:00Z",
    ]);
    let mut pod = yaml(&running)["apply"][0].clone();
    pod["status"] = json!({"phase": "Succeeded"});
    let children = write(dir.path(), "pod.yaml", &pod);
    let mut at: Value = serde_yaml::from_str(
        &std::fs::read_to_string(sample("examples/cnat/samples/at.yaml")).unwrap(),
    )
    .unwrap();
    at["status"] = json!({"phase": "RUNNING"});
    let object = write(dir.path(), "at.yaml", &at);
    let report = yaml(&bosun(&[
        "reconcile",
        &guest("cnat"),
        "--object",
        &object,
        "--children",
        &children,
    ]));
    assert_eq!(report["status"]["phase"], "DONE");
}

#[test]
fn a_permanent_error_exits_non_zero_with_one_line() {
    let out = bosun(&[
        "reconcile",
        &guest("cnat"),
        "--object",
        &sample("examples/cnat/samples/bad-schedule.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .expect("an error line");
    assert!(line.contains("permanent error InvalidSchedule"), "{err}");
    assert!(line.contains("next tuesday"), "{err}");
    assert!(stdout(&out).is_empty());
}

#[test]
fn webapp_with_settings_and_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let first = yaml(&bosun(&[
        "reconcile",
        &guest("webapp"),
        "--object",
        &sample("examples/webapp/samples/webapp.yaml"),
        "--settings",
        &sample("examples/webapp/samples/settings.yaml"),
        "-o",
        "json",
    ]));
    let kinds: Vec<&str> = first["apply"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Deployment", "Service"]);
    assert_eq!(
        first["apply"][1]["metadata"]["labels"]["team"],
        "storefront"
    );

    // The Service as the API server would store it after the host applied it.
    let mut service = first["apply"][1].clone();
    service["metadata"]["managedFields"] =
        json!([{"manager": "bosun/webapp", "operation": "Apply"}]);
    let mut hand_made = service.clone();
    hand_made["metadata"]["name"] = json!("hand-made");
    hand_made["metadata"]["managedFields"] = json!([{"manager": "kubectl", "operation": "Update"}]);
    let children = write(
        dir.path(),
        "children.yaml",
        &json!({"apiVersion": "v1", "kind": "List", "items": [service, hand_made]}),
    );
    let mut app: Value = serde_yaml::from_str(
        &std::fs::read_to_string(sample("examples/webapp/samples/webapp.yaml")).unwrap(),
    )
    .unwrap();
    app["spec"].as_object_mut().unwrap().remove("port");
    let object = write(dir.path(), "app.yaml", &app);
    let second = yaml(&bosun(&[
        "reconcile",
        &guest("webapp"),
        "--object",
        &object,
        "--children",
        &children,
    ]));
    assert_eq!(
        second["prune"],
        json!([{"apiVersion": "v1", "kind": "Service", "namespace": "default", "name": "shop"}])
    );
}

#[test]
fn bad_input_is_reported_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let pod = write(
        dir.path(),
        "pod.yaml",
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}),
    );
    let out = bosun(&["reconcile", &guest("cnat"), "--object", &pod]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("holds 0 objects of kind At"),
        "{}",
        stderr(&out)
    );

    let out = bosun(&[
        "reconcile",
        &guest("cnat"),
        "--object",
        &sample("examples/cnat/samples/at.yaml"),
        "--children",
        &sample("examples/webapp/samples/webapp.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is not a kind module cnat owns"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_broken_module_exits_with_the_load_failure() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.wasm");
    std::fs::write(&broken, b"\0asm\x01\0\0\0").unwrap();
    let out = bosun(&["inspect", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("core WebAssembly module"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_trap_exits_with_the_call_failure() {
    let dir = tempfile::tempdir().unwrap();
    let looping = write(
        dir.path(),
        "cm.yaml",
        &json!({"apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave", "metadata": {"name": "spin"}, "spec": {"mode": "loop"}}),
    );
    let out = bosun(&[
        "reconcile",
        &guest("misbehave"),
        "--object",
        &looping,
        "--timeout-ms",
        "100",
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("deadline"), "{}", stderr(&out));
}

#[test]
fn a_guest_that_sleeps_is_stopped_at_its_deadline_not_when_it_wakes() {
    let dir = tempfile::tempdir().unwrap();
    let sleepy = write(
        dir.path(),
        "sleep.yaml",
        &json!({"apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave", "metadata": {"name": "sleepy"}, "spec": {"mode": "sleep", "seconds": 30}}),
    );
    let started = std::time::Instant::now();
    let out = bosun(&[
        "reconcile",
        &guest("misbehave"),
        "--object",
        &sleepy,
        "--timeout-ms",
        "500",
    ]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("waiting in a host call"),
        "{}",
        stderr(&out)
    );
    // Loading and compiling the module is most of this; the guest asked for 30 s.
    assert!(took < std::time::Duration::from_secs(15), "took {took:?}");
}

#[test]
fn finalize_reports_pending_then_done() {
    let dir = tempfile::tempdir().unwrap();
    let tidy = |release: bool| json!({"apiVersion": "tests.bosun.dev/v1", "kind": "Tidy", "metadata": {"name": "t", "namespace": "ns"}, "spec": {"release": release}});
    let held = write(dir.path(), "held.yaml", &tidy(false));
    let report = yaml(&bosun(&[
        "reconcile",
        &guest("janitor"),
        "--object",
        &held,
        "--finalize",
    ]));
    assert_eq!(report["result"], "Pending");
    assert_eq!(report["requeueAfterMs"], 60_000);
    assert_eq!(report["events"][0]["reason"], "Holding");

    let released = write(dir.path(), "released.yaml", &tidy(true));
    let report = yaml(&bosun(&[
        "reconcile",
        &guest("janitor"),
        "--object",
        &released,
        "--finalize",
    ]));
    assert_eq!(report["result"], "Done");

    // A module without a finalizer is never finalized.
    let out = bosun(&[
        "reconcile",
        &guest("cnat"),
        "--object",
        &sample("examples/cnat/samples/at.yaml"),
        "--finalize",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("declares no finalizer"),
        "{}",
        stderr(&out)
    );
}

/// `bosun build` as an author runs it: outside cargo, so without the
/// variables cargo sets for this test (which would make the nested build
/// rebuild the workspace's dependencies).
fn bosun_build(args: &[&str]) -> Output {
    let cache = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_bosun"));
    command.arg("build").args(args);
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        let crate_scoped = text == "OUT_DIR"
            || (text.starts_with("CARGO_") && text != "CARGO_HOME" && text != "CARGO_TARGET_DIR");
        if crate_scoped {
            command.env_remove(&name);
        }
    }
    command
        .env("BOSUN_CACHE_DIR", cache.path())
        .env_remove("RUST_LOG")
        .output()
        .expect("bosun runs")
}

#[test]
fn build_reports_the_component_as_the_engine_loaded_it() {
    let report = yaml(&bosun_build(&[&sample("examples/cnat"), "-o", "json"]));
    let component = PathBuf::from(report["component"].as_str().unwrap());
    assert!(
        component.ends_with("wasm32-wasip2/guest/cnat.wasm"),
        "built with the workspace's guest profile: {}",
        component.display()
    );
    let bytes = std::fs::read(&component).unwrap();
    assert_eq!(report["size"], bytes.len());
    use sha2::Digest as _;
    assert_eq!(report["sha256"], hex::encode(sha2::Sha256::digest(&bytes)));
    assert!(
        bytes.len() < 1 << 20,
        "fits a ConfigMap: {} bytes",
        bytes.len()
    );
    assert_eq!(report["module"]["name"], "cnat");
    assert_eq!(report["contract"], "bosun:reconciler@0.2.0");
    assert_eq!(report["permissions"]["reconciles"]["kind"], "At");
    assert_eq!(report["permissions"]["owns"][0]["kind"], "Pod");
}

#[test]
fn build_of_a_directory_without_a_crate_says_how_to_make_one() {
    let empty = tempfile::tempdir().unwrap();
    let out = bosun_build(&[&empty.path().display().to_string()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("bosun new"), "{}", stderr(&out));
}

/// A loopback HTTP server answering every request `200 hello`, counting
/// the requests it read. Stops with the process.
fn hello_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let served = std::sync::Arc::new(AtomicUsize::new(0));
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
            count.fetch_add(1, Ordering::SeqCst);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
            );
        }
    });
    (origin, served)
}

#[test]
fn reconcile_sends_http_only_to_origins_given_with_allow_http() {
    use std::sync::atomic::Ordering;
    let (origin, served) = hello_server();
    let module = bosun_testenv::guests::misbehave_reaching(&[&origin])
        .unwrap()
        .display()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let caller = write(
        dir.path(),
        "caller.yaml",
        &json!({"apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave",
                "metadata": {"name": "caller", "namespace": "default"},
                "spec": {"mode": "http", "url": format!("{origin}/hello")}}),
    );

    // Declared is not enough: without --allow-http the request is refused
    // at once, and the guest is told so.
    let refused = yaml(&bosun(&["reconcile", &module, "--object", &caller]));
    let outcome = &refused["status"]["http"];
    assert!(outcome["error"].is_string(), "not refused: {refused}");
    assert!(outcome["status"].is_null(), "{refused}");
    assert_eq!(
        served.load(Ordering::SeqCst),
        0,
        "a refused request went out"
    );

    // Allowed: it reaches the server, and the guest reads the answer.
    let allowed = yaml(&bosun(&[
        "reconcile",
        &module,
        "--object",
        &caller,
        "--allow-http",
        &origin,
    ]));
    let outcome = &allowed["status"]["http"];
    assert_eq!(outcome["status"], 200, "{allowed}");
    assert_eq!(outcome["bytes"], 5, "{allowed}");
    assert_eq!(served.load(Ordering::SeqCst), 1);
}

#[test]
fn diff_prints_what_the_new_version_would_write_differently_and_exits_by_it() {
    let next = bosun_testenv::guests::webapp_next()
        .unwrap()
        .display()
        .to_string();
    let object = sample("examples/webapp/samples/webapp.yaml");
    let out = bosun(&["diff", &guest("webapp"), &next, "--object", &object]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "changed Deployment.apps/default/shop/metadata/labels/examples.bosun.dev~1revision: (none) → \"2\""
        ),
        "{text}"
    );
    assert!(
        text.contains("1 objects compared: 0 identical, 1 differing, 0 failing"),
        "{text}"
    );

    let same = bosun(&[
        "diff",
        &guest("webapp"),
        &guest("webapp"),
        "--object",
        &object,
    ]);
    assert_eq!(same.status.code(), Some(0), "{}", stderr(&same));

    let other_kind = bosun(&[
        "diff",
        &guest("webapp"),
        &guest("cnat"),
        "--object",
        &object,
    ]);
    assert_eq!(other_kind.status.code(), Some(2));
    assert!(
        stderr(&other_kind).contains("different kinds"),
        "{}",
        stderr(&other_kind)
    );
}
