//! One side of a comparison: a module's call on a request, planned as the
//! operator plans it, ending in an [`Outcome`] and never in a write. The
//! shadow worker and `bosun diff` both go through here, so they compare
//! exactly what the operator would have written.

use jiff::Timestamp;
use serde_json::Value;

use super::compare::{Failure, Outcome};
use crate::engine::bindings::{ReconcileError, Request};
use crate::engine::{CallContext, Module};
use crate::plan::{PlanContext, plan_response};

/// Calls `module` on `request` and plans what it returned for `object`
/// and its `observed` children at `now`.
pub fn run(
    module: &Module,
    request: &Request,
    ctx: &CallContext,
    plan: &PlanContext<'_>,
    object: &Value,
    observed: &[Value],
    now: Timestamp,
) -> Outcome {
    let response = match module.reconcile(request, ctx) {
        Err(error) => return Outcome::Failed(Failure::new(error.kind(), &error.to_string())),
        Ok(Err(ReconcileError::Retryable(f))) => {
            return Outcome::Failed(Failure::new(
                "RetryableError",
                &format!("{}: {}", f.reason, f.message),
            ));
        }
        Ok(Err(ReconcileError::Permanent(f))) => {
            return Outcome::Failed(Failure::new(
                "PermanentError",
                &format!("{}: {}", f.reason, f.message),
            ));
        }
        Ok(Ok(response)) => response,
    };
    match plan_response(module.meta(), plan, object, observed, response, now) {
        Ok(plan) => Outcome::Planned(plan),
        Err(error) => Outcome::Failed(Failure::new("InvalidOutput", &error.to_string())),
    }
}
