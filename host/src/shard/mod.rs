//! Sharding (`bosun run --sharded`): every replica of a host class
//! reconciles at once, each a share of the objects.
//!
//! - **Buckets.** An object belongs to one of [`BUCKETS`] buckets, by a
//!   fixed hash of its primary's `namespace/name` ([`ring::bucket_of`]).
//!   The host labels each primary with its bucket ([`LABEL`], under its
//!   own field manager [`FIELD_MANAGER`], touching nothing else) and puts
//!   the same label on every child it applies.
//! - **Membership.** Each replica holds a Lease of its own
//!   (`bosun-shard-<class>-<replica>`) naming the buckets it holds; a
//!   replica whose Lease stops changing for its duration is gone
//!   ([`membership`]). Buckets go to the live replicas by rendezvous
//!   hashing ([`ring::assign`]).
//! - **Filtered watches.** A replica watches its primary and child kinds
//!   with the server-side selector `bosun.dev/shard-bucket in (…)` of the
//!   buckets it holds ([`selector`]), so its cache and work are its share;
//!   read kinds are watched whole, per namespace, as without sharding.
//! - **Handover.** One writer per object at a time ([`handover`]): a
//!   replica lets go of a bucket first (no new reconcile of it, the ones
//!   in flight finish) and only then publishes that it no longer holds it;
//!   a replica takes a bucket only when no other live Lease claims it,
//!   after writing its claim and reading every Lease again.
//!
//! The [`Gate`] is where a worker asks whether it may reconcile a key: it
//! is what makes "stopped" true before a release is published.

pub mod handover;
pub mod labels;
pub mod membership;
pub mod ring;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use crate::meta::Kind;

pub use ring::{BUCKETS, Buckets, bucket_of};

/// The label on primaries and children naming their bucket (`0`…`63`).
/// Set by the host; removed by an unsharded host.
pub const LABEL: &str = "bosun.dev/shard-bucket";

/// The field manager that sets [`LABEL`] on primaries: its own, so the
/// label is the only field it owns and a user's labels are never touched.
pub const FIELD_MANAGER: &str = "bosun-sharder";

/// The label on membership Leases; its value is the host class.
pub const CLASS_LABEL: &str = "bosun.dev/shard-class";

/// The annotation on a membership Lease listing the buckets its replica
/// holds, comma-separated.
pub const BUCKETS_ANNOTATION: &str = "bosun.dev/shard-buckets";

/// The label selector of the objects in `held`: what a replica's filtered
/// watches ask the API server for. An empty set selects nothing (a
/// bucket is a number, never `none`).
pub fn selector(held: Buckets) -> String {
    if held.is_empty() {
        format!("{LABEL} in (none)")
    } else {
        format!("{LABEL} in ({})", held.to_list())
    }
}

/// Where workers ask whether they may reconcile an object now, and where
/// a release waits for the reconciles of a bucket to finish.
///
/// Entering counts the reconcile in first and checks the held set second;
/// a release clears the bucket first and checks the count second (both
/// sequentially consistent), so either the worker sees the bucket gone or
/// the release sees the worker in flight — never neither.
pub struct Gate {
    held: AtomicU64,
    in_flight: [AtomicUsize; BUCKETS as usize],
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            held: AtomicU64::new(0),
            in_flight: std::array::from_fn(|_| AtomicUsize::new(0)),
        }
    }
}

impl Gate {
    /// The buckets this replica reconciles now.
    pub fn held(&self) -> Buckets {
        Buckets(self.held.load(Ordering::SeqCst))
    }

    /// Lets one reconcile of an object in `bucket` run, if the bucket is
    /// held; it counts as in flight until the returned guard drops.
    pub fn enter(self: &Arc<Self>, bucket: u16) -> Option<Entered> {
        let counter = self.in_flight.get(usize::from(bucket))?;
        counter.fetch_add(1, Ordering::SeqCst);
        let entered = Entered {
            gate: self.clone(),
            bucket,
        };
        self.held().contains(bucket).then_some(entered)
    }

    /// Starts reconciling `buckets`.
    pub fn grant(&self, buckets: Buckets) {
        self.held.fetch_or(buckets.0, Ordering::SeqCst);
    }

