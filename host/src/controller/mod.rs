//! One module's controller: watch events in, queue keys, guest calls, writes
//! out, requeue decisions.
//!
//! Data flows one way: an informer change becomes a queue key (owned
//! children map to their controller owner, any object to the primaries
//! whose last call read it: [`crate::reads`]); a worker takes the key, reads
//! the object and its children from the cache, calls the guest off the
//! async runtime, validates and plans what it returned, hands the plan to
//! the [`Applier`], and decides when to look again.
//!
//! A controller watches its kinds through [`KindView`]s scoped to the
//! namespaces its grant names; a grant naming other namespaces needs a new
//! controller ([`Controller::swap`] refuses it).
//!
//! Whatever fails — the guest's call, its output, a write — is reported on
//! the primary, where the user looks (a Warning event, and a `Reconciled`
//! condition where the status has room), and retried as the failure
//! warrants. Two policies live in rooms of their own: when failures
//! quarantine the module ([`crate::quarantine`]) and when a key's own
//! writes hold it back ([`crate::hotloop`]).

mod canary;
mod failures;
mod finalize;
mod outbound;
mod shadow;
mod triggers;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::apply::Applier;
use crate::discovery::{Discovery, Resolved};
use crate::engine::bindings::Trigger;
use crate::engine::{Limits, Module};
use crate::hotloop::HotLoops;
use crate::informers::{CachedObjects, Change, Informers, KindView, ObjectKey};
use crate::meta::ModuleMeta;
use crate::quarantine::Quarantine;
use crate::queue::{Priority, QueueConfig, WorkQueue};
use crate::reads::{KindId, Tracker};
use crate::telemetry::Metrics;

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
    /// True once this host leads and its applier lets writes through.
    /// Before that a controller watches, caches and queues but hands
    /// nothing out (a warm standby); without leader election it is true
    /// from the start.
    pub leading: watch::Receiver<bool>,
    /// Where recordings of failed (and sampled) calls are kept; None: the
    /// flight recorder is off.
    pub recordings: Option<Arc<crate::recorder::store::RecordStore>>,
    /// On a sharded host (`--sharded`): which buckets it reconciles. Its
    /// primary and child watches hold only those, and a worker reconciles
    /// a key only while its bucket is held. None: every object.
    pub shard: Option<Arc<crate::shard::Sharding>>,
}

/// How often a controller whose primary's status schema was not published
/// when it loaded looks for it again.
const SCHEMA_RETRY: Duration = Duration::from_secs(5);

/// How often a canary's window is looked at when no call ends it.
const CANARY_TICK: Duration = Duration::from_secs(1);

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
    /// The module's views of the kinds it may read, in the order of
    /// [`ModuleMeta::readable_kinds`]: the primary first. A view's place is
    /// its [`KindId`] in read tracking.
    views: Vec<KindView>,
    /// Which of `views` are of owned kinds.
    owned: Vec<KindId>,
    /// Guest reads, answered from `views`.
    objects: Arc<CachedObjects>,
    /// What each primary's last call read.
    reads: Tracker<ObjectKey>,
    /// Why each queued key is queued; the guest sees it as a hint.
    triggers: Mutex<HashMap<ObjectKey, (Trigger, Priority)>>,
    /// Keys whose last reconcile failed permanently, with the generation it
    /// failed at: they are not reconciled again until the generation moves.
    failed: Mutex<HashMap<ObjectKey, Option<i64>>>,
    /// Set when the grant this controller runs under was narrowed or
    /// withdrawn: reconciles still in flight write nothing more.
    revoked: std::sync::atomic::AtomicBool,
    /// The module's outbound HTTP and its connection pool, kept across calls.
    outbound: outbound::ModuleOutbound,
    /// A candidate version staged beside this one, compared and never
    /// written ([`crate::rollout::shadow`]).
    shadow: RwLock<Option<Arc<crate::rollout::shadow::Shadow>>>,
    /// A candidate reconciling a share of the objects for real
    /// ([`crate::rollout::canary`]).
    canary: RwLock<Option<Arc<canary::CanaryRun>>>,
    /// Live reconciles in flight: a shadow call waits for none.
    live_in_flight: std::sync::atomic::AtomicUsize,
}

