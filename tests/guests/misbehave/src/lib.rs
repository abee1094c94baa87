//! A reconciler that misbehaves on request, for the host's tests.
//!
//! It reconciles `Misbehave` objects (`tests.bosun.dev/v1`, CRD in
//! `crd.yaml`) and owns ConfigMaps. What it does is chosen by the object's
//! `spec.mode` (or, failing that, the module settings' `mode`):
//!
//! | mode | what it does |
//! |---|---|
//! | (none) | desires nothing |
//! | `ok` | desires a ConfigMap `<name>-child` |
//! | `named` | desires a ConfigMap named `spec.target` (a name someone else may hold) |
//! | `loop` | spins forever |
//! | `slow` | spins for 1.5 s (within the default 2 s deadline), then desires `<name>-child` |
//! | `sleep` | sleeps (a blocking WASI call) for `spec.seconds` (default 10) |
//! | `poll-far` | polls a pollable an hour away |
//! | `hog` | allocates memory without bound |
//! | `random-flood` | asks the host for 64 MiB of random bytes |
//! | `panic` | panics |
//! | `garbage` | returns a child that is not JSON |
//! | `no-kind` | returns a child without apiVersion and kind |
//! | `trespass` | returns a Secret, a kind it never declared |
//! | `other-namespace` | returns a child in namespace `kube-system` |
//! | `forge-owner` | returns a child whose controller ownerReference names another object |
//! | `child-finalizer` | returns a child carrying a finalizer |
//! | `flood` | returns a 32 MiB status |
//! | `many-children` | returns 100,000 tiny children |
//! | `many-events` | returns 100,000 tiny events |
//! | `many-logs` | logs 100,000 lines, then desires `<name>-child` |
//! | `long-error` | fails permanently with a 1 MiB message |
//! | `invalid-child` | desires `<name>-child` with a data key the API server refuses (422 Invalid) |
//! | `zero-requeue` | desires `<name>-child` and asks to be requeued after 0 ms |
//! | `tick` | writes the current time to its status, so every write triggers the next reconcile |
//! | `tick-flood` | as `tick`, and returns 32 events with reasons never used before and asks to be requeued after 250 ms |
//! | `status` | writes `{"phase": "ok"}` to its status |
//! | `writer` | desires `<name>-child` and writes `{"writer": <settings' replica>}` to its status: which sharded replica wrote it |
//! | `read-secret` | reads a Secret, which it never declared, and reports the answer |
//! | `read-around` | lists ConfigMaps labelled `team=a`, and reads one in `kube-system`; reports both in its status |
//! | `select-flood` | lists ConfigMaps with a 60 MB label selector (`!x,` twenty million times); reports the error it got, cut to 256 bytes |
//! | `list-all` | lists every ConfigMap in its namespace; reports how many |
//! | `read-many` | reads 20,000 ConfigMaps by name (`x-0`…) and lists with 2,000 selectors (`n=0`…), all in its namespace; reports the count in its status |
//! | `retry` / `permanent` | returns that kind of error |
//! | `http` | GETs `spec.url` through `wasi:http` (following one redirect itself when `spec.follow` is true) and writes what came back to its status: `http.status`, `http.bytes`, `http.body` (the first 256 bytes), `http.error`, `http.headersSent` (its own request's header names), `http.follow` |
//!
//! The HTTP origins it declares are patched in the same way after
//! `MISBEHAVE-ORIGINS=` (space-separated; none by default):
//! `bosun_testenv::guests::misbehave_reaching`.
//!
//! What it *declares* is chosen when the component is built into a test
//! fixture: the bytes after `MISBEHAVE-VARIANT=` in its data are patched in
//! place (`bosun_testenv::guests::misbehave_declaring`), so one build gives
//! every hostile declaration the host must refuse:
//!
//! | variant | declares |
//! |---|---|
//! | `default` | module `misbehave`: reconciles Misbehave, owns ConfigMaps |
//! | `plural` | also reads ConfigMaps, with the plural `secrets` |
//! | `scope` | also reads ConfigMaps, as a cluster-scoped kind |
//! | `unknown` | also owns a kind the API server does not serve |
//! | `pods` | module `pod-holder`: reconciles every Pod and holds a finalizer on it |
//! | `twin` | module `twin`: the same primary kind as `misbehave` |
//! | `slow-metadata` | sleeps ten seconds in `metadata` |
//! | `spin-metadata` | spins forever in `metadata` |
//! | `owns-itself` | module `owns-itself`: also owns Misbehave, its own primary kind |
//! | `finalizer` | module `holder`: reconciles Tidy, holds finalizer `tests.bosun.dev/hold` |
//! | `finalizer-twin` | module `holder-twin`: reconciles Document, holds the same finalizer |
//! | `read-cluster` | module `read-cluster`: reconciles Foo, reads Namespaces (cluster-scoped) |
//! | `long-version` | module `long-version`: a 32 KiB version string |
//!
//! It uses the raw bindings rather than the typed SDK, because the typed SDK
//! cannot produce most of these.

