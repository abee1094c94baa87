//! The primary's status: the module's own fields by server-side apply, and
//! the host's `Reconciled` condition, written alone.
//!
//! The host reports a failure (the guest's permanent error, a write the API
//! server refused) as a `Reconciled=False` condition beside a Warning event.
//! The condition is written by itself, as a JSON patch pinned to the
//! `resourceVersion` the host looked at: never a copy of the whole cached
//! status, which may be stale and would write back what others changed.
//! Where the kind's status schema has no room for such a condition
//! ([`StatusRoom`]), the event alone reports the failure.

use kube::api::{Patch, PatchParams};
use serde_json::{Map, Value, json};

use super::{Applier, ApplyError, Operation, describe, now, primary_location};
use crate::discovery::StatusRoom;
use crate::engine::bindings as wit;
use crate::meta::{ModuleMeta, truncate_at_char_boundary};
use crate::plan::RECONCILED_CONDITION;

/// The field manager of the host's own condition writes.
const HOST_MANAGER: &str = "bosun";

/// `metav1.Condition` allows a message of at most 32 KiB.
const MAX_CONDITION_MESSAGE_BYTES: usize = 32 * 1024;

/// `metav1.Condition` allows a reason of at most 1 KiB.
const MAX_CONDITION_REASON_BYTES: usize = 1024;

/// The reason recorded for a failure that names none: the condition and
/// the event both require one.
pub(super) const DEFAULT_ERROR_REASON: &str = "ReconcileFailed";

impl Applier {
    /// Server-side-applies `status` to the primary's status subresource.
    pub(super) async fn write_status(
        &self,
        meta: &ModuleMeta,
        room: StatusRoom,
        object: &Value,
        status: &Value,
    ) -> Result<(), ApplyError> {
        let name = describe(object);
        if !room.subresource {
            return Err(ApplyError::invalid(
                Operation::Status,
                &name,
                format!(
                    "{} has no status subresource, so the status the module returned cannot be written",
                    meta.primary
                ),
            ));
        }
        let (namespace, object_name) = primary_location(object, Operation::Status)?;
        let mut metadata = Map::new();
        metadata.insert("name".into(), json!(object_name));
        if let Some(namespace) = &namespace {
            metadata.insert("namespace".into(), json!(namespace));
        }
        let body = json!({
            "apiVersion": meta.primary.api_version(),
            "kind": meta.primary.kind,
            "metadata": metadata,
            "status": status,
        });
        self.gate(Operation::Status, &name)?;
        let params = PatchParams::apply(&meta.field_manager()).force();
        let api = self.api(&meta.primary, namespace.as_deref());
        super::traced::traced(
            "apply status",
            &name,
            api.patch_status(&object_name, &params, &Patch::Apply(&body)),
        )
        .await
        .map_err(|e| ApplyError::api(Operation::Status, &name, e))?;
        tracing::debug!("status written");
        Ok(())
    }

    /// Reports a failure on the primary where the user looks: a
    /// `Reconciled=False` condition (where the status has room for it) and
    /// a Warning event. The condition goes first, so that an event the
    /// Events API refuses cannot keep it from being written; both are tried.
    ///
    /// The condition is skipped when an identical one is already there, so
    /// reporting the same failure again writes only the event (which the
    /// recorder folds into a series).
    ///
    /// # Errors
    ///
    /// The first of the two writes that failed.
    #[tracing::instrument(skip_all, fields(module = %meta.name, object = %describe(object), reason = %reason))]
    pub async fn report_failure(
        &self,
        meta: &ModuleMeta,
        room: StatusRoom,
        object: &Value,
        reason: &str,
        message: &str,
    ) -> Result<(), ApplyError> {
        let reason = condition_reason(reason);
        let message = truncate_at_char_boundary(message, MAX_CONDITION_MESSAGE_BYTES);
        let condition = if room.conditions {
            self.set_reconciled_condition(meta, room, object, &reason, message)
                .await
        } else {
            tracing::debug!(
                "the status has no room for conditions; the event alone reports the failure"
            );
            Ok(())
        };
        let event = wit::Event {
            event_type: wit::EventType::Warning,
            reason: reason.clone(),
            note: message.to_owned(),
            action: super::events::DEFAULT_EVENT_ACTION.to_owned(),
        };
        let event = self
            .record_events(
                meta,
                object,
                std::slice::from_ref(&event),
                super::correlator::Source::Host,
            )
            .await
            .map(|_dropped| ());
        condition.and(event)
    }

