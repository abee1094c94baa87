//! `spec.rollout` and `status.rollout` of a ReconcilerModule: a candidate
//! version staged beside the running one, and what the host found
//! comparing them.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ModuleSource, any_json};
use crate::rollout::canary::Policy;
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

    /// How a `Canary` takes its share and is judged (defaults when
    /// absent); only with `mode: Canary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySpec>,
}

/// A canary: the candidate reconciles a share of the objects for real,
/// under the module's grant and limits, and is rolled back by the host
/// when it fails more than the live version over the same window.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanarySpec {
    /// The shares of objects the candidate takes, in percent, ascending,
    /// each 1-100, at most 10 (default `[10, 50, 100]`). An object's share
    /// is fixed by a hash of its `namespace/name`: a larger percent keeps
    /// every object of a smaller one.
    #[serde(default = "default_steps")]
    pub steps: Vec<u32>,
    /// Only primaries carrying these labels can be the canary's (the
    /// percent applies among them); empty: every primary.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    /// How long each window is, 5-86400 s (default 60): the versions'
    /// counts are compared over the same window, and a clean one steps up
    /// when `automatic`.
    #[serde(default = "default_window_seconds")]
    pub window_seconds: u32,
    /// How far the candidate's failure ratio (errors and traps per call)
    /// may exceed the live version's in the window, 0-1 (default 0.1:
    /// ten points).
    #[serde(default = "default_max_failure_ratio")]
    pub max_failure_ratio: f64,
    /// Objects the candidate may send into a hot loop in a window
    /// (default 0).
    #[serde(default)]
    pub max_hot_loops: u32,
    /// The candidate's calls in a window before it is judged, 1-100000
    /// (default 10).
    #[serde(default = "default_min_calls")]
    pub min_calls: u32,
    /// Step up after each clean window without being asked; otherwise
    /// `step` (`bosun rollout step`) moves it.
    #[serde(default)]
    pub automatic: bool,
    /// The step to run at least (an index into `steps`), raised by `bosun
    /// rollout step`.
    #[serde(default)]
    pub step: u32,
}

/// The most steps a canary may have.
pub const MAX_CANARY_STEPS: usize = 10;

fn default_steps() -> Vec<u32> {
    vec![10, 50, 100]
}
fn default_window_seconds() -> u32 {
    60
}
fn default_max_failure_ratio() -> f64 {
    0.1
}
fn default_min_calls() -> u32 {
    10
}

impl Default for CanarySpec {
    fn default() -> Self {
        CanarySpec {
            steps: default_steps(),
            selector: BTreeMap::new(),
            window_seconds: default_window_seconds(),
            max_failure_ratio: default_max_failure_ratio(),
            max_hot_loops: 0,
            min_calls: default_min_calls(),
            automatic: false,
            step: 0,
        }
    }
}

/// Why a canary's spec is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.rollout.canary.{field}: {reason}")]
pub struct CanaryError {
    /// The field below `spec.rollout.canary`.
    pub field: &'static str,
    /// What is wrong and what to give instead.
    pub reason: String,
}

impl CanarySpec {
    /// Checks every field (hostile input included) and returns what the
    /// host judges the canary by.
    ///
    /// # Errors
    ///
    /// A [`CanaryError`] naming the field.
    pub fn policy(&self) -> Result<Policy, CanaryError> {
        let error = |field, reason: String| Err(CanaryError { field, reason });
        if self.steps.is_empty() || self.steps.len() > MAX_CANARY_STEPS {
            return error(
                "steps",
                format!(
                    "give 1 to {MAX_CANARY_STEPS} percents, got {}",
                    self.steps.len()
                ),
            );
        }
        let mut steps = Vec::with_capacity(self.steps.len());
        for &step in &self.steps {
            let percent = match u8::try_from(step) {
                Ok(p @ 1..=100) => p,
                _ => return error("steps", format!("{step} is not a percent in 1-100")),
            };
            if steps.last().is_some_and(|&last| last >= percent) {
                return error(
                    "steps",
                    format!("{:?} must be strictly ascending", self.steps),
                );
            }
            steps.push(percent);
        }
        if !(5..=86_400).contains(&self.window_seconds) {
            return error(
                "windowSeconds",
                format!("{} is not in 5-86400", self.window_seconds),
            );
        }
        if !(0.0..=1.0).contains(&self.max_failure_ratio) {
            return error(
                "maxFailureRatio",
                format!("{} is not a ratio in 0-1", self.max_failure_ratio),
            );
        }
        if !(1..=100_000).contains(&self.min_calls) {
            return error("minCalls", format!("{} is not in 1-100000", self.min_calls));
        }
        if self.selector.len() > 16 {
            return error(
                "selector",
                format!("{} labels; give at most 16", self.selector.len()),
            );
        }
        if let Some((key, _)) = self
            .selector
            .iter()
            .find(|(k, v)| k.is_empty() || k.len() > 317 || v.len() > 63)
        {
            return error(
                "selector",
                format!("{key:?} is not a label key with a value of at most 63 characters"),
            );
        }
        if usize::try_from(self.step).map_or(true, |s| s >= steps.len()) {
            return error(
                "step",
                format!(
                    "{} is past the last step (index {})",
                    self.step,
                    steps.len() - 1
                ),
            );
        }
        Ok(Policy {
            steps,
            window: Duration::from_secs(u64::from(self.window_seconds)),
            max_failure_ratio: self.max_failure_ratio,
            max_hot_loops: u64::from(self.max_hot_loops),
            min_calls: u64::from(self.min_calls),
            automatic: self.automatic,
        })
    }
}

