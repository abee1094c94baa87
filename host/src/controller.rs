//! One module's controller: watch events in, queue keys, guest calls, writes
//! out, requeue decisions.
//!
//! Data flows one way: an informer change becomes a queue key (owned
//! children map to their controller owner); a worker takes the key, reads
//! the object and its children from the cache, calls the guest off the
//! async runtime, validates and plans what it returned, hands the plan to
//! the [`Applier`], and decides when to look again.
//!
//! Whatever fails — the guest's call, its output, a write — is reported on
//! the primary, where the user looks (a Warning event, and a `Reconciled`
//! condition where the status has room), and retried as the failure
//! warrants. Two policies live in rooms of their own: when failures
//! quarantine the module ([`crate::quarantine`]) and when a key's own
//! writes hold it back ([`crate::hotloop`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::api::DynamicObject;
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::apply::{Applier, ApplyError, Retry};
use crate::discovery::{Discovery, Resolved};
use crate::engine::bindings::{ReconcileError, Request, Trigger};
use crate::engine::{CallContext, CallError, Fault, Limits, Module};
use crate::hotloop::{self, HotLoops};
use crate::informers::{CachedObjects, Informer, Informers, ObjectKey, guest_json, to_json};
use crate::meta::{ModuleMeta, Scope, group_of};
use crate::objects::ConfinedObjects;
use crate::plan::{PlanContext, plan_response};
use crate::quarantine::{self, Quarantine};
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
    /// One permit per instance the engine's pool holds: a call waits for a
    /// free instance instead of failing to get one.
    pub guest_slots: Arc<Semaphore>,
    /// What the API server says of kinds.
    pub discovery: Arc<Discovery>,
    /// What every module's outbound HTTP shares (key reads, guarded
    /// addresses, metrics).
    pub http: crate::http::Environment,
}

