//! The engine's side of the flight recorder: its requests and outcomes in
//! the recording's terms, and back.

use serde_json::{Value, json};

use super::bindings::{
    Event, EventType, FinalizeResponse, ReconcileError, Request, Response, Trigger,
};
use super::{CallError, Module, Outcome};
use crate::recorder::format::{ModuleId, RecordedOutcome, RecordedRequest};

/// `module`'s identity in a recording.
pub fn module_id(module: &Module) -> ModuleId {
    ModuleId {
        name: module.meta().name.clone(),
        version: module.meta().version.clone(),
        sha256: module.digest().to_owned(),
    }
}

/// `request` as a recording keeps it.
pub fn recorded_request(request: &Request) -> RecordedRequest {
    RecordedRequest {
        object: request.object.clone(),
        children: request.children.clone(),
        settings: request.settings.clone(),
        trigger: trigger_name(request.trigger).to_owned(),
        attempt: request.attempt,
    }
}

/// The request a recording holds; the error names a trigger this host
/// does not know.
pub fn request_from(recorded: &RecordedRequest) -> Result<Request, String> {
    let trigger = TRIGGERS
        .iter()
        .find(|(_, name)| *name == recorded.trigger)
        .map(|(trigger, _)| *trigger)
        .ok_or_else(|| {
            format!(
                "the recording's trigger {:?} is not one bosun knows",
                recorded.trigger
            )
        })?;
    Ok(Request {
        object: recorded.object.clone(),
        children: recorded.children.clone(),
        settings: recorded.settings.clone(),
        trigger,
        attempt: recorded.attempt,
    })
}

const TRIGGERS: [(Trigger, &str); 8] = [
    (Trigger::ObjectChanged, "object-changed"),
    (Trigger::ChildChanged, "child-changed"),
    (Trigger::ReadChanged, "read-changed"),
    (Trigger::Requeue, "requeue"),
    (Trigger::Retry, "retry"),
    (Trigger::Resync, "resync"),
    (Trigger::ModuleChanged, "module-changed"),
    (Trigger::Manual, "manual"),
];

fn trigger_name(trigger: Trigger) -> &'static str {
    TRIGGERS
        .iter()
        .find(|(known, _)| *known == trigger)
        .map_or("manual", |(_, name)| name)
}

/// A reconcile's end as a recording keeps it.
pub fn reconcile_outcome(result: &Result<Outcome<Response>, CallError>) -> RecordedOutcome {
    outcome(result, |response| {
        json!({
            "children": response.children.iter().map(|c| parsed(c)).collect::<Vec<_>>(),
            "status": response.status.as_deref().map(parsed),
            "requeueAfterMs": response.requeue_after_ms,
            "events": events(&response.events),
        })
    })
}

/// A finalize's end as a recording keeps it.
pub fn finalize_outcome(result: &Result<Outcome<FinalizeResponse>, CallError>) -> RecordedOutcome {
    outcome(result, |response| {
        json!({
            "done": response.done,
            "requeueAfterMs": response.requeue_after_ms,
            "events": events(&response.events),
        })
    })
}

fn outcome<T>(
    result: &Result<Outcome<T>, CallError>,
    response: impl FnOnce(&T) -> Value,
) -> RecordedOutcome {
    match result {
        Ok(Ok(answer)) => RecordedOutcome::Response(response(answer)),
        Ok(Err(error)) => {
            let (class, failure) = match error {
                ReconcileError::Retryable(failure) => ("retryable", failure),
                ReconcileError::Permanent(failure) => ("permanent", failure),
            };
            RecordedOutcome::Error {
                class: class.to_owned(),
                reason: failure.reason.clone(),
                message: failure.message.clone(),
            }
        }
        Err(error) => RecordedOutcome::Failed(error.to_string()),
    }
}

/// JSON text as a value when it parses (so a diff reads by field), else
/// the text itself.
fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn events(events: &[Event]) -> Value {
    events
        .iter()
        .map(|event| {
            json!({
                "type": match event.event_type {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                },
                "reason": event.reason,
                "note": event.note,
                "action": event.action,
            })
        })
        .collect()
}
