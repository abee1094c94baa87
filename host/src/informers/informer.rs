//! One watch and its cache.

use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::cache::Cache;
use super::decode::Decoded;
use super::{CacheObserver, ObjectKey};
use crate::meta::{Kind, Scope};

/// Where a change was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeSource {
    /// A watch event: someone changed the object just now.
    Watched,
    /// A list: the informer's first, or a re-list after its watch was
    /// lost, which may find objects changed or gone meanwhile.
    Listed,
}

/// A change of one cached object: its state before and after.
///
/// A re-list delivers only what it finds changed — an object whose
/// resourceVersion is the one cached is not delivered again — and it
/// delivers every object it no longer finds as deleted: a deletion missed
/// while the watch was down is still a deletion (kube-runtime's reflector
/// replaces its store silently). A list's changes are delivered once the
/// list is complete, when the cache holds what they say.
///
/// An object the host cannot decode (see `decode.rs`) is not cached; one
/// that was cached leaves the cache with a change to None, as if deleted,
/// and comes back as new once a version within bounds arrives.
#[derive(Debug, Clone)]
pub struct Change {
    /// The object as cached before; None when it is new to the cache.
    pub old: Option<Arc<DynamicObject>>,
    /// The object as cached after; None when it is gone.
    pub new: Option<Arc<DynamicObject>>,
    /// Where the change was seen.
    pub source: ChangeSource,
}

impl Change {
    /// The object after the change, or before it when it is gone.
    pub fn object(&self) -> &Arc<DynamicObject> {
        self.new
            .as_ref()
            .or(self.old.as_ref())
            .expect("a change has a state before or after")
    }

    /// The changed object's key.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::of(self.object())
    }
}

type Subscriber = Box<dyn Fn(&Change) -> bool + Send + Sync>;

/// One kind's watch and cache, in one namespace or cluster-wide.
pub struct Informer {
    kind: Kind,
    namespace: Option<String>,
    resource: ApiResource,
    store: Store<DynamicObject>,
    subscribers: Arc<Mutex<Vec<Subscriber>>>,
    synced: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Informer {
    pub(super) fn start(
        client: kube::Client,
        kind: Kind,
        namespace: Option<String>,
        config: watcher::Config,
        observer: Arc<dyn CacheObserver>,
        selector: Option<watch::Receiver<crate::shard::Buckets>>,
    ) -> Self {
        let resource = kind.api_resource();
        // Each object of a page or event is decoded on its own, within
        // bounds: one the host cannot hold is skipped, never the page
        // (see `decode.rs`).
        let api: Api<Decoded> = match (&namespace, kind.scope) {
            (Some(namespace), Scope::Namespaced) => {
                Api::namespaced_with(client, namespace, &resource)
            }
            _ => Api::all_with(client, &resource),
        };
        let mut cache = Cache::new(resource.clone());
        let store = cache.store();
        let subscribers: Arc<Mutex<Vec<Subscriber>>> = Arc::default();
        let (synced_tx, synced) = watch::channel(false);
        let fan_out = subscribers.clone();
        let (label, watched_in) = (kind.clone(), namespace.clone());
        let mut selector = selector;
        let task = tokio::spawn(async move {
            let scope = watched_in.as_deref();
            // A sharded watch follows the buckets held: each change of
            // the set restarts it with the new selector, and the re-list
            // delivers the objects of buckets let go of as gone.
            'restart: loop {
                let config = match &mut selector {
                    Some(buckets) => {
                        let held = *buckets.borrow_and_update();
                        config.clone().labels(&crate::shard::selector(held))
                    }
                    None => config.clone(),
                };
                let stream = watcher(api.clone(), config).default_backoff();
                let mut stream = std::pin::pin!(stream);
                loop {
                    let next = async {
                        match &mut selector {
                            Some(buckets) => tokio::select! {
                                event = stream.next() => Some(event),
                                changed = buckets.changed() => {
                                    // A dropped sender: keep the last set.
                                    if changed.is_ok() { None } else { Some(stream.next().await) }
                                }
                            },
                            None => Some(stream.next().await),
                        }
                    };
                    let event = match next.await {
                        None => {
                            tracing::info!(kind = %label, namespace = scope.unwrap_or("(all)"), "held buckets changed; restarting the watch");
                            continue 'restart;
                        }
                        Some(None) => break 'restart,
                        Some(Some(event)) => event,
                    };
                    let event = match event {
                        Ok(event) => event,
                        // The backoff retries; the watcher re-lists after a 410
                        // Gone or a lost connection.
                        Err(error) => {
                            tracing::warn!(kind = %label, namespace = scope.unwrap_or("(all)"), %error, "watch failed; retrying");
                            continue;
                        }
                    };
                    let done = matches!(event, watcher::Event::InitDone);
                    let applied = cache.apply(event);
                    observer.cached(&label, scope, cache.len());
                    observer.skipped(&label, scope, cache.skipped());
                    for skipped in &applied.skipped {
                        tracing::warn!(
                            kind = %label,
                            object = %skipped.describe(),
                            uid = skipped.metadata.uid.as_deref().unwrap_or(""),
                            resource_version = skipped.metadata.resource_version.as_deref().unwrap_or(""),
                            reason = %skipped.reason,
                            "skipping an object the host cannot decode: it is not cached, read or reconciled until a version within bounds replaces it"
                        );
                        observer.undecodable(&label, scope, skipped);
                    }
                    if done {
                        let _ = synced_tx.send(true);
                        tracing::debug!(kind = %label, "cache synced");
                    }
                    if !applied.changes.is_empty() {
                        let mut subscribers =
                            fan_out.lock().unwrap_or_else(PoisonError::into_inner);
                        for change in &applied.changes {
                            subscribers.retain(|deliver| deliver(change));
                        }
                    }
                }
            }
        });
        Informer {
            kind,
            namespace,
            resource,
            store,
            subscribers,
            synced,
            task,
        }
    }

    /// The kind watched.
    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// The namespace watched; None: the whole cluster.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// Sends every change from now on to `tx`, as `wrap` makes it; stops
    /// once `tx`'s receiver is gone. Objects already in the cache are not
    /// replayed: read them from [`Informer::objects`].
    pub fn subscribe<T: Send + 'static>(
        &self,
        tx: mpsc::UnboundedSender<T>,
        wrap: impl Fn(Change) -> T + Send + Sync + 'static,
    ) {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(move |change| {
                tx.send(wrap(change.clone())).is_ok()
            }));
    }

    /// Waits until the first list has been cached.
    pub async fn synced(&self) {
        let mut synced = self.synced.clone();
        // The sender lives as long as the task; if it is gone the informer
        // is shutting down and there is nothing to wait for.
        let _ = synced.wait_for(|synced| *synced).await;
    }

    /// True once the first list has been cached.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// The cached object at `key`.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<DynamicObject>> {
        let mut reference = ObjectRef::new_with(&key.name, self.resource.clone());
        if let (Some(namespace), Scope::Namespaced) = (&key.namespace, self.kind.scope) {
            reference = reference.within(namespace);
        }
        self.store.get(&reference)
    }

    /// Every cached object.
    pub fn objects(&self) -> Vec<Arc<DynamicObject>> {
        self.store.state()
    }

    /// The cached objects that pass `keep`.
    pub fn objects_where(&self, keep: impl Fn(&DynamicObject) -> bool) -> Vec<Arc<DynamicObject>> {
        self.store.state_filter(keep)
    }

    /// How many objects the cache holds.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }
}

impl Drop for Informer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
