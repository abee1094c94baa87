//! The live controller's side of a canary ([`crate::rollout::canary`]):
//! which version reconciles each key, counting how each call ended for the
//! judge, and acting on its decisions — a step up queues the objects the
//! candidate just took, a rollback queues every object it held so that the
//! live version reconciles it again.
//!
//! A canary's calls are real reconciles (plan, apply, status, events)
//! under the live module's grant, limits and outbound HTTP; only the module
//! and its settings differ. Its failures are reported on the objects as a
//! live version's are, but never count toward the live version's
//! quarantine (see `failures.rs`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use kube::api::DynamicObject;

use super::Controller;
use super::outbound::ModuleOutbound;
use crate::engine::Module;
use crate::engine::bindings::Trigger;
use crate::informers::ObjectKey;
use crate::queue::Priority;
use crate::rollout::canary::{
    Decision, Judge, Outcome, Policy, Report, Side, bucket, in_canary, selected,
};
use crate::rollout::{StageError, same_kinds};

/// A candidate taking a share of the objects.
pub(super) struct CanaryRun {
    module: Module,
    digest: String,
    settings: Option<String>,
    selector: BTreeMap<String, String>,
    /// The candidate's outbound HTTP (and connection pool) under the live
    /// module's grant, kept across its calls as the live version's is.
    outbound: ModuleOutbound,
    judge: Mutex<Judge>,
    /// A rollback's reason until it is announced (an Event on the
    /// ReconcilerModule): once.
    unannounced: Mutex<Option<String>>,
}

impl CanaryRun {
    fn judge(&self) -> std::sync::MutexGuard<'_, Judge> {
        self.judge.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `object` is the candidate's at `percent`.
    fn takes(&self, object: &DynamicObject, percent: u8) -> bool {
        selected(&self.selector, object.metadata.labels.as_ref())
            && in_canary(
                bucket(
                    object.metadata.namespace.as_deref(),
                    object.metadata.name.as_deref().unwrap_or_default(),
                ),
                percent,
            )
    }
}

/// The version one reconcile runs on, and the canary it counts toward.
pub(super) struct Version {
    /// The module called.
    pub module: Module,
    /// Its settings JSON.
    pub settings: Option<String>,
    /// Which side of the canary the call is on (`Live` without one).
    pub side: Side,
    /// The canary staged, if any: both sides' calls count toward it.
    canary: Option<Arc<CanaryRun>>,
}

impl Version {
    /// True when the candidate makes the call: its faults are not the
    /// live version's.
    pub fn is_candidate(&self) -> bool {
        self.side == Side::Candidate
    }

    /// The candidate's outbound HTTP, when the candidate makes the call;
    /// None: the live version's.
    pub fn outbound(&self) -> Option<&ModuleOutbound> {
        self.canary
            .as_ref()
            .filter(|_| self.is_candidate())
            .map(|run| &run.outbound)
    }
}

impl Controller {
    /// Stages `candidate` as a canary judged by `policy`, on the objects
    /// `selector` picks (all when empty), at least at step `step`. The same
    /// candidate (digest, settings, selector) staged again keeps its counts
    /// and verdict, and takes the new policy and a manual step up; a
    /// rolled-back digest stays rolled back whatever else changed (only a
    /// new digest, or no rollout, starts over).
    ///
    /// # Errors
    ///
    /// When the candidate's kinds or finalizer differ from the running
    /// version's.
    pub fn stage_canary(
        &self,
        candidate: Module,
        digest: String,
        settings: Option<String>,
        policy: Policy,
        selector: BTreeMap<String, String>,
        step: usize,
    ) -> Result<(), StageError> {
        if let Some(run) = self.canary_run()
            && run.digest == digest
            && (run.judge().is_rolled_back()
                || (run.settings == settings && run.selector == selector))
        {
            let decision = run.judge().update(policy, step);
            self.decided(&run, decision);
            return Ok(());
        }
        same_kinds(&self.meta, candidate.meta())?;
        self.stop_canary();
        let outbound = ModuleOutbound::new(&candidate, &self.settings(), self.ctx.http.clone());
        let run = Arc::new(CanaryRun {
            outbound,
            module: candidate,
            digest,
            settings,
            selector,
            judge: Mutex::new(Judge::new(policy, step, Instant::now())),
            unannounced: Mutex::new(None),
        });
        let percent = run.judge().percent();
        *self.canary.write().unwrap_or_else(PoisonError::into_inner) = Some(run.clone());
        tracing::info!(module = %self.meta.name, percent, "canary started");
        self.requeue_share(&run, 0, percent);
        self.baseline();
        Ok(())
    }