use bosun_sdk::bindings::Guest;
use bosun_sdk::bindings::bosun::reconciler::host;
use bosun_sdk::bindings::bosun::reconciler::types::{
    ApiKind, Event, EventType, Failure, FinalizeResponse, ModuleInfo, ReconcileError, Request,
    Response, Scope,
};
use serde_json::{Value, json};

/// The misbehaving component.
pub struct Misbehave;

/// The declaration variant, patched into the built component by the tests.
#[used]
static MISBEHAVE_VARIANT: [u8; 48] = *b"MISBEHAVE-VARIANT=default                       ";

/// The HTTP origins it declares, patched into the built component by the tests.
#[used]
static MISBEHAVE_ORIGINS: [u8; 274] = *b"MISBEHAVE-ORIGINS=                                                                                                                                                                                                                                                                ";

fn origins() -> Vec<String> {
    // SAFETY: a plain read of an initialised static.
    let bytes = unsafe { core::ptr::read_volatile(&MISBEHAVE_ORIGINS) };
    String::from_utf8_lossy(&bytes["MISBEHAVE-ORIGINS=".len()..])
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The variant name, read at run time so the compiler cannot fold it.
fn variant() -> String {
    // SAFETY: a plain read of an initialised static.
    let bytes = unsafe { core::ptr::read_volatile(&MISBEHAVE_VARIANT) };
    String::from_utf8_lossy(&bytes["MISBEHAVE-VARIANT=".len()..])
        .trim()
        .to_owned()
}

fn kind(group: &str, version: &str, kind: &str, plural: &str, scope: Scope) -> ApiKind {
    ApiKind {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        scope,
    }
}

fn misbehave_kind() -> ApiKind {
    kind(
        "tests.bosun.dev",
        "v1",
        "Misbehave",
        "misbehaves",
        Scope::Namespaced,
    )
}

/// The finalizer both `finalizer` variants declare.
const SHARED_FINALIZER: &str = "tests.bosun.dev/hold";

fn config_map_kind() -> ApiKind {
    kind("", "v1", "ConfigMap", "configmaps", Scope::Namespaced)
}

impl Guest for Misbehave {
    fn metadata() -> ModuleInfo {
        let mut info = ModuleInfo {
            name: "misbehave".into(),
            version: "0.1.0".into(),
            primary: misbehave_kind(),
            owns: vec![config_map_kind()],
            reads: vec![],
            finalizer: None,
            http_origins: origins(),
        };
        match variant().as_str() {
            "plural" => {
                info.name = "misbehave-plural".into();
                info.reads
                    .push(kind("", "v1", "ConfigMap", "secrets", Scope::Namespaced));
            }
            "scope" => {
                info.name = "misbehave-scope".into();
                info.reads
                    .push(kind("", "v1", "ConfigMap", "configmaps", Scope::Cluster));
            }
            "unknown" => {
                info.name = "misbehave-unknown".into();
                info.owns.push(kind(
                    "nowhere.example.com",
                    "v1",
                    "Nonexistent",
                    "nonexistents",
                    Scope::Namespaced,
                ));
            }
            "pods" => {
                info.name = "pod-holder".into();
                info.primary = kind("", "v1", "Pod", "pods", Scope::Namespaced);
                info.owns = vec![];
                info.finalizer = Some("example.com/hold".into());
            }
            "twin" => info.name = "twin".into(),
            "owns-itself" => {
                info.name = "owns-itself".into();
                info.owns.push(misbehave_kind());
            }
            "finalizer" => {
                info.name = "holder".into();
                info.primary = kind("tests.bosun.dev", "v1", "Tidy", "tidies", Scope::Namespaced);
                info.owns = vec![];
                info.finalizer = Some(SHARED_FINALIZER.into());
            }
            "finalizer-twin" => {
                info.name = "holder-twin".into();
                info.primary = kind("kube.rs", "v1", "Document", "documents", Scope::Namespaced);
                info.owns = vec![];
                info.finalizer = Some(SHARED_FINALIZER.into());
            }
            "read-cluster" => {
                info.name = "read-cluster".into();
                info.primary = kind(
                    "samplecontroller.k8s.io",
                    "v1alpha1",
                    "Foo",
                    "foos",
                    Scope::Namespaced,
                );
                info.reads
                    .push(kind("", "v1", "Namespace", "namespaces", Scope::Cluster));
            }
            "long-version" => {
                info.name = "long-version".into();
                info.version = format!("1.0.0+{}", "9".repeat(32 << 10));
            }
            "slow-metadata" => std::thread::sleep(std::time::Duration::from_secs(10)),
            "spin-metadata" => spin(),
            _ => {}
        }
        info
    }

    fn reconcile(request: Request) -> Result<Response, ReconcileError> {
        let object: Value =
            serde_json::from_str(&request.object).map_err(|e| permanent(e.to_string()))?;
        let settings: Value = request
            .settings
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null);
        let mode = object
            .pointer("/spec/mode")
            .or_else(|| settings.get("mode"))
            .and_then(Value::as_str)
            .unwrap_or("none")
            .to_owned();
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("unnamed")
            .to_owned();
        let child = |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"from": "misbehave"}});
        let own_child = child(&format!("{name}-child"));
        match mode.as_str() {
            "none" => respond(vec![], None),
            "ok" => respond(vec![own_child], None),
            "named" => {
                let target = object
                    .pointer("/spec/target")
                    .and_then(Value::as_str)
                    .unwrap_or("target");
                respond(vec![child(target)], None)
            }
            "loop" => spin(),
            "slow" => {
                // Busy: a reconcile that is in flight for a while, for the
                // graceful-shutdown test. The WASI clock is wall time.
                let started = std::time::Instant::now();
                while started.elapsed() < std::time::Duration::from_millis(1500) {
                    std::hint::black_box(());
                }
                respond(vec![own_child], None)
            }
            "sleep" => {
                let seconds = object
                    .pointer("/spec/seconds")
                    .and_then(Value::as_u64)
                    .unwrap_or(10);
                std::thread::sleep(std::time::Duration::from_secs(seconds));
                respond(vec![own_child], None)
            }
            "poll-far" => {
                let far = wasip2::clocks::monotonic_clock::subscribe_duration(3_600_000_000_000);
                wasip2::io::poll::poll(&[&far]);
                respond(vec![own_child], None)
            }
            "hog" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(std::hint::black_box(vec![0xA5; 1 << 20]));
                }
            }
            "random-flood" => {
                let bytes = wasip2::random::random::get_random_bytes(64 << 20);
                respond(vec![], Some(json!({"random": bytes.len()})))
            }
            "panic" => panic!("deliberate panic for {name}"),
            "garbage" => Ok(Response {
                children: vec!["{this is not json".into()],
                status: Some("neither is this".into()),
                requeue_after_ms: None,
                events: vec![],
            }),
            "no-kind" => respond(
                vec![json!({"metadata": {"name": format!("{name}-child")}})],
                None,
            ),
            "trespass" => respond(
                vec![json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": format!("{name}-stolen")},
                    "stringData": {"token": "hunter2"}
                })],
                None,
            ),
            "other-namespace" => {
                let mut escaped = own_child;
                escaped["metadata"]["namespace"] = json!("kube-system");
                respond(vec![escaped], None)
            }
            "forge-owner" => {
                let mut forged = own_child;
                forged["metadata"]["ownerReferences"] = json!([{
                    "apiVersion": "v1", "kind": "ConfigMap", "name": "someone-else",
                    "uid": "00000000-0000-0000-0000-000000000000", "controller": true
                }]);
                respond(vec![forged], None)
            }
            "child-finalizer" => {
                let mut held = own_child;
                held["metadata"]["finalizers"] = json!(["example.com/never-let-go"]);
                respond(vec![held], None)
            }
            "flood" => Ok(Response {
                children: vec![],
                status: Some(format!("{{\"blob\":\"{}\"}}", "x".repeat(32 << 20))),
                requeue_after_ms: None,
                events: vec![],
            }),
            "many-children" => Ok(Response {
                children: (0..100_000)
                    .map(|i| child(&format!("{name}-{i}")).to_string())
                    .collect(),
                status: None,
                requeue_after_ms: None,
                events: vec![],
            }),
            "many-events" => Ok(Response {
                children: vec![],
                status: None,
                requeue_after_ms: None,
                events: (0..100_000)
                    .map(|_| Event {
                        event_type: EventType::Normal,
                        reason: "Spam".into(),
                        note: String::new(),
                        action: "Spam".into(),
                    })
                    .collect(),
            }),
            "many-logs" => {
                for i in 0..100_000 {
                    host::log(host::LogLevel::Info, &format!("line {i}"));
                }
                respond(vec![own_child], None)
            }
            "invalid-child" => {
                // Only the API server checks ConfigMap data keys: a key
                // must be alphanumerics, `-`, `_` or `.`.
                let mut invalid = own_child;
                invalid["data"] = json!({"not a valid key!": "refused"});
                respond(vec![invalid], None)
            }
            "long-error" => Err(permanent("a very long story ".repeat(64 << 10))),
            "zero-requeue" => Ok(Response {
                children: vec![own_child.to_string()],
                status: None,
                requeue_after_ms: Some(0),
                events: vec![],
            }),
            "tick" => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default();
                respond(vec![], Some(json!({"tick": now.to_string()})))
            }
            "tick-flood" => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default();
                let events = (0..32)
                    .map(|at| Event {
                        event_type: EventType::Normal,
                        reason: format!("Tick{now}x{at}"),
                        note: "a reason never used before".into(),
                        action: "Tick".into(),
                    })
                    .collect();
                Ok(Response {
                    children: vec![],
                    status: Some(json!({"tick": now.to_string()}).to_string()),
                    requeue_after_ms: Some(250),
                    events,
                })
            }
            "status" => respond(vec![], Some(json!({"phase": "ok"}))),
            "writer" => respond(
                vec![own_child],
                Some(json!({"writer": settings.get("replica").cloned().unwrap_or(Value::Null)})),
            ),
            "http" => {
                let url = object
                    .pointer("/spec/url")
                    .and_then(Value::as_str)
                    .unwrap_or("http://unset.invalid/");
                let follow = object.pointer("/spec/follow").and_then(Value::as_bool) == Some(true);
                let mut outcome = http_get(url);
                if follow && let Some(location) = outcome.get("location").and_then(Value::as_str) {
                    let next = http_get(location);
                    outcome["follow"] = next;
                }
                respond(vec![], Some(json!({"http": outcome})))
            }
            "read-secret" => {
                let answer = host::get_object("v1", "Secret", None, "anything");
                Err(ReconcileError::Retryable(Failure {
                    reason: "ReadAttempted".into(),
                    message: format!("{answer:?}"),
                }))
            }
            "read-around" => {
                let listed: Vec<String> =
                    host::list_objects("v1", "ConfigMap", None, Some("team=a"))
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|json| serde_json::from_str::<Value>(json).ok())
                        .map(|o| {
                            format!(
                                "{}/{}",
                                o["metadata"]["namespace"].as_str().unwrap_or(""),
                                o["metadata"]["name"].as_str().unwrap_or("")
                            )
                        })
                        .collect();
                let elsewhere =
                    host::get_object("v1", "ConfigMap", Some("kube-system"), "secrets-in-here");
                respond(
                    vec![],
                    Some(json!({"listed": listed, "elsewhere": format!("{elsewhere:?}")})),
                )
            }
            "select-flood" => {
                let selector = "!x,".repeat(20_000_000);
                let answer = host::list_objects("v1", "ConfigMap", None, Some(&selector));
                drop(selector);
                let error = match answer {
                    Ok(listed) => format!("listed {}", listed.len()),
                    Err(error) => error.chars().take(256).collect(),
                };
                respond(vec![], Some(json!({"error": error})))
            }
            "list-all" => {
                let listed = host::list_objects("v1", "ConfigMap", None, None);
                respond(
                    vec![],
                    Some(
                        json!({"listed": listed.map(|l| l.len()).map_err(|e| e.chars().take(256).collect::<String>())}),
                    ),
                )
            }
            "read-many" => {
                let mut read = 0u32;
                for at in 0..20_000 {
                    if host::get_object("v1", "ConfigMap", None, &format!("x-{at}")).is_ok() {
                        read += 1;
                    }
                }
                for at in 0..2_000 {
                    let selector = format!("n={at}");
                    if host::list_objects("v1", "ConfigMap", None, Some(&selector)).is_ok() {
                        read += 1;
                    }
                }
                respond(vec![], Some(json!({"read": read})))
            }
            "retry" => Err(ReconcileError::Retryable(Failure {
                reason: "NotYet".into(),
                message: "asked to retry".into(),
            })),
            "permanent" => Err(permanent("asked to fail for good".into())),
            other => Err(permanent(format!("unknown mode {other:?}"))),
        }
    }

    fn finalize(_request: Request) -> Result<FinalizeResponse, ReconcileError> {
        Ok(FinalizeResponse {
            done: true,
            requeue_after_ms: None,
            events: vec![],
        })
    }
}