    /// Writes the host's `Reconciled=False` condition alone.
    async fn set_reconciled_condition(
        &self,
        meta: &ModuleMeta,
        room: StatusRoom,
        object: &Value,
        reason: &str,
        message: &str,
    ) -> Result<(), ApplyError> {
        let generation = object.pointer("/metadata/generation").cloned();
        let conditions = object.pointer("/status/conditions");
        let (index, previous) = match reconciled_condition(object) {
            Some((index, previous)) => (Some(index), Some(previous)),
            None => (None, None),
        };
        let field = |c: Option<&Value>, name: &str| c.and_then(|c| c.get(name)).cloned();
        let identical = field(previous, "status") == Some(json!("False"))
            && field(previous, "reason") == Some(json!(reason))
            && field(previous, "message") == Some(json!(message))
            && (!room.condition_observed_generation
                || field(previous, "observedGeneration") == generation);
        if identical {
            tracing::debug!("condition already reported, status not written");
            return Ok(());
        }
        // Like meta.SetStatusCondition: the transition time moves only when
        // the condition's status does.
        let transition = match previous {
            Some(c) if c.get("status") == Some(&json!("False")) => c
                .get("lastTransitionTime")
                .cloned()
                .unwrap_or_else(|| json!(now())),
            _ => json!(now()),
        };
        let mut condition = json!({
            "type": RECONCILED_CONDITION,
            "status": "False",
            "reason": reason,
            "message": message,
            "lastTransitionTime": transition,
        });
        if room.condition_observed_generation
            && let Some(generation) = generation
        {
            condition["observedGeneration"] = generation;
        }
        let mut operations = vec![];
        match (index, conditions) {
            (Some(index), _) => {
                operations.push(json!({"op": "test", "path": format!("/status/conditions/{index}/type"), "value": RECONCILED_CONDITION}));
                operations.push(json!({"op": "replace", "path": format!("/status/conditions/{index}"), "value": condition}));
            }
            (None, Some(Value::Array(_))) => {
                operations
                    .push(json!({"op": "add", "path": "/status/conditions/-", "value": condition}));
            }
            (None, _) if object.get("status").is_some_and(Value::is_object) => {
                operations
                    .push(json!({"op": "add", "path": "/status/conditions", "value": [condition]}));
            }
            (None, _) => {
                operations.push(
                    json!({"op": "add", "path": "/status", "value": {"conditions": [condition]}}),
                );
            }
        }
        self.patch_pinned(
            meta,
            object,
            Operation::Status,
            Some(HOST_MANAGER),
            operations,
        )
        .await?;
        tracing::debug!("Reconciled condition written");
        Ok(())
    }

    /// Removes the host's `Reconciled` condition after a successful
    /// reconcile, when the primary carries one. Returns whether it wrote.
    pub(super) async fn clear_reconciled_condition(
        &self,
        meta: &ModuleMeta,
        room: StatusRoom,
        object: &Value,
    ) -> Result<bool, ApplyError> {
        if !room.conditions {
            return Ok(false);
        }
        let Some((index, _)) = reconciled_condition(object) else {
            return Ok(false);
        };
        let operations = vec![
            json!({"op": "test", "path": format!("/status/conditions/{index}/type"), "value": RECONCILED_CONDITION}),
            json!({"op": "remove", "path": format!("/status/conditions/{index}")}),
        ];
        self.patch_pinned(
            meta,
            object,
            Operation::Status,
            Some(HOST_MANAGER),
            operations,
        )
        .await?;
        tracing::debug!("Reconciled condition cleared");
        Ok(true)
    }
}

/// The host's `Reconciled` condition in `object`'s status, with its index.
fn reconciled_condition(object: &Value) -> Option<(usize, &Value)> {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .enumerate()
        .find(|(_, c)| c.get("type").and_then(Value::as_str) == Some(RECONCILED_CONDITION))
}

/// A condition reason the API server accepts (`metav1.Condition`: a
/// letter, then letters, digits, `_`, `,` or `:`, not ending in `,` or `:`;
/// at most 1 KiB), made from whatever the guest or the host said.
pub(super) fn condition_reason(reason: &str) -> String {
    let mut cleaned: String = reason
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ',' | ':'))
        .skip_while(|c| !c.is_ascii_alphabetic())
        .collect();
    cleaned.truncate(MAX_CONDITION_REASON_BYTES);
    while cleaned.ends_with([',', ':']) {
        cleaned.pop();
    }
    if cleaned.is_empty() {
        DEFAULT_ERROR_REASON.to_owned()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_made_acceptable_to_the_api_server() {
        assert_eq!(condition_reason("InvalidSpec"), "InvalidSpec");
        assert_eq!(condition_reason("bad schedule!"), "badschedule");
        assert_eq!(condition_reason("42 Things, "), "Things");
        assert_eq!(condition_reason(" "), DEFAULT_ERROR_REASON);
        assert_eq!(condition_reason("Über"), "ber");
        assert!(condition_reason(&"A".repeat(5000)).len() <= MAX_CONDITION_REASON_BYTES);
    }

    #[test]
    fn finds_the_hosts_condition() {
        let object = json!({"status": {"conditions": [{"type": "Ready"}, {"type": "Reconciled", "status": "False"}]}});
        assert_eq!(reconciled_condition(&object).map(|(i, _)| i), Some(1));
        assert!(reconciled_condition(&json!({"status": {}})).is_none());
    }
}
