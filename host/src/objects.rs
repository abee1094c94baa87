//! Where a guest's reads are answered from, and the rules that bound them.
//!
//! In the cluster the answer comes from the host's shared informer caches;
//! on the command line, from the files given. Either way the same rules
//! apply: only kinds the module declared, for a namespaced primary only its
//! own namespace, and for a module whose grant names namespaces only
//! objects in those ([`ConfinedObjects`]) — whatever the primary's scope.
//!
//! A guest decides what it asks, so every read is bounded before the host
//! does work for it: names and namespaces as long as Kubernetes allows, a
//! label selector within the module's limits, a list's answer within the
//! guest's memory and collected only that far, and a list that would run
//! past the call's deadline ended there ([`ReadError::Overran`]).

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use kube::core::SelectorExt;
use serde_json::Value;

use crate::meta::{Kind, ModuleMeta, Scope, truncate_at_char_boundary};
use crate::reads::{KindId, ReadLog};

/// An object a source found, as the guest is handed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// Its namespace, for a namespaced kind.
    pub namespace: Option<String>,
    /// The JSON the guest gets.
    pub json: String,
}

/// An object a list passes over: looked at cheaply (namespace, labels)
/// before anything is made of it.
pub trait Candidate {
    /// Its namespace, for a namespaced kind.
    fn namespace(&self) -> Option<&str>;
    /// Its labels.
    fn labels(&self) -> &BTreeMap<String, String>;
    /// What the guest is handed of it: made only for what is selected.
    fn seen(&self) -> Seen;
}

/// A read-only view of cached objects.
pub trait ObjectSource: Send + Sync {
    /// The object of `kind` called `name` in `namespace` (None for
    /// cluster-scoped kinds).
    fn get(&self, kind: &Kind, namespace: Option<&str>, name: &str) -> Option<Seen>;
    /// Hands `visit` each object of `kind` in `namespace` (every namespace
    /// when None), until it says to stop. Nothing is copied before the
    /// visitor asks for it ([`Candidate::seen`]), so a list costs no more
    /// memory than its answer, and the visitor can stop at any object.
    fn list(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        visit: &mut dyn FnMut(&dyn Candidate) -> ControlFlow<()>,
    );
    /// The namespaces this source answers for (a module's grant); empty:
    /// every namespace. Cluster-scoped objects are not bound by it.
    fn namespaces(&self) -> &[String] {
        &[]
    }
}

/// Another source seen through a module's grant: namespaced objects only
/// in the namespaces it names (none named: every namespace, and this is
/// the source itself). Cluster-scoped objects pass: reaching them is
/// granted by `clusterScoped`, not by namespaces.
///
/// The caches behind a source watch every namespace, and a cluster-scoped
/// primary has no namespace of its own to confine its reads to; without
/// this, a module granted `[a]` would read objects in `b`.
pub struct ConfinedObjects {
    source: Arc<dyn ObjectSource>,
    namespaces: Vec<String>,
}

impl ConfinedObjects {
    /// `source` confined to `namespaces` (empty: `source` as it is).
    pub fn over(source: Arc<dyn ObjectSource>, namespaces: Vec<String>) -> Arc<dyn ObjectSource> {
        if namespaces.is_empty() {
            source
        } else {
            Arc::new(ConfinedObjects { source, namespaces })
        }
    }

    fn admits(&self, namespace: Option<&str>) -> bool {
        granted(&self.namespaces, namespace)
    }
}

impl ObjectSource for ConfinedObjects {
    fn get(&self, kind: &Kind, namespace: Option<&str>, name: &str) -> Option<Seen> {
        if !granted(&self.namespaces, namespace) {
            return None;
        }
        self.source
            .get(kind, namespace, name)
            .filter(|o| self.admits(o.namespace.as_deref()))
    }