impl Controller {
    /// A controller for `module`, whose kinds discovery confirmed
    /// (`resolved`); starts (or shares) the watches of its primary, owned
    /// and read kinds, in the namespaces `settings` names (every namespace
    /// when it names none).
    pub fn new(
        module: Module,
        resolved: Resolved,
        settings: ControllerSettings,
        ctx: ControllerContext,
    ) -> Arc<Self> {
        let meta = module.meta();
        // The primary and owned kinds carry the bucket label and are
        // watched filtered on a sharded host; read kinds are watched whole
        // — an owned kind the module also reads too, since what it reads
        // (another primary's child, an object of no primary) need not be
        // in its buckets.
        let views: Vec<KindView> = meta
            .readable_kinds()
            .into_iter()
            .enumerate()
            .map(|(at, kind)| {
                let sharded = at == 0 || (meta.owns.contains(kind) && !meta.reads.contains(kind));
                ctx.informers.view(kind, &settings.namespaces, sharded)
            })
            .collect();
        if let Some(shard) = &ctx.shard {
            shard.register_primary(&meta.primary, &settings.namespaces);
        }
        let owned = views
            .iter()
            .enumerate()
            .filter(|(_, view)| meta.owns.iter().any(|kind| kind == view.kind()))
            .map(|(at, _)| KindId(at as u16))
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
        let outbound = outbound::ModuleOutbound::new(&module, &settings, ctx.http.clone());
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
            objects: Arc::new(CachedObjects::new(views.clone())),
            views,
            owned,
            reads: Tracker::default(),
            triggers: Mutex::default(),
            failed: Mutex::default(),
            revoked: std::sync::atomic::AtomicBool::new(false),
            outbound,
            shadow: RwLock::default(),
            canary: RwLock::default(),
            live_in_flight: std::sync::atomic::AtomicUsize::new(0),
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

    /// The grant this controller runs under no longer holds (narrowed or
    /// withdrawn): from now on its reconciles write nothing, in flight or
    /// not, and what they find refused counts toward nothing. Called before
    /// the controller is stopped or replaced.
    pub fn revoke(&self) {
        self.revoked.store(true, Ordering::SeqCst);
    }

    /// The applier, while this controller may still write: asked for
    /// before every write a reconcile makes, so the grant in force at that
    /// moment rules it. None once [`revoked`](Self::revoke).
    fn writer(&self) -> Option<&Applier> {
        (!self.revoked.load(Ordering::SeqCst)).then_some(&*self.ctx.applier)
    }

    /// True while the module is quarantined after repeated traps.
    pub fn is_quarantined(&self) -> bool {
        self.quarantine.is_quarantined()
    }

    /// The view of the primary kind.
    fn primary(&self) -> &KindView {
        &self.views[0]
    }

    /// What discovery said of the module's kinds.
    pub fn resolved(&self) -> Resolved {
        self.resolved
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the module (when `module` is given) and its settings, then
    /// reconciles every object again. The new version must have the same
    /// name and kinds, and the settings the same namespaces: the watches
    /// and queue stay. In-flight reconciles finish on the version they
    /// started with. A new version lifts a quarantine.
    pub fn swap(
        &self,
        module: Option<(Module, Resolved)>,
        settings: ControllerSettings,
    ) -> Result<(), SwapError> {
        if settings.namespaces != self.settings().namespaces {
            let version = self.module().meta().version.clone();
            let (new_name, new_version) = match &module {
                Some((module, _)) => (module.meta().name.clone(), module.meta().version.clone()),
                None => (self.meta.name.clone(), version.clone()),
            };
            return Err(SwapError {
                name: self.meta.name.clone(),
                old_version: version,
                new_name,
                new_version,
                reason: "its grant names other namespaces, which its watches follow",
            });
        }
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
        self.outbound.update(&self.module(), &settings);
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = settings;
        // Permanent failures were the old version's verdict.
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.enqueue_all(Trigger::ModuleChanged);
        Ok(())
    }

    /// True once the caches of every kind this controller watches are synced.
    pub fn is_synced(&self) -> bool {
        self.views.iter().all(KindView::is_synced)
    }

    /// The namespaces each kind is watched in (None: cluster-wide), in
    /// the order of [`ModuleMeta::readable_kinds`].
    pub fn watches(&self) -> Vec<(crate::meta::Kind, Vec<Option<String>>)> {
        self.views
            .iter()
            .map(|view| {
                let namespaces = view.namespaces().map(|ns| ns.map(str::to_owned)).collect();
                (view.kind().clone(), namespaces)
            })
            .collect()
    }

    /// Runs until `stop` resolves, then lets in-flight reconciles finish.
    pub async fn run(self: Arc<Self>, stop: impl Future<Output = ()> + Send) {
        let name = self.meta().name.clone();
        let (tx, mut changes) = mpsc::unbounded_channel::<(KindId, Change)>();
        for (at, view) in self.views.iter().enumerate() {
            let kind = KindId(at as u16);
            view.subscribe(&tx, move |change| (kind, change));
        }
        drop(tx);

        // A stop must not wait for caches that may never sync (an API
        // server refusing the list, say): nothing is in flight yet.
        let mut stop = std::pin::pin!(stop);
        let synced = async {
            for view in &self.views {
                view.synced().await;
            }
        };
        tokio::select! {
            () = &mut stop => {
                tracing::info!(module = %name, "stopping before its caches synced");
                return;
            }
            () = synced => {}
        }
        // Everything already cached gets a first reconcile, behind any real
        // change; changes that arrived meanwhile merge into the same slots.
        self.enqueue_all(Trigger::ObjectChanged);
        tracing::info!(module = %name, objects = self.queue.len(), "caches synced; reconciling");

        // Hand-outs run in a task of their own, so that the event loop below
        // never drops a half-finished `next()`. A standby hands out nothing
        // until it leads: its queue fills, its caches stay warm.
        let (stopping, mut stopped) = watch::channel(false);
        let dispatcher = tokio::spawn({
            let this = self.clone();
            let mut leading = self.ctx.leading.clone();
            async move {
                tokio::select! {
                    led = leading.wait_for(|leads| *leads) => if led.is_err() { return },
                    _ = stopped.wait_for(|stop| *stop) => return,
                }
                tracing::info!(module = %this.meta().name, queued = this.queue.len(), "leading; reconciling");
                if this.ctx.shard.is_none() {
                    tokio::spawn(this.clone().remove_shard_labels());
                }
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
        let mut canary_tick = tokio::time::interval(CANARY_TICK);
        let mut schema_retry =
            tokio::time::interval_at(tokio::time::Instant::now() + SCHEMA_RETRY, SCHEMA_RETRY);
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = schema_retry.tick(), if self.resolved().provisional => self.look_for_status_schema().await,
                Some((kind, change)) = changes.recv() => self.changed(kind, &change),
                _ = canary_tick.tick() => self.canary_tick(),
                _ = async { resync.as_mut().expect("guarded by the condition").tick().await }, if resync.is_some() => {
                    self.enqueue_all(Trigger::Resync);
                }
            }
        }
        tracing::info!(module = %name, "stopping");
        let _ = stopping.send(true);
        self.queue.shutdown();
        let _ = dispatcher.await;
    }

    /// Sharding is off here: removes the bucket label an earlier sharded
    /// host left on this module's primaries (see [`crate::shard::labels`]).
    async fn remove_shard_labels(self: Arc<Self>) {
        let client = self.ctx.applier.client();
        let primaries = self.primary().objects();
        match crate::shard::labels::unlabel(&client, &self.meta.primary, &primaries).await {
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(module = %self.meta.name, removed, "sharding is off: removed the bucket label from primaries")
            }
            Err(error) => {
                tracing::warn!(module = %self.meta.name, %error, "sharding is off, but the bucket label could not be removed from primaries")
            }
        }
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
        self.enqueue_all(Trigger::ModuleChanged);
    }
}

#[derive(Default)]
struct Stats {
    reconciles: std::sync::atomic::AtomicU64,
    errors: std::sync::atomic::AtomicU64,
    traps: std::sync::atomic::AtomicU64,
}
