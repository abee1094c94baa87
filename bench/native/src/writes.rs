//! The writes of one reconcile: children by server-side apply (namespace
//! and controller ownerReference set here), prunes of controlled children
//! no longer desired, the status subresource by server-side apply with
//! `observedGeneration`, and events.
//!
//! A child or status the live object already holds is not written, as a
//! careful hand-written controller does (and as bosun does): reconciling a
//! converged object costs no write request.

use kube::Resource as _;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use serde_json::{Value, json};

use bosun_sdk::bindings::bosun::reconciler::types as wit;

/// A write the API server refused, or output that cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The logic returned something that is not a writable object.
    #[error("invalid output: {0}")]
    Invalid(String),
    /// The API server refused a write.
    #[error("{operation} {object}: {source}")]
    Api {
        operation: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },
}

/// Writes under one field manager.
pub struct Writer {
    client: kube::Client,
    primary: ApiResource,
    field_manager: String,
    recorder: Recorder,
}

impl Writer {
    pub fn new(
        client: kube::Client,
        primary: ApiResource,
        field_manager: String,
        recorder: Recorder,
    ) -> Self {
        Writer {
            client,
            primary,
            field_manager,
            recorder,
        }
    }

    /// Writes what `response` asks for `object`, given its observed children.
    pub async fn write(
        &self,
        object: &DynamicObject,
        observed: &[Value],
        owned: &[(ApiResource, Store<DynamicObject>)],
        response: &wit::Response,
    ) -> Result<(), WriteError> {
        let namespace = object.metadata.namespace.clone().unwrap_or_default();
        let name = object.metadata.name.clone().unwrap_or_default();
        let owner = json!({
            "apiVersion": self.primary.api_version,
            "kind": self.primary.kind,
            "name": name,
            "uid": object.metadata.uid.clone().unwrap_or_default(),
            "controller": true,
            "blockOwnerDeletion": true,
        });
        let params = PatchParams::apply(&self.field_manager).force();

        let mut desired = Vec::new();
        for child in &response.children {
            let mut child: Value = serde_json::from_str(child)
                .map_err(|e| WriteError::Invalid(format!("a child is not JSON: {e}")))?;
            let text = |pointer: &str| {
                child
                    .pointer(pointer)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            let (Some(api_version), Some(kind), Some(child_name)) =
                (text("/apiVersion"), text("/kind"), text("/metadata/name"))
            else {
                return Err(WriteError::Invalid(
                    "a child without apiVersion, kind or name".into(),
                ));
            };
            let Some((resource, _)) = owned
                .iter()
                .find(|(r, _)| r.api_version == api_version && r.kind == kind)
            else {
                return Err(WriteError::Invalid(format!(
                    "{kind}.{api_version} is not an owned kind"
                )));
            };
            let metadata = child
                .get_mut("metadata")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| WriteError::Invalid("a child without metadata".into()))?;
            metadata.insert("namespace".into(), json!(namespace));
            metadata.insert("ownerReferences".into(), json!([owner]));
            desired.push((kind.clone(), child_name.clone()));
            let live = observed.iter().find(|o| {
                o.get("kind").and_then(Value::as_str) == Some(kind.as_str())
                    && o.pointer("/metadata/name").and_then(Value::as_str)
                        == Some(child_name.as_str())
            });
            if live.is_some_and(|live| is_subset(&child, live)) {
                continue;
            }
            Api::<DynamicObject>::namespaced_with(self.client.clone(), &namespace, resource)
                .patch(&child_name, &params, &Patch::Apply(&child))
                .await
                .map_err(|source| WriteError::Api {
                    operation: "apply",
                    object: format!("{kind} {namespace}/{child_name}"),
                    source,
                })?;
        }

        for child in observed {
            let kind = child
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let child_name = child
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if desired.iter().any(|(k, n)| k == kind && n == child_name) {
                continue;
            }
            let api_version = child
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let Some((resource, _)) = owned
                .iter()
                .find(|(r, _)| r.api_version == api_version && r.kind == kind)
            else {
                continue;
            };
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: child
                        .pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match Api::<DynamicObject>::namespaced_with(self.client.clone(), &namespace, resource)
                .delete(child_name, &params)
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => {
                    return Err(WriteError::Api {
                        operation: "delete",
                        object: format!("{kind} {namespace}/{child_name}"),
                        source,
                    });
                }
            }
        }

        if let Some(status) = &response.status {
            let mut status: Value = serde_json::from_str(status)
                .map_err(|e| WriteError::Invalid(format!("the status is not JSON: {e}")))?;
            if let (Some(map), Some(generation)) =
                (status.as_object_mut(), object.metadata.generation)
            {
                map.insert("observedGeneration".into(), json!(generation));
            }
            let current = object.data.get("status").unwrap_or(&Value::Null);
            if !is_subset(&status, current) {
                let body = json!({
                    "apiVersion": self.primary.api_version,
                    "kind": self.primary.kind,
                    "metadata": {"name": name, "namespace": namespace},
                    "status": status,
                });
                Api::<DynamicObject>::namespaced_with(
                    self.client.clone(),
                    &namespace,
                    &self.primary,
                )
                .patch_status(&name, &params, &Patch::Apply(&body))
                .await
                .map_err(|source| WriteError::Api {
                    operation: "status",
                    object: format!("{} {namespace}/{name}", self.primary.kind),
                    source,
                })?;
            }
        }

        let reference = object.object_ref(&self.primary);
        for event in &response.events {
            let event = Event {
                type_: match event.event_type {
                    wit::EventType::Normal => EventType::Normal,
                    wit::EventType::Warning => EventType::Warning,
                },
                reason: event.reason.clone(),
                note: Some(event.note.clone()),
                action: if event.action.is_empty() {
                    event.reason.clone()
                } else {
                    event.action.clone()
                },
                secondary: None,
            };
            if let Err(error) = self.recorder.publish(&event, &reference).await {
                tracing::warn!(%error, "could not record an event");
            }
        }
        Ok(())
    }
}

/// Whether `live` already holds everything in `desired`: maps by key,
/// lists element by element, anything else equal.
fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(desired), Value::Object(live)) => desired
            .iter()
            .all(|(key, value)| live.get(key).is_some_and(|l| is_subset(value, l))),
        (Value::Array(desired), Value::Array(live)) => {
            desired.len() == live.len() && desired.iter().zip(live).all(|(d, l)| is_subset(d, l))
        }
        _ => desired == live,
    }
}

#[cfg(test)]
mod tests {
    use super::is_subset;
    use serde_json::json;

    #[test]
    fn a_live_object_with_more_fields_holds_the_desired_one() {
        let desired = json!({"spec": {"replicas": 1, "ports": [{"port": 80}]}});
        let live = json!({"spec": {"replicas": 1, "ports": [{"port": 80, "protocol": "TCP"}], "paused": false}});
        assert!(is_subset(&desired, &live));
        assert!(!is_subset(&json!({"spec": {"replicas": 2}}), &live));
        assert!(!is_subset(
            &json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}}),
            &live
        ));
    }
}