    fn list(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        visit: &mut dyn FnMut(&dyn Candidate) -> ControlFlow<()>,
    ) {
        if !granted(&self.namespaces, namespace) {
            return;
        }
        let mut admitted = |candidate: &dyn Candidate| {
            if self.admits(candidate.namespace()) {
                visit(candidate)
            } else {
                ControlFlow::Continue(())
            }
        };
        match (kind.scope, namespace) {
            // Across namespaces: each granted one, never the others.
            (Scope::Namespaced, None) => {
                let mut namespaces: Vec<&str> =
                    self.namespaces.iter().map(String::as_str).collect();
                namespaces.sort_unstable();
                namespaces.dedup();
                for ns in namespaces {
                    let mut stopped = false;
                    self.source.list(kind, Some(ns), &mut |candidate| {
                        let flow = admitted(candidate);
                        stopped = flow.is_break();
                        flow
                    });
                    if stopped {
                        return;
                    }
                }
            }
            _ => self.source.list(kind, namespace, &mut admitted),
        }
    }

    fn namespaces(&self) -> &[String] {
        &self.namespaces
    }
}

/// Whether `namespace` is among `namespaces` (empty: every namespace); no
/// namespace (a cluster-scoped object, or every namespace asked for) is.
fn granted(namespaces: &[String], namespace: Option<&str>) -> bool {
    namespace.is_none_or(|ns| namespaces.is_empty() || namespaces.iter().any(|n| n == ns))
}

/// An in-memory set of objects, such as those given to `bosun reconcile`.
#[derive(Debug, Default, Clone)]
pub struct StaticObjects {
    objects: Vec<StaticObject>,
}

#[derive(Debug, Clone)]
struct StaticObject {
    object: Arc<Value>,
    labels: BTreeMap<String, String>,
}

impl Candidate for StaticObject {
    fn namespace(&self) -> Option<&str> {
        namespace_of(&self.object)
    }

    fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    fn seen(&self) -> Seen {
        Seen {
            namespace: self.namespace().map(str::to_owned),
            json: self.object.to_string(),
        }
    }
}

impl StaticObjects {
    /// The objects given.
    pub fn new(objects: impl IntoIterator<Item = Value>) -> Self {
        StaticObjects {
            objects: objects
                .into_iter()
                .map(|object| StaticObject {
                    labels: object
                        .pointer("/metadata/labels")
                        .and_then(|l| serde_json::from_value(l.clone()).ok())
                        .unwrap_or_default(),
                    object: Arc::new(object),
                })
                .collect(),
        }
    }

    fn of_kind<'a>(
        &'a self,
        kind: &'a Kind,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a StaticObject> + 'a {
        self.objects.iter().filter(move |o| {
            let api_version = o
                .object
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let object_kind = o
                .object
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            kind.matches(api_version, object_kind)
                && namespace.is_none_or(|ns| o.namespace() == Some(ns))
        })
    }
}

impl ObjectSource for StaticObjects {
    fn get(&self, kind: &Kind, namespace: Option<&str>, name: &str) -> Option<Seen> {
        self.of_kind(kind, namespace)
            .find(|o| o.object.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
            .map(Candidate::seen)
    }

    fn list(
        &self,
        kind: &Kind,
        namespace: Option<&str>,
        visit: &mut dyn FnMut(&dyn Candidate) -> ControlFlow<()>,
    ) {
        for object in self.of_kind(kind, namespace) {
            if visit(object).is_break() {
                return;
            }
        }
    }
}

/// The namespace of an object, if it has one.
pub fn namespace_of(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
}

/// The longest object name Kubernetes allows (a DNS subdomain).
const MAX_NAME_BYTES: usize = 253;
/// The longest namespace name (a DNS label).
const MAX_NAMESPACE_BYTES: usize = 63;
/// How much of a guest-supplied kind or apiVersion an error quotes.
const QUOTED: usize = 64;
/// How many objects a list passes over between looks at the clock.
const CLOCK_EVERY: usize = 64;

/// What one call's reads may cost the host.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadBounds {
    /// The largest answer to a list, in bytes: no more than the guest's
    /// memory could take.
    pub(crate) list_bytes: usize,
    /// The largest label selector taken.
    pub(crate) selector: bosun_selector::Bounds,
    /// When the call's deadline passes: a list still running then ends
    /// the call. None: no deadline (loads).
    pub(crate) deadline: Option<Instant>,
}

