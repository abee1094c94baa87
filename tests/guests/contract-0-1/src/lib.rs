//! A reconciler built against `bosun:reconciler@0.1.0` as released, from
//! its frozen copy in `wit/versions/0.1.0/`, with `wit_bindgen` directly:
//! what a module someone built before 0.2.0 looks like to a host. The
//! host's tests load it to check that 0.1.0 is still served.
//!
//! It reconciles `Misbehave` objects (the misbehave guest's CRD, whose
//! status keeps anything) into a ConfigMap `<name>-echo`, and reports in
//! its status what it saw: the trigger as it arrived, the attempt, and what
//! it read through the host. Its reads: `get-object` of the ConfigMap
//! `<name>-source` in the object's namespace (its `data.greeting`, or
//! `absent`), and `list-objects` of the ConfigMaps labelled
//! `tests.bosun.dev/source` there. `spec.mode` `permanent` or `retryable`
//! makes it answer with that error instead.

// The generated canonical-ABI shims take a parameter per flattened field.
#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({
    world: "reconciler",
    path: "../../../wit/versions/0.1.0",
});

use bosun::reconciler::host::{self, LogLevel};
// The world's own `use` brings module-info, request, response,
// finalize-response and reconcile-error to the crate root.
use bosun::reconciler::types::{ApiKind, Event, EventType, Failure, Scope, Trigger};
use serde_json::{Value, json};

/// The label `list-objects` selects on.
const SOURCE_LABEL: &str = "tests.bosun.dev/source";

struct Contract01;

fn kind(group: &str, kind: &str, plural: &str) -> ApiKind {
    ApiKind {
        group: group.into(),
        version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
        scope: Scope::Namespaced,
    }
}

/// The trigger as 0.1.0 names it in WIT.
fn trigger_name(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::ObjectChanged => "object-changed",
        Trigger::ChildChanged => "child-changed",
        Trigger::Requeue => "requeue",
        Trigger::Retry => "retry",
        Trigger::Resync => "resync",
        Trigger::ModuleChanged => "module-changed",
        Trigger::Manual => "manual",
    }
}

fn failure(reason: &str, message: impl Into<String>) -> Failure {
    Failure {
        reason: reason.into(),
        message: message.into(),
    }
}

fn event(reason: &str, note: String) -> Event {
    Event {
        event_type: EventType::Normal,
        reason: reason.into(),
        note,
        action: "Reconcile".into(),
    }
}

impl Guest for Contract01 {
    fn metadata() -> ModuleInfo {
        ModuleInfo {
            name: "contract-0-1".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            primary: kind("tests.bosun.dev", "Misbehave", "misbehaves"),
            owns: vec![kind("", "ConfigMap", "configmaps")],
            reads: vec![],
            finalizer: None,
            http_origins: vec![],
        }
    }

    fn reconcile(request: Request) -> Result<Response, ReconcileError> {
        let object: Value = serde_json::from_str(&request.object)
            .map_err(|e| ReconcileError::Permanent(failure("InvalidObject", e.to_string())))?;
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let namespace = object["metadata"]["namespace"].as_str();
        let trigger = trigger_name(request.trigger);
        host::log(
            LogLevel::Info,
            &format!("contract-0-1 reconciling {name} on {trigger}"),
        );
        match object["spec"]["mode"].as_str() {
            Some("permanent") => {
                return Err(ReconcileError::Permanent(failure(
                    "AskedToFail",
                    "spec.mode asks for a permanent error",
                )));
            }
            Some("retryable") => {
                return Err(ReconcileError::Retryable(failure(
                    "AskedToRetry",
                    "spec.mode asks for a retryable error",
                )));
            }
            _ => {}
        }

        let source = host::get_object("v1", "ConfigMap", namespace, &format!("{name}-source"))
            .map_err(|e| ReconcileError::Retryable(failure("ReadFailed", e)))?;
        let read = match source {
            None => "absent".to_owned(),
            Some(json) => serde_json::from_str::<Value>(&json)
                .ok()
                .and_then(|cm| cm["data"]["greeting"].as_str().map(str::to_owned))
                .unwrap_or_default(),
        };
        let listed: Vec<String> =
            host::list_objects("v1", "ConfigMap", namespace, Some(SOURCE_LABEL))
                .map_err(|e| ReconcileError::Retryable(failure("ListFailed", e)))?
                .iter()
                .filter_map(|json| serde_json::from_str::<Value>(json).ok())
                .filter_map(|cm| cm["metadata"]["name"].as_str().map(str::to_owned))
                .collect();

        let child = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": format!("{name}-echo")},
            "data": {"read": read},
        });
        let status = json!({
            "contract": "0.1.0",
            "trigger": trigger,
            "attempt": request.attempt,
            "read": read,
            "listed": listed,
        });
        Ok(Response {
            children: vec![child.to_string()],
            status: Some(status.to_string()),
            requeue_after_ms: None,
            events: vec![event("Echoed", format!("read {read:?} on {trigger}"))],
        })
    }

    fn finalize(request: Request) -> Result<FinalizeResponse, ReconcileError> {
        Ok(FinalizeResponse {
            done: request.children.is_empty(),
            requeue_after_ms: Some(1000),
            events: vec![event(
                "Finalizing",
                format!("{} children left", request.children.len()),
            )],
        })
    }
}

export!(Contract01);
