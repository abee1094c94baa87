//! One module's controller: watch events in, queue keys, guest calls, writes
//! out, requeue decisions.
//!
//! Data flows one way: an informer change becomes a queue key (owned
//! children map to their controller owner); a worker takes the key, reads
//! the object and its children from the cache, calls the guest off the
//! async runtime, validates and plans what it returned, hands the plan to
//! the [`Applier`], and decides when to look again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::api::DynamicObject;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::apply::Applier;
use crate::engine::bindings::{ReconcileError, Request, Trigger};
use crate::engine::{CallContext, CallError, Limits, Module};
use crate::informers::{
    CachedObjects, Informer, Informers, ObjectKey, to_json, without_managed_fields,
};
use crate::meta::{ModuleMeta, group_of, truncate_at_char_boundary};
use crate::plan::plan_response;
use crate::queue::{Claim, QueueConfig, WorkQueue};
use crate::telemetry::{GuestCall, Metrics, ReconcileResult};

/// How long to wait before calling `finalize` again when it is not done and
/// asked for no particular delay.
const FINALIZE_POLL: Duration = Duration::from_secs(5);

/// What one controller needs besides its module.
#[derive(Clone)]
pub struct ControllerContext {
    /// The host's shared informers.
    pub informers: Arc<Informers>,
    /// Where writes go.
    pub applier: Arc<Applier>,
    /// Where measurements go.
    pub metrics: Metrics,
}

/// Per-module settings an operator chooses.
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerSettings {
    /// The module's settings JSON, handed to every call.
    pub settings: Option<String>,
    /// Limits on each guest call.
    pub limits: Limits,
    /// Queue behaviour: concurrency, backoff, rate limit.
    pub queue: QueueConfig,
    /// Reconcile every object again this often; None: only on changes.
    /// Fixed when the controller starts.
    pub resync: Option<Duration>,
    /// Stop handing out work (the caches stay warm).
    pub paused: bool,
    /// Stop handing out work after this many guest calls in a row trapped
    /// (deadline, memory, panic); 0 never quarantines. A new version of the
    /// module lifts the quarantine.
    pub quarantine_after: u32,
    /// Reconcile only objects in these namespaces; empty: every namespace.
    pub namespaces: Vec<String>,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        ControllerSettings {
            settings: None,
            limits: Limits::default(),
            queue: QueueConfig::default(),
            resync: None,
            paused: false,
            quarantine_after: 10,
            namespaces: Vec::new(),
        }
    }
}

/// Why a new version cannot replace the running one in place.
#[derive(Debug, thiserror::Error)]
#[error(
    "module {name} {old_version} cannot be swapped in place for {new_name} {new_version}: {reason}; start a new controller instead"
)]
pub struct SwapError {
    name: String,
    old_version: String,
    new_name: String,
    new_version: String,
    reason: &'static str,
}

/// A running controller for one module.
///
/// The module and its settings can be replaced while it runs
/// ([`Controller::swap`]): each reconcile takes the version current when it
/// starts, so in-flight reconciles finish on the old one.
pub struct Controller {
    /// The declaration the watches were started for; a swap keeps it.
    meta: ModuleMeta,
    module: RwLock<Module>,
    settings: RwLock<ControllerSettings>,
    /// Guest calls that trapped in a row.
    consecutive_traps: AtomicU32,
    stats: Stats,
    quarantined: AtomicBool,
    ctx: ControllerContext,
    queue: WorkQueue<ObjectKey>,
    primary: Arc<Informer>,
    owned: Vec<Arc<Informer>>,
    reads: Arc<CachedObjects>,
    /// Why each queued key is queued; the guest sees it as a hint.
    triggers: Mutex<HashMap<ObjectKey, Trigger>>,
    /// Keys whose last reconcile failed permanently, with the generation it
    /// failed at: they are not reconciled again until the generation moves.
    failed: Mutex<HashMap<ObjectKey, Option<i64>>>,
}