/// Why a read was not answered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ReadError {
    /// Refused, for the guest to handle: what it is told.
    Refused(String),
    /// The host's work for the read ran into the call's deadline: the call
    /// ends, and the error says the host call was where the time went.
    Overran {
        /// Which host function.
        call: &'static str,
        /// How many objects it had looked at.
        examined: usize,
    },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Refused(message) => f.write_str(message),
            ReadError::Overran { call, examined } => write!(
                f,
                "{call} ran into the call's deadline in the host after looking at {examined} objects"
            ),
        }
    }
}

impl From<String> for ReadError {
    fn from(message: String) -> Self {
        ReadError::Refused(message)
    }
}

/// Answers one guest's reads for one reconcile, applying the access rules.
pub(crate) struct GuestReads {
    pub(crate) meta: Arc<ModuleMeta>,
    /// The primary object's namespace, when the primary is namespaced.
    pub(crate) namespace: Option<String>,
    pub(crate) source: Arc<dyn ObjectSource>,
    /// Where each read is recorded before it is answered, for read
    /// tracking; None records nothing (the command line, loads).
    pub(crate) log: Option<Arc<ReadLog>>,
    pub(crate) bounds: ReadBounds,
}

/// `text` cut to what an error quotes of it.
fn quoted(text: &str) -> &str {
    truncate_at_char_boundary(text, QUOTED)
}

