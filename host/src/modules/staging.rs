//! A ReconcilerModule's `spec.rollout`: fetching its candidate, loading it
//! under the module's grant and handing it to the running controller as a
//! shadow ([`crate::rollout::shadow`]) or a canary
//! ([`crate::rollout::canary`]); and `status.rollout`, what the shadow
//! found or where the canary stands, as the resource reports it.
//!
//! A canary the host rolled back stays rolled back for its digest: the
//! next load of the same spec (a resync, a host restart reading the
//! status) does not stage it again. A new digest, `bosun rollout abort`
//! or removing `spec.rollout` resets it.
//!
//! The candidate runs under the live module's grant, never its own: a
//! candidate declaring more than the grant gives is refused here, with the
//! grant's words, and the running version goes on untouched.

use super::registry::Registry;
use super::resource::{
    CanaryStatus, FailureCount, ReconcilerModuleSpec, RolloutExample, RolloutMode, RolloutStatus,
    VersionCounts,
};
use super::source;
use crate::grants::Grant;
use crate::rollout::canary::{Counts, Phase};
use crate::rollout::compare::Verdict;
use crate::rollout::shadow::Report;

/// The phase of a candidate that runs beside the live version.
pub const PHASE_SHADOWING: &str = "Shadowing";
/// The phase of a candidate that does not run.
pub const PHASE_REFUSED: &str = "Refused";
/// The phase of a canary taking its share of the objects.
pub const PHASE_CANARY: &str = "Canary";
/// The phase of a canary the host rolled back.
pub const PHASE_ROLLED_BACK: &str = "RolledBack";

/// The most changes of one example object written into the status.
const EXAMPLE_CHANGES: usize = 4;

/// Brings the shadow of the module under `key` in line with `spec.rollout`
/// (staging, replacing or dropping the candidate); returns the rollout
/// status to write, None when nothing is staged. `previous` is the
/// status the resource carries: a canary it says was rolled back is not
/// staged again.
pub async fn reconcile(
    client: &kube::Client,
    registry: &Registry,
    key: &str,
    spec: Option<&ReconcilerModuleSpec>,
    previous: Option<&RolloutStatus>,
) -> Option<RolloutStatus> {
    let controller = registry.controller(key).await;
    let Some(rollout) = spec.and_then(|spec| spec.rollout.as_ref()) else {
        if let Some(controller) = controller {
            controller.unstage();
            controller.stop_canary();
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
            controller.stop_canary();
            return refused(
                format!("the candidate could not be fetched: {error}"),
                None,
                None,
            );
        }
    };
    let digest = fetched.sha256.clone();
    if let Some(previous) = previous.filter(|p| {
        rollout.mode == RolloutMode::Canary
            && p.phase == PHASE_ROLLED_BACK
            && p.candidate_digest.as_deref() == Some(digest.as_str())
    }) && controller.canary_report().is_none()
    {
        // Rolled back before this host (or this controller) started: it
        // stays so until a new digest, an abort or no rollout.
        return Some(previous.clone());
    }
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
            controller.stop_canary();
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
        controller.stop_canary();
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
    match rollout.canary_policy() {
        Err(error) => {
            // validate() refused it before; kept for a spec that skipped it.
            controller.unstage();
            controller.stop_canary();
            return refused(error.to_string(), Some(digest), version);
        }
        Ok(Some(policy)) => {
            controller.unstage();
            let canary = rollout.canary.clone().unwrap_or_default();
            let step = usize::try_from(canary.step).unwrap_or(usize::MAX);
            if let Err(error) = controller.stage_canary(
                candidate,
                digest.clone(),
                settings,
                policy,
                canary.selector,
                step,
            ) {
                controller.stop_canary();
                return refused(error.to_string(), Some(digest), version);
            }
            return controller.canary_report().map(canary_status_of);
        }
        Ok(None) => controller.stop_canary(),
    }
    if let Err(error) = controller.stage(candidate, digest.clone(), settings) {
        controller.unstage();
        controller.stop_canary();
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
        canary: None,
    }
}