    /// Drops the canary, if any: every object it held is reconciled
    /// again by the live version.
    pub fn stop_canary(&self) {
        let run = self
            .canary
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(run) = run {
            let percent = run.judge().percent();
            tracing::info!(module = %self.meta.name, percent, "canary stopped");
            self.requeue_share(&run, 0, percent);
        }
    }

    /// Where the canary stands; None when none is staged.
    pub fn canary_report(&self) -> Option<Report> {
        self.canary_run().map(|run| Report {
            digest: run.digest.clone(),
            version: run.module.meta().version.clone(),
            judge: run.judge().clone(),
        })
    }

    /// The reason of a rollback not announced yet, once.
    pub fn take_rollback_notice(&self) -> Option<String> {
        self.canary_run().and_then(|run| {
            run.unannounced
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
        })
    }

    fn canary_run(&self) -> Option<Arc<CanaryRun>> {
        self.canary
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The version that reconciles `object` now.
    pub(super) fn version_for(&self, object: &DynamicObject) -> Version {
        let canary = self.canary_run();
        if let Some(run) = &canary {
            let percent = run.judge().percent();
            if run.takes(object, percent) {
                return Version {
                    module: run.module.clone(),
                    settings: run.settings.clone().or_else(|| self.settings().settings),
                    side: Side::Candidate,
                    canary,
                };
            }
        }
        Version {
            module: self.module(),
            settings: self.settings().settings,
            side: Side::Live,
            canary,
        }
    }

    /// The live version, for calls no canary takes (finalizers) and
    /// counts toward none.
    pub(super) fn live_version(&self) -> Version {
        Version {
            module: self.module(),
            settings: self.settings().settings,
            side: Side::Live,
            canary: None,
        }
    }

    /// Counts how a call on `version` ended and acts on the verdict.
    pub(super) fn note_canary(&self, version: &Version, outcome: Outcome) {
        let Some(run) = &version.canary else {
            return;
        };
        let decision = run.judge().record(version.side, outcome, Instant::now());
        self.decided(run, decision);
    }

    /// A window may have ended without a call: judges the canary now.
    pub(super) fn canary_tick(&self) {
        if let Some(run) = self.canary_run() {
            let decision = run.judge().tick(Instant::now());
            self.decided(&run, decision);
        }
    }

    fn decided(&self, run: &CanaryRun, decision: Decision) {
        match decision {
            Decision::Continue => {}
            Decision::Advanced { from, to } => {
                tracing::info!(module = %self.meta.name, from, to, "canary stepped up");
                self.requeue_share(run, from, to);
                self.baseline();
            }
            Decision::RolledBack { percent, reason } => {
                tracing::warn!(module = %self.meta.name, percent, %reason, "canary rolled back");
                *run.unannounced
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(reason);
                self.requeue_share(run, 0, percent);
            }
        }
    }

    /// Queues every object behind real work, so that the live version
    /// too reconciles its share in the window that just started: without
    /// it a settled live version makes no calls, and a candidate failing
    /// exactly where the live version fails (a spec neither can serve)
    /// would be judged against a rate of nothing.
    fn baseline(&self) {
        self.enqueue_all(Trigger::ModuleChanged);
    }

    /// Queues the objects in `run`'s share between `from` and `to`
    /// percent, forgetting what a version concluded about them (backoff,
    /// a permanent failure): the version taking them over decides anew.
    fn requeue_share(&self, run: &CanaryRun, from: u8, to: u8) {
        let keys: Vec<ObjectKey> = self
            .primary()
            .objects()
            .iter()
            .filter(|o| run.takes(o, to) && !run.takes(o, from))
            .map(|o| ObjectKey::of(o))
            .collect();
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        for key in &keys {
            failed.remove(key);
        }
        drop(failed);
        for key in keys {
            self.queue.forget(&key);
            self.enqueue(key, Trigger::ModuleChanged, Priority::High);
        }
    }
}
