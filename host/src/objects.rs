//! Where a guest's reads are answered from, and the rules that bound them.
//!
//! In the cluster the answer comes from the host's shared informer caches;
//! on the command line, from the files given. Either way the same rules
//! apply: only kinds the module declared, for a namespaced primary only its
//! own namespace, and for a module whose grant names namespaces only
//! objects in those ([`ConfinedObjects`]) — whatever the primary's scope.

use std::sync::Arc;

use kube::core::SelectorExt;
use serde_json::Value;

use crate::meta::{Kind, ModuleMeta, Scope};
use crate::reads::{KindId, ReadLog};

/// A read-only view of cached objects.
pub trait ObjectSource: Send + Sync {
    /// The object of `kind` called `name` in `namespace` (None for
    /// cluster-scoped kinds).
    fn get(&self, kind: &Kind, namespace: Option<&str>, name: &str) -> Option<Arc<Value>>;
    /// The objects of `kind` in `namespace`, or in every namespace when None.
    fn list(&self, kind: &Kind, namespace: Option<&str>) -> Vec<Arc<Value>>;
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

    fn admits(&self, object: &Value) -> bool {
        granted(&self.namespaces, namespace_of(object))
    }
}

impl ObjectSource for ConfinedObjects {
    fn get(&self, kind: &Kind, namespace: Option<&str>, name: &str) -> Option<Arc<Value>> {
        if !granted(&self.namespaces, namespace) {
            return None;
        }
        self.source
            .get(kind, namespace, name)
            .filter(|o| self.admits(o))
    }

    fn list(&self, kind: &Kind, namespace: Option<&str>) -> Vec<Arc<Value>> {
        if !granted(&self.namespaces, namespace) {
            return Vec::new();
        }
        let listed = match (kind.scope, namespace) {
            // Across namespaces: each granted one, never the others (nor
            // the cost of converting objects the module may not see).
            (Scope::Namespaced, None) => {
                let mut namespaces: Vec<&str> =
                    self.namespaces.iter().map(String::as_str).collect();
                namespaces.sort_unstable();
                namespaces.dedup();
                namespaces
                    .into_iter()
                    .flat_map(|ns| self.source.list(kind, Some(ns)))
                    .collect()
            }
            _ => self.source.list(kind, namespace),
        };
        listed.into_iter().filter(|o| self.admits(o)).collect()
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
    objects: Vec<Arc<Value>>,
}

impl StaticObjects {
    /// The objects given.
    pub fn new(objects: impl IntoIterator<Item = Value>) -> Self {
        StaticObjects {
            objects: objects.into_iter().map(Arc::new).collect(),
        }
    }

