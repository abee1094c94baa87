//! The engine's side of the flight recorder: its requests and outcomes in
//! the recording's terms, and back; and the recorded calls a controller
//! makes, offered to the cluster's store.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::bindings::{
    Event, EventType, FinalizeResponse, ReconcileError, Request, Response, Trigger,
};
use super::{CallContext, CallError, Module, Outcome};
use crate::recorder::format::{
    CallKind, ModuleId, RecordedLimits, RecordedOutcome, RecordedRequest,
};
use crate::recorder::store::RecordStore;
use crate::recorder::{Finish, Recorder, Recording, Tap};

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
            "events": events_json(&response.events),
        })
    })
}

/// A finalize's end as a recording keeps it.
pub fn finalize_outcome(result: &Result<Outcome<FinalizeResponse>, CallError>) -> RecordedOutcome {
    outcome(result, |response| {
        json!({
            "done": response.done,
            "requeueAfterMs": response.requeue_after_ms,
            "events": events_json(&response.events),
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

/// Events as `bosun reconcile` prints them and a recording keeps them.
pub fn events_json(events: &[Event]) -> Value {
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

/// [`Module::reconcile`] recorded, at most `cap_bytes` of it: its result
/// and the recording (what `bosun reconcile --record` writes and the
/// cluster's store keeps).
pub fn reconcile_recorded(
    module: &Module,
    request: &Request,
    ctx: &CallContext,
    cap_bytes: usize,
) -> (Result<Outcome<Response>, CallError>, Recording) {
    recorded(
        module,
        request,
        ctx,
        cap_bytes,
        CallKind::Reconcile,
        reconcile_outcome,
        |tap| module.reconcile_tapped(request, ctx, tap),
    )
}

/// [`Module::finalize`] recorded, as [`reconcile_recorded`].
pub fn finalize_recorded(
    module: &Module,
    request: &Request,
    ctx: &CallContext,
    cap_bytes: usize,
) -> (Result<Outcome<FinalizeResponse>, CallError>, Recording) {
    recorded(
        module,
        request,
        ctx,
        cap_bytes,
        CallKind::Finalize,
        finalize_outcome,
        |tap| module.finalize_tapped(request, ctx, tap),
    )
}

/// Runs `call` under a recorder of `cap_bytes`, and finishes the
/// recording with `outcome` of its result.
fn recorded<T>(
    module: &Module,
    request: &Request,
    ctx: &CallContext,
    cap_bytes: usize,
    kind: CallKind,
    outcome: fn(&Result<Outcome<T>, CallError>) -> RecordedOutcome,
    call: impl FnOnce(Tap) -> Result<Outcome<T>, CallError>,
) -> (Result<Outcome<T>, CallError>, Recording) {
    let now = ctx.clock.unwrap_or_else(Timestamp::now);
    let recorder = Recorder::new(cap_bytes, ctx.clock);
    let result = call(Tap::Record(recorder.clone()));
    let recording = recorder.finish(Finish {
        module: module_id(module),
        call: kind,
        request: recorded_request(request),
        limits: RecordedLimits::of(&ctx.limits),
        now,
        outcome: outcome(&result),
    });
    (result, recording)
}

/// [`Module::reconcile`], recorded and offered to `store` (which keeps
/// failures and a sample of successes) when there is one.
pub fn reconcile_kept(
    module: &Module,
    request: &Request,
    ctx: &CallContext,
    store: Option<&RecordStore>,
) -> Result<Outcome<Response>, CallError> {
    let Some(store) = store else {
        return module.reconcile(request, ctx);
    };
    let (result, recording) = reconcile_recorded(module, request, ctx, store.recording_bytes());
    store.keep(&object_name(&request.object), recording);
    result
}

/// [`Module::finalize`], recorded as [`reconcile_kept`].
pub fn finalize_kept(
    module: &Module,
    request: &Request,
    ctx: &CallContext,
    store: Option<&RecordStore>,
) -> Result<Outcome<FinalizeResponse>, CallError> {
    let Some(store) = store else {
        return module.finalize(request, ctx);
    };
    let (result, recording) = finalize_recorded(module, request, ctx, store.recording_bytes());
    store.keep(&object_name(&request.object), recording);
    result
}

/// `namespace/name` (or `name`) of an object's JSON text.
fn object_name(object: &str) -> String {
    let value: Value = serde_json::from_str(object).unwrap_or_default();
    let at = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    match at("/metadata/namespace") {
        "" => at("/metadata/name").to_owned(),
        namespace => format!("{namespace}/{}", at("/metadata/name")),
    }
}
