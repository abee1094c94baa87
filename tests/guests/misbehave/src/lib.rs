//! A reconciler that misbehaves on request, for the host's tests.
//!
//! It reconciles ConfigMaps and declares that it owns ConfigMaps. What it
//! does is chosen by the primary object's `data.mode` (or, failing that,
//! the module settings' `mode`):
//!
//! | mode | what it does |
//! |---|---|
//! | (none) | desires nothing (so its own children, and every other ConfigMap in a cluster, are left alone) |
//! | `ok` | desires a ConfigMap `<name>-child` |
//! | `loop` | spins forever |
//! | `slow` | spins for 1.5 s (within the default 2 s deadline), then desires `<name>-child` |
//! | `hog` | allocates memory without bound |
//! | `panic` | panics |
//! | `garbage` | returns a child that is not JSON |
//! | `no-kind` | returns a child without apiVersion and kind |
//! | `trespass` | returns a Secret, a kind it never declared |
//! | `other-namespace` | returns a child in namespace `kube-system` |
//! | `forge-owner` | returns a child whose controller ownerReference names another object |
//! | `flood` | returns a 32 MiB status |
//! | `read-secret` | reads a Secret, which it never declared, and reports the answer |
//! | `read-around` | lists ConfigMaps labelled `team=a`, and reads one in `kube-system`; reports both in its status |
//! | `retry` / `permanent` | returns that kind of error |
//!
//! It uses the raw bindings rather than the typed SDK, because the typed SDK
//! cannot produce most of these.

use bosun_sdk::bindings::Guest;
use bosun_sdk::bindings::bosun::reconciler::host;
use bosun_sdk::bindings::bosun::reconciler::types::{
    ApiKind, Failure, FinalizeResponse, ModuleInfo, ReconcileError, Request, Response, Scope,
};
use serde_json::{Value, json};

/// The misbehaving component.
pub struct Misbehave;

fn config_map_kind() -> ApiKind {
    ApiKind {
        group: String::new(),
        version: "v1".into(),
        kind: "ConfigMap".into(),
        plural: "configmaps".into(),
        scope: Scope::Namespaced,
    }
}

impl Guest for Misbehave {
    fn metadata() -> ModuleInfo {
        ModuleInfo {
            name: "misbehave".into(),
            version: "0.1.0".into(),
            primary: config_map_kind(),
            owns: vec![config_map_kind()],
            reads: vec![],
            finalizer: None,
        }
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
            .pointer("/data/mode")
            .or_else(|| settings.get("mode"))
            .and_then(Value::as_str)
            .unwrap_or("none")
            .to_owned();
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("unnamed");
        let child = |name: String| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"from": "misbehave"}});
        let respond = |children: Vec<Value>| {
            Ok(Response {
                children: children.iter().map(Value::to_string).collect(),
                status: None,
                requeue_after_ms: None,
                events: vec![],
            })
        };
        match mode.as_str() {
            "none" => respond(vec![]),
            "ok" => respond(vec![child(format!("{name}-child"))]),
            "loop" => {
                let mut spins: u64 = 0;
                loop {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
            }
            "slow" => {
                // Busy: a reconcile that is in flight for a while, for the
                // graceful-shutdown test. The WASI clock is wall time.
                let started = std::time::Instant::now();
                while started.elapsed() < std::time::Duration::from_millis(1500) {
                    std::hint::black_box(());
                }
                respond(vec![child(format!("{name}-child"))])
            }
            "hog" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(std::hint::black_box(vec![0xA5; 1 << 20]));
                }
            }
            "panic" => panic!("deliberate panic for {name}"),
            "garbage" => Ok(Response {
                children: vec!["{this is not json".into()],
                status: Some("neither is this".into()),
                requeue_after_ms: None,
                events: vec![],
            }),
            "no-kind" => respond(vec![json!({"metadata": {"name": format!("{name}-child")}})]),
            "trespass" => respond(vec![json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": format!("{name}-stolen")},
                "stringData": {"token": "hunter2"}
            })]),
            "other-namespace" => {
                let mut escaped = child(format!("{name}-child"));
                escaped["metadata"]["namespace"] = json!("kube-system");
                respond(vec![escaped])
            }
            "forge-owner" => {
                let mut forged = child(format!("{name}-child"));
                forged["metadata"]["ownerReferences"] = json!([{
                    "apiVersion": "v1", "kind": "ConfigMap", "name": "someone-else",
                    "uid": "00000000-0000-0000-0000-000000000000", "controller": true
                }]);
                respond(vec![forged])
            }
            "flood" => Ok(Response {
                children: vec![],
                status: Some(format!("{{\"blob\":\"{}\"}}", "x".repeat(32 << 20))),
                requeue_after_ms: None,
                events: vec![],
            }),
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
                Ok(Response {
                    children: vec![],
                    status: Some(
                        json!({"listed": listed, "elsewhere": format!("{elsewhere:?}")})
                            .to_string(),
                    ),
                    requeue_after_ms: None,
                    events: vec![],
                })
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

fn permanent(message: String) -> ReconcileError {
    ReconcileError::Permanent(Failure {
        reason: "Misbehave".into(),
        message,
    })
}

#[cfg(target_arch = "wasm32")]
bosun_sdk::bindings::__export_reconciler_world!(Misbehave with_types_in bosun_sdk::bindings);