    fn of_kind<'a>(
        &'a self,
        kind: &'a Kind,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Arc<Value>> + 'a {
        self.objects.iter().filter(move |o| {
            let api_version = o
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let object_kind = o.get("kind").and_then(Value::as_str).unwrap_or_default();
            kind.matches(api_version, object_kind)
                && namespace.is_none_or(|ns| namespace_of(o) == Some(ns))
        })
    }
}

impl ObjectSource for StaticObjects {
    fn get(&self, kind: &Kind, namespace: Option<&str>, name: &str) -> Option<Arc<Value>> {
        self.of_kind(kind, namespace)
            .find(|o| o.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
            .cloned()
    }

    fn list(&self, kind: &Kind, namespace: Option<&str>) -> Vec<Arc<Value>> {
        self.of_kind(kind, namespace).cloned().collect()
    }
}

/// The namespace of an object, if it has one.
pub fn namespace_of(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
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
}

impl GuestReads {
    fn resolve(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<(KindId, &Kind, Option<String>), String> {
        let (id, declared) = self.meta.readable_id(api_version, kind).ok_or_else(|| {
            format!("{kind}.{api_version} is not a kind module {} declared; declare it with Metadata::reads", self.meta.name)
        })?;
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
    ) -> Result<Option<String>, String> {
        let (id, declared, namespace) = self.resolve(api_version, kind, namespace)?;
        // Recorded before the cache is asked: a change that lands after
        // this line finds the read (see crate::reads).
        if let Some(log) = &self.log {
            log.get(id, namespace.as_deref(), name);
        }
        Ok(self
            .source
            .get(declared, namespace.as_deref(), name)
            .map(|o| o.to_string()))
    }

    pub(crate) fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
        max_bytes: usize,
    ) -> Result<Vec<String>, String> {
        let (id, declared, namespace) = self.resolve(api_version, kind, namespace)?;
        let text = label_selector.unwrap_or_default();
        let selector = bosun_selector::parse(text).map_err(|e| e.to_string())?;
        if let Some(log) = &self.log {
            log.list(id, namespace.as_deref(), text.trim(), &selector);
        }
        let mut total = 0usize;
        let mut listed = Vec::new();
        for object in self.source.list(declared, namespace.as_deref()) {
            let labels = object
                .pointer("/metadata/labels")
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default();
            if !selector.matches(&labels) {
                continue;
            }
            let json = object.to_string();
            total += json.len();
            // The answer is built in host memory before the guest takes it:
            // no larger than the guest's own memory could hold.
            if total > max_bytes {
                return Err(format!(
                    "listing {kind}.{api_version} returns more than {} MiB, more than this module's memory holds; narrow the list with a namespace or a label selector",
                    max_bytes >> 20
                ));
            }
            listed.push(json);
        }
        Ok(listed)
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
    fn a_cluster_scoped_module_reads_in_its_granted_namespaces() {
        let reads = reads(&["a"]);
        let got = reads.get("v1", "ConfigMap", Some("a"), "in-a").unwrap();
        assert!(got.is_some_and(|o| o.contains("in-a")));
        let listed = reads
            .list("v1", "ConfigMap", Some("a"), None, usize::MAX)
            .unwrap();
        assert_eq!(names(&listed), ["a/in-a"]);
    }

    #[test]
    fn a_cluster_scoped_module_cannot_get_outside_its_granted_namespaces() {
        let reads = reads(&["a"]);
        let error = reads.get("v1", "ConfigMap", Some("b"), "in-b").unwrap_err();
        assert!(error.contains("\"b\" is outside the namespaces"), "{error}");
        // Nor by leaving the namespace out.
        assert_eq!(reads.get("v1", "ConfigMap", None, "in-b").unwrap(), None);
    }

    #[test]
    fn a_cluster_scoped_module_cannot_list_outside_its_granted_namespaces() {
        let reads = reads(&["a"]);
        let error = reads
            .list("v1", "ConfigMap", Some("b"), None, usize::MAX)
            .unwrap_err();
        assert!(error.contains("\"b\" is outside the namespaces"), "{error}");
        // Across namespaces: only the granted ones.
        let listed = reads
            .list("v1", "ConfigMap", None, Some("app=x"), usize::MAX)
            .unwrap();
        assert_eq!(names(&listed), ["a/in-a"]);
        let listed = self::reads(&["c", "a", "a"])
            .list("v1", "ConfigMap", None, None, usize::MAX)
            .unwrap();
        assert_eq!(names(&listed), ["a/in-a", "c/in-c"]);
    }

    #[test]
    fn namespaces_do_not_bound_cluster_scoped_kinds() {
        let reads = reads(&["a"]);
        assert!(reads.get("v1", "Node", None, "node-1").unwrap().is_some());
        let listed = reads.list("v1", "Node", None, None, usize::MAX).unwrap();
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
        let listed = reads
            .list("v1", "ConfigMap", None, None, usize::MAX)
            .unwrap();
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
        };
        assert!(reads.get("v1", "ConfigMap", Some("b"), "in-b").is_err());
        let listed = reads
            .list("v1", "ConfigMap", None, None, usize::MAX)
            .unwrap();
        assert_eq!(names(&listed), ["a/in-a"]);
    }
}
