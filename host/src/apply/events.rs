//! Events recorded against the primary, under a budget per object with
//! repeats folded into series ([`super::correlator`]), cut to what the
//! Events API takes, written as `events.k8s.io/v1` Events.
//!
//! kube-runtime's recorder did this without a budget and with a cache of
//! every event key for six minutes, shared by every module: a guest
//! inventing reasons grew it without bound. The host writes Events itself
//! now, the same shape as that recorder's.

use std::sync::{Mutex, PoisonError};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as KubeEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::Value;
use tokio::time::Instant;

use super::correlator::{Correlator, Source, Verdict};
use super::{Applier, ApplyError, Operation, describe};
use crate::engine::bindings as wit;
use crate::meta::{ModuleMeta, truncate_at_char_boundary};
use crate::validate::MAX_EVENT_NOTE_BYTES;

/// The Events API rejects a `reason` or `action` longer than this.
const MAX_EVENT_FIELD_BYTES: usize = 128;

/// The action recorded for an event that names none: `events.k8s.io/v1`
/// requires one.
pub(super) const DEFAULT_EVENT_ACTION: &str = "Reconcile";

/// Which object an event is about: its uid, else its namespace and name.
type ObjectId = String;

/// What makes two events the same for a series: the object, the type,
/// the reason and the action (the note may differ, as with kube-runtime).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct EventKey {
    object: ObjectId,
    warning: bool,
    reason: String,
    action: String,
}

/// What became of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Written: a new Event or a repeat of one.
    Written,
    /// Over the object's budget: not written.
    Dropped,
}

/// Writes Events as the controller `reporter`, through the correlator.
pub(super) struct EventWriter {
    client: Client,
    reporter: String,
    correlator: Mutex<Correlator<ObjectId, EventKey, String>>,
}

impl EventWriter {
    pub(super) fn new(client: Client, reporter: &str) -> Self {
        EventWriter {
            client,
            reporter: reporter.to_owned(),
            correlator: Mutex::default(),
        }
    }

    fn correlator(&self) -> std::sync::MutexGuard<'_, Correlator<ObjectId, EventKey, String>> {
        self.correlator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `event` about `reference` from `source`, or drops it when the
    /// object's budget is spent.
    async fn write(
        &self,
        reference: &ObjectReference,
        source: Source,
        event: &wit::Event,
    ) -> Result<Recorded, kube::Error> {
        let action = if event.action.trim().is_empty() {
            DEFAULT_EVENT_ACTION
        } else {
            &event.action
        };
        let reason = truncate_at_char_boundary(&event.reason, MAX_EVENT_FIELD_BYTES);
        let action = truncate_at_char_boundary(action, MAX_EVENT_FIELD_BYTES);
        let object = reference
            .uid
            .clone()
            .unwrap_or_else(|| format!("{:?}/{:?}", reference.namespace, reference.name));
        let key = EventKey {
            object: object.clone(),
            warning: event.event_type == wit::EventType::Warning,
            reason: reason.to_owned(),
            action: action.to_owned(),
        };
        let now = Instant::now().into_std();
        let verdict = self.correlator().admit(&object, source, &key, now);
        let namespace = reference.namespace.as_deref().unwrap_or("default");
        let events: Api<KubeEvent> = Api::namespaced(self.client.clone(), namespace);
        let observed = MicroTime(jiff::Timestamp::now());
        match verdict {
            Verdict::Drop => Ok(Recorded::Dropped),
            Verdict::Repeat { name, count } => {
                let patch = serde_json::json!({
                    "series": EventSeries { count, last_observed_time: observed },
                });
                super::traced::traced(
                    "patch event",
                    &name,
                    events.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)),
                )
                .await?;
                Ok(Recorded::Written)
            }
            Verdict::Create => {
                // An Event's name is a DNS subdomain (253 bytes): room for
                // the suffix, however long the object's name.
                let regarding = reference.name.as_deref().unwrap_or(&self.reporter);
                let name = format!(
                    "{}.{:x}",
                    truncate_at_char_boundary(regarding, 253 - 17),
                    observed.0.as_nanosecond()
                );
                let note = truncate_at_char_boundary(&event.note, MAX_EVENT_NOTE_BYTES);
                let body = KubeEvent {
                    action: Some(action.to_owned()),
                    reason: Some(reason.to_owned()),
                    event_time: Some(observed),
                    regarding: Some(reference.clone()),
                    note: Some(note.to_owned()).filter(|n| !n.is_empty()),
                    metadata: ObjectMeta {
                        namespace: Some(namespace.to_owned()),
                        name: Some(name.clone()),
                        ..ObjectMeta::default()
                    },
                    reporting_controller: Some(self.reporter.clone()),
                    reporting_instance: Some(self.reporter.clone()),
                    type_: Some(
                        match event.event_type {
                            wit::EventType::Normal => "Normal",
                            wit::EventType::Warning => "Warning",
                        }
                        .to_owned(),
                    ),
                    ..KubeEvent::default()
                };
                super::traced::traced(
                    "create event",
                    &name,
                    events.create(&PostParams::default(), &body),
                )
                .await?;
                self.correlator().created(key, name, now);
                Ok(Recorded::Written)
            }
        }
    }
}

impl Applier {
    /// Records `events` against `object`, the guest's or the host's
    /// (`source`), each within the object's budget for that source; a
    /// repeated event becomes a series on one Event. Returns how many were
    /// dropped over the budget.
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
        source: Source,
    ) -> Result<usize, ApplyError> {
        let reference = object_reference(object);
        let mut dropped = 0;
        for event in events {
            self.gate(Operation::Event, &describe(object))?;
            let recorded = self
                .publish(&reference, source, event)
                .await
                .map_err(|e| ApplyError::api(Operation::Event, &describe(object), e))?;
            if recorded == Recorded::Dropped {
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    pub(super) async fn publish(
        &self,
        reference: &ObjectReference,
        source: Source,
        event: &wit::Event,
    ) -> Result<Recorded, kube::Error> {
        let recorded = self.events.write(reference, source, event).await?;
        if recorded == Recorded::Dropped {
            tracing::debug!(reason = %truncate_at_char_boundary(&event.reason, MAX_EVENT_FIELD_BYTES), "event over the object's budget; dropped");
        }
        Ok(recorded)
    }
}

/// The reference events are recorded against. `resourceVersion` is left
/// out on purpose: repeats of an event fold into a series only when the
/// reference is equal, and every write changes the version.
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
