//! The metric families, and the handles that record into them.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::reads::ReadFamilies;
use crate::informers::CacheObserver;
use crate::queue::QueueObserver;

/// controller-runtime's buckets for `controller_runtime_reconcile_time_seconds`
/// (5 ms to 60 s), copied so that its dashboards' quantiles line up.
const RECONCILE_TIME_BUCKETS: [f64; 40] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9,
    1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0,
    25.0, 30.0, 40.0, 50.0, 60.0,
];

/// controller-runtime's (and client-go's) work-queue buckets:
/// `ExponentialBuckets(10e-9, 10, 12)`, 10 ns to 1000 s.
fn workqueue_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1e-8, 10.0, 12))
}

/// Guest calls: 100 µs to about 13 s, doubling. A Wasm reconcile usually
/// takes well under the 5 ms where controller-runtime's buckets start, and
/// at most the module's deadline (seconds).
fn guest_call_buckets() -> HistogramWithExemplars<TraceExemplar> {
    HistogramWithExemplars::new(exponential_buckets(0.0001, 2.0, 18))
}

/// Module loads: 1 ms (a cache hit) to about 33 s (Cranelift compiling a large
/// component), doubling.
fn module_load_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// How a reconcile ended, as controller-runtime's `result` label names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReconcileResult {
    /// It finished and asked for nothing more.
    Success,
    /// It failed; the key is retried with backoff.
    Error,
    /// It asked to be run again at once (with backoff).
    Requeue,
    /// It asked to be run again after a delay.
    RequeueAfter,
}

impl ReconcileResult {
    /// Every result, so each series can be created at zero up front.
    const ALL: [ReconcileResult; 4] = [
        ReconcileResult::Success,
        ReconcileResult::Error,
        ReconcileResult::Requeue,
        ReconcileResult::RequeueAfter,
    ];

    /// The label value: `success`, `error`, `requeue` or `requeue_after`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReconcileResult::Success => "success",
            ReconcileResult::Error => "error",
            ReconcileResult::Requeue => "requeue",
            ReconcileResult::RequeueAfter => "requeue_after",
        }
    }
}

impl fmt::Display for ReconcileResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which guest export was called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GuestCall {
    /// `reconcile`.
    Reconcile,
    /// `finalize`.
    Finalize,
}

impl GuestCall {
    /// The label value: `reconcile` or `finalize`.
    pub fn as_str(self) -> &'static str {
        match self {
            GuestCall::Reconcile => "reconcile",
            GuestCall::Finalize => "finalize",
        }
    }
}