impl Controller {
    /// A controller for `module`; starts (or shares) the watches of its
    /// primary, owned and read kinds.
    pub fn new(module: Module, settings: ControllerSettings, ctx: ControllerContext) -> Arc<Self> {
        let meta = module.meta();
        let primary = ctx.informers.informer(&meta.primary);
        let owned: Vec<_> = meta
            .owns
            .iter()
            .map(|kind| ctx.informers.informer(kind))
            .collect();
        let read: Vec<_> = meta
            .reads
            .iter()
            .map(|kind| ctx.informers.informer(kind))
            .collect();
        let readable = std::iter::once(primary.clone())
            .chain(owned.iter().cloned())
            .chain(read)
            .collect();
        let queue = WorkQueue::new(
            settings.queue.clone(),
            ctx.metrics.queue_observer(&meta.name),
        );
        ctx.metrics
            .set_max_concurrent(&meta.name, settings.queue.concurrency);
        if settings.paused {
            queue.set_concurrency(0);
        }
        Arc::new(Controller {
            meta: meta.clone(),
            module: RwLock::new(module),
            settings: RwLock::new(settings),
            consecutive_traps: AtomicU32::new(0),
            stats: Stats::default(),
            quarantined: AtomicBool::new(false),
            ctx,
            queue,
            primary,
            owned,
            reads: Arc::new(CachedObjects::new(readable)),
            triggers: Mutex::default(),
            failed: Mutex::default(),
        })
    }

    /// The module's declaration.
    pub fn meta(&self) -> &ModuleMeta {
        &self.meta
    }

    /// The module version running now.
    pub fn module(&self) -> Module {
        self.module
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The settings in force now.
    pub fn settings(&self) -> ControllerSettings {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Counts since the controller started: (reconciles, errors, traps).
    pub fn stats(&self) -> (u64, u64, u64) {
        (
            self.stats.reconciles.load(Ordering::Relaxed),
            self.stats.errors.load(Ordering::Relaxed),
            self.stats.traps.load(Ordering::Relaxed),
        )
    }

    /// True while the module is quarantined after repeated traps.
    pub fn is_quarantined(&self) -> bool {
        self.quarantined.load(Ordering::Relaxed)
    }

    /// Replaces the module (when `module` is given) and its settings, then
    /// reconciles every object again. The new version must have the same
    /// name and kinds: the watches and queue stay. In-flight reconciles
    /// finish on the version they started with. A new version lifts a
    /// quarantine.
    pub fn swap(
        &self,
        module: Option<Module>,
        settings: ControllerSettings,
    ) -> Result<(), SwapError> {
        if let Some(module) = module {
            let new = module.meta();
            let reason = if new.name != self.meta.name {
                Some("its name differs")
            } else if new.primary != self.meta.primary
                || new.owns != self.meta.owns
                || new.reads != self.meta.reads
            {
                Some("its kinds differ")
            } else if new.finalizer != self.meta.finalizer {
                Some("its finalizer differs")
            } else {
                None
            };
            if let Some(reason) = reason {
                let old = self.module();
                return Err(SwapError {
                    name: self.meta.name.clone(),
                    old_version: old.meta().version.clone(),
                    new_name: new.name.clone(),
                    new_version: new.version.clone(),
                    reason,
                });
            }
            *self.module.write().unwrap_or_else(PoisonError::into_inner) = module;
            self.consecutive_traps.store(0, Ordering::Relaxed);
            self.quarantined.store(false, Ordering::Relaxed);
        }
        let concurrency = if settings.paused || self.is_quarantined() {
            0
        } else {
            settings.queue.concurrency
        };
        self.queue.set_concurrency(concurrency);
        self.ctx
            .metrics
            .set_max_concurrent(&self.meta.name, settings.queue.concurrency);
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = settings;
        // Permanent failures were the old version's verdict.
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        for object in self.primary.objects() {
            self.enqueue(ObjectKey::of(&object), Trigger::ModuleChanged);
        }
        Ok(())
    }

    /// True once the caches of every kind this controller watches are synced.
    pub fn is_synced(&self) -> bool {
        self.primary.is_synced() && self.owned.iter().all(|i| i.is_synced())
    }

    /// Runs until `stop` resolves, then lets in-flight reconciles finish.
    pub async fn run(self: Arc<Self>, stop: impl Future<Output = ()> + Send) {
        let name = self.meta().name.clone();
        let mut primary_changes = self.primary.subscribe();
        let (child_tx, mut child_changes) = mpsc::unbounded_channel();
        let mut forwarders = JoinSet::new();
        for informer in &self.owned {
            let mut rx = informer.subscribe();
            let tx = child_tx.clone();
            forwarders.spawn(async move {
                while let Some(change) = rx.recv().await {
                    if tx.send(change).is_err() {
                        break;
                    }
                }
            });
        }
        drop(child_tx);

        self.primary.synced().await;
        for informer in &self.owned {
            informer.synced().await;
        }
        // Everything already cached gets a first reconcile; changes that
        // arrived meanwhile merge into the same queue slots.
        for object in self.primary.objects() {
            self.enqueue(ObjectKey::of(&object), Trigger::ObjectChanged);
        }
        tracing::info!(module = %name, objects = self.queue.len(), "caches synced; reconciling");

        // Hand-outs run in a task of their own, so that the event loop below
        // never drops a half-finished `next()`.
        let dispatcher = tokio::spawn({
            let this = self.clone();
            async move {
                let mut workers = JoinSet::new();
                while let Some(claim) = this.queue.next().await {
                    let worker = this.clone();
                    workers.spawn(async move { worker.reconcile(claim).await });
                    while workers.try_join_next().is_some() {}
                }
                let in_flight = workers.len();
                if in_flight > 0 {
                    tracing::info!(module = %this.meta().name, in_flight, "finishing in-flight reconciles");
                }
                while workers.join_next().await.is_some() {}
            }
        });

        let mut resync = self
            .settings()
            .resync
            .map(|period| tokio::time::interval_at(tokio::time::Instant::now() + period, period));
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                Some(change) = primary_changes.recv() => self.enqueue(ObjectKey::of(&change), Trigger::ObjectChanged),
                Some(change) = child_changes.recv() => {
                    if let Some(owner) = self.owner_key(&change) {
                        self.enqueue(owner, Trigger::ChildChanged);
                    }
                }
                _ = async { resync.as_mut().expect("guarded by the condition").tick().await }, if resync.is_some() => {
                    for object in self.primary.objects() {
                        self.enqueue(ObjectKey::of(&object), Trigger::Resync);
                    }
                }
            }
        }
        tracing::info!(module = %name, "stopping");
        self.queue.shutdown();
        forwarders.abort_all();
        let _ = dispatcher.await;
    }

