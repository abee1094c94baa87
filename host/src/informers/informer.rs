//! One watch and its cache.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

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
    ) -> Self {
        let resource = kind.api_resource();
        let api: Api<DynamicObject> = match (&namespace, kind.scope) {
            (Some(namespace), Scope::Namespaced) => {
                Api::namespaced_with(client, namespace, &resource)
            }
            _ => Api::all_with(client, &resource),
        };
        let writer = Writer::new(resource.clone());
        let store = writer.as_reader();
        let subscribers: Arc<Mutex<Vec<Subscriber>>> = Arc::default();
        let (synced_tx, synced) = watch::channel(false);
        let types = kube::api::TypeMeta {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
        };
        let stream = watcher(api, config)
            .default_backoff()
            .modify(move |object| {
                // List items of built-in kinds arrive without apiVersion and
                // kind; guests and the planner need them on every object.
                if object.types.is_none() {
                    object.types = Some(types.clone());
                }
                compact_managed_fields(object);
            });
        let mut cache = Cache {
            writer,
            store: store.clone(),
            resource: resource.clone(),
            listing: None,
        };
        let fan_out = subscribers.clone();
        let (label, watched_in) = (kind.clone(), namespace.clone());
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                let event = match event {
                    Ok(event) => event,
                    // The backoff retries; the watcher re-lists after a 410
                    // Gone or a lost connection.
                    Err(error) => {
                        tracing::warn!(kind = %label, namespace = watched_in.as_deref().unwrap_or("(all)"), %error, "watch failed; retrying");
                        continue;
                    }
                };
                let done = matches!(event, watcher::Event::InitDone);
                let changes = cache.apply(&event);
                observer.cached(&label, watched_in.as_deref(), cache.store.len());
                if done {
                    let _ = synced_tx.send(true);
                    tracing::debug!(kind = %label, "cache synced");
                }
                if !changes.is_empty() {
                    let mut subscribers = fan_out.lock().unwrap_or_else(PoisonError::into_inner);
                    for change in &changes {
                        subscribers.retain(|deliver| deliver(change));
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

/// The reflector's store, written event by event with the state before
/// each change kept for the subscribers.
#[derive(Default)]
struct Listing {
    seen: HashSet<ObjectRef<DynamicObject>>,
    changed: Vec<(ObjectRef<DynamicObject>, Option<Arc<DynamicObject>>)>,
}

struct Cache {
    writer: Writer<DynamicObject>,
    store: Store<DynamicObject>,
    resource: ApiResource,
    /// While a list is under way: the objects it found so far, and those
    /// it found changed (with their state before), to deliver once the
    /// list is complete.
    listing: Option<Listing>,
}

impl Cache {
    fn reference(&self, object: &DynamicObject) -> ObjectRef<DynamicObject> {
        ObjectRef::from_obj_with(object, self.resource.clone())
    }

    /// Applies `event` to the store; returns the changes to deliver now.
    fn apply(&mut self, event: &watcher::Event<DynamicObject>) -> Vec<Change> {
        use watcher::Event;
        match event {
            Event::Apply(object) => {
                let reference = self.reference(object);
                let old = self.store.get(&reference);
                self.writer.apply_watcher_event(event);
                let new = self.store.get(&reference);
                vec![Change {
                    old,
                    new,
                    source: ChangeSource::Watched,
                }]
            }
            Event::Delete(object) => {
                let old = self
                    .store
                    .get(&self.reference(object))
                    .unwrap_or_else(|| Arc::new(object.clone()));
                self.writer.apply_watcher_event(event);
                vec![Change {
                    old: Some(old),
                    new: None,
                    source: ChangeSource::Watched,
                }]
            }
            Event::Init => {
                self.writer.apply_watcher_event(event);
                self.listing = Some(Listing::default());
                Vec::new()
            }
            Event::InitApply(object) => {
                let reference = self.reference(object);
                let old = self.store.get(&reference);
                let unchanged = old.as_ref().is_some_and(|old| {
                    old.metadata.resource_version.is_some()
                        && old.metadata.resource_version == object.metadata.resource_version
                });
                self.writer.apply_watcher_event(event);
                if let Some(listing) = &mut self.listing {
                    listing.seen.insert(reference.clone());
                    if !unchanged {
                        listing.changed.push((reference, old));
                    }
                }
                Vec::new()
            }
            Event::InitDone => {
                let before = self.store.state();
                self.writer.apply_watcher_event(event);
                let Some(listing) = self.listing.take() else {
                    return Vec::new();
                };
                let changed = listing.changed.into_iter().map(|(reference, old)| Change {
                    old,
                    new: self.store.get(&reference),
                    source: ChangeSource::Listed,
                });
                let gone = before
                    .into_iter()
                    .filter(|old| !listing.seen.contains(&self.reference(old)))
                    .map(|old| Change {
                        old: Some(old),
                        new: None,
                        source: ChangeSource::Listed,
                    });
                changed
                    .filter(|change| change.new.is_some() || change.old.is_some())
                    .chain(gone)
                    .collect()
            }
        }
    }
}

/// Keeps the managers and operations of `managedFields` (the pruning rule
/// needs them) and drops the field sets.
fn compact_managed_fields(object: &mut DynamicObject) {
    if let Some(entries) = object.metadata.managed_fields.as_mut() {
        for entry in entries {
            entry.fields_v1 = None;
            entry.fields_type = None;
            entry.time = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::*;

    fn resource() -> ApiResource {
        crate::meta::Kind::for_test("", "ConfigMap", Scope::Namespaced).api_resource()
    }

    fn cache() -> Cache {
        let writer = Writer::new(resource());
        Cache {
            store: writer.as_reader(),
            writer,
            resource: resource(),
            listing: None,
        }
    }

    fn config_map(name: &str, version: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "shop", "resourceVersion": version},
        }))
        .unwrap()
    }

    fn version(object: &Option<Arc<DynamicObject>>) -> Option<&str> {
        object.as_ref()?.metadata.resource_version.as_deref()
    }

    /// (name, version before, version after) of each change.
    fn summary(changes: &[Change]) -> Vec<(String, Option<&str>, Option<&str>)> {
        changes
            .iter()
            .map(|c| (c.key().name, version(&c.old), version(&c.new)))
            .collect()
    }

    fn list(cache: &mut Cache, objects: &[DynamicObject]) -> Vec<Change> {
        assert!(cache.apply(&Event::Init).is_empty());
        for object in objects {
            assert!(
                cache.apply(&Event::InitApply(object.clone())).is_empty(),
                "a list's changes wait for the list to complete"
            );
        }
        cache.apply(&Event::InitDone)
    }

    #[test]
    fn a_watch_event_carries_the_object_before_and_after() {
        let mut cache = cache();
        let first = list(&mut cache, &[config_map("a", "1")]);
        assert_eq!(summary(&first), [("a".to_owned(), None, Some("1"))]);
        assert!(first.iter().all(|c| c.source == ChangeSource::Listed));

        let changed = cache.apply(&Event::Apply(config_map("a", "2")));
        assert_eq!(summary(&changed), [("a".to_owned(), Some("1"), Some("2"))]);
        assert_eq!(changed[0].source, ChangeSource::Watched);

        let deleted = cache.apply(&Event::Delete(config_map("a", "3")));
        assert_eq!(summary(&deleted), [("a".to_owned(), Some("2"), None)]);
        assert!(cache.store.is_empty());
    }

    #[test]
    fn a_relist_delivers_what_changed_and_what_went_while_the_watch_was_down() {
        let mut cache = cache();
        list(
            &mut cache,
            &[
                config_map("kept", "1"),
                config_map("changed", "1"),
                config_map("gone", "1"),
            ],
        );
        // The watch was lost; meanwhile `changed` changed, `gone` was
        // deleted and `new` created. kube-runtime's reflector swaps its
        // store without a word about `gone`.
        let relisted = list(
            &mut cache,
            &[
                config_map("kept", "1"),
                config_map("changed", "5"),
                config_map("new", "6"),
            ],
        );
        let mut changes = summary(&relisted);
        changes.sort();
        assert_eq!(
            changes,
            [
                ("changed".to_owned(), Some("1"), Some("5")),
                ("gone".to_owned(), Some("1"), None),
                ("new".to_owned(), None, Some("6")),
            ]
        );
        assert_eq!(cache.store.len(), 3);
    }

    #[test]
    fn a_list_change_carries_the_object_the_cache_holds() {
        let mut cache = cache();
        let changes = list(&mut cache, &[config_map("a", "1")]);
        let cached = cache.store.state();
        assert!(Arc::ptr_eq(changes[0].new.as_ref().unwrap(), &cached[0]));
    }
}