impl fmt::Display for GuestCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ModuleLabels {
    module: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    controller: String,
    result: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct QueueLabels {
    name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallLabels {
    module: String,
    call: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HttpLabels {
    module: String,
    origin: String,
    code: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HttpOriginLabels {
    module: String,
    origin: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RefusedLabels {
    module: String,
    reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TrapLabels {
    module: String,
    kind: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WriteFailureLabels {
    module: String,
    reason: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LoadLabels {
    module: String,
    source: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct InfoLabels {
    module: String,
    version: String,
    digest: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// An exemplar's labels: the sampled trace the observation belongs to.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TraceExemplar {
    trace_id: String,
}

type Exemplified = HistogramWithExemplars<TraceExemplar>;
type ExemplifiedFamily<L> = Family<L, Exemplified, fn() -> Exemplified>;

/// The exemplar for an observation made now: the current span's sampled
/// trace, if any.
fn exemplar() -> Option<TraceExemplar> {
    super::trace::sampled_trace_id().map(|trace_id| TraceExemplar { trace_id })
}

/// The families, each a cheap handle onto shared atomics: the registry holds
/// clones of the same handles for encoding.
struct Families {
    reconcile_total: Family<ResultLabels, Counter>,
    reconcile_errors: Family<ControllerLabels, Counter>,
    reconcile_time: ExemplifiedFamily<ControllerLabels>,
    max_concurrent: Family<ControllerLabels, Gauge>,
    active_workers: Family<ControllerLabels, Gauge>,
    queue_depth: Family<QueueLabels, Gauge>,
    queue_adds: Family<QueueLabels, Counter>,
    queue_retries: Family<QueueLabels, Counter>,
    queue_duration: HistogramFamily<QueueLabels>,
    work_duration: HistogramFamily<QueueLabels>,
    guest_call_duration: ExemplifiedFamily<CallLabels>,
    guest_traps: Family<TrapLabels, Counter>,
    module_load_duration: HistogramFamily<LoadLabels>,
    module_info: Family<InfoLabels, Gauge>,
    module_quarantined: Family<ModuleLabels, Gauge>,
    hot_loops: Family<ModuleLabels, Counter>,
    events_dropped: Family<ModuleLabels, Counter>,
    write_failures: Family<WriteFailureLabels, Counter>,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: ExemplifiedFamily<HttpOriginLabels>,
    http_refused: Family<RefusedLabels, Counter>,
    /// Label-less, in families so that an unsharded host renders neither.
    shard_buckets: Family<Vec<(String, String)>, Gauge>,
    shard_replicas: Family<Vec<(String, String)>, Gauge>,
}

struct Inner {
    registry: Registry,
    families: Families,
    reads: ReadFamilies,
    /// The `bosun_module_info` labels last set per module, so a reload with
    /// a new version or digest replaces the old series instead of adding one.
    module_info: Mutex<HashMap<String, InfoLabels>>,
}

/// Every metric bosun exports, in one registry.
///
/// Cloning is cheap and clones record into the same series; hand one to
/// each part of the host that measures something. Recording never fails and
/// never blocks on anything but a short lock.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every family registered and no series yet.
    pub fn new() -> Self {
        let families = Families {
            reconcile_total: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_time: Family::new_with_constructor(|| {
                HistogramWithExemplars::new(RECONCILE_TIME_BUCKETS.into_iter())
            }),
            max_concurrent: Family::default(),
            active_workers: Family::default(),
            queue_depth: Family::default(),
            queue_adds: Family::default(),
            queue_retries: Family::default(),
            queue_duration: Family::new_with_constructor(workqueue_buckets),
            work_duration: Family::new_with_constructor(workqueue_buckets),
            guest_call_duration: Family::new_with_constructor(guest_call_buckets),
            guest_traps: Family::default(),
            module_load_duration: Family::new_with_constructor(module_load_buckets),
            module_info: Family::default(),
            module_quarantined: Family::default(),
            hot_loops: Family::default(),
            events_dropped: Family::default(),
            write_failures: Family::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(guest_call_buckets),
            http_refused: Family::default(),
            shard_buckets: Family::default(),
            shard_replicas: Family::default(),
        };
        let mut registry = Registry::default();
        let f = &families;
        // Counters are registered without `_total`: prometheus-client appends
        // it, and would otherwise render `..._total_total`.
        registry.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            f.reconcile_total.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            f.reconcile_errors.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            f.reconcile_time.clone(),
        );
        registry.register(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            f.max_concurrent.clone(),
        );
        registry.register(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            f.active_workers.clone(),
        );
        registry.register(
            "workqueue_depth",
            "Current depth of workqueue",
            f.queue_depth.clone(),
        );
        registry.register(
            "workqueue_adds",
            "Total number of adds handled by workqueue",
            f.queue_adds.clone(),
        );
        registry.register(
            "workqueue_retries",
            "Total number of retries handled by workqueue",
            f.queue_retries.clone(),
        );
        registry.register(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            f.queue_duration.clone(),
        );
        registry.register(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes",
            f.work_duration.clone(),
        );
        registry.register(
            "bosun_guest_call_duration_seconds",
            "How long in seconds a call into a module's guest code takes",
            f.guest_call_duration.clone(),
        );
        registry.register(
            "bosun_guest_traps",
            "Total number of guest calls that failed, by kind of failure",
            f.guest_traps.clone(),
        );
        registry.register(
            "bosun_module_load_duration_seconds",
            "How long in seconds loading a module takes, compiled or from the cache",
            f.module_load_duration.clone(),
        );
        registry.register(
            "bosun_module_info",
            "The loaded version and digest of each module; always 1",
            f.module_info.clone(),
        );
        registry.register(
            "bosun_module_quarantined",
            "1 while a module is quarantined after repeated traps, else 0",
            f.module_quarantined.clone(),
        );
        registry.register(
            "bosun_hot_loop_holds",
            "Total number of reconciles held back because the object's own writes kept triggering its reconciles",
            f.hot_loops.clone(),
        );
        registry.register(
            "bosun_events_dropped",
            "Total number of events a module's reconciles returned that were dropped over their object's event budget",
            f.events_dropped.clone(),
        );
        registry.register(
            "bosun_write_failures",
            "Total number of writes for a module the API server refused or that bosun refused to make, by reason",
            f.write_failures.clone(),
        );
        registry.register(
            "bosun_guest_http_requests",
            "Total number of HTTP requests guests sent, by module, granted origin and status code (or error)",
            f.http_requests.clone(),
        );
        registry.register(
            "bosun_guest_http_request_duration_seconds",
            "How long in seconds a guest's HTTP request took until its response head",
            f.http_duration.clone(),
        );
        registry.register(
            "bosun_guest_http_refused",
            "Total number of guest HTTP requests the host refused, by reason",
            f.http_refused.clone(),
        );
        registry.register(
            "bosun_shard_buckets_held",
            "Buckets this sharded replica holds (of 64); 0 when not sharded",
            f.shard_buckets.clone(),
        );
        registry.register(
            "bosun_shard_replicas",
            "Live replicas of this host's class as this sharded replica sees them",
            f.shard_replicas.clone(),
        );
        let reads = ReadFamilies::register(&mut registry);
        Metrics {
            inner: Arc::new(Inner {
                registry,
                families,
                reads,
                module_info: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn families(&self) -> &Families {
        &self.inner.families
    }

    /// Creates a controller's series at zero, as controller-runtime does when
    /// a controller starts, so that `rate()` and absence alerts see them
    /// before the first reconcile. Idempotent.
    fn init_controller(&self, controller: &str) {
        let f = self.families();
        // `get_or_create` returns a read guard; creating the series is the
        // point, so each is dropped at once.
        for result in ReconcileResult::ALL {
            drop(
                f.reconcile_total
                    .get_or_create(&result_labels(controller, result)),
            );
        }
        let labels = controller_labels(controller);
        drop(f.reconcile_errors.get_or_create(&labels));
        drop(f.active_workers.get_or_create(&labels));
        self.inner.reads.init_module(controller);
    }

    /// What the informers report the sizes of their caches to
    /// (`bosun_cached_objects`).
    pub fn cache_observer(&self) -> Arc<dyn CacheObserver> {
        Arc::new(self.inner.reads.clone())
    }

    /// Sets how many buckets this sharded replica holds.
    pub fn set_shard_buckets(&self, buckets: usize) {
        self.families()
            .shard_buckets
            .get_or_create(&Vec::new())
            .set(i64::try_from(buckets).unwrap_or(i64::MAX));
    }

    /// Sets how many live replicas this sharded replica sees.
    pub fn set_shard_replicas(&self, replicas: usize) {
        self.families()
            .shard_replicas
            .get_or_create(&Vec::new())
            .set(i64::try_from(replicas).unwrap_or(i64::MAX));
    }

    /// Sets how many reads `module`'s primaries are tracked by.
    pub fn set_tracked_reads(&self, module: &str, reads: usize) {
        self.inner.reads.set_tracked(module, reads);
    }

    /// Counts a reconcile of `module` queued because something a primary
    /// read changed.
    pub fn read_triggered(&self, module: &str) {
        self.inner.reads.read_triggered(module);
    }

    /// Counts a call of `module` that read more than its tracked-reads cap.
    pub fn tracked_reads_overflowed(&self, module: &str) {
        self.inner.reads.overflowed(module);
    }

    /// Counts a reconcile of `module` held back as a hot loop.
    pub fn hot_loop_held(&self, module: &str) {
        self.families()
            .hot_loops
            .get_or_create(&ModuleLabels {
                module: module.to_owned(),
            })
            .inc();
    }

    /// Counts `dropped` events of `module`'s over their object's budget.
    pub fn events_dropped(&self, module: &str, dropped: usize) {
        if dropped == 0 {
            return;
        }
        self.families()
            .events_dropped
            .get_or_create(&ModuleLabels {
                module: module.to_owned(),
            })
            .inc_by(dropped as u64);
    }

    /// Counts a failed (or refused) write of `module`'s, by its reason
    /// (`ChildExists`, `ApplyFailed`, …).
    pub fn write_failed(&self, module: &str, reason: &'static str) {
        self.families()
            .write_failures
            .get_or_create(&WriteFailureLabels {
                module: module.to_owned(),
                reason,
            })
            .inc();
    }

    /// Records one reconcile of `controller`: its result and how long it took.
    /// An [`ReconcileResult::Error`] also counts in
    /// `controller_runtime_reconcile_errors_total`. Called in the
    /// reconcile's span, the time carries its sampled trace as exemplar (so
    /// do [`Metrics::guest_call`] and [`Metrics::guest_http_request`]).
    pub fn reconciled(&self, controller: &str, result: ReconcileResult, elapsed: Duration) {
        let f = self.families();
        f.reconcile_total
            .get_or_create(&result_labels(controller, result))
            .inc();
        let labels = controller_labels(controller);
        if result == ReconcileResult::Error {
            f.reconcile_errors.get_or_create(&labels).inc();
        }
        f.reconcile_time
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64(), exemplar(), None);
    }

    /// Records one call into `module`'s guest code and how long it took,
    /// whether or not it succeeded.
    pub fn guest_call(&self, module: &str, call: GuestCall, elapsed: Duration) {
        self.families()
            .guest_call_duration
            .get_or_create(&CallLabels {
                module: module.to_owned(),
                call: call.as_str(),
            })
            .observe(elapsed.as_secs_f64(), exemplar(), None);
    }

    /// Records one HTTP request `module` sent to `origin` (the granted
    /// origin, so labels stay bounded) and how it ended: a status code, or
    /// an error name.
    pub fn guest_http_request(
        &self,
        module: &str,
        origin: &str,
        code: &str,
        took: std::time::Duration,
    ) {
        let f = self.families();
        f.http_requests
            .get_or_create(&HttpLabels {
                module: module.to_owned(),
                origin: origin.to_owned(),
                code: code.to_owned(),
            })
            .inc();
        f.http_duration
            .get_or_create(&HttpOriginLabels {
                module: module.to_owned(),
                origin: origin.to_owned(),
            })
            .observe(took.as_secs_f64(), exemplar(), None);
    }

    /// Records that the host refused one of `module`'s HTTP requests, for
    /// `reason` (a fixed set: see [`crate::http::Refusal`]).
    pub fn guest_http_refused(&self, module: &str, reason: &str) {
        self.families()
            .http_refused
            .get_or_create(&RefusedLabels {
                module: module.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts one failed guest call. `kind` is the failure's short CamelCase
    /// name (`Timeout`, `MemoryLimit`, `Panic`, `Trap`, `OutputTooLarge`,
    /// `Instantiate`, `InvalidOutput`), as `CallError::kind` gives it; it
    /// should come from that fixed set, since every value is a new series.
    pub fn guest_trap(&self, module: &str, kind: &str) {
        self.families()
            .guest_traps
            .get_or_create(&TrapLabels {
                module: module.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Records that `module` was loaded (compiled, or taken from the
    /// compilation cache) and sets its `bosun_module_info` series, replacing
    /// the one for a previously loaded version.
    pub fn module_loaded(
        &self,
        module: &str,
        version: &str,
        digest: &str,
        from_cache: bool,
        elapsed: Duration,
    ) {
        let f = self.families();
        let source = if from_cache { "cache" } else { "compiled" };
        f.module_load_duration
            .get_or_create(&LoadLabels {
                module: module.to_owned(),
                source,
            })
            .observe(elapsed.as_secs_f64());

        let labels = InfoLabels {
            module: module.to_owned(),
            version: version.to_owned(),
            digest: digest.to_owned(),
        };
        // Held across the family update so that two concurrent loads of one
        // module cannot both leave a series behind.
        let mut loaded = self
            .inner
            .module_info
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(previous) = loaded.insert(module.to_owned(), labels.clone())
            && previous != labels
        {
            tracing::debug!(
                module,
                from.version = %previous.version,
                from.digest = %previous.digest,
                to.version = version,
                to.digest = digest,
                "module replaced"
            );
            f.module_info.remove(&previous);
        }
        f.module_info.get_or_create(&labels).set(1);
    }

    /// Removes `module`'s `bosun_module_info` series, for a module that is no
    /// longer loaded. Its counters and histograms stay, as Prometheus expects
    /// of counters.
    pub fn module_unloaded(&self, module: &str) {
        let mut loaded = self
            .inner
            .module_info
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(previous) = loaded.remove(module) {
            self.families().module_info.remove(&previous);
        }
        // Its reads were tracked by the controller that is gone.
        self.inner.reads.set_tracked(module, 0);
    }

    /// Records whether `module` is quarantined (no work handed out after
    /// repeated traps).
    pub fn set_quarantined(&self, module: &str, quarantined: bool) {
        self.families()
            .module_quarantined
            .get_or_create(&ModuleLabels {
                module: module.to_owned(),
            })
            .set(i64::from(quarantined));
    }

    /// Sets `controller_runtime_max_concurrent_reconciles` for `controller`:
    /// the queue's concurrency cap. Call it when the controller starts.
    pub fn set_max_concurrent(&self, controller: &str, n: usize) {
        self.init_controller(controller);
        self.families()
            .max_concurrent
            .get_or_create(&controller_labels(controller))
            .set(saturating_i64(n));
    }

    /// An observer for `controller`'s work queue, recording the `workqueue_*`
    /// series (label `name`) and `controller_runtime_active_workers`.
    ///
    /// The observer holds its series directly, so recording is a few atomic
    /// operations with no label lookup; it can be called for every queue
    /// event.
    pub fn queue_observer(&self, controller: &str) -> Arc<dyn QueueObserver> {
        self.init_controller(controller);
        let f = self.families();
        let queue = QueueLabels {
            name: controller.to_owned(),
        };
        Arc::new(ControllerObserver {
            depth: f.queue_depth.get_or_create_owned(&queue),
            adds: f.queue_adds.get_or_create_owned(&queue),
            retries: f.queue_retries.get_or_create_owned(&queue),
            queue_duration: f.queue_duration.get_or_create_owned(&queue),
            work_duration: f.work_duration.get_or_create_owned(&queue),
            active: f
                .active_workers
                .get_or_create_owned(&controller_labels(controller)),
        })
    }

    /// Every series in the OpenMetrics text format (served with
    /// [`OPENMETRICS_CONTENT_TYPE`](super::OPENMETRICS_CONTENT_TYPE)),
    /// ending in `# EOF`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; an error here would come from a
        // metric's own encoding, and a partial scrape beats none.
        if let Err(error) =
            prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)
        {
            tracing::error!(%error, "could not encode the metrics");
        }
        out
    }
}

fn controller_labels(controller: &str) -> ControllerLabels {
    ControllerLabels {
        controller: controller.to_owned(),
    }
}

fn result_labels(controller: &str, result: ReconcileResult) -> ResultLabels {
    ResultLabels {
        controller: controller.to_owned(),
        result: result.as_str(),
    }
}

fn saturating_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One controller's work-queue series.
#[derive(Debug)]
struct ControllerObserver {
    depth: Gauge,
    adds: Counter,
    retries: Counter,
    queue_duration: Histogram,
    work_duration: Histogram,
    active: Gauge,
}

impl QueueObserver for ControllerObserver {
    fn added(&self) {
        self.adds.inc();
    }

    fn retried(&self) {
        self.retries.inc();
    }

    fn depth(&self, depth: usize) {
        self.depth.set(saturating_i64(depth));
    }

    fn waited(&self, latency: Duration) {
        self.queue_duration.observe(latency.as_secs_f64());
    }

    fn worked(&self, duration: Duration) {
        self.work_duration.observe(duration.as_secs_f64());
    }

    fn active(&self, workers: usize) {
        self.active.set(saturating_i64(workers));
    }
}

#[cfg(test)]
mod tests;
