//! A ReconcilerModule's `spec.rollout`: fetching its candidate, loading it
//! under the module's grant and handing it to the running controller as a
//! shadow ([`crate::rollout::shadow`]); and `status.rollout`, what the
//! shadow found, as the resource reports it.
//!
//! The candidate runs under the live module's grant, never its own: a
//! candidate declaring more than the grant gives is refused here, with the
//! grant's words, and the running version goes on untouched.

use super::registry::Registry;
use super::resource::{FailureCount, ReconcilerModuleSpec, RolloutExample, RolloutStatus};
use super::source;
use crate::grants::Grant;
use crate::rollout::compare::Verdict;
use crate::rollout::shadow::Report;

/// The phase of a candidate that runs beside the live version.
pub const PHASE_SHADOWING: &str = "Shadowing";
/// The phase of a candidate that does not run.
pub const PHASE_REFUSED: &str = "Refused";

/// The most changes of one example object written into the status.
const EXAMPLE_CHANGES: usize = 4;

/// Brings the shadow of the module under `key` in line with `spec.rollout`
/// (staging, replacing or dropping the candidate); returns the rollout
/// status to write, None when nothing is staged.
pub async fn reconcile(
    client: &kube::Client,
    registry: &Registry,
    key: &str,
    spec: Option<&ReconcilerModuleSpec>,
) -> Option<RolloutStatus> {
    let controller = registry.controller(key).await;
    let Some(rollout) = spec.and_then(|spec| spec.rollout.as_ref()) else {
        if let Some(controller) = controller {
            controller.unstage();
        }
        return None;
    };
    let refused = |message: String, digest: Option<String>, version: Option<String>| {
        tracing::warn!(%message, "candidate not staged");
        Some(RolloutStatus {
            phase: PHASE_REFUSED.to_owned(),
            candidate_digest: digest,
            candidate_version: version,
            message: Some(crate::meta::truncate_at_char_boundary(&message, 4096).to_owned()),
            ..RolloutStatus::default()
        })
    };
    let Some(controller) = controller else {
        return refused(
            "no version of this module runs, so there is nothing to compare the candidate with"
                .to_owned(),
            None,
            None,
        );
    };
    let fetched = match source::fetch(client, &rollout.candidate).await {
        Ok(fetched) => fetched,
        Err(error) => {
            controller.unstage();
            return refused(
                format!("the candidate could not be fetched: {error}"),
                None,
                None,
            );
        }
    };
    let digest = fetched.sha256.clone();
    let engine = registry.engine().clone();
    let description = format!("{} (candidate)", fetched.description);
    let loaded = tokio::task::spawn_blocking(move || engine.load(&description, &fetched.bytes))
        .await
        .map_err(|join| join.to_string())
        .and_then(|loaded| loaded.map_err(|e| e.to_string()));
    let candidate = match loaded {
        Ok(candidate) => candidate,
        Err(error) => {
            controller.unstage();
            return refused(
                format!("the candidate did not load: {error}"),
                Some(digest),
                None,
            );
        }
    };
    let version = Some(candidate.meta().version.clone());
    let grant = Grant::Granted {
        module: None,
        permissions: Box::new(spec.map(|s| s.permissions.clone()).unwrap_or_default()),
    };
    if let Err(denied) = grant.check(candidate.meta()) {
        controller.unstage();
        return refused(
            format!("the candidate asks for more than the module's grant: {denied}"),
            Some(digest),
            version,
        );
    }
    // Shadow calls get no HTTP on either side: say so where the user looks,
    // since calls that need a request fail alike and compare as identical.
    let message = (!candidate.meta().http_origins.is_empty()
        || !controller.meta().http_origins.is_empty())
    .then(|| {
        "the module makes HTTP requests: shadow calls get none (any request may be a write), so calls that need one fail on both sides and compare as identical".to_owned()
    });
    let settings = rollout.settings.as_ref().map(ToString::to_string);
    if let Err(error) = controller.stage(candidate, digest.clone(), settings) {
        controller.unstage();
        return refused(error.to_string(), Some(digest), version);
    }
    Some(RolloutStatus {
        phase: PHASE_SHADOWING.to_owned(),
        candidate_digest: Some(digest),
        candidate_version: version,
        message,
        ..controller
            .shadow_report()
            .map(status_of)
            .unwrap_or_default()
    })
}

/// A shadow's findings as `status.rollout`.
pub fn status_of(report: Report) -> RolloutStatus {
    let failing = report.failing.values().sum();
    RolloutStatus {
        phase: PHASE_SHADOWING.to_owned(),
        candidate_digest: Some(report.digest),
        candidate_version: Some(report.version),
        message: None,
        compared: report.compared,
        identical: report.identical,
        differing: report.differing,
        failing,
        failures: report
            .failing
            .into_iter()
            .map(|(reason, objects)| FailureCount { reason, objects })
            .collect(),
        skipped: report.skipped,
        examples: report
            .examples
            .into_iter()
            .map(|(object, mut diff)| {
                let omitted = diff
                    .omitted
                    .saturating_add(diff.changes.len().saturating_sub(EXAMPLE_CHANGES));
                diff.changes.truncate(EXAMPLE_CHANGES);
                RolloutExample {
                    object,
                    verdict: diff.verdict,
                    failure: diff
                        .failure
                        .filter(|_| diff.verdict == Verdict::Failing)
                        .map(|f| format!("{}: {}", f.reason, f.message)),
                    changes: diff.changes,
                    omitted,
                }
            })
            .collect(),
    }
}
