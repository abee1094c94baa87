//! Status conditions, handled the way `meta.SetStatusCondition` does in Go.
//!
//! Build a condition with [`Context::condition`](crate::Context::condition)
//! and put it into your status with [`set`]; the transition time moves only
//! when the condition's status changes. Give the status field the CRD
//! schema of [`schema`], so the API server (and the host, which adds its
//! own `Reconciled` condition after a failure) knows the conditions' shape:
//!
//! ```
//! # use bosun_sdk::prelude::*;
//! #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
//! struct MyStatus {
//!     #[serde(default, skip_serializing_if = "Vec::is_empty")]
//!     #[schemars(schema_with = "bosun_sdk::conditions::schema")]
//!     conditions: Vec<Condition>,
//! }
//! ```

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// The CRD schema of a `conditions` list of `metav1.Condition`: a list map
/// keyed by `type`, so server-side apply merges conditions one by one and
/// the host's `Reconciled` condition sits beside the module's own.
pub fn schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "required": ["type", "status", "lastTransitionTime", "reason", "message"],
            "properties": {
                "type": { "type": "string" },
                "status": { "type": "string", "enum": ["True", "False", "Unknown"] },
                "lastTransitionTime": { "type": "string", "format": "date-time" },
                "reason": { "type": "string" },
                "message": { "type": "string" },
                "observedGeneration": { "type": "integer", "format": "int64" }
            }
        }
    })
}

/// Sets `condition` in `conditions`, replacing the one of the same type.
///
/// When a condition of that type exists with the same status, its
/// `lastTransitionTime` is kept; reason, message and observedGeneration are
/// updated. Returns true when anything changed.
pub fn set(conditions: &mut Vec<Condition>, condition: Condition) -> bool {
    let Some(existing) = conditions.iter_mut().find(|c| c.type_ == condition.type_) else {
        conditions.push(condition);
        return true;
    };
    let mut changed = false;
    if existing.status != condition.status {
        existing.status = condition.status;
        existing.last_transition_time = condition.last_transition_time;
        changed = true;
    }
    if existing.reason != condition.reason {
        existing.reason = condition.reason;
        changed = true;
    }
    if existing.message != condition.message {
        existing.message = condition.message;
        changed = true;
    }
    if existing.observed_generation != condition.observed_generation {
        existing.observed_generation = condition.observed_generation;
        changed = true;
    }
    changed
}

/// The condition of type `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Removes the condition of type `type_`. Returns true when one was removed.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    conditions.len() != before
}

/// True when the condition of type `type_` is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn condition(status: &str, reason: &str, at: &str, generation: i64) -> Condition {
        Condition {
            type_: "Ready".into(),
            status: status.into(),
            reason: reason.into(),
            message: format!("{reason} message"),
            last_transition_time: Time(at.parse().unwrap()),
            observed_generation: Some(generation),
        }
    }

    #[test]
    fn adds_a_new_condition() {
        let mut conditions = Vec::new();
        assert!(set(
            &mut conditions,
            condition("True", "Up", "2026-01-01T00:00:00Z", 1)
        ));
        assert_eq!(conditions.len(), 1);
        assert!(is_true(&conditions, "Ready"));
    }

    #[test]
    fn keeps_transition_time_while_status_is_unchanged() {
        let mut conditions = vec![condition("True", "Up", "2026-01-01T00:00:00Z", 1)];
        assert!(set(
            &mut conditions,
            condition("True", "StillUp", "2026-02-01T00:00:00Z", 2)
        ));
        let ready = find(&conditions, "Ready").unwrap();
        assert_eq!(
            ready.last_transition_time.0.to_string(),
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(ready.reason, "StillUp");
        assert_eq!(ready.observed_generation, Some(2));
    }

    #[test]
    fn moves_transition_time_when_status_flips() {
        let mut conditions = vec![condition("True", "Up", "2026-01-01T00:00:00Z", 1)];
        assert!(set(
            &mut conditions,
            condition("False", "Down", "2026-02-01T00:00:00Z", 1)
        ));
        let ready = find(&conditions, "Ready").unwrap();
        assert_eq!(
            ready.last_transition_time.0.to_string(),
            "2026-02-01T00:00:00Z"
        );
        assert!(!is_true(&conditions, "Ready"));
    }

    #[test]
    fn reports_no_change_for_an_identical_condition() {
        let mut conditions = vec![condition("True", "Up", "2026-01-01T00:00:00Z", 1)];
        assert!(!set(
            &mut conditions,
            condition("True", "Up", "2026-03-01T00:00:00Z", 1)
        ));
    }

    #[test]
    fn removes_by_type() {
        let mut conditions = vec![condition("True", "Up", "2026-01-01T00:00:00Z", 1)];
        assert!(remove(&mut conditions, "Ready"));
        assert!(!remove(&mut conditions, "Ready"));
        assert!(conditions.is_empty());
    }
}