impl RolloutSpec {
    /// The canary's policy when the mode is `Canary`; None for a shadow.
    ///
    /// # Errors
    ///
    /// A canary spec that does not hold, or one given for a shadow.
    pub fn canary_policy(&self) -> Result<Option<Policy>, CanaryError> {
        match (self.mode, &self.canary) {
            (RolloutMode::Shadow, None) => Ok(None),
            (RolloutMode::Shadow, Some(_)) => Err(CanaryError {
                field: "mode",
                reason: "spec.rollout.canary is set but spec.rollout.mode is Shadow: set mode: Canary, or drop canary".to_owned(),
            }),
            (RolloutMode::Canary, canary) => canary
                .clone()
                .unwrap_or_default()
                .policy()
                .map(Some),
        }
    }
}

/// How a candidate runs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RolloutMode {
    /// Called beside the running version on the same requests; its plans
    /// are compared and never written.
    #[default]
    Shadow,
    /// Reconciles a share of the objects for real (`canary`), judged
    /// against the running version and rolled back by the host when it
    /// fails more.
    Canary,
}

/// What the host found comparing the candidate with the running version.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// `Shadowing` (the candidate runs beside the live version),
    /// `Canary` (it reconciles its share of the objects), `RolledBack`
    /// (the host took its objects back: `message` says why) or `Refused`
    /// (it did not load, or asks for more than the grant).
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
    /// A canary's share and each version's calls in the current window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStatus>,
}

/// Where a canary stands.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// The share of objects the candidate reconciles now (0 once rolled
    /// back).
    pub percent: u32,
    /// The current step, an index into `steps`.
    pub step: u32,
    /// The steps.
    pub steps: Vec<u32>,
    /// Whether a clean window steps up by itself.
    #[serde(default)]
    pub automatic: bool,
    /// The window both versions are counted over, in seconds.
    pub window_seconds: u32,
    /// The running version's calls on the other objects, this window.
    pub live: VersionCounts,
    /// The candidate's calls on its objects, this window (at the
    /// rollback, when rolled back).
    pub candidate: VersionCounts,
}

/// One version's calls over a window.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionCounts {
    /// Calls that ran.
    pub calls: u64,
    /// Guest errors (retryable, permanent) and refused output.
    pub errors: u64,
    /// Traps, timeouts, memory limits.
    pub traps: u64,
    /// Objects sent into a hot loop.
    pub hot_loops: u64,
    /// (errors + traps) / calls.
    pub failure_ratio: f64,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(f: impl FnOnce(&mut CanarySpec)) -> Result<Policy, CanaryError> {
        let mut canary = CanarySpec::default();
        f(&mut canary);
        canary.policy()
    }

    #[test]
    fn defaults_hold() {
        let policy = spec(|_| {}).unwrap();
        assert_eq!(policy.steps, vec![10, 50, 100]);
        assert_eq!(policy.window, Duration::from_secs(60));
        assert!(!policy.automatic);
    }

    #[test]
    fn hostile_canaries_are_refused_naming_the_field() {
        let field = |f: fn(&mut CanarySpec)| spec(f).unwrap_err().field;
        assert_eq!(field(|c| c.steps = vec![]), "steps");
        assert_eq!(field(|c| c.steps = vec![0]), "steps");
        assert_eq!(field(|c| c.steps = vec![101]), "steps");
        assert_eq!(field(|c| c.steps = vec![300]), "steps");
        assert_eq!(field(|c| c.steps = vec![50, 10]), "steps");
        assert_eq!(field(|c| c.steps = vec![10, 10]), "steps");
        assert_eq!(field(|c| c.steps = (1..=11).collect()), "steps");
        assert_eq!(field(|c| c.window_seconds = 0), "windowSeconds");
        assert_eq!(field(|c| c.window_seconds = 86_401), "windowSeconds");
        assert_eq!(field(|c| c.max_failure_ratio = f64::NAN), "maxFailureRatio");
        assert_eq!(field(|c| c.max_failure_ratio = -0.1), "maxFailureRatio");
        assert_eq!(field(|c| c.max_failure_ratio = 1.5), "maxFailureRatio");
        assert_eq!(field(|c| c.min_calls = 0), "minCalls");
        assert_eq!(field(|c| c.step = 3), "step");
        assert_eq!(
            field(|c| {
                c.selector.insert(String::new(), "x".into());
            }),
            "selector"
        );
        let message = spec(|c| c.steps = vec![50, 10]).unwrap_err().to_string();
        assert!(
            message.starts_with("spec.rollout.canary.steps: [50, 10] must be strictly ascending"),
            "{message}"
        );
    }

    #[test]
    fn a_canary_needs_the_canary_mode() {
        let rollout = RolloutSpec {
            candidate: ModuleSource::ConfigMap(super::super::ConfigMapSource {
                namespace: "ns".into(),
                name: "m".into(),
                key: "m.wasm".into(),
                sha256: None,
            }),
            mode: RolloutMode::Shadow,
            settings: None,
            canary: Some(CanarySpec::default()),
        };
        assert_eq!(rollout.canary_policy().unwrap_err().field, "mode");
        let canary = RolloutSpec {
            mode: RolloutMode::Canary,
            canary: None,
            ..rollout
        };
        assert_eq!(
            canary.canary_policy().unwrap().unwrap().steps,
            vec![10, 50, 100]
        );
    }
}
