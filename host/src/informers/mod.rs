//! Shared informers: one watch and one cache per kind and namespace,
//! whatever number of modules use it.
//!
//! Watches follow the grants: a module confined to namespaces watches each
//! of its namespaced kinds in those namespaces only ([`Informers::view`]),
//! so the host lists, watches and keeps in memory nothing of a namespace no
//! running module may see, and a Role in each namespace is all the RBAC it
//! needs there. A module with no namespace list watches its kinds
//! cluster-wide, as do cluster-scoped kinds.
//!
//! Watches are shared by (kind, namespace): modules granted the same
//! namespace share its watch. A cluster-wide watch is not shared with the
//! namespace watches of the same kind — an object in such a namespace is
//! then cached twice — because a watch must not outlive the grant that
//! opened it: a namespace-confined module never leans on a cluster-wide
//! watch another module's grant opened and may close. A watch no module
//! uses any more stops and its cache is freed ([`Informers::release_unused`]).
//!
//! Each [`Informer`] runs kube-runtime's `watcher` into a reflector store
//! and fans every change out to its subscribers with the object's state
//! before and after ([`Change`]). See `informer.rs` for what a re-list
//! delivers.
//!
//! No single object can stop a watch: each object of a list page or watch
//! event is decoded on its own within bounds ([`DecodeLimits`]); one the
//! host cannot decode is skipped — logged, counted, reported on the object
//! ([`SkipEvents`]) — and the rest of its kind is cached and reconciled.

mod cache;
mod decode;
mod informer;
mod json;
mod skip_events;
mod view;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use kube::runtime::watcher;

pub use self::decode::{
    DecodeLimits, Decoded, MAX_DEPTH, MAX_OBJECT_BYTES, SkippedObject, Undecodable,
};
pub use self::informer::{Change, ChangeSource, Informer};
pub use self::json::{guest_json, guest_string, to_json, without_managed_fields};
pub use self::skip_events::SkipEvents;
pub use self::view::{CachedObjects, KindView};

use crate::meta::{Kind, Scope};