/// How often a controller whose primary's status schema was not published
/// when it loaded looks for it again.
const SCHEMA_RETRY: Duration = Duration::from_secs(5);

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
    /// Stop handing out work after this many guest calls in a row failed by
    /// the guest's own fault (see [`crate::quarantine`]); 0 never
    /// quarantines. A new version of the module lifts the quarantine.
    pub quarantine_after: u32,
    /// Reconcile and write only in these namespaces; empty: every
    /// namespace. Set from the module's grant.
    pub namespaces: Vec<String>,
    /// The origins the module may reach over HTTP, with their credentials.
    /// Set from the module's grant.
    pub http: Vec<crate::grants::HttpGrant>,
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
            http: Vec::new(),
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
    /// What discovery said of the module's kinds when it loaded.
    resolved: RwLock<Resolved>,
    settings: RwLock<ControllerSettings>,
    stats: Stats,
    quarantine: Quarantine,
    hot_loops: HotLoops<ObjectKey>,
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
    /// A controller for `module`, whose kinds discovery confirmed
    /// (`resolved`); starts (or shares) the watches of its primary, owned
    /// and read kinds.
    pub fn new(
        module: Module,
        resolved: Resolved,
        settings: ControllerSettings,
        ctx: ControllerContext,
    ) -> Arc<Self> {
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
            resolved: RwLock::new(resolved),
            settings: RwLock::new(settings),
            stats: Stats::default(),
            quarantine: Quarantine::default(),
            hot_loops: HotLoops::default(),
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
        self.quarantine.is_quarantined()
    }

    fn resolved(&self) -> Resolved {
        self.resolved
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the module (when `module` is given) and its settings, then
    /// reconciles every object again. The new version must have the same
    /// name and kinds: the watches and queue stay. In-flight reconciles
    /// finish on the version they started with. A new version lifts a
    /// quarantine.
    pub fn swap(
        &self,
        module: Option<(Module, Resolved)>,
        settings: ControllerSettings,
    ) -> Result<(), SwapError> {
        if let Some((module, resolved)) = module {
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
            *self
                .resolved
                .write()
                .unwrap_or_else(PoisonError::into_inner) = resolved;
            if self.quarantine.is_quarantined() {
                self.ctx.metrics.set_quarantined(&self.meta.name, false);
            }
            self.quarantine.lift();
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
        let mut schema_retry =
            tokio::time::interval_at(tokio::time::Instant::now() + SCHEMA_RETRY, SCHEMA_RETRY);
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = schema_retry.tick(), if self.resolved().provisional => self.look_for_status_schema().await,
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

    /// A status schema not published at load may be by now: once found, the
    /// host adds what it has room for, and every object is reconciled again.
    async fn look_for_status_schema(&self) {
        let Some(room) = self.ctx.discovery.status_room(&self.meta).await else {
            return;
        };
        tracing::info!(module = %self.meta.name, status = ?room, "the status schema is published now");
        *self
            .resolved
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Resolved {
            status: room,
            provisional: false,
        };
        for object in self.primary.objects() {
            self.enqueue(ObjectKey::of(&object), Trigger::ModuleChanged);
        }
    }

    /// Whether `key` is in the namespaces this module may reconcile. The
    /// limit applies to namespaced primaries; cluster-scoped ones have none.
    fn in_scope(&self, key: &ObjectKey) -> bool {
        let settings = self.settings.read().unwrap_or_else(PoisonError::into_inner);
        serves(&settings.namespaces, key.namespace.as_deref())
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
        match self.hot_loops.hold(&key) {
            Some(hold) => {
                self.ctx.metrics.hot_loop_held(&self.meta.name);
                self.queue.add_after(key, hold);
            }
            None => self.queue.add(key),
        }
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
            self.hot_loops.forget(key);
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
        let request = Request {
            object: guest_json(&host_view),
            children: observed.iter().map(guest_json).collect(),
            settings: self.settings().settings,
            trigger,
            attempt: self.queue.retries(key) + 1,
        };
        let started = Instant::now();
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
                    "module {} returned invalid output, nothing was written: {error}",
                    self.meta().name
                );
                return self
                    .guest_fault(key, &host_view, "InvalidOutput", Fault::Guest, &error)
                    .await;
            }
        };
        match self
            .ctx
            .applier
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
                self.note_writes(key, &host_view, started, report.wrote())
                    .await;
                match plan.requeue_after {
                    Some(after) => {
                        self.enqueue_after(key.clone(), Trigger::Requeue, after);
                        ReconcileResult::RequeueAfter
                    }
                    None => ReconcileResult::Success,
                }
            }
            Err(error) => self.write_failed(key, &host_view, generation, error).await,
        }
    }

    /// The observed children of `object`: objects of the owned kinds whose
    /// controller ownerReference is its uid and, for a namespaced primary,
    /// that live in its namespace. An ownerReference across namespaces is
    /// invalid in Kubernetes, and one made by hand must not bring an object
    /// of another namespace into this module's reach.
    fn children_of<'a>(
        &'a self,
        object: &'a DynamicObject,
    ) -> impl Iterator<Item = Arc<DynamicObject>> + 'a {
        let uid = object.metadata.uid.clone().unwrap_or_default();
        let namespace = match self.meta.primary.scope {
            Scope::Namespaced => Some(object.metadata.namespace.clone()),
            Scope::Cluster => None,
        };
        self.owned
            .iter()
            .flat_map(move |informer| informer.controlled_by(&uid))
            .filter(move |child| {
                namespace
                    .as_ref()
                    .is_none_or(|ns| child.metadata.namespace == *ns)
            })
    }

    /// Tells the hot-loop tracker how a reconcile ended, and the user when
    /// the key's own writes keep bringing it back.
    async fn note_writes(&self, key: &ObjectKey, object: &Value, started: Instant, wrote: bool) {
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
        let children = self
            .children_of(object)
            .map(|child| to_json(&child, true).to_string())
            .collect();
        let request = Request {
            object: guest_json(host_view),
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
        let events = match crate::validate::validate_events(response.events) {
            Ok(events) => events,
            Err(error) => {
                let error = format!(
                    "module {} returned invalid output from finalize: {error}",
                    self.meta().name
                );
                return self
                    .guest_fault(key, host_view, "InvalidOutput", Fault::Guest, &error)
                    .await;
            }
        };
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
            Err(error) => self.write_failed(key, host_view, None, error).await,
        }
    }

    /// Runs a guest call on the blocking pool, once an instance of the
    /// engine's pool is free: compiling and running Wasm must never stall
    /// the async runtime, and no call may fail for want of an instance.
    async fn call<T: Send + 'static>(
        &self,
        call: GuestCall,
        request: Request,
        f: impl FnOnce(&Module, &Request, &CallContext) -> Result<T, CallError> + Send + 'static,
    ) -> Result<T, CallError> {
        let module = self.module();
        let settings = self.settings();
        let ctx = CallContext {
            // Reads only where the grant lets the module reconcile: a
            // cluster-scoped primary has no namespace to confine them to.
            objects: ConfinedObjects::over(self.reads.clone(), settings.namespaces),
            clock: None,
            limits: settings.limits,
            http: (!module.meta().http_origins.is_empty()).then(|| {
                crate::http::Outbound::new(
                    module.meta(),
                    &settings.http,
                    settings.limits.http,
                    self.ctx.http.clone(),
                )
            }),
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
        if result.is_ok() {
            self.quarantine.succeeded();
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
        self.guest_fault(key, object, error.kind(), error.fault(), &error.to_string())
            .await
    }

    /// A call that failed, or returned what the host refuses: counts it
    /// toward quarantine if it was the guest's fault, reports it on the
    /// object, and retries with backoff.
    async fn guest_fault(
        &self,
        key: &ObjectKey,
        object: &Value,
        reason: &str,
        fault: Fault,
        message: &str,
    ) -> ReconcileResult {
        if reason == "InvalidOutput" {
            self.ctx.metrics.guest_trap(&self.meta().name, reason);
        }
        let limit = self.settings().quarantine_after;
        let verdict = self
            .quarantine
            .failed(fault, key.namespace.as_deref(), limit, || self.tenants());
        if let quarantine::Verdict::Quarantined { in_a_row } = verdict {
            self.queue.set_concurrency(0);
            self.ctx.metrics.set_quarantined(&self.meta().name, true);
            tracing::error!(module = %self.meta().name, in_a_row, "quarantined after {in_a_row} traps in a row, each of its own making; load a new version to resume");
        }
        let delay = self.retry(key);
        tracing::warn!(error = %message, ?fault, retry_in = ?delay, "guest call failed");
        self.report(object, reason, message).await;
        ReconcileResult::Error
    }

    /// How many namespaces the module has objects in among those it serves
    /// (cluster-scoped objects count as one): see [`tenants`].
    fn tenants(&self) -> usize {
        let namespaces = self.settings().namespaces;
        tenants(
            self.primary
                .objects()
                .iter()
                .map(|o| o.metadata.namespace.as_deref()),
            &namespaces,
        )
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
                self.report(object, &failure.reason, &failure.message).await;
            }
            ReconcileError::Permanent(failure) => {
                tracing::warn!(reason = %failure.reason, message = %failure.message, "permanent error; not retrying until the object changes");
                self.give_up_until_changed(key, generation);
                self.report(object, &failure.reason, &failure.message).await;
            }
        }
        ReconcileResult::Error
    }

    /// A write that failed (or that the host refused to make): reported on
    /// the object unless it is a race a retry resolves, and retried as the
    /// cause warrants ([`Retry`]).
    async fn write_failed(
        &self,
        key: &ObjectKey,
        object: &Value,
        generation: Option<i64>,
        error: ApplyError,
    ) -> ReconcileResult {
        let retry = error.retry();
        if retry != Retry::Quietly {
            self.ctx
                .metrics
                .write_failed(&self.meta().name, error.reason());
        }
        match retry {
            Retry::Never => {
                tracing::info!(%error, "not written: this host no longer leads");
                return ReconcileResult::Error;
            }
            Retry::Quietly => {
                let delay = self.retry(key);
                tracing::debug!(%error, retry_in = ?delay, "write raced a concurrent change; retrying");
                return ReconcileResult::Error;
            }
            Retry::WithBackoff => {
                let delay = self.retry(key);
                tracing::warn!(%error, retry_in = ?delay, "write failed; retrying with backoff");
            }
            Retry::WhenChanged => {
                tracing::warn!(%error, "write refused as invalid; not retrying until the object changes");
                self.give_up_until_changed(key, generation);
            }
        }
        self.report(object, error.reason(), &error.to_string())
            .await;
        ReconcileResult::Error
    }

    /// Stops reconciling `key` until its generation moves past `generation`.
    fn give_up_until_changed(&self, key: &ObjectKey, generation: Option<i64>) {
        self.queue.forget(key);
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone(), generation);
    }

    /// Reports a failure on `object`: a Warning event, and the host's
    /// `Reconciled=False` condition where the status has room for it.
    async fn report(&self, object: &Value, reason: &str, message: &str) {
        let room = self.resolved().status;
        if let Err(error) = self
            .ctx
            .applier
            .report_failure(self.meta(), room, object, reason, message)
            .await
        {
            tracing::warn!(%error, "could not report the failure on the object");
        }
    }
}

