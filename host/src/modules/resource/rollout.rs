//! `spec.rollout` and `status.rollout` of a ReconcilerModule: a candidate
//! version staged beside the running one, and what the host found
//! comparing them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ModuleSource, any_json};
use crate::rollout::compare::{Change, Verdict};

/// A candidate version of the module, staged beside the running one.
///
/// In `Shadow` mode the host calls the candidate on every object the
/// module reconciles, with the same request the running version gets,
/// plans what it would write, writes nothing, and reports how the plans
/// differ in `status.rollout`. `bosun rollout promote` makes the candidate
/// the `source`; `bosun rollout abort` (or deleting this field) drops it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Where the candidate's bytes come from, as `spec.source`. It runs
    /// under the module's `permissions`: a candidate declaring more does
    /// not load.
    pub candidate: ModuleSource,

    /// How the candidate runs. `Shadow`: beside the running version,
    /// writing nothing.
    #[serde(default)]
    pub mode: RolloutMode,

    /// Settings for the candidate (default: `spec.settings`); `promote`
    /// makes them `spec.settings`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json")]
    pub settings: Option<serde_json::Value>,
}

/// How a candidate runs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RolloutMode {
    /// Called beside the running version on the same requests; its plans
    /// are compared and never written.
    #[default]
    Shadow,
}

/// What the host found comparing the candidate with the running version.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// `Shadowing` (the candidate runs beside the live version) or
    /// `Refused` (it did not load, or asks for more than the grant).
    pub phase: String,
    /// The candidate's sha256, once fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_digest: Option<String>,
    /// The version the candidate declares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_version: Option<String>,
    /// Why the candidate does not run, when it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Objects compared at least once (each object counts once, by its
    /// latest comparison).
    #[serde(default)]
    pub compared: u64,
    /// Objects on which both versions would write the same.
    #[serde(default)]
    pub identical: u64,
    /// Objects on which they would write differently.
    #[serde(default)]
    pub differing: u64,
    /// Objects on which the candidate failed where the running version
    /// did not fail alike.
    #[serde(default)]
    pub failing: u64,
    /// The failing objects by reason (`Trap`, `Timeout`, `MemoryLimit`,
    /// `RetryableError`, `InvalidOutput`, …); a list, so that a merge
    /// patch replaces it whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<FailureCount>,
    /// Objects the shadow had no room to remember or queue (past its
    /// bounds): not compared.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped: u64,
    /// Some differing or failing objects, each with its first changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<RolloutExample>,
}

/// How many objects failed for one reason.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct FailureCount {
    /// The reason.
    pub reason: String,
    /// How many objects.
    pub objects: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One object on which the versions differ.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutExample {
    /// `namespace/name` of the primary.
    pub object: String,
    /// `Differing` or `Failing`.
    pub verdict: Verdict,
    /// The candidate's failure, `Reason: message`, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// The first differences: path, live value, candidate value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// How many more differences this object has.
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub omitted: usize,
}

fn is_zero_usize(n: &usize) -> bool {
    *n == 0
}