/// The namespace and name of an object: a queue key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// The namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// The key of `object`.
    pub fn of(object: &kube::api::DynamicObject) -> Self {
        ObjectKey {
            namespace: object.metadata.namespace.clone(),
            name: object.metadata.name.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{namespace}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Receives what the caches hold, as [`crate::queue::QueueObserver`] does
/// for queues; telemetry implements it. Every method defaults to nothing.
pub trait CacheObserver: Send + Sync {
    /// The cache of `kind` in `namespace` (None: cluster-wide) holds
    /// `objects` objects now.
    fn cached(&self, kind: &Kind, namespace: Option<&str>, objects: usize) {
        let _ = (kind, namespace, objects);
    }
    /// The watch of `kind` in `namespace` skips `objects` objects now: it
    /// could not decode them, and does not cache them.
    fn skipped(&self, kind: &Kind, namespace: Option<&str>, objects: usize) {
        let _ = (kind, namespace, objects);
    }
    /// The watch of `kind` in `namespace` skipped `object`, a version of it
    /// not skipped before (a re-list finding it unchanged says nothing).
    fn undecodable(&self, kind: &Kind, namespace: Option<&str>, object: &SkippedObject) {
        let _ = (kind, namespace, object);
    }
    /// The watch of `kind` in `namespace` stopped; its cache is gone.
    fn stopped(&self, kind: &Kind, namespace: Option<&str>) {
        let _ = (kind, namespace);
    }
}

/// A [`CacheObserver`] that observes nothing.
pub struct Unobserved;

impl CacheObserver for Unobserved {}

/// Several [`CacheObserver`]s, each told everything in turn (the metrics
/// and the events on skipped objects, say).
pub struct Observers(pub Vec<Arc<dyn CacheObserver>>);

impl CacheObserver for Observers {
    fn cached(&self, kind: &Kind, namespace: Option<&str>, objects: usize) {
        for observer in &self.0 {
            observer.cached(kind, namespace, objects);
        }
    }
    fn skipped(&self, kind: &Kind, namespace: Option<&str>, objects: usize) {
        for observer in &self.0 {
            observer.skipped(kind, namespace, objects);
        }
    }
    fn undecodable(&self, kind: &Kind, namespace: Option<&str>, object: &SkippedObject) {
        for observer in &self.0 {
            observer.undecodable(kind, namespace, object);
        }
    }
    fn stopped(&self, kind: &Kind, namespace: Option<&str>) {
        for observer in &self.0 {
            observer.stopped(kind, namespace);
        }
    }
}

/// What a watch is of: a kind, in one namespace or cluster-wide.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct WatchKey {
    group: String,
    version: String,
    kind: String,
    namespace: Option<String>,
    /// Filtered to the buckets this replica holds ([`crate::shard`]).
    sharded: bool,
}

/// The informers of one host, started on first use.
pub struct Informers {
    client: kube::Client,
    config: watcher::Config,
    observer: Arc<dyn CacheObserver>,
    started: Mutex<HashMap<WatchKey, Arc<Informer>>>,
    /// The buckets held, on a sharded host: its primary and child watches
    /// select only their objects.
    shard: Option<tokio::sync::watch::Receiver<crate::shard::Buckets>>,
}

impl Informers {
    /// Informers watching through `client` with `config` (e.g. a page
    /// size), reporting their sizes to `observer`.
    pub fn new(
        client: kube::Client,
        config: watcher::Config,
        observer: Arc<dyn CacheObserver>,
    ) -> Self {
        Informers {
            client,
            config,
            observer,
            started: Mutex::default(),
            shard: None,
        }
    }

    /// These informers, on a sharded host: a watch asked for as sharded
    /// selects the objects of the buckets in `held`, and restarts when it
    /// changes.
    #[must_use]
    pub fn sharded(mut self, held: tokio::sync::watch::Receiver<crate::shard::Buckets>) -> Self {
        self.shard = Some(held);
        self
    }

    /// The informer of `kind` in `namespace` (None, and always for a
    /// cluster-scoped kind: cluster-wide), started now if no one watches
    /// it yet. A `sharded` one, on a sharded host, holds only the objects
    /// of the buckets this replica holds; elsewhere `sharded` is ignored.
    pub fn informer(&self, kind: &Kind, namespace: Option<&str>, sharded: bool) -> Arc<Informer> {
        let selector = self.shard.clone().filter(|_| sharded);
        let namespace = match kind.scope {
            Scope::Namespaced => namespace.map(str::to_owned),
            Scope::Cluster => None,
        };
        let key = WatchKey {
            group: kind.group.clone(),
            version: kind.version.clone(),
            kind: kind.kind.clone(),
            namespace: namespace.clone(),
            sharded: selector.is_some(),
        };
        let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        started
            .entry(key)
            .or_insert_with(|| {
                tracing::info!(kind = %kind, namespace = namespace.as_deref().unwrap_or("(all)"), "starting watch");
                Arc::new(Informer::start(
                    self.client.clone(),
                    kind.clone(),
                    namespace,
                    self.config.clone(),
                    self.observer.clone(),
                    selector,
                ))
            })
            .clone()
    }

    /// A module's view of `kind`: the watch of each of `namespaces` for a
    /// namespaced kind, or the cluster-wide watch when `namespaces` is
    /// empty or the kind is cluster-scoped; `sharded` as for
    /// [`Informers::informer`].
    pub fn view(&self, kind: &Kind, namespaces: &[String], sharded: bool) -> KindView {
        let informers = match kind.scope {
            Scope::Namespaced if !namespaces.is_empty() => {
                let mut namespaces: Vec<&str> = namespaces.iter().map(String::as_str).collect();
                namespaces.sort_unstable();
                namespaces.dedup();
                namespaces
                    .into_iter()
                    .map(|namespace| self.informer(kind, Some(namespace), sharded))
                    .collect()
            }
            _ => vec![self.informer(kind, None, sharded)],
        };
        KindView::new(kind.clone(), informers)
    }

    /// Stops the watches no module uses any more (only this registry
    /// holds them) and frees their caches.
    pub fn release_unused(&self) {
        let mut started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        started.retain(|key, informer| {
            let used = Arc::strong_count(informer) > 1;
            if !used {
                tracing::info!(kind = %key.kind, group = %key.group, version = %key.version, namespace = key.namespace.as_deref().unwrap_or("(all)"), "stopping unused watch");
                self.observer
                    .stopped(informer.kind(), key.namespace.as_deref());
            }
            used
        });
    }

    /// True when every started informer has cached its first list.
    pub fn all_synced(&self) -> bool {
        self.started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .all(|informer| informer.is_synced())
    }

    /// The watches running now: (kind, namespace; None for cluster-wide).
    pub fn watches(&self) -> Vec<(Kind, Option<String>)> {
        self.started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(key, informer)| (informer.kind().clone(), key.namespace.clone()))
            .collect()
    }
}