/// Whether a module granted `namespaces` (empty: every namespace) serves
/// an object in `namespace`. The limit applies to namespaced objects;
/// cluster-scoped ones (None) have none.
fn serves(namespaces: &[String], namespace: Option<&str>) -> bool {
    match namespace {
        Some(namespace) => namespaces.is_empty() || namespaces.iter().any(|n| n == namespace),
        None => true,
    }
}

/// How many tenants the primaries in `objects` (their namespaces) make for
/// a module granted `namespaces`: the distinct namespaces it serves,
/// cluster-scoped objects counting as one. The informer watches the kind
/// cluster-wide, so it holds objects in namespaces outside the grant too;
/// the module never reconciles those, so they can never bring it a fault,
/// and counting them would ask for faults from two namespaces of a module
/// that serves one: it would never be quarantined.
fn tenants<'a>(objects: impl IntoIterator<Item = Option<&'a str>>, namespaces: &[String]) -> usize {
    objects
        .into_iter()
        .filter(|namespace| serves(namespaces, *namespace))
        .collect::<BTreeSet<_>>()
        .len()
}

#[derive(Default)]
struct Stats {
    reconciles: std::sync::atomic::AtomicU64,
    errors: std::sync::atomic::AtomicU64,
    traps: std::sync::atomic::AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(namespaces: &[&str]) -> Vec<String> {
        namespaces.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn tenants_are_the_namespaces_the_module_serves() {
        let objects = [Some("a"), Some("a"), Some("b"), Some("c")];
        assert_eq!(tenants(objects, &[]), 3);
        assert_eq!(tenants(objects, &granted(&["a", "b"])), 2);
        // One granted namespace is one tenant, however many namespaces
        // outside the grant hold objects of the kind.
        assert_eq!(tenants(objects, &granted(&["a"])), 1);
        assert_eq!(tenants(objects, &granted(&["z"])), 0);
    }

    #[test]
    fn cluster_scoped_primaries_are_one_tenant() {
        let objects = [None, None];
        assert_eq!(tenants(objects, &[]), 1);
        assert_eq!(tenants(objects, &granted(&["a"])), 1);
        assert_eq!(tenants(std::iter::empty(), &granted(&["a"])), 0);
    }

    #[test]
    fn the_grant_bounds_namespaced_objects_only() {
        assert!(serves(&[], Some("b")));
        assert!(serves(&granted(&["a"]), Some("a")));
        assert!(!serves(&granted(&["a"]), Some("b")));
        assert!(serves(&granted(&["a"]), None));
    }
}
