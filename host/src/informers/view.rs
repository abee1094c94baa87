//! What one module sees of a kind: the watches of the namespaces it may
//! see, as one cache.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use kube::api::DynamicObject;
use tokio::sync::mpsc;

use super::{Change, Informer, ObjectKey, guest_string};
use crate::meta::Kind;
use crate::objects::{Candidate, ObjectSource, Seen};

/// One module's view of one kind: the watch of each namespace it may see,
/// or the kind's cluster-wide watch (see [`super::Informers::view`]).
#[derive(Clone)]
pub struct KindView {
    kind: Kind,
    informers: Vec<Arc<Informer>>,
}

impl KindView {
    pub(super) fn new(kind: Kind, informers: Vec<Arc<Informer>>) -> Self {
        KindView { kind, informers }
    }

    /// The kind seen.
    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// The namespaces watched; None alone: the whole cluster.
    pub fn namespaces(&self) -> impl Iterator<Item = Option<&str>> {
        self.informers.iter().map(|informer| informer.namespace())
    }

    /// The watch that holds objects of `namespace` (None: cluster-scoped
    /// objects), if this view has one.
    fn covering(&self, namespace: Option<&str>) -> Option<&Arc<Informer>> {
        self.informers
            .iter()
            .find(|informer| informer.namespace().is_none() || informer.namespace() == namespace)
    }

    /// The cached object at `key`; None also when its namespace is not one
    /// this view sees.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<DynamicObject>> {
        self.covering(key.namespace.as_deref())?.get(key)
    }

    /// Every object this view sees.
    pub fn objects(&self) -> Vec<Arc<DynamicObject>> {
        self.informers
            .iter()
            .flat_map(|informer| informer.objects())
            .collect()
    }

    /// The objects in `namespace`, or every object seen when None.
    pub fn objects_in(&self, namespace: Option<&str>) -> Vec<Arc<DynamicObject>> {
        match namespace {
            None => self.objects(),
            Some(namespace) => self
                .covering(Some(namespace))
                .map(|informer| {
                    informer.objects_where(|o| o.metadata.namespace.as_deref() == Some(namespace))
                })
                .unwrap_or_default(),
        }
    }

    /// The objects whose controller ownerReference has this uid, in
    /// `namespace` only when one is given.
    pub fn controlled_by(&self, uid: &str, namespace: Option<&str>) -> Vec<Arc<DynamicObject>> {
        let controlled = |object: &DynamicObject| {
            namespace.is_none_or(|ns| object.metadata.namespace.as_deref() == Some(ns))
                && object
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|owner| owner.controller == Some(true) && owner.uid == uid)
        };
        match namespace {
            Some(namespace) => self
                .covering(Some(namespace))
                .map(|informer| informer.objects_where(controlled))
                .unwrap_or_default(),
            None => self
                .informers
                .iter()
                .flat_map(|informer| informer.objects_where(controlled))
                .collect(),
        }
    }

    /// Sends every change of every watch of this view to `tx`, as `wrap`
    /// makes it.
    pub fn subscribe<T: Send + 'static>(
        &self,
        tx: &mpsc::UnboundedSender<T>,
        wrap: impl Fn(Change) -> T + Clone + Send + Sync + 'static,
    ) {
        for informer in &self.informers {
            informer.subscribe(tx.clone(), wrap.clone());
        }
    }

    /// True once every watch of the view has cached its first list.
    pub fn is_synced(&self) -> bool {
        self.informers.iter().all(|informer| informer.is_synced())
    }

    /// Waits until every watch of the view has cached its first list.
    pub async fn synced(&self) {
        for informer in &self.informers {
            informer.synced().await;
        }
    }
}

/// Guest reads answered from a module's views of its kinds.
pub struct CachedObjects {
    views: Vec<KindView>,
}

impl CachedObjects {
    /// Reads over these views (the module's primary, owned and read kinds).
    pub fn new(views: Vec<KindView>) -> Self {
        CachedObjects { views }
    }

    fn view(&self, kind: &Kind) -> Option<&KindView> {
        self.views.iter().find(|view| {
            view.kind.group == kind.group
                && view.kind.version == kind.version
                && view.kind.kind == kind.kind
        })
    }
}

impl ObjectSource for CachedObjects {
    fn get(&self, kind: &Kind, namespace: Option<&str>, name: &str) -> Option<Seen> {
        let key = ObjectKey {
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        };
        let object = self.view(kind)?.get(&key)?;
        Some(Cached(&object).seen())
    }

    fn list(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        visit: &mut dyn FnMut(&dyn Candidate) -> ControlFlow<()>,
    ) {
        let Some(view) = self.view(kind) else {
            return;
        };
        for object in view.objects_in(namespace) {
            if visit(&Cached(&object)).is_break() {
                return;
            }
        }
    }
}

/// A cached object as a list passes over it: its labels read in place,
/// its JSON written only once selected.
struct Cached<'a>(&'a DynamicObject);

/// The labels of an object that has none.
static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

impl Candidate for Cached<'_> {
    fn namespace(&self) -> Option<&str> {
        self.0.metadata.namespace.as_deref()
    }

    fn labels(&self) -> &BTreeMap<String, String> {
        self.0.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
    }

    fn seen(&self) -> Seen {
        Seen {
            namespace: self.0.metadata.namespace.clone(),
            json: guest_string(self.0),
        }
    }
}
