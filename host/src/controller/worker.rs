//! The worker: one claimed key taken from the cache to the guest and its
//! answer to the API server — read the object and its children, call the
//! guest off the async runtime, validate and plan, apply, and decide when
//! to look again.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use jiff::Timestamp;
use kube::api::DynamicObject;
use serde_json::Value;
use tracing::Instrument;

use super::Controller;
use super::canary::Version;
use crate::engine::bindings::{Request, Trigger};
use crate::engine::{CallContext, CallError, Fault, Module, recording};
use crate::hotloop;
use crate::informers::{ObjectKey, guest_json, to_json};
use crate::meta::Scope;
use crate::objects::ConfinedObjects;
use crate::plan::{PlanContext, plan_response};
use crate::queue::Claim;
use crate::reads::ReadLog;
use crate::rollout::canary::Outcome;
use crate::telemetry::{GuestCall, ReconcileResult};

impl Controller {
    pub(super) async fn reconcile(self: Arc<Self>, claim: Claim<ObjectKey>) {
        let key = claim.key().clone();
        let trigger = self
            .triggers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key)
            .map_or(Trigger::ObjectChanged, |(trigger, _)| trigger);
        // On a sharded host, only while this replica holds the key's
        // bucket: a bucket let go of is reconciled by its next owner, and
        // its release waits for this guard to drop.
        let entered = match &self.ctx.shard {
            Some(shard) => {
                let bucket = crate::shard::bucket_of(key.namespace.as_deref(), &key.name);
                match shard.gate.enter(bucket) {
                    Some(entered) => Some(entered),
                    None => {
                        tracing::debug!(module = %self.meta().name, object = %key, shard = bucket, "not reconciled: another replica holds its bucket");
                        self.forget_key(&key);
                        drop(claim);
                        return;
                    }
                }
            }
            None => None,
        };
        let span = tracing::info_span!(
            "reconcile",
            module = %self.meta().name,
            object = %key,
            ?trigger,
            shard = entered.as_ref().map(crate::shard::Entered::bucket),
        );
        span.in_scope(|| crate::telemetry::trace::queue_wait(claim.waited(), &trigger));
        let started = Instant::now();
        let in_flight = InFlight::count(&self.live_in_flight);
        let result = self
            .reconcile_key(&key, trigger)
            .instrument(span.clone())
            .await;
        drop(in_flight);
        drop(entered);
        // After the live call, so a staged candidate is compared on what
        // the live version just saw (and wrote).
        self.offer_shadow(&key);
        self.stats.reconciles.fetch_add(1, Ordering::Relaxed);
        if result == ReconcileResult::Error {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        // In the span: the time's exemplar is its trace.
        span.in_scope(|| {
            self.ctx
                .metrics
                .reconciled(&self.meta().name, result, started.elapsed())
        });
        drop(claim);
    }

