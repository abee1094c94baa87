//! One watch's cache: kube-runtime's reflector store, written event by
//! event so that each change carries the object before and after, and the
//! objects the watch skipped.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kube::api::{ApiResource, DynamicObject, ObjectMeta, TypeMeta};
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::watcher;

use super::decode::{Decoded, SkippedObject};
use super::{Change, ChangeSource};

/// What one event did: the changes to deliver now, and the objects newly
/// skipped (each version once) to report.
#[derive(Default)]
pub(super) struct Applied {
    pub(super) changes: Vec<Change>,
    pub(super) skipped: Vec<SkippedObject>,
}

/// While a list is under way: the objects it found so far, those it found
/// changed (with their state before), to deliver once the list is
/// complete, and those it skipped.
#[derive(Default)]
struct Listing {
    seen: HashSet<ObjectRef<DynamicObject>>,
    changed: Vec<(ObjectRef<DynamicObject>, Option<Arc<DynamicObject>>)>,
    skipped: HashMap<ObjectRef<DynamicObject>, SkippedObject>,
}

pub(super) struct Cache {
    writer: Writer<DynamicObject>,
    store: Store<DynamicObject>,
    resource: ApiResource,
    listing: Option<Listing>,
    /// The objects of this watch not cached because they could not be
    /// decoded, as last seen.
    skipped: HashMap<ObjectRef<DynamicObject>, SkippedObject>,
}

impl Cache {
    pub(super) fn new(resource: ApiResource) -> Self {
        let writer = Writer::new(resource.clone());
        Cache {
            store: writer.as_reader(),
            writer,
            resource,
            listing: None,
            skipped: HashMap::new(),
        }
    }

    /// A reader of the cached objects.
    pub(super) fn store(&self) -> Store<DynamicObject> {
        self.store.clone()
    }

    /// How many objects the cache holds.
    pub(super) fn len(&self) -> usize {
        self.store.len()
    }

    /// How many objects of the watch are skipped now.
    pub(super) fn skipped(&self) -> usize {
        self.skipped.len()
    }

    fn reference(&self, object: &DynamicObject) -> ObjectRef<DynamicObject> {
        ObjectRef::from_obj_with(object, self.resource.clone())
    }

    /// A stand-in carrying only the identity of `skipped`: enough for the
    /// store to find, and remove, the object of that name.
    fn stand_in(&self, skipped: &SkippedObject) -> DynamicObject {
        DynamicObject {
            types: Some(self.types()),
            metadata: ObjectMeta {
                name: skipped.metadata.name.clone(),
                namespace: skipped.metadata.namespace.clone(),
                ..ObjectMeta::default()
            },
            data: serde_json::Value::Null,
        }
    }

    fn types(&self) -> TypeMeta {
        TypeMeta {
            api_version: self.resource.api_version.clone(),
            kind: self.resource.kind.clone(),
        }
    }

    /// List items of built-in kinds arrive without apiVersion and kind;
    /// guests and the planner need them on every object.
    fn complete(&self, mut object: DynamicObject) -> DynamicObject {
        if object.types.is_none() {
            object.types = Some(self.types());
        }
        object
    }

    /// Records `skipped` as the state of its object; true when this
    /// version of it was not skipped before (and so is news).
    fn note_skipped(
        previous: &HashMap<ObjectRef<DynamicObject>, SkippedObject>,
        reference: &ObjectRef<DynamicObject>,
        skipped: &SkippedObject,
    ) -> bool {
        previous.get(reference).is_none_or(|known| {
            known.metadata.uid != skipped.metadata.uid
                || known.metadata.resource_version != skipped.metadata.resource_version
                || known.reason != skipped.reason
        })
    }