    /// Whether `key` is in the namespaces this module may reconcile. The
    /// limit applies to namespaced primaries; cluster-scoped ones have none.
    fn in_scope(&self, key: &ObjectKey) -> bool {
        let namespaces = &self
            .settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .namespaces;
        match &key.namespace {
            Some(namespace) => namespaces.is_empty() || namespaces.contains(namespace),
            None => true,
        }
    }

    fn enqueue(&self, key: ObjectKey, trigger: Trigger) {
        if !self.in_scope(&key) {
            return;
        }
        self.triggers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_insert(trigger);
        self.queue.add(key);
    }

    fn enqueue_after(&self, key: ObjectKey, trigger: Trigger, delay: Duration) {
        self.triggers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_insert(trigger);
        self.queue.add_after(key, delay);
    }

    fn retry(&self, key: &ObjectKey) -> Duration {
        self.triggers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.clone())
            .or_insert(Trigger::Retry);
        self.queue.add_rate_limited(key.clone())
    }

    /// The primary that controls `child`, by its controller ownerReference.
    fn owner_key(&self, child: &DynamicObject) -> Option<ObjectKey> {
        let primary = &self.meta().primary;
        let owner = child
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))?;
        if owner.kind != primary.kind || group_of(&owner.api_version) != primary.group {
            return None;
        }
        Some(ObjectKey {
            namespace: match primary.scope {
                crate::meta::Scope::Namespaced => child.metadata.namespace.clone(),
                crate::meta::Scope::Cluster => None,
            },
            name: owner.name.clone(),
        })
    }

    async fn reconcile(self: Arc<Self>, claim: Claim<ObjectKey>) {
        let key = claim.key().clone();
        let trigger = self
            .triggers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key)
            .unwrap_or(Trigger::ObjectChanged);
        let span =
            tracing::info_span!("reconcile", module = %self.meta().name, object = %key, ?trigger);
        let started = Instant::now();
        let result = self.reconcile_key(&key, trigger).instrument(span).await;
        self.stats.reconciles.fetch_add(1, Ordering::Relaxed);
        if result == ReconcileResult::Error {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.ctx
            .metrics
            .reconciled(&self.meta().name, result, started.elapsed());
        drop(claim);
    }

    async fn reconcile_key(&self, key: &ObjectKey, trigger: Trigger) -> ReconcileResult {
        let Some(object) = self.primary.get(key) else {
            // Deleted: nothing to do, and nothing to remember.
            self.queue.forget(key);
            self.ctx
                .applier
                .forget(self.meta(), key.namespace.as_deref(), &key.name);
            self.failed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(key);
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
            return match self
                .ctx
                .applier
                .add_finalizer(self.meta(), &host_view, f)
                .await
            {
                Ok(()) => ReconcileResult::Success,
                Err(error) => {
                    tracing::warn!(%error, "could not add the finalizer");
                    self.retry(key);
                    ReconcileResult::Error
                }
            };
        }

        let generation = object.metadata.generation;
        {
            let failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
            if failed.get(key).is_some_and(|g| *g == generation) {
                tracing::debug!(
                    "skipping: the last reconcile failed permanently at this generation"
                );
                return ReconcileResult::Success;
            }
        }

        let uid = object.metadata.uid.clone().unwrap_or_default();
        let observed: Vec<Value> = self
            .owned
            .iter()
            .flat_map(|informer| informer.controlled_by(&uid))
            .map(|child| to_json(&child, false))
            .collect();
        let request = Request {
            object: to_json(&object, true).to_string(),
            children: observed
                .iter()
                .map(|child| without_managed_fields(child.clone()).to_string())
                .collect(),
            settings: self.settings().settings,
            trigger,
            attempt: self.queue.retries(key) + 1,
        };
        let outcome = self
            .call(GuestCall::Reconcile, request, |module, request, ctx| {
                module.reconcile(request, ctx)
            })
            .await;
        let response = match outcome {
            Err(error) => return self.call_failed(key, &host_view, &error).await,
            Ok(Err(error)) => return self.guest_error(key, &host_view, generation, error).await,
            Ok(Ok(response)) => response,
        };
        let plan = match plan_response(
            self.meta(),
            &host_view,
            &observed,
            response,
            Timestamp::now(),
        ) {
            Ok(plan) => plan,
            Err(error) => {
                self.ctx
                    .metrics
                    .guest_trap(&self.meta().name, "InvalidOutput");
                tracing::warn!(%error, "the module returned invalid output; nothing was written");
                self.warn(
                    &host_view,
                    "InvalidOutput",
                    &format!(
                        "module {} returned invalid output: {error}",
                        self.meta().name
                    ),
                )
                .await;
                self.retry(key);
                return ReconcileResult::Error;
            }
        };
        match self
            .ctx
            .applier
            .apply(self.meta(), &host_view, &observed, &plan)
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
                match plan.requeue_after {
                    Some(after) => {
                        self.enqueue_after(key.clone(), Trigger::Requeue, after);
                        ReconcileResult::RequeueAfter
                    }
                    None => ReconcileResult::Success,
                }
            }
            Err(error) => {
                tracing::warn!(%error, "writing the reconcile's result failed; retrying with backoff");
                self.retry(key);
                ReconcileResult::Error
            }
        }
    }

    async fn finalize(
        &self,
        key: &ObjectKey,
        object: &DynamicObject,
        host_view: &Value,
        finalizer: &str,
        trigger: Trigger,
    ) -> ReconcileResult {
        let uid = object.metadata.uid.clone().unwrap_or_default();
        let children = self
            .owned
            .iter()
            .flat_map(|informer| informer.controlled_by(&uid))
            .map(|child| to_json(&child, true).to_string())
            .collect();
        let request = Request {
            object: to_json(object, true).to_string(),
            children,
            settings: self.settings().settings,
            trigger,
            attempt: self.queue.retries(key) + 1,
        };
        let outcome = self
            .call(GuestCall::Finalize, request, |module, request, ctx| {
                module.finalize(request, ctx)
            })
            .await;
        let response = match outcome {
            Err(error) => return self.call_failed(key, host_view, &error).await,
            Ok(Err(error)) => return self.guest_error(key, host_view, None, error).await,
            Ok(Ok(response)) => response,
        };
        let events = crate::validate::validate_events(response.events).unwrap_or_default();
        if let Err(error) = self
            .ctx
            .applier
            .record_events(self.meta(), host_view, &events)
            .await
        {
            tracing::warn!(%error, "could not record events");
        }
        if !response.done {
            let after = response
                .requeue_after_ms
                .map_or(FINALIZE_POLL, Duration::from_millis);
            self.enqueue_after(key.clone(), Trigger::Requeue, after);
            return ReconcileResult::RequeueAfter;
        }
        match self
            .ctx
            .applier
            .remove_finalizer(self.meta(), host_view, finalizer)
            .await
        {
            Ok(()) => {
                self.queue.forget(key);
                ReconcileResult::Success
            }
            Err(error) => {
                tracing::warn!(%error, "could not remove the finalizer");
                self.retry(key);
                ReconcileResult::Error
            }
        }
    }

    /// Runs a guest call on the blocking pool: compiling and running Wasm
    /// must never stall the async runtime.
    async fn call<T: Send + 'static>(
        &self,
        call: GuestCall,
        request: Request,
        f: impl FnOnce(&Module, &Request, &CallContext) -> Result<T, CallError> + Send + 'static,
    ) -> Result<T, CallError> {
        let module = self.module();
        let ctx = CallContext {
            objects: self.reads.clone(),
            clock: None,
            limits: self.settings().limits,
        };
        let started = Instant::now();
        let span = tracing::Span::current();
        let result =
            tokio::task::spawn_blocking(move || span.in_scope(|| f(&module, &request, &ctx)))
                .await
                .unwrap_or_else(|join| {
                    Err(CallError::Instantiate {
                        module: self.meta().name.clone(),
                        reason: wasmtime::Error::msg(format!(
                            "the guest call's thread failed: {join}"
                        )),
                    })
                });
        self.ctx
            .metrics
            .guest_call(&self.meta().name, call, started.elapsed());
        if result.is_ok() {
            self.consecutive_traps.store(0, Ordering::Relaxed);
        }
        result
    }

    async fn call_failed(
        &self,
        key: &ObjectKey,
        object: &Value,
        error: &CallError,
    ) -> ReconcileResult {
        self.ctx.metrics.guest_trap(&self.meta().name, error.kind());
        self.stats.traps.fetch_add(1, Ordering::Relaxed);
        let traps = self.consecutive_traps.fetch_add(1, Ordering::Relaxed) + 1;
        let limit = self.settings().quarantine_after;
        if limit > 0 && traps >= limit && !self.quarantined.swap(true, Ordering::Relaxed) {
            self.queue.set_concurrency(0);
            self.ctx.metrics.set_quarantined(&self.meta().name, true);
            tracing::error!(module = %self.meta().name, traps, "quarantined after {traps} traps in a row; load a new version to resume");
        }
        let delay = self.retry(key);
        tracing::warn!(%error, retry_in = ?delay, "guest call failed");
        self.warn(object, error.kind(), &error.to_string()).await;
        ReconcileResult::Error
    }

    async fn guest_error(
        &self,
        key: &ObjectKey,
        object: &Value,
        generation: Option<i64>,
        error: ReconcileError,
    ) -> ReconcileResult {
        match error {
            ReconcileError::Retryable(failure) => {
                let delay = self.retry(key);
                tracing::info!(reason = %failure.reason, message = %failure.message, retry_in = ?delay, "retryable error");
                self.warn(object, &failure.reason, &failure.message).await;
            }
            ReconcileError::Permanent(failure) => {
                tracing::warn!(reason = %failure.reason, message = %failure.message, "permanent error; not retrying until the object changes");
                self.queue.forget(key);
                self.failed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key.clone(), generation);
                if let Err(error) = self
                    .ctx
                    .applier
                    .report_permanent_error(self.meta(), object, &failure.reason, &failure.message)
                    .await
                {
                    tracing::warn!(%error, "could not report the permanent error");
                }
            }
        }
        ReconcileResult::Error
    }

    async fn warn(&self, object: &Value, reason: &str, message: &str) {
        let event = crate::engine::bindings::Event {
            event_type: crate::engine::bindings::EventType::Warning,
            reason: reason.to_owned(),
            note: truncate_at_char_boundary(message, crate::validate::MAX_EVENT_NOTE_BYTES)
                .to_owned(),
            action: "Reconcile".to_owned(),
        };
        if let Err(error) = self
            .ctx
            .applier
            .record_events(self.meta(), object, &[event])
            .await
        {
            tracing::debug!(%error, "could not record a warning event");
        }
    }
}

#[derive(Default)]
struct Stats {
    reconciles: std::sync::atomic::AtomicU64,
    errors: std::sync::atomic::AtomicU64,
    traps: std::sync::atomic::AtomicU64,
}