/// A canary's standing as `status.rollout`.
pub fn canary_status_of(report: crate::rollout::canary::Report) -> RolloutStatus {
    let judge = &report.judge;
    let (live, candidate) = judge.counts();
    let (phase, message) = match judge.phase() {
        Phase::Running => (PHASE_CANARY, None),
        Phase::RolledBack { reason } => (
            PHASE_ROLLED_BACK,
            Some(format!(
                "rolled back by the host: {reason}; the canary's objects are reconciled by the live version again"
            )),
        ),
    };
    let policy = judge.policy();
    RolloutStatus {
        phase: phase.to_owned(),
        candidate_digest: Some(report.digest),
        candidate_version: Some(report.version),
        message,
        canary: Some(CanaryStatus {
            percent: u32::from(judge.percent()),
            step: u32::try_from(judge.step()).unwrap_or(u32::MAX),
            steps: policy.steps.iter().copied().map(u32::from).collect(),
            automatic: policy.automatic,
            window_seconds: u32::try_from(policy.window.as_secs()).unwrap_or(u32::MAX),
            live: counts_of(live),
            candidate: counts_of(candidate),
        }),
        ..RolloutStatus::default()
    }
}

fn counts_of(counts: Counts) -> VersionCounts {
    VersionCounts {
        calls: counts.calls,
        errors: counts.errors,
        traps: counts.traps,
        hot_loops: counts.hot_loops,
        failure_ratio: (counts.failure_ratio() * 1000.0).round() / 1000.0,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::rollout::canary::{Judge, Outcome, Policy, Report, Side};

    fn report(judge: Judge) -> Report {
        Report {
            digest: "abc".into(),
            version: "0.2.0".into(),
            judge,
        }
    }

    fn policy() -> Policy {
        Policy {
            steps: vec![20, 100],
            window: Duration::from_secs(60),
            max_failure_ratio: 0.1,
            max_hot_loops: 0,
            min_calls: 3,
            automatic: false,
        }
    }

    #[test]
    fn a_running_canary_reports_its_share_and_both_counts() {
        let now = Instant::now();
        let mut judge = Judge::new(policy(), 0, now);
        judge.record(Side::Live, Outcome::Success, now);
        judge.record(Side::Live, Outcome::Error, now);
        judge.record(Side::Live, Outcome::Success, now);
        judge.record(Side::Candidate, Outcome::Success, now);
        let status = canary_status_of(report(judge));
        assert_eq!(status.phase, PHASE_CANARY);
        assert_eq!(status.message, None);
        let canary = status.canary.unwrap();
        assert_eq!((canary.percent, canary.step), (20, 0));
        assert_eq!(canary.steps, vec![20, 100]);
        assert_eq!(canary.window_seconds, 60);
        assert_eq!(canary.live.calls, 3);
        assert_eq!(canary.live.errors, 1);
        assert_eq!(canary.live.failure_ratio, 0.333);
        assert_eq!(canary.candidate.calls, 1);
    }

    #[test]
    fn a_rolled_back_canary_says_why() {
        let now = Instant::now();
        let mut judge = Judge::new(policy(), 0, now);
        for _ in 0..3 {
            judge.record(Side::Candidate, Outcome::Trap, now);
        }
        let status = canary_status_of(report(judge));
        assert_eq!(status.phase, PHASE_ROLLED_BACK);
        let message = status.message.unwrap();
        assert!(
            message.starts_with("rolled back by the host: the candidate failed 3 of 3 calls (0 errors, 3 traps: 100%)"),
            "{message}"
        );
        let canary = status.canary.unwrap();
        assert_eq!(canary.percent, 0);
        assert_eq!(canary.candidate.traps, 3);
        assert_eq!(canary.candidate.failure_ratio, 1.0);
    }
}