    /// Applies `event` to the store.
    pub(super) fn apply(&mut self, event: watcher::Event<Decoded>) -> Applied {
        use watcher::Event;
        match event {
            Event::Apply(Decoded::Object(object)) => {
                let object = self.complete(object);
                let reference = self.reference(&object);
                self.skipped.remove(&reference);
                let old = self.store.get(&reference);
                self.writer.apply_watcher_event(&Event::Apply(object));
                let new = self.store.get(&reference);
                Applied {
                    changes: vec![Change {
                        old,
                        new,
                        source: ChangeSource::Watched,
                    }],
                    skipped: Vec::new(),
                }
            }
            Event::Apply(Decoded::Skipped(skipped)) => {
                // The host no longer knows what this object is: it leaves
                // the cache, as if deleted, until a version it can decode.
                let stand_in = self.stand_in(&skipped);
                let reference = self.reference(&stand_in);
                let mut applied = Applied::default();
                if let Some(old) = self.store.get(&reference) {
                    self.writer.apply_watcher_event(&Event::Delete(stand_in));
                    applied.changes.push(Change {
                        old: Some(old),
                        new: None,
                        source: ChangeSource::Watched,
                    });
                }
                if Self::note_skipped(&self.skipped, &reference, &skipped) {
                    applied.skipped.push(skipped.clone());
                }
                self.skipped.insert(reference, skipped);
                applied
            }
            Event::Delete(Decoded::Object(object)) => {
                let object = self.complete(object);
                let reference = self.reference(&object);
                self.skipped.remove(&reference);
                let old = self
                    .store
                    .get(&reference)
                    .unwrap_or_else(|| Arc::new(object.clone()));
                self.writer.apply_watcher_event(&Event::Delete(object));
                Applied {
                    changes: vec![Change {
                        old: Some(old),
                        new: None,
                        source: ChangeSource::Watched,
                    }],
                    skipped: Vec::new(),
                }
            }
            Event::Delete(Decoded::Skipped(skipped)) => {
                let stand_in = self.stand_in(&skipped);
                let reference = self.reference(&stand_in);
                self.skipped.remove(&reference);
                // Cached only if it was decodable once and its last
                // change was missed; subscribers never saw it otherwise.
                let Some(old) = self.store.get(&reference) else {
                    return Applied::default();
                };
                self.writer.apply_watcher_event(&Event::Delete(stand_in));
                Applied {
                    changes: vec![Change {
                        old: Some(old),
                        new: None,
                        source: ChangeSource::Watched,
                    }],
                    skipped: Vec::new(),
                }
            }
            Event::Init => {
                self.writer.apply_watcher_event(&Event::Init);
                self.listing = Some(Listing::default());
                Applied::default()
            }
            Event::InitApply(Decoded::Object(object)) => {
                let object = self.complete(object);
                let reference = self.reference(&object);
                let old = self.store.get(&reference);
                let unchanged = old.as_ref().is_some_and(|old| {
                    old.metadata.resource_version.is_some()
                        && old.metadata.resource_version == object.metadata.resource_version
                });
                self.writer.apply_watcher_event(&Event::InitApply(object));
                if let Some(listing) = &mut self.listing {
                    listing.seen.insert(reference.clone());
                    if !unchanged {
                        listing.changed.push((reference, old));
                    }
                }
                Applied::default()
            }
            Event::InitApply(Decoded::Skipped(skipped)) => {
                // Not seen: cached before, it is delivered as gone when the
                // list completes.
                let reference = self.reference(&self.stand_in(&skipped));
                if let Some(listing) = &mut self.listing {
                    listing.skipped.insert(reference, skipped);
                }
                Applied::default()
            }
            Event::InitDone => self.list_done(),
        }
    }

