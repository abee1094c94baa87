//! What the host writes into a ReconcilerModule's status: the whole
//! status after a load, the counts (and a shadow's findings) refreshed
//! periodically, conditions set as `meta.SetStatusCondition` does, and
//! every message bounded.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;

use crate::modules::registry::Registry;
use crate::modules::resource::ReconcilerModuleStatus;

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
        {
            patch["status"]["rollout"] = json!(rollout);
        }
        if let Err(error) = api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!(%error, module = name, "could not refresh the counts");
        }
    }
}

pub(super) async fn write_status(
    api: &Api<DynamicObject>,
    name: &str,
    status: &ReconcilerModuleStatus,
) {
    let patch = json!({"status": status});
    if let Err(error) = api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(%error, "could not write the ReconcilerModule's status");
    }
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