    /// Stops reconciling `buckets` and waits until none of their
    /// reconciles is in flight. Reconciles are bounded by the guest's
    /// deadline and the API client's, so this ends.
    pub async fn revoke(&self, buckets: Buckets) {
        self.held.fetch_and(!buckets.0, Ordering::SeqCst);
        while buckets
            .iter()
            .any(|b| self.in_flight[usize::from(b)].load(Ordering::SeqCst) > 0)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Reconciles of `bucket` in flight now.
    pub fn in_flight(&self, bucket: u16) -> usize {
        self.in_flight
            .get(usize::from(bucket))
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }
}

/// One reconcile let through the [`Gate`]; dropping it ends it.
pub struct Entered {
    gate: Arc<Gate>,
    bucket: u16,
}

impl Entered {
    /// The bucket of the object being reconciled.
    pub fn bucket(&self) -> u16 {
        self.bucket
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Some(counter) = self.gate.in_flight.get(usize::from(self.bucket)) {
            counter.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The bucket whose holder writes what the replicas of a class share
/// ([`Sharding::writes_shared`]).
pub const SHARED_BUCKET: u16 = 0;

/// What a sharded host's parts share: the gate, the held set the filtered
/// watches follow, and the primary kinds to label.
pub struct Sharding {
    /// Where workers ask.
    pub gate: Arc<Gate>,
    watched: watch::Sender<Buckets>,
    primaries: Mutex<Vec<(Kind, Vec<String>)>>,
}

impl Default for Sharding {
    fn default() -> Self {
        Sharding {
            gate: Arc::default(),
            watched: watch::Sender::new(Buckets::NONE),
            primaries: Mutex::default(),
        }
    }
}

impl Sharding {
    /// The buckets the filtered watches select, as they change: an
    /// informer restarts its watch on each change (a re-list that drops
    /// the other buckets from its cache).
    pub fn watched(&self) -> watch::Receiver<Buckets> {
        self.watched.subscribe()
    }

    /// Whether this replica writes what every replica of the class would
    /// otherwise write alike — each ReconcilerModule's status (its counts
    /// are the writer's own) and the class's announcement — as it changes:
    /// the holder of [`SHARED_BUCKET`] does, so one replica at a time, moved
    /// by the same handover as the objects.
    pub fn writes_shared(&self) -> watch::Receiver<bool> {
        let mut watched = self.watched.subscribe();
        let (writes, receiver) =
            watch::channel(watched.borrow_and_update().contains(SHARED_BUCKET));
        tokio::spawn(async move {
            while watched.changed().await.is_ok() {
                let holds = watched.borrow_and_update().contains(SHARED_BUCKET);
                writes.send_if_modified(|current| std::mem::replace(current, holds) != holds);
                if writes.is_closed() {
                    return;
                }
            }
        });
        receiver
    }

    /// Points the filtered watches at `buckets`.
    pub fn watch(&self, buckets: Buckets) {
        self.watched.send_if_modified(|current| {
            let changed = *current != buckets;
            *current = buckets;
            changed
        });
    }

    /// A controller of primary `kind` runs, in `namespaces` (empty: all):
    /// its unlabelled objects are labelled by their bucket's owner.
    pub fn register_primary(&self, kind: &Kind, namespaces: &[String]) {
        let mut primaries = self
            .primaries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = (kind.clone(), namespaces.to_vec());
        if !primaries.contains(&entry) {
            primaries.push(entry);
        }
    }

    /// The primary kinds registered, with their namespaces.
    pub fn primaries(&self) -> Vec<(Kind, Vec<String>)> {
        self.primaries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selector_names_the_held_buckets_or_nothing() {
        assert_eq!(selector(Buckets::NONE), "bosun.dev/shard-bucket in (none)");
        assert_eq!(
            selector(Buckets::NONE.with(3).with(9)),
            "bosun.dev/shard-bucket in (3,9)"
        );
    }

    #[tokio::test]
    async fn a_revoke_waits_for_the_reconciles_in_flight_and_lets_no_new_one_in() {
        let gate = Arc::new(Gate::default());
        assert!(gate.enter(5).is_none(), "not held yet");
        assert_eq!(gate.in_flight(5), 0);
        gate.grant(Buckets::NONE.with(5));
        let entered = gate.enter(5).expect("held");
        assert_eq!(entered.bucket(), 5);
        let revoking = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.revoke(Buckets::NONE.with(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!revoking.is_finished(), "a reconcile is still in flight");
        assert!(gate.enter(5).is_none(), "no new reconcile once revoking");
        drop(entered);
        tokio::time::timeout(Duration::from_secs(1), revoking)
            .await
            .expect("the revoke ends")
            .expect("no panic");
        assert!(gate.held().is_empty());
        assert!(gate.enter(99).is_none(), "no such bucket");
    }

    #[test]
    fn the_watched_set_changes_only_when_it_differs() {
        let sharding = Sharding::default();
        let mut watched = sharding.watched();
        sharding.watch(Buckets::NONE);
        assert!(!watched.has_changed().unwrap());
        sharding.watch(Buckets::NONE.with(1));
        assert!(watched.has_changed().unwrap());
        assert_eq!(*watched.borrow_and_update(), Buckets::NONE.with(1));
    }
}
