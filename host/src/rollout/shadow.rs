//! A shadow run: a candidate version called beside the running one on the
//! same requests, both planned, nothing written, the plans compared.
//!
//! A shadow runs below live work. It has one thread of its own, at the
//! lowest CPU priority, making one call at a time; each call starts only
//! while the live version has no reconcile in flight and the host's guest
//! slots have a permit free (never queueing for one: a live reconcile
//! waiting for a slot is ahead of it), and gives the slot back after that
//! one call. Under a steady stream of live work a shadow waits: it is
//! below that work, not beside it. It reads the caches on the runtime's
//! blocking pool, at normal priority, so no cache lock is ever held by a
//! thread the scheduler has put last. Its calls have no read log (read tracking is
//! the live version's), no HTTP (any request may be a write somewhere),
//! no applier, and nothing they do counts toward the live module's
//! quarantine or status: a candidate that traps, loops or floods is cut
//! off by the engine's limits as a live call is, and reported here.
//!
//! What it remembers is bounded: a verdict per object (at most
//! [`MAX_OBJECTS`]), the diffs of at most [`MAX_EXAMPLES`] objects, at
//! most [`MAX_PENDING`] keys waiting.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use tokio::sync::Semaphore;

use super::compare::{Diff, Outcome, Verdict, compare};
use super::side;
use crate::discovery::StatusRoom;
use crate::engine::bindings::{Request, Trigger};
use crate::engine::{CallContext, Limits, Module};
use crate::informers::{ObjectKey, guest_json};
use crate::objects::ObjectSource;
use crate::plan::PlanContext;

/// The most objects a shadow keeps a verdict for.
pub const MAX_OBJECTS: usize = 100_000;
/// The most keys waiting for a comparison.
pub const MAX_PENDING: usize = 100_000;
/// The most objects whose diffs are kept as examples.
pub const MAX_EXAMPLES: usize = 32;

/// How long the shadow waits before looking for a free guest slot again.
const SLOT_POLL: Duration = Duration::from_millis(20);

/// How long the live version must have been idle before a shadow call.
const QUIET: Duration = Duration::from_millis(50);

/// Where a shadow takes each object's request from: the live controller's
/// caches, settings and running version.
pub trait Subjects: Send + Sync {
    /// The keys of every primary cached now.
    fn keys(&self) -> Vec<ObjectKey>;
    /// The object under `key` as the live version would be called on it
    /// now; None when it is gone or being deleted.
    fn subject(&self, key: &ObjectKey) -> Option<Subject>;
    /// True while the live version has reconciles in flight: the shadow
    /// waits for a moment when it has none.
    fn busy(&self) -> bool {
        false
    }
}

/// One object's call, as the live version gets it.
pub struct Subject {
    /// The host's view of the object (managedFields kept for the plan).
    pub object: Value,
    /// Its observed children, host views.
    pub observed: Vec<Value>,
    /// The running version.
    pub live: Module,
    /// The live version's settings.
    pub settings: Option<String>,
    /// The limits of each call.
    pub limits: Limits,
    /// Where reads are answered from (the caches, confined as for a live
    /// call; read-only).
    pub objects: Arc<dyn ObjectSource>,
    /// The room in the primary's status.
    pub status: StatusRoom,
    /// The namespaces the module may write in.
    pub namespaces: Vec<String>,
}

/// The candidate and what the shadow found, as a status reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// The candidate's sha256.
    pub digest: String,
    /// The version it declares.
    pub version: String,
    /// Objects with a verdict.
    pub compared: u64,
    /// Objects both would write alike.
    pub identical: u64,
    /// Objects they would write differently.
    pub differing: u64,
    /// Objects the candidate failed on, by reason.
    pub failing: BTreeMap<String, u64>,
    /// Objects not compared for want of room.
    pub skipped: u64,
    /// Some differing or failing objects' diffs, by `namespace/name`.
    pub examples: Vec<(String, Diff)>,
}

/// A running shadow; dropping it stops its thread after the call in hand.
pub struct Shadow {
    inner: Arc<Inner>,
}

struct Inner {
    candidate: Module,
    digest: String,
    /// The candidate's own settings; None: the live version's.
    settings: Option<String>,
    pending: Mutex<Pending>,
    wake: Condvar,
    stopped: AtomicBool,
    results: Mutex<Results>,
}

#[derive(Default)]
struct Pending {
    queue: VecDeque<ObjectKey>,
    queued: HashSet<ObjectKey>,
}

#[derive(Default)]
struct Results {
    verdicts: HashMap<ObjectKey, (Verdict, Option<String>)>,
    examples: BTreeMap<ObjectKey, Diff>,
    skipped: u64,
}

