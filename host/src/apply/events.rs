//! Events recorded against the primary, through kube-runtime's recorder
//! (which folds repeats into a series), cut to what the Events API takes.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType};
use serde_json::Value;

use super::{Applier, ApplyError, Operation, describe};
use crate::engine::bindings as wit;
use crate::meta::{ModuleMeta, truncate_at_char_boundary};
use crate::validate::MAX_EVENT_NOTE_BYTES;

/// The Events API rejects a `reason` or `action` longer than this.
const MAX_EVENT_FIELD_BYTES: usize = 128;

/// The action recorded for an event that names none: `events.k8s.io/v1`
/// requires one.
pub(super) const DEFAULT_EVENT_ACTION: &str = "Reconcile";

impl Applier {
    /// Records `events` against `object`, as `reporter` (see [`Applier::new`]).
    /// A repeated event within a few minutes becomes a series on one Event
    /// object rather than a new object each time.
    ///
    /// # Errors
    ///
    /// Stops at the first event the API server refuses.
    #[tracing::instrument(skip_all, fields(module = %meta.name, object = %describe(object)))]
    pub async fn record_events(
        &self,
        meta: &ModuleMeta,
        object: &Value,
        events: &[wit::Event],
    ) -> Result<(), ApplyError> {
        let reference = object_reference(object);
        for event in events {
            self.gate(Operation::Event, &describe(object))?;
            self.publish(&reference, event)
                .await
                .map_err(|e| ApplyError::api(Operation::Event, &describe(object), e))?;
        }
        Ok(())
    }

    pub(super) async fn publish(
        &self,
        reference: &ObjectReference,
        event: &wit::Event,
    ) -> Result<(), kube::Error> {
        let action = if event.action.trim().is_empty() {
            DEFAULT_EVENT_ACTION
        } else {
            &event.action
        };
        let event = KubeEvent {
            type_: match event.event_type {
                wit::EventType::Normal => KubeEventType::Normal,
                wit::EventType::Warning => KubeEventType::Warning,
            },
            reason: truncate_at_char_boundary(&event.reason, MAX_EVENT_FIELD_BYTES).to_owned(),
            note: Some(truncate_at_char_boundary(&event.note, MAX_EVENT_NOTE_BYTES).to_owned())
                .filter(|n| !n.is_empty()),
            action: truncate_at_char_boundary(action, MAX_EVENT_FIELD_BYTES).to_owned(),
            secondary: None,
        };
        self.recorder.publish(&event, reference).await
    }
}

/// The reference events are recorded against. `resourceVersion` is left
/// out on purpose: the recorder merges repeats of an event into a series
/// only when the reference is equal, and every write changes the version.
pub(super) fn object_reference(object: &Value) -> ObjectReference {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    ObjectReference {
        api_version: text("/apiVersion"),
        kind: text("/kind"),
        name: text("/metadata/name"),
        namespace: text("/metadata/namespace"),
        uid: text("/metadata/uid"),
        ..ObjectReference::default()
    }
}
