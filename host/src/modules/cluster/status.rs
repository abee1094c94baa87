//! What the host writes into a ReconcilerModule's status: the whole
//! status after a load, the counts (and a shadow's findings) refreshed
//! periodically, conditions set as `meta.SetStatusCondition` does, and
//! every message bounded.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::modules::registry::Registry;
use crate::modules::resource::{ReconcilerModuleStatus, RolloutStatus};

/// Refreshes the counts and quarantine state of every loaded module.
pub(super) async fn refresh_stats(
    api: &Api<DynamicObject>,
    registry: &Registry,
    handled: &HashMap<String, Option<i64>>,
) {
    for (registry_key, controller) in registry.controllers().await {
        let Some(name) = registry_key.strip_prefix("reconcilermodule/") else {
            continue;
        };
        if !handled.contains_key(name) {
            continue;
        }
        let (reconciles, errors, traps) = controller.stats();
        let quarantined = controller.is_quarantined();
        let mut patch = json!({"status": {"reconciles": reconciles, "errors": errors, "traps": traps, "quarantined": quarantined}});
        // A shadow's findings ride on the same periodic write: never one
        // write per call.
        if let Some(rollout) = controller
            .shadow_report()
            .map(crate::modules::staging::status_of)
            .or_else(|| {
                controller
                    .canary_report()
                    .map(crate::modules::staging::canary_status_of)
            })
        {
            patch["status"]["rollout"] = rollout_patch(&rollout);
        }
        if let Some(reason) = controller.take_rollback_notice() {
            announce_rollback(api, name, &reason).await;
        }
        if let Err(error) = api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!(%error, module = name, "could not refresh the counts");
        }
    }
}

/// The Event reason of a canary the host rolled back.
pub const CANARY_ROLLED_BACK: &str = "CanaryRolledBack";

/// Says on the ReconcilerModule `name` (a Warning Event, in `default`, as
/// for any cluster-scoped object) that the host rolled its canary back.
async fn announce_rollback(api: &Api<DynamicObject>, name: &str, reason: &str) {
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::api::events::v1::Event;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
    let uid = match api.get(name).await {
        Ok(module) => module.metadata.uid,
        Err(error) => {
            tracing::warn!(%error, module = name, "could not read the ReconcilerModule to announce its canary's rollback");
            None
        }
    };
    let now = jiff::Timestamp::now();
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:x}",
                crate::meta::truncate_at_char_boundary(name, 200),
                now.as_nanosecond()
            )),
            namespace: Some("default".to_owned()),
            ..ObjectMeta::default()
        },
        action: Some("Rollout".to_owned()),
        reason: Some(CANARY_ROLLED_BACK.to_owned()),
        note: Some(crate::meta::truncate_at_char_boundary(reason, 1024).to_owned()),
        type_: Some("Warning".to_owned()),
        event_time: Some(MicroTime(now)),
        reporting_controller: Some("bosun.dev/host".to_owned()),
        reporting_instance: Some("bosun".to_owned()),
        regarding: Some(ObjectReference {
            api_version: Some("bosun.dev/v1alpha1".to_owned()),
            kind: Some("ReconcilerModule".to_owned()),
            name: Some(name.to_owned()),
            uid,
            ..ObjectReference::default()
        }),
        ..Event::default()
    };
    let events = Api::<Event>::namespaced(api.clone().into_client(), "default");
    if let Err(error) = events.create(&PostParams::default(), &event).await {
        tracing::warn!(%error, module = name, "could not record the canary's rollback as an Event");
    }
}

pub(super) async fn write_status(
    api: &Api<DynamicObject>,
    name: &str,
    status: &ReconcilerModuleStatus,
) {
    let mut patch = json!({"status": status});
    if let Some(rollout) = &status.rollout {
        patch["status"]["rollout"] = rollout_patch(rollout);
    }
    if let Err(error) = api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(%error, "could not write the ReconcilerModule's status");
    }
}

/// `rollout` as a merge patch that replaces the whole `status.rollout`:
/// an explicit null for each field it leaves out, so that nothing of an
/// earlier candidate's findings (a refusal's message, its failures and
/// examples) outlives it under the merge.
fn rollout_patch(rollout: &RolloutStatus) -> Value {
    let mut patch = json!(rollout);
    let schema = schemars::schema_for!(RolloutStatus);
    if let (Some(fields), Some(properties)) = (
        patch.as_object_mut(),
        schema.get("properties").and_then(Value::as_object),
    ) {
        for name in properties.keys() {
            fields.entry(name.clone()).or_insert(Value::Null);
        }
    }
    patch
}

/// The longest message written into a ReconcilerModule's status. Messages
/// quote what modules and sources said (bounded at their origin too); a
/// status the API server refuses as too large would freeze it for good.
const MAX_STATUS_MESSAGE_BYTES: usize = 8 << 10;

pub(super) fn bounded(message: &str) -> &str {
    crate::meta::truncate_at_char_boundary(message, MAX_STATUS_MESSAGE_BYTES)
}

/// Sets a condition like `meta.SetStatusCondition`: the transition time
/// moves only when the status does.
pub(super) fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) {
    let status = if status { "True" } else { "False" }.to_owned();
    let transition = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    conditions.retain(|c| c.type_ != type_);
    conditions.push(Condition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message: bounded(message).to_owned(),
        last_transition_time: transition,
        observed_generation: generation,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollout_patch_clears_what_an_earlier_rollout_said() {
        let refused = RolloutStatus {
            phase: "Refused".into(),
            message: Some("the candidate could not be fetched".into()),
            ..RolloutStatus::default()
        };
        let shadowing = RolloutStatus {
            phase: "Shadowing".into(),
            compared: 3,
            ..RolloutStatus::default()
        };
        // RFC 7386, as the API server applies it to status.rollout.
        fn merge(target: &mut Value, patch: &Value) {
            let (Some(target), Some(patch)) = (target.as_object_mut(), patch.as_object()) else {
                *target = patch.clone();
                return;
            };
            for (name, value) in patch {
                if value.is_null() {
                    target.remove(name);
                } else {
                    merge(target.entry(name.clone()).or_insert(Value::Null), value);
                }
            }
        }
        let mut stored = json!({});
        merge(&mut stored, &rollout_patch(&refused));
        merge(&mut stored, &rollout_patch(&shadowing));
        assert_eq!(stored, json!(shadowing), "nothing of the refusal stays");
    }
}