fn respond(children: Vec<Value>, status: Option<Value>) -> Result<Response, ReconcileError> {
    Ok(Response {
        children: children.iter().map(Value::to_string).collect(),
        status: status.map(|s| s.to_string()),
        requeue_after_ms: None,
        events: vec![],
    })
}

fn spin() -> ! {
    let mut spins: u64 = 0;
    loop {
        spins = std::hint::black_box(spins.wrapping_add(1));
    }
}

fn permanent(message: String) -> ReconcileError {
    ReconcileError::Permanent(Failure {
        reason: "Misbehave".into(),
        message,
    })
}

#[cfg(target_arch = "wasm32")]
bosun_sdk::bindings::__export_reconciler_world!(Misbehave with_types_in bosun_sdk::bindings);

/// One GET through `wasi:http/outgoing-handler`, reported as JSON.
fn http_get(url: &str) -> Value {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, OutgoingRequest, Scheme as HttpScheme};
    use wasip2::io::streams::StreamError;

    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_scheme(Some(&if scheme == "https" {
        HttpScheme::Https
    } else {
        HttpScheme::Http
    }));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path));
    // What this guest can see of its own request: never a header the host
    // adds after it lets go.
    let sent: Vec<String> = request
        .headers()
        .entries()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let future = match outgoing_handler::handle(request, None) {
        Ok(future) => future,
        Err(error) => return json!({"error": code_name(&error), "headersSent": sent}),
    };
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(error))) => return json!({"error": code_name(&error), "headersSent": sent}),
        other => return json!({"error": format!("no response: {other:?}"), "headersSent": sent}),
    };
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let mut outcome = json!({"status": status, "headersSent": sent});
    if let Some(location) = location {
        outcome["location"] = json!(location);
    }
    let Ok(body) = response.consume() else {
        return outcome;
    };
    let Ok(stream) = body.stream() else {
        return outcome;
    };
    let mut total = 0u64;
    let mut head = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                total += chunk.len() as u64;
                if head.len() < 256 {
                    head.extend_from_slice(&chunk[..chunk.len().min(256 - head.len())]);
                }
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(error)) => {
                // The host's cut arrives as an io error carrying an HTTP
                // error code; anything else is reported as the host worded it.
                outcome["error"] = json!(match wasip2::http::types::http_error_code(&error) {
                    Some(code) => code_name(&code),
                    None => error.to_debug_string(),
                });
                break;
            }
        }
    }
    outcome["bytes"] = json!(total);
    outcome["body"] = json!(String::from_utf8_lossy(&head));
    outcome
}

/// A wasi:http error code by its WIT case name (`HttpRequestDenied`), as
/// the tests compare it.
fn code_name(code: &wasip2::http::types::ErrorCode) -> String {
    let debug = format!("{code:?}");
    debug
        .strip_prefix("ErrorCode::")
        .unwrap_or(&debug)
        .to_owned()
}