impl GuestReads {
    fn resolve(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<(KindId, &Kind, Option<String>), String> {
        let (id, declared) = self.meta.readable_id(api_version, kind).ok_or_else(|| {
            format!(
                "{}.{} is not a kind module {} declared; declare it with Metadata::reads",
                quoted(kind),
                quoted(api_version),
                self.meta.name
            )
        })?;
        if let Some(asked) = namespace
            && asked.len() > MAX_NAMESPACE_BYTES
        {
            return Err(format!(
                "namespace {:?}… is {} bytes long; a namespace is at most {MAX_NAMESPACE_BYTES}",
                quoted(asked),
                asked.len()
            ));
        }
        let namespace = match (declared.scope, &self.namespace, namespace) {
            (Scope::Cluster, _, _) => None,
            (Scope::Namespaced, Some(own), Some(asked)) if own != asked => {
                return Err(format!(
                    "namespace {asked:?} is outside this object's namespace {own:?}"
                ));
            }
            (Scope::Namespaced, Some(own), _) => Some(own.clone()),
            // A cluster-scoped primary has no namespace of its own: its
            // reads are bounded by the grant's namespaces, if it names any.
            (Scope::Namespaced, None, Some(asked))
                if !granted(self.source.namespaces(), Some(asked)) =>
            {
                return Err(format!(
                    "namespace {asked:?} is outside the namespaces module {} is granted: {}",
                    self.meta.name,
                    self.source.namespaces().join(", ")
                ));
            }
            (Scope::Namespaced, None, asked) => asked.map(str::to_owned),
        };
        Ok((id, declared, namespace))
    }

    pub(crate) fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<String>, ReadError> {
        let (id, declared, namespace) = self.resolve(api_version, kind, namespace)?;
        if name.len() > MAX_NAME_BYTES {
            return Err(ReadError::Refused(format!(
                "name {:?}… is {} bytes long; a Kubernetes name is at most {MAX_NAME_BYTES}",
                quoted(name),
                name.len()
            )));
        }
        // Recorded before the cache is asked: a change that lands after
        // this line finds the read (see crate::reads).
        if let Some(log) = &self.log {
            log.get(id, namespace.as_deref(), name);
        }
        Ok(self
            .source
            .get(declared, namespace.as_deref(), name)
            .map(|seen| seen.json))
    }

    pub(crate) fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<String>, ReadError> {
        let (id, declared, namespace) = self.resolve(api_version, kind, namespace)?;
        let text = label_selector.unwrap_or_default();
        let selector = bosun_selector::parse_within(text, self.bounds.selector)
            .map_err(|e| ReadError::Refused(e.to_string()))?;
        if let Some(log) = &self.log {
            log.list(id, namespace.as_deref(), text.trim(), &selector);
        }
        let max_bytes = self.bounds.list_bytes;
        let mut total = 0usize;
        let mut examined = 0usize;
        let mut listed = Vec::new();
        let mut failed = None;
        self.source
            .list(declared, namespace.as_deref(), &mut |candidate| {
                examined += 1;
                if examined.is_multiple_of(CLOCK_EVERY)
                    && self
                        .bounds
                        .deadline
                        .is_some_and(|deadline| Instant::now() >= deadline)
                {
                    failed = Some(ReadError::Overran {
                        call: "list-objects",
                        examined,
                    });
                    return ControlFlow::Break(());
                }
                if !selector.matches(candidate.labels()) {
                    return ControlFlow::Continue(());
                }
                let json = candidate.seen().json;
                total += json.len();
                // The answer is built in host memory before the guest
                // takes it: no larger than the guest's own memory could
                // hold, and collected only that far.
                if total > max_bytes {
                    failed = Some(ReadError::Refused(format!(
                        "listing {}.{} returns more than {} MiB, more than this module's memory holds; narrow the list with a namespace or a label selector",
                        quoted(kind),
                        quoted(api_version),
                        max_bytes >> 20
                    )));
                    return ControlFlow::Break(());
                }
                listed.push(json);
                ControlFlow::Continue(())
            });
        match failed {
            Some(error) => Err(error),
            None => Ok(listed),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn kind(group: &str, kind: &str, scope: Scope) -> Kind {
        Kind::for_test(group, kind, scope)
    }

    /// A module whose primary (`Cluster.example.dev`) is cluster-scoped
    /// and which reads ConfigMaps and Nodes.
    fn meta() -> Arc<ModuleMeta> {
        Arc::new(ModuleMeta {
            name: "clusters".into(),
            version: "0.1.0".into(),
            primary: kind("example.dev", "Cluster", Scope::Cluster),
            owns: vec![],
            reads: vec![
                kind("", "ConfigMap", Scope::Namespaced),
                kind("", "Node", Scope::Cluster),
            ],
            finalizer: None,
            http_origins: vec![],
        })
    }

    fn config_map(namespace: &str, name: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "x"}}
        })
    }

    fn objects() -> Arc<dyn ObjectSource> {
        Arc::new(StaticObjects::new([
            config_map("a", "in-a"),
            config_map("b", "in-b"),
            config_map("c", "in-c"),
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}}),
        ]))
    }

    /// The reads of a call about a cluster-scoped primary, for a module
    /// granted `namespaces`.
    fn reads(namespaces: &[&str]) -> GuestReads {
        let namespaces = namespaces.iter().map(|n| (*n).to_owned()).collect();
        GuestReads {
            meta: meta(),
            namespace: None,
            source: ConfinedObjects::over(objects(), namespaces),
            log: None,
            bounds: unbounded(),
        }
    }

    fn unbounded() -> ReadBounds {
        ReadBounds {
            list_bytes: usize::MAX,
            selector: bosun_selector::Bounds::default(),
            deadline: None,
        }
    }

    fn names(listed: &[String]) -> Vec<String> {
        listed
            .iter()
            .map(|json| {
                let object: Value = serde_json::from_str(json).unwrap();
                format!(
                    "{}/{}",
                    namespace_of(&object).unwrap_or_default(),
                    object["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn names_longer_than_kubernetes_allows_are_refused_and_never_recorded() {
        let mut reads = reads(&[]);
        let tracker = crate::reads::Tracker::default();
        let log = tracker.begin(&"primary", 8);
        reads.log = Some(log.clone());
        let long = "n".repeat(10_000);
        let error = reads
            .get("v1", "ConfigMap", Some("a"), &long)
            .unwrap_err()
            .to_string();
        assert!(error.contains("10000 bytes long"), "{error}");
        assert!(error.len() < 300, "the error quotes the whole name");
        let error = reads
            .get("v1", "ConfigMap", Some(&long), "x")
            .unwrap_err()
            .to_string();
        assert!(error.contains("a namespace is at most 63"), "{error}");
        let error = reads
            .get("v1", &long, Some("a"), "x")
            .unwrap_err()
            .to_string();
        assert!(error.len() < 300, "the error quotes the whole kind");
        tracker.finish(&"primary", &log);
        assert_eq!(tracker.tracked(), 0, "a refused read was tracked");
    }

    #[test]
    fn a_cluster_scoped_module_reads_in_its_granted_namespaces() {
        let reads = reads(&["a"]);
        let got = reads.get("v1", "ConfigMap", Some("a"), "in-a").unwrap();
        assert!(got.is_some_and(|o| o.contains("in-a")));
        let listed = reads.list("v1", "ConfigMap", Some("a"), None).unwrap();
        assert_eq!(names(&listed), ["a/in-a"]);
    }

    #[test]
    fn a_cluster_scoped_module_cannot_get_outside_its_granted_namespaces() {
        let reads = reads(&["a"]);
        let error = reads
            .get("v1", "ConfigMap", Some("b"), "in-b")
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"b\" is outside the namespaces"), "{error}");
        // Nor by leaving the namespace out.
        assert_eq!(reads.get("v1", "ConfigMap", None, "in-b").unwrap(), None);
    }

    #[test]
    fn a_cluster_scoped_module_cannot_list_outside_its_granted_namespaces() {
        let reads = reads(&["a"]);
        let error = reads
            .list("v1", "ConfigMap", Some("b"), None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"b\" is outside the namespaces"), "{error}");
        // Across namespaces: only the granted ones.
        let listed = reads.list("v1", "ConfigMap", None, Some("app=x")).unwrap();
        assert_eq!(names(&listed), ["a/in-a"]);
        let listed = self::reads(&["c", "a", "a"])
            .list("v1", "ConfigMap", None, None)
            .unwrap();
        assert_eq!(names(&listed), ["a/in-a", "c/in-c"]);
    }

    #[test]
    fn namespaces_do_not_bound_cluster_scoped_kinds() {
        let reads = reads(&["a"]);
        assert!(reads.get("v1", "Node", None, "node-1").unwrap().is_some());
        let listed = reads.list("v1", "Node", None, None).unwrap();
        assert_eq!(names(&listed), ["/node-1"]);
    }

    #[test]
    fn no_namespaces_granted_reads_every_namespace() {
        let reads = reads(&[]);
        assert!(
            reads
                .get("v1", "ConfigMap", Some("b"), "in-b")
                .unwrap()
                .is_some()
        );
        let listed = reads.list("v1", "ConfigMap", None, None).unwrap();
        assert_eq!(names(&listed), ["a/in-a", "b/in-b", "c/in-c"]);
    }

    #[test]
    fn a_namespaced_primary_reads_its_own_namespace_only() {
        let mut meta = (*meta()).clone();
        meta.primary.scope = Scope::Namespaced;
        let reads = GuestReads {
            meta: Arc::new(meta),
            namespace: Some("a".into()),
            source: ConfinedObjects::over(objects(), vec!["a".into(), "b".into()]),
            log: None,
            bounds: unbounded(),
        };
        assert!(reads.get("v1", "ConfigMap", Some("b"), "in-b").is_err());
        let listed = reads.list("v1", "ConfigMap", None, None).unwrap();
        assert_eq!(names(&listed), ["a/in-a"]);
    }
}