    /// Forgets all that is remembered of `key`: it was deleted, or it is
    /// another replica's now.
    fn forget_key(&self, key: &ObjectKey) {
        self.queue.forget(key);
        self.hot_loops.forget(key);
        self.reads.forget(key);
        self.ctx
            .metrics
            .set_tracked_reads(&self.meta.name, self.reads.tracked());
        self.ctx
            .applier
            .forget(self.meta(), key.namespace.as_deref(), &key.name);
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    pub(super) async fn reconcile_key(&self, key: &ObjectKey, trigger: Trigger) -> ReconcileResult {
        let Some(object) = self.primary().get(key) else {
            // Deleted: nothing to do, and nothing to remember.
            self.forget_key(key);
            return ReconcileResult::Success;
        };
        let host_view = to_json(&object, false);
        let finalizer = self.meta().finalizer.clone();
        let has_finalizer = |f: &str| object.metadata.finalizers.iter().flatten().any(|x| x == f);

        if object.metadata.deletion_timestamp.is_some() {
            return match finalizer {
                Some(f) if has_finalizer(&f) => {
                    self.finalize(key, &object, &host_view, &f, trigger).await
                }
                _ => ReconcileResult::Success,
            };
        }
        if let Some(f) = &finalizer
            && !has_finalizer(f)
        {
            // Added before the first reconcile; the update event brings the
            // object back.
            let Some(applier) = self.writer() else {
                return self.not_written(key);
            };
            return match applier.add_finalizer(self.meta(), &host_view, f).await {
                Ok(()) => ReconcileResult::Success,
                Err(error) => self.write_failed(key, &host_view, None, error).await,
            };
        }

        let generation = object.metadata.generation;
        {
            let failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
            if failed.get(key).is_some_and(|g| *g == generation) {
                tracing::debug!("skipping: the last reconcile failed for good at this generation");
                return ReconcileResult::Success;
            }
        }

        let observed: Vec<Value> = self
            .children_of(&object)
            .map(|child| to_json(&child, false))
            .collect();
        // The canary's objects go to the candidate; all else to the live
        // version.
        let version = self.version_for(&object);
        let request = Request {
            object: guest_json(&host_view),
            children: observed.iter().map(guest_json).collect(),
            settings: version.settings.clone(),
            trigger,
            attempt: self.queue.retries(key) + 1,
        };
        let started = Instant::now();
        let recordings = self.ctx.recordings.clone();
        let outcome = self
            .call(
                GuestCall::Reconcile,
                key,
                &host_view,
                &version,
                request,
                move |module, request, ctx| {
                    recording::reconcile_kept(module, request, ctx, recordings.as_deref())
                },
            )
            .await;
        let candidate = version.is_candidate();
        let response = match outcome {
            Err(error) => {
                self.note_canary(&version, Outcome::Trap);
                return self.call_failed(key, &host_view, &error, candidate).await;
            }
            Ok(Err(error)) => {
                self.note_canary(&version, Outcome::Error);
                return self.guest_error(key, &host_view, generation, error).await;
            }
            Ok(Ok(response)) => response,
        };
        let room = self.resolved().status;
        let namespaces = self.settings().namespaces;
        let plan_context = PlanContext {
            status: room,
            namespaces: &namespaces,
        };
        let plan = match plan_response(
            self.meta(),
            &plan_context,
            &host_view,
            &observed,
            response,
            Timestamp::now(),
        ) {
            Ok(plan) => plan,
            Err(error) => {
                let error = format!(
                    "module {} {} returned invalid output, nothing was written: {error}",
                    self.meta().name,
                    version.module.meta().version
                );
                self.note_canary(&version, Outcome::Error);
                return self
                    .guest_fault(
                        key,
                        &host_view,
                        "InvalidOutput",
                        Fault::Guest,
                        &error,
                        candidate,
                    )
                    .await;
            }
        };
        let Some(applier) = self.writer() else {
            return self.not_written(key);
        };
        match applier
            .apply(self.meta(), room, &host_view, &observed, &plan)
            .await
        {
            Ok(report) => {
                tracing::debug!(
                    applied = report.applied,
                    unchanged = report.unchanged,
                    pruned = report.pruned,
                    status_written = report.status_written,
                    "reconciled"
                );
                self.queue.forget(key);
                self.failed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(key);
                self.ctx
                    .metrics
                    .events_dropped(&self.meta.name, report.events_dropped);
                self.note_canary(&version, Outcome::Success);
                if self
                    .note_writes(key, &host_view, started, report.wrote())
                    .await
                {
                    self.note_canary(&version, Outcome::HotLoop);
                }
                match plan.requeue_after {
                    Some(after) => {
                        self.enqueue_after(key.clone(), Trigger::Requeue, after);
                        ReconcileResult::RequeueAfter
                    }
                    None => ReconcileResult::Success,
                }
            }
            Err(error) => {
                // A write refused as invalid is the version's doing; a
                // race or an unreachable API server is not.
                if error.retry() == crate::apply::Retry::WhenChanged {
                    self.note_canary(&version, Outcome::Error);
                }
                self.write_failed(key, &host_view, generation, error).await
            }
        }
    }

    /// A reconcile that ends without writing because the grant it ran
    /// under was narrowed or withdrawn meanwhile: not the guest's fault,
    /// not retried by this controller (its successor, if the grant still
    /// covers the object, reconciles it).
    pub(super) fn not_written(&self, key: &ObjectKey) -> ReconcileResult {
        tracing::info!(object = %key, "not written: the module's grant changed while it was reconciled");
        self.queue.forget(key);
        ReconcileResult::Error
    }

    /// The observed children of `object`: objects of the owned kinds whose
    /// controller ownerReference is its uid and, for a namespaced primary,
    /// that live in its namespace. An ownerReference across namespaces is
    /// invalid in Kubernetes, and one made by hand must not bring an object
    /// of another namespace into this module's reach.
    pub(super) fn children_of<'a>(
        &'a self,
        object: &'a DynamicObject,
    ) -> impl Iterator<Item = Arc<DynamicObject>> + 'a {
        let uid = object.metadata.uid.clone().unwrap_or_default();
        // A namespaced primary's children live in its namespace; a
        // cluster-scoped one's in the namespaces its views watch, which are
        // those it is granted.
        let namespace = match self.meta.primary.scope {
            Scope::Namespaced => Some(object.metadata.namespace.clone().unwrap_or_default()),
            Scope::Cluster => None,
        };
        self.owned.iter().flat_map(move |kind| {
            self.views[usize::from(kind.0)].controlled_by(&uid, namespace.as_deref())
        })
    }

    /// Tells the hot-loop tracker how a reconcile ended, and the user when
    /// the key's own writes keep bringing it back; true when the key just
    /// entered a hot loop.
    pub(super) async fn note_writes(
        &self,
        key: &ObjectKey,
        object: &Value,
        started: Instant,
        wrote: bool,
    ) -> bool {
        if let hotloop::Verdict::Looping {
            writes,
            hold,
            entered: true,
        } = self.hot_loops.record(key, started, wrote)
        {
            let message = format!(
                "the last {writes} reconciles of this object each wrote something, and each write brought the next reconcile: the module's output changes every time (a timestamp or counter in its status?); holding further reconciles back, {}s at first, until one writes nothing",
                hold.as_secs()
            );
            tracing::warn!(writes, hold = ?hold, "hot loop: the object's own writes keep reconciling it");
            self.report(object, "HotLoop", &message).await;
            return true;
        }
        false
    }

    /// Runs a guest call about `key` (whose object is `object`) on the
    /// blocking pool, once an instance of the engine's pool is free:
    /// compiling and running Wasm must never stall the async runtime, and
    /// no call may fail for want of an instance. What the call reads
    /// becomes what `key`'s primary is reconciled again for. `version`
    /// says which module makes the call (a canary's candidate or the live
    /// one); grant, limits and outbound HTTP are the live module's.
    pub(super) async fn call<T: Send + 'static>(
        &self,
        call: GuestCall,
        key: &ObjectKey,
        object: &Value,
        version: &Version,
        request: Request,
        f: impl FnOnce(&Module, &Request, &CallContext) -> Result<T, CallError> + Send + 'static,
    ) -> Result<T, CallError> {
        let module = version.module.clone();
        let settings = self.settings();
        let read_log = self
            .reads
            .begin(key, settings.limits.tracked_reads as usize);
        let ctx = CallContext {
            http: version
                .outbound()
                .unwrap_or(&self.outbound)
                .for_call(&module, &settings),
            // Reads only where the grant lets the module reconcile: a
            // cluster-scoped primary has no namespace to confine them to.
            objects: ConfinedObjects::over(self.objects.clone(), settings.namespaces),
            read_log: Some(read_log.clone()),
            clock: None,
            limits: settings.limits,
        };
        let started = Instant::now();
        let slot = self.ctx.guest_slots.clone().acquire_owned().await;
        let span = tracing::Span::current();
        let result = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            span.in_scope(|| f(&module, &request, &ctx))
        })
        .await
        .unwrap_or_else(|join| {
            Err(CallError::Instantiate {
                module: self.meta().name.clone(),
                reason: wasmtime::Error::msg(format!("the guest call's thread failed: {join}")),
            })
        });
        self.ctx
            .metrics
            .guest_call(&self.meta().name, call, started.elapsed());
        // A candidate's calls say nothing of the live version's health.
        if result.is_ok() && !version.is_candidate() {
            self.quarantine.succeeded();
        }
        self.take_reads(key, object, &read_log, &result).await;
        result
    }

    /// Takes what a call read into the index: its reads replace the
    /// primary's last ones, unless the guest never ran (then nothing was
    /// read, and the last reads still say what the primary depends on). A
    /// call that read past the cap is reported on the object the first
    /// time.
    async fn take_reads<T>(
        &self,
        key: &ObjectKey,
        object: &Value,
        log: &Arc<ReadLog>,
        result: &Result<T, CallError>,
    ) {
        let ran = !matches!(
            result,
            Err(CallError::RequestTooLarge { .. }
                | CallError::Instantiate { .. }
                | CallError::Reload { .. })
        );
        if !ran {
            self.reads.abandon(key, log);
            return;
        }
        let finished = self.reads.finish(key, log);
        self.ctx
            .metrics
            .set_tracked_reads(&self.meta.name, self.reads.tracked());
        if finished.overflowed {
            self.ctx.metrics.tracked_reads_overflowed(&self.meta.name);
        }
        if finished.newly_overflowed {
            let cap = self.settings().limits.tracked_reads;
            let message = format!(
                "a call about this object read more than {cap} objects or selections; the host tracks the rest by kind and namespace, so any change of those kinds there reconciles this object again (raise limits.trackedReads in module {}'s grant to track each read)",
                self.meta.name
            );
            tracing::warn!(cap, "reads past the tracked-reads cap");
            self.report_warning(object, "TooManyReads", &message).await;
        }
    }
}

/// One live reconcile counted in flight until it ends, however it ends (a
/// future dropped mid-call included): a shadow waits while any is.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InFlight<'a> {
    fn count(counter: &'a std::sync::atomic::AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
