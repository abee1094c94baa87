//! Where a guest's reads are answered from, and the rules that bound them.
//!
//! In the cluster the answer comes from the host's shared informer caches;
//! on the command line, from the files given. Either way the same rules
//! apply: only kinds the module declared, and for a namespaced primary only
//! its own namespace.

use std::sync::Arc;

use kube::core::SelectorExt;
use serde_json::Value;

use crate::meta::{Kind, ModuleMeta, Scope};

/// A read-only view of cached objects.
pub trait ObjectSource: Send + Sync {
    /// The object of `kind` called `name` in `namespace` (None for
    /// cluster-scoped kinds).
    fn get(&self, kind: &Kind, namespace: Option<&str>, name: &str) -> Option<Arc<Value>>;
    /// The objects of `kind` in `namespace`, or in every namespace when None.
    fn list(&self, kind: &Kind, namespace: Option<&str>) -> Vec<Arc<Value>>;
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
}

impl GuestReads {
    fn resolve(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<(&Kind, Option<String>), String> {
        let declared = self.meta.readable(api_version, kind).ok_or_else(|| {
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
            (Scope::Namespaced, None, asked) => asked.map(str::to_owned),
        };
        Ok((declared, namespace))
    }

    pub(crate) fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<String>, String> {
        let (declared, namespace) = self.resolve(api_version, kind, namespace)?;
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
    ) -> Result<Vec<String>, String> {
        let (declared, namespace) = self.resolve(api_version, kind, namespace)?;
        let selector =
            bosun_selector::parse(label_selector.unwrap_or_default()).map_err(|e| e.to_string())?;
        Ok(self
            .source
            .list(declared, namespace.as_deref())
            .into_iter()
            .filter(|o| {
                let labels = o
                    .pointer("/metadata/labels")
                    .and_then(|l| serde_json::from_value(l.clone()).ok())
                    .unwrap_or_default();
                selector.matches(&labels)
            })
            .map(|o| o.to_string())
            .collect())
    }
}