    fn list_done(&mut self) -> Applied {
        let before = self.store.state();
        self.writer.apply_watcher_event(&watcher::Event::InitDone);
        let Some(listing) = self.listing.take() else {
            return Applied::default();
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
        let changes = changed
            .filter(|change| change.new.is_some() || change.old.is_some())
            .chain(gone)
            .collect();
        // What the list skipped is all that is skipped now; a version
        // skipped before is not news again.
        let previous = std::mem::replace(&mut self.skipped, listing.skipped);
        let skipped = self
            .skipped
            .iter()
            .filter(|(reference, skipped)| Self::note_skipped(&previous, reference, skipped))
            .map(|(_, skipped)| skipped.clone())
            .collect();
        Applied { changes, skipped }
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::watcher::Event;
    use serde_json::json;

    use super::super::decode::Undecodable;
    use super::*;
    use crate::meta::Scope;

    fn resource() -> ApiResource {
        crate::meta::Kind::for_test("", "ConfigMap", Scope::Namespaced).api_resource()
    }

    fn cache() -> Cache {
        Cache::new(resource())
    }

    fn config_map(name: &str, version: &str) -> Decoded {
        Decoded::Object(
            serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "shop", "resourceVersion": version},
            }))
            .unwrap(),
        )
    }

    fn too_deep(name: &str, version: &str) -> Decoded {
        Decoded::Skipped(SkippedObject {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                uid: Some(format!("uid-{name}")),
                resource_version: Some(version.into()),
                ..ObjectMeta::default()
            },
            reason: Undecodable::TooDeep { limit: 100 },
        })
    }

    fn version(object: &Option<Arc<DynamicObject>>) -> Option<&str> {
        object.as_ref()?.metadata.resource_version.as_deref()
    }

    /// (name, version before, version after) of each change.
    fn summary(changes: &[Change]) -> Vec<(String, Option<&str>, Option<&str>)> {
        let mut summary: Vec<_> = changes
            .iter()
            .map(|c| (c.key().name, version(&c.old), version(&c.new)))
            .collect();
        summary.sort();
        summary
    }

    /// (name, version) of each newly skipped object.
    fn skipped(applied: &Applied) -> Vec<(String, String)> {
        let mut skipped: Vec<_> = applied
            .skipped
            .iter()
            .map(|s| {
                (
                    s.metadata.name.clone().unwrap(),
                    s.metadata.resource_version.clone().unwrap(),
                )
            })
            .collect();
        skipped.sort();
        skipped
    }

    fn list(cache: &mut Cache, objects: &[Decoded]) -> Applied {
        assert!(cache.apply(Event::Init).changes.is_empty());
        for object in objects {
            let applied = cache.apply(Event::InitApply(object.clone()));
            assert!(
                applied.changes.is_empty() && applied.skipped.is_empty(),
                "a list's changes wait for the list to complete"
            );
        }
        cache.apply(Event::InitDone)
    }

    #[test]
    fn a_watch_event_carries_the_object_before_and_after() {
        let mut cache = cache();
        let first = list(&mut cache, &[config_map("a", "1")]);
        assert_eq!(summary(&first.changes), [("a".to_owned(), None, Some("1"))]);
        assert!(
            first
                .changes
                .iter()
                .all(|c| c.source == ChangeSource::Listed)
        );

        let changed = cache.apply(Event::Apply(config_map("a", "2")));
        assert_eq!(
            summary(&changed.changes),
            [("a".to_owned(), Some("1"), Some("2"))]
        );
        assert_eq!(changed.changes[0].source, ChangeSource::Watched);

        let deleted = cache.apply(Event::Delete(config_map("a", "3")));
        assert_eq!(
            summary(&deleted.changes),
            [("a".to_owned(), Some("2"), None)]
        );
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
        assert_eq!(
            summary(&relisted.changes),
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
        let applied = list(&mut cache, &[config_map("a", "1")]);
        let cached = cache.store.state();
        assert!(Arc::ptr_eq(
            applied.changes[0].new.as_ref().unwrap(),
            &cached[0]
        ));
    }

    #[test]
    fn list_items_of_built_in_kinds_get_their_type() {
        let mut cache = cache();
        let bare: DynamicObject =
            serde_json::from_value(json!({"metadata": {"name": "a", "namespace": "shop"}}))
                .unwrap();
        let applied = list(&mut cache, &[Decoded::Object(bare)]);
        let types = applied.changes[0].new.as_ref().unwrap().types.clone();
        assert_eq!(types.unwrap().kind, "ConfigMap");
    }

    #[test]
    fn a_list_caches_every_object_but_the_one_it_skipped() {
        let mut cache = cache();
        let applied = list(
            &mut cache,
            &[
                config_map("a", "1"),
                too_deep("deep", "2"),
                config_map("b", "3"),
            ],
        );
        assert_eq!(
            summary(&applied.changes),
            [
                ("a".to_owned(), None, Some("1")),
                ("b".to_owned(), None, Some("3")),
            ]
        );
        assert_eq!(skipped(&applied), [("deep".to_owned(), "2".to_owned())]);
        assert_eq!((cache.store.len(), cache.skipped()), (2, 1));

        // A re-list that finds it as it was does not report it again.
        let again = list(
            &mut cache,
            &[
                config_map("a", "1"),
                too_deep("deep", "2"),
                config_map("b", "3"),
            ],
        );
        assert!(again.changes.is_empty() && again.skipped.is_empty());
        assert_eq!(cache.skipped(), 1);
    }

    #[test]
    fn an_object_that_becomes_undecodable_leaves_the_cache_until_it_is_decodable_again() {
        let mut cache = cache();
        list(&mut cache, &[config_map("a", "1"), config_map("b", "1")]);

        let deep = cache.apply(Event::Apply(too_deep("a", "2")));
        assert_eq!(summary(&deep.changes), [("a".to_owned(), Some("1"), None)]);
        assert_eq!(skipped(&deep), [("a".to_owned(), "2".to_owned())]);
        assert_eq!((cache.store.len(), cache.skipped()), (1, 1));

        // Another undecodable version: no change to deliver, but news.
        let deeper = cache.apply(Event::Apply(too_deep("a", "3")));
        assert!(deeper.changes.is_empty());
        assert_eq!(skipped(&deeper), [("a".to_owned(), "3".to_owned())]);

        let fixed = cache.apply(Event::Apply(config_map("a", "4")));
        assert_eq!(summary(&fixed.changes), [("a".to_owned(), None, Some("4"))]);
        assert_eq!((cache.store.len(), cache.skipped()), (2, 0));
    }

    #[test]
    fn a_relist_drops_an_object_it_can_no_longer_decode() {
        let mut cache = cache();
        list(&mut cache, &[config_map("a", "1"), config_map("b", "1")]);
        let relisted = list(&mut cache, &[too_deep("a", "2"), config_map("b", "1")]);
        assert_eq!(
            summary(&relisted.changes),
            [("a".to_owned(), Some("1"), None)]
        );
        assert_eq!(skipped(&relisted), [("a".to_owned(), "2".to_owned())]);
        assert_eq!((cache.store.len(), cache.skipped()), (1, 1));
    }

    #[test]
    fn deleting_a_skipped_object_forgets_it_quietly() {
        let mut cache = cache();
        list(&mut cache, &[too_deep("deep", "1"), config_map("a", "1")]);
        let deleted = cache.apply(Event::Delete(too_deep("deep", "2")));
        assert!(deleted.changes.is_empty() && deleted.skipped.is_empty());
        assert_eq!((cache.store.len(), cache.skipped()), (1, 0));
    }
}