impl Shadow {
    /// Starts a shadow of `candidate` (whose sha256 is `digest`, run with
    /// `settings` or, when None, the live version's), comparing it on
    /// every object `subjects` holds now and on each key
    /// [`offered`](Self::offer) later.
    ///
    /// # Errors
    ///
    /// When its thread cannot be started.
    pub fn start(
        candidate: Module,
        digest: String,
        settings: Option<String>,
        subjects: Weak<dyn Subjects>,
        slots: Arc<Semaphore>,
    ) -> std::io::Result<Shadow> {
        let name = format!("shadow-{}", candidate.meta().name);
        let inner = Arc::new(Inner {
            candidate,
            digest,
            settings,
            pending: Mutex::default(),
            wake: Condvar::new(),
            stopped: AtomicBool::new(false),
            results: Mutex::default(),
        });
        let shadow = Shadow { inner };
        if let Some(subjects) = subjects.upgrade() {
            for key in subjects.keys() {
                shadow.offer(key);
            }
        }
        let inner = shadow.inner.clone();
        let runtime = tokio::runtime::Handle::try_current().ok();
        std::thread::Builder::new()
            .name(crate::meta::truncate_at_char_boundary(&name, 15).to_owned())
            .spawn(move || {
                lower_priority();
                inner.run(&subjects, &slots, runtime.as_ref());
            })?;
        Ok(shadow)
    }

    /// The candidate's sha256.
    pub fn digest(&self) -> &str {
        &self.inner.digest
    }

    /// The candidate's settings (None: the live version's).
    pub fn settings(&self) -> Option<&str> {
        self.inner.settings.as_deref()
    }

    /// Asks for `key` to be compared (again): the live version reconciled
    /// it, or it was there when the candidate was staged. A key already
    /// waiting waits once.
    pub fn offer(&self, key: ObjectKey) {
        let mut pending = self.inner.lock_pending();
        if pending.queued.contains(&key) {
            return;
        }
        if pending.queue.len() >= MAX_PENDING {
            drop(pending);
            self.inner.lock_results().skipped += 1;
            return;
        }
        pending.queued.insert(key.clone());
        pending.queue.push_back(key);
        drop(pending);
        self.inner.wake.notify_one();
    }

    /// What the shadow found so far.
    pub fn report(&self) -> Report {
        let results = self.inner.lock_results();
        let mut report = Report {
            digest: self.inner.digest.clone(),
            version: self.inner.candidate.meta().version.clone(),
            skipped: results.skipped,
            ..Report::default()
        };
        for (verdict, reason) in results.verdicts.values() {
            report.compared += 1;
            match verdict {
                Verdict::Identical => report.identical += 1,
                Verdict::Differing => report.differing += 1,
                Verdict::Failing => {
                    *report
                        .failing
                        .entry(reason.clone().unwrap_or_default())
                        .or_default() += 1;
                }
            }
        }
        report.examples = results
            .examples
            .iter()
            .map(|(key, diff)| (key.to_string(), diff.clone()))
            .collect();
        report
    }
}

impl Drop for Shadow {
    fn drop(&mut self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.wake.notify_all();
    }
}

impl Inner {
    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_results(&self) -> std::sync::MutexGuard<'_, Results> {
        self.results.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next key to compare; None once stopped.
    fn next(&self) -> Option<ObjectKey> {
        let mut pending = self.lock_pending();
        loop {
            if self.stopped.load(Ordering::SeqCst) {
                return None;
            }
            if let Some(key) = pending.queue.pop_front() {
                pending.queued.remove(&key);
                return Some(key);
            }
            pending = self
                .wake
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn run(
        &self,
        subjects: &Weak<dyn Subjects>,
        slots: &Semaphore,
        runtime: Option<&tokio::runtime::Handle>,
    ) {
        // Kept across comparisons: once the live version is quiet, the
        // shadow goes on at once until it is busy again.
        let mut quiet_since: Option<std::time::Instant> = None;
        while let Some(key) = self.next() {
            if !self.wait_for_quiet(subjects, &mut quiet_since) {
                return;
            }
            let Some(subject) = self.gather(subjects, &key, runtime) else {
                return;
            };
            let Some(subject) = subject else {
                self.forget(&key);
                continue;
            };
            match self.compare(&subject, slots) {
                Compared::Diff(diff) => self.record(key, diff),
                // The host's load, not either version's doing: no verdict;
                // the key goes to the back of the line.
                Compared::Starved => self.requeue(key),
                Compared::Stopped => return,
            }
        }
    }

    /// Waits until the live version has had no reconcile in flight for
    /// [`QUIET`]; false once stopped or the controller is gone.
    fn wait_for_quiet(
        &self,
        subjects: &Weak<dyn Subjects>,
        quiet_since: &mut Option<std::time::Instant>,
    ) -> bool {
        loop {
            if self.stopped.load(Ordering::SeqCst) {
                return false;
            }
            let Some(source) = subjects.upgrade() else {
                return false;
            };
            let busy = source.busy();
            drop(source);
            match (busy, *quiet_since) {
                (true, _) => *quiet_since = None,
                (false, None) => *quiet_since = Some(std::time::Instant::now()),
                (false, Some(since)) if since.elapsed() >= QUIET => return true,
                (false, Some(_)) => {}
            }
            std::thread::sleep(SLOT_POLL);
        }
    }

    /// The subject under `key`, read on the runtime's blocking pool when
    /// there is one (at normal priority: see the module's notes); the
    /// outer None when the controller is gone.
    fn gather(
        &self,
        subjects: &Weak<dyn Subjects>,
        key: &ObjectKey,
        runtime: Option<&tokio::runtime::Handle>,
    ) -> Option<Option<Subject>> {
        let source = subjects.upgrade()?;
        let Some(runtime) = runtime else {
            return Some(source.subject(key));
        };
        let key = key.clone();
        let read = runtime.spawn_blocking(move || source.subject(&key));
        runtime.block_on(read).ok()
    }

    /// Runs both versions on one request, each call in a free guest slot.
    fn compare(&self, subject: &Subject, slots: &Semaphore) -> Compared {
        // One instant for both sides: the clock the guests see, and the
        // transition times the plans settle.
        let now = Timestamp::now();
        let request = |settings: Option<String>| Request {
            object: guest_json(&subject.object),
            children: subject.observed.iter().map(guest_json).collect(),
            settings,
            trigger: Trigger::ObjectChanged,
            attempt: 1,
        };
        let ctx = CallContext {
            objects: subject.objects.clone(),
            clock: Some(now),
            limits: subject.limits,
            http: None,
            read_log: None,
        };
        let plan = PlanContext {
            status: subject.status,
            namespaces: &subject.namespaces,
        };
        let run = |module: &Module, request: &Request| {
            let _slot = self.free_slot(slots)?;
            Some(side::run(
                module,
                request,
                &ctx,
                &plan,
                &subject.object,
                &subject.observed,
                now,
            ))
        };
        let Some(live) = run(&subject.live, &request(subject.settings.clone())) else {
            return Compared::Stopped;
        };
        let settings = self.settings.clone().or_else(|| subject.settings.clone());
        let Some(candidate) = run(&self.candidate, &request(settings)) else {
            return Compared::Stopped;
        };
        if starved(&live) || starved(&candidate) {
            return Compared::Starved;
        }
        Compared::Diff(compare(&live, &candidate))
    }

    fn requeue(&self, key: ObjectKey) {
        let mut pending = self.lock_pending();
        if pending.queued.insert(key.clone()) {
            pending.queue.push_back(key);
        }
    }

    /// A guest slot, once one is free and no live call waits for it;
    /// None once stopped.
    fn free_slot<'a>(&self, slots: &'a Semaphore) -> Option<tokio::sync::SemaphorePermit<'a>> {
        loop {
            if self.stopped.load(Ordering::SeqCst) {
                return None;
            }
            // try_acquire never queues: while a live call waits, no permit
            // is free, and the shadow steps back.
            if let Ok(permit) = slots.try_acquire() {
                return Some(permit);
            }
            std::thread::sleep(SLOT_POLL);
        }
    }

    fn record(&self, key: ObjectKey, diff: Diff) {
        let mut results = self.lock_results();
        if !results.verdicts.contains_key(&key) && results.verdicts.len() >= MAX_OBJECTS {
            results.skipped += 1;
            return;
        }
        let reason = diff.failure.as_ref().map(|f| f.reason.clone());
        results.verdicts.insert(key.clone(), (diff.verdict, reason));
        if diff.verdict == Verdict::Identical {
            results.examples.remove(&key);
        } else if results.examples.contains_key(&key) || results.examples.len() < MAX_EXAMPLES {
            results.examples.insert(key, diff);
        }
    }

    fn forget(&self, key: &ObjectKey) {
        let mut results = self.lock_results();
        results.verdicts.remove(key);
        results.examples.remove(key);
    }
}

/// How one comparison ended.
enum Compared {
    Diff(Diff),
    /// A call missed its deadline for want of CPU.
    Starved,
    /// The shadow was stopped meanwhile.
    Stopped,
}

fn starved(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Failed(f) if f.reason == "Starved")
}

/// Puts the calling thread at the lowest CPU priority (nice 19), so the
/// shadow's calls take only what live work leaves. Linux applies
/// `setpriority` to one thread when given its id.
fn lower_priority() {
    // SAFETY: gettid and setpriority take no pointers; a failure leaves the
    // thread at its priority, which only makes the shadow less polite.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, 19) != 0 {
            tracing::debug!("could not lower the shadow thread's priority");
        }
    }
}
