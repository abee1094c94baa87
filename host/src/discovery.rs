//! What the API server says about the kinds a module declares.
//!
//! A module declares each kind with its plural and scope, but only the API
//! server knows them. Believing the module would let one module's word
//! decide another's cache (a `ConfigMap` declared with plural `secrets`
//! fills the shared ConfigMap cache with Secrets) or widen its own reach (a
//! namespaced kind declared cluster-scoped is read across namespaces). So
//! every declared kind is checked against discovery when the module loads:
//! an unknown kind, or a plural or scope that differs from what the server
//! serves, fails that module's load and no other.
//!
//! Discovery also tells what the primary's status can hold. The host adds
//! `status.observedGeneration` and its own `Reconciled` condition to what a
//! guest writes; a CRD whose status schema has no room for them (most CRDs
//! in the wild) would refuse every status write. The schema is read from the
//! API server's OpenAPI v3 document, which covers CRDs and built-in kinds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use kube::Client;
use kube::core::GroupVersionKind;
use serde_json::Value;

use crate::meta::{Kind, ModuleMeta, Scope};

/// What the primary kind's status subresource can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRoom {
    /// The kind has a status subresource at all.
    pub subresource: bool,
    /// The status schema has `observedGeneration`.
    pub observed_generation: bool,
    /// The status schema has `conditions` shaped like `metav1.Condition`
    /// (type, status, reason, message, lastTransitionTime).
    pub conditions: bool,
    /// Those conditions have `observedGeneration`.
    pub condition_observed_generation: bool,
}

impl StatusRoom {
    /// Room for everything: what `bosun reconcile` assumes offline, and what
    /// a status schema that preserves unknown fields offers.
    pub const ANY: StatusRoom = StatusRoom {
        subresource: true,
        observed_generation: true,
        conditions: true,
        condition_observed_generation: true,
    };

    /// A status subresource with a schema that has room for nothing the
    /// host adds.
    pub const BARE: StatusRoom = StatusRoom {
        subresource: true,
        observed_generation: false,
        conditions: false,
        condition_observed_generation: false,
    };

    /// No status subresource.
    pub const NONE: StatusRoom = StatusRoom {
        subresource: false,
        observed_generation: false,
        conditions: false,
        condition_observed_generation: false,
    };
}

/// What discovery confirmed about a module's kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// What the primary's status can hold.
    pub status: StatusRoom,
    /// True while the status schema was not published yet (a CRD installed
    /// a moment ago): `status` is then [`StatusRoom::BARE`] until
    /// [`Discovery::status_room`] finds it.
    pub provisional: bool,
}

impl Resolved {
    /// What is assumed without an API server (`bosun reconcile`).
    pub const OFFLINE: Resolved = Resolved {
        status: StatusRoom::ANY,
        provisional: false,
    };
}

/// How long a load waits for the API server to publish a CRD's schema: it
/// does so a moment after the CRD is established.
const SCHEMA_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a module's kinds do not match what the API server serves. The
/// module does not load; no other module is affected.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The API server serves no such kind.
    #[error(
        "module {module} declares {role} kind {kind}, which the API server does not serve: is its CRD installed, and is version {version} served?"
    )]
    Unknown {
        /// The module's name.
        module: String,
        /// `primary`, `owned` or `read`.
        role: &'static str,
        /// The kind as declared.
        kind: String,
        /// The version declared.
        version: String,
    },
    /// The module declares a plural or scope other than the server's.
    #[error(
        "module {module} declares {role} kind {kind} with {mismatch}; fix the module's declaration"
    )]
    Mismatch {
        /// The module's name.
        module: String,
        /// `primary`, `owned` or `read`.
        role: &'static str,
        /// The kind as declared.
        kind: String,
        /// What differs: `plural "secrets", but the API server serves it
        /// with plural "configmaps"`.
        mismatch: String,
    },
    /// The kind does not support a verb the module's role needs.
    #[error(
        "module {module} declares {role} kind {kind}, but the API server does not allow {verb} on it"
    )]
    Verb {
        /// The module's name.
        module: String,
        /// `primary`, `owned` or `read`.
        role: &'static str,
        /// The kind as declared.
        kind: String,
        /// The verb missing.
        verb: &'static str,
    },
    /// Discovery itself failed.
    #[error("discovering {kind} for module {module}: {source}")]
    Api {
        /// The module's name.
        module: String,
        /// The kind being discovered.
        kind: String,
        /// What the client said.
        #[source]
        source: Box<kube::Error>,
    },
}

/// Asks the API server about kinds, remembering OpenAPI documents per
/// group-version for the life of the process (each is read once per kind
/// per load, and loads are rare).
pub struct Discovery {
    client: Client,
    openapi: Mutex<HashMap<String, Arc<Value>>>,
}

impl Discovery {
    /// Discovery through `client`.
    pub fn new(client: Client) -> Self {
        Discovery {
            client,
            openapi: Mutex::default(),
        }
    }

    /// The client discovery asks through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The plural and scope of `kind` in `group` at the group's preferred
    /// version (for permissions, which name resources, granted by group and
    /// kind).
    ///
    /// # Errors
    ///
    /// When the group is not served or has no such kind.
    pub async fn plural_of(&self, group: &str, kind: &str) -> Result<(String, Scope), kube::Error> {
        let api_group = kube::discovery::group(&self.client, group).await?;
        api_group
            .recommended_kind(kind)
            .map(|(resource, capabilities)| {
                let scope = match capabilities.scope {
                    kube::discovery::Scope::Cluster => Scope::Cluster,
                    kube::discovery::Scope::Namespaced => Scope::Namespaced,
                };
                (resource.plural, scope)
            })
            .ok_or_else(|| {
                kube::Error::Discovery(kube::error::DiscoveryError::MissingKind(format!(
                    "{kind} in group {group:?}"
                )))
            })
    }

    /// Checks every kind `meta` declares against the API server, and reads
    /// what the primary's status can hold.
    ///
    /// # Errors
    ///
    /// The first kind that is unknown, or declared with another plural or
    /// scope than the server's, or lacks a verb its role needs.
    pub async fn resolve(&self, meta: &ModuleMeta) -> Result<Resolved, DiscoveryError> {
        let primary = self.check(meta, &meta.primary, "primary").await?;
        for kind in &meta.owns {
            let capabilities = self.check(meta, kind, "owned").await?;
            for verb in ["create", "patch", "delete"] {
                require(meta, kind, "owned", &capabilities, verb)?;
            }
        }
        for kind in &meta.reads {
            self.check(meta, kind, "read").await?;
        }
        let has_status = primary
            .subresources
            .iter()
            .any(|(r, _)| r.plural == "status");
        let resolved = if !has_status {
            Resolved {
                status: StatusRoom::NONE,
                provisional: false,
            }
        } else {
            let started = tokio::time::Instant::now();
            loop {
                if let Some(room) = self.status_room(meta).await {
                    break Resolved {
                        status: room,
                        provisional: false,
                    };
                }
                if started.elapsed() >= SCHEMA_PATIENCE {
                    // Without the schema, adding fields could make every
                    // status write fail; leaving them out only loses the
                    // host's extras until the schema shows up.
                    tracing::warn!(module = %meta.name, kind = %meta.primary, "the status schema is not published yet; writing the module's status without observedGeneration or the Reconciled condition until it is");
                    break Resolved {
                        status: StatusRoom::BARE,
                        provisional: true,
                    };
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        };
        tracing::debug!(module = %meta.name, status = ?resolved.status, "kinds confirmed by discovery");
        Ok(resolved)
    }

    /// What the status of `meta`'s primary kind has room for, from the
    /// OpenAPI v3 document of its group-version; None while the API server
    /// has not published the kind's schema (or cannot be asked).
    pub async fn status_room(&self, meta: &ModuleMeta) -> Option<StatusRoom> {
        match self.status_schema(&meta.primary).await {
            Ok(Some((document, schema))) => Some(room_in(&document, &schema)),
            Ok(None) => None,
            Err(error) => {
                tracing::debug!(module = %meta.name, kind = %meta.primary, %error, "cannot read the status schema yet");
                None
            }
        }
    }

    async fn check(
        &self,
        meta: &ModuleMeta,
        kind: &Kind,
        role: &'static str,
    ) -> Result<kube::discovery::ApiCapabilities, DiscoveryError> {
        let gvk = GroupVersionKind::gvk(&kind.group, &kind.version, &kind.kind);
        let (resource, capabilities) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|source| match &source {
                kube::Error::Api(status) if status.code == 404 => DiscoveryError::Unknown {
                    module: meta.name.clone(),
                    role,
                    kind: kind.to_string(),
                    version: kind.version.clone(),
                },
                kube::Error::Discovery(_) => DiscoveryError::Unknown {
                    module: meta.name.clone(),
                    role,
                    kind: kind.to_string(),
                    version: kind.version.clone(),
                },
                _ => DiscoveryError::Api {
                    module: meta.name.clone(),
                    kind: kind.to_string(),
                    source: Box::new(source),
                },
            })?;
        let mismatch = |field: &str, declared: String, served: String| DiscoveryError::Mismatch {
            module: meta.name.clone(),
            role,
            kind: kind.to_string(),
            mismatch: format!(
                "{field} {declared:?}, but the API server serves it with {field} {served:?}"
            ),
        };
        if resource.plural != kind.plural {
            return Err(mismatch("plural", kind.plural.clone(), resource.plural));
        }
        let served_scope = match capabilities.scope {
            kube::discovery::Scope::Namespaced => Scope::Namespaced,
            kube::discovery::Scope::Cluster => Scope::Cluster,
        };
        if served_scope != kind.scope {
            return Err(mismatch(
                "scope",
                format!("{:?}", kind.scope).to_lowercase(),
                format!("{served_scope:?}").to_lowercase(),
            ));
        }
        for verb in ["list", "watch"] {
            require(meta, kind, role, &capabilities, verb)?;
        }
        Ok(capabilities)
    }

    /// The schema of `kind`'s `status`, from the OpenAPI v3 document of its
    /// group-version (an empty schema when the kind's has no `status`);
    /// None when the document has no definition of the kind yet.
    async fn status_schema(&self, kind: &Kind) -> Result<Option<(Arc<Value>, Value)>, kube::Error> {
        let (url, document) = self.openapi_document(kind).await?;
        match find_status_schema(&document, kind) {
            Some(status) => Ok(Some((document, status))),
            None => {
                // Not in this copy: the next look reads the document again.
                self.openapi
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&url);
                Ok(None)
            }
        }
    }

    async fn openapi_document(&self, kind: &Kind) -> Result<(String, Arc<Value>), kube::Error> {
        let path = if kind.group.is_empty() {
            format!("api/{}", kind.version)
        } else {
            format!("apis/{}/{}", kind.group, kind.version)
        };
        // A new CRD version may have been installed since: read afresh on
        // every load, and keep it only to answer the kinds of this load.
        let index: Value = self.get("/openapi/v3").await?;
        let url = index
            .pointer(&format!(
                "/paths/{}/serverRelativeURL",
                escape_pointer(&path)
            ))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("/openapi/v3/{path}"));
        if let Some(document) = self
            .openapi
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&url)
        {
            return Ok((url, document.clone()));
        }
        let document = Arc::new(self.get::<Value>(&url).await?);
        self.openapi
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(url.clone(), document.clone());
        Ok((url, document))
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, kube::Error> {
        let request = http::Request::get(path)
            .body(Vec::new())
            .map_err(kube::Error::HttpError)?;
        self.client.request(request).await
    }
}

fn require(
    meta: &ModuleMeta,
    kind: &Kind,
    role: &'static str,
    capabilities: &kube::discovery::ApiCapabilities,
    verb: &'static str,
) -> Result<(), DiscoveryError> {
    if capabilities.supports_operation(verb) {
        Ok(())
    } else {
        Err(DiscoveryError::Verb {
            module: meta.name.clone(),
            role,
            kind: kind.to_string(),
            verb,
        })
    }
}

/// A JSON pointer token for `text` (`/` and `~` escaped).
fn escape_pointer(text: &str) -> String {
    text.replace('~', "~0").replace('/', "~1")
}

/// The `status` schema of the kind's definition in an OpenAPI v3 document,
/// with `$ref`s followed.
fn find_status_schema(document: &Value, kind: &Kind) -> Option<Value> {
    let schemas = document.pointer("/components/schemas")?.as_object()?;
    let definition = schemas.values().find(|schema| {
        schema
            .get("x-kubernetes-group-version-kind")
            .and_then(Value::as_array)
            .is_some_and(|gvks| {
                gvks.iter().any(|gvk| {
                    gvk.get("group").and_then(Value::as_str).unwrap_or_default() == kind.group
                        && gvk.get("version").and_then(Value::as_str) == Some(&kind.version)
                        && gvk.get("kind").and_then(Value::as_str) == Some(&kind.kind)
                })
            })
    })?;
    match definition.pointer("/properties/status") {
        Some(status) => Some(dereference(document, status).clone()),
        None => Some(Value::Object(Default::default())),
    }
}

/// Follows a `$ref` (directly or as the single member of an `allOf`, as
/// the API server writes references to definitions).
fn dereference<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    let reference = schema.get("$ref").or_else(|| {
        schema
            .get("allOf")
            .and_then(Value::as_array)
            .and_then(|all| all.first())
            .and_then(|first| first.get("$ref"))
    });
    reference
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|pointer| document.pointer(pointer))
        .unwrap_or(schema)
}

fn preserves_unknown(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
}

/// What a status schema (already dereferenced) has room for; `$ref`s in
/// it are followed through `document`.
fn room_in(document: &Value, status: &Value) -> StatusRoom {
    if preserves_unknown(status) {
        return StatusRoom::ANY;
    }
    let properties = status.get("properties");
    let has = |field: &str| properties.and_then(|p| p.get(field)).is_some();
    let conditions = properties
        .and_then(|p| p.get("conditions"))
        .map(|c| dereference(document, c))
        .and_then(|c| c.get("items"))
        .map(|items| dereference(document, items));
    let condition_has = |field: &str| {
        conditions.is_some_and(|items| {
            preserves_unknown(items) || items.get("properties").and_then(|p| p.get(field)).is_some()
        })
    };
    let conditions_fit = ["type", "status", "reason", "message", "lastTransitionTime"]
        .into_iter()
        .all(condition_has);
    StatusRoom {
        subresource: true,
        observed_generation: has("observedGeneration"),
        conditions: conditions_fit,
        condition_observed_generation: conditions_fit && condition_has("observedGeneration"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn kind() -> Kind {
        Kind {
            group: "samplecontroller.k8s.io".into(),
            version: "v1alpha1".into(),
            kind: "Foo".into(),
            plural: "foos".into(),
            scope: Scope::Namespaced,
        }
    }

    fn document(status: Value) -> Value {
        json!({"components": {"schemas": {
            "io.k8s.samplecontroller.v1alpha1.Foo": {
                "x-kubernetes-group-version-kind": [{"group": "samplecontroller.k8s.io", "version": "v1alpha1", "kind": "Foo"}],
                "properties": {"spec": {"type": "object"}, "status": status}
            },
            "io.k8s.Condition": {"properties": {
                "type": {}, "status": {}, "reason": {}, "message": {}, "lastTransitionTime": {}, "observedGeneration": {}
            }}
        }}})
    }

    #[test]
    fn a_status_without_the_hosts_fields_has_no_room_for_them() {
        let doc = document(
            json!({"type": "object", "properties": {"availableReplicas": {"type": "integer"}}}),
        );
        let status = find_status_schema(&doc, &kind()).unwrap();
        assert_eq!(room_in(&doc, &status), StatusRoom::BARE);
    }

    #[test]
    fn a_status_with_conditions_and_observed_generation_has_room() {
        let doc = document(json!({"type": "object", "properties": {
            "observedGeneration": {"type": "integer"},
            "conditions": {"type": "array", "items": {"type": "object", "properties": {
                "type": {}, "status": {}, "reason": {}, "message": {}, "lastTransitionTime": {}
            }}}
        }}));
        let room = room_in(&doc, &find_status_schema(&doc, &kind()).unwrap());
        assert!(room.observed_generation && room.conditions);
        assert!(!room.condition_observed_generation);
    }

    #[test]
    fn conditions_of_another_shape_are_not_the_hosts_to_write() {
        let doc = document(json!({"type": "object", "properties": {
            "conditions": {"type": "array", "items": {"type": "string"}}
        }}));
        assert!(!room_in(&doc, &find_status_schema(&doc, &kind()).unwrap()).conditions);
    }

    #[test]
    fn a_status_preserving_unknown_fields_has_room_for_anything() {
        let doc = document(json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
        assert_eq!(
            room_in(&doc, &find_status_schema(&doc, &kind()).unwrap()),
            StatusRoom::ANY
        );
    }

    #[test]
    fn references_to_definitions_are_followed() {
        let mut doc =
            document(json!({"allOf": [{"$ref": "#/components/schemas/io.k8s.FooStatus"}]}));
        doc["components"]["schemas"]["io.k8s.FooStatus"] =
            json!({"properties": {"observedGeneration": {}}});
        let room = room_in(&doc, &find_status_schema(&doc, &kind()).unwrap());
        assert!(room.observed_generation);
        assert!(!room.conditions);
    }

    #[test]
    fn a_definition_without_a_status_has_room_for_nothing() {
        let mut doc = document(json!({}));
        doc["components"]["schemas"]["io.k8s.samplecontroller.v1alpha1.Foo"]["properties"]
            .as_object_mut()
            .unwrap()
            .remove("status");
        let status = find_status_schema(&doc, &kind()).expect("the definition is there");
        assert_eq!(room_in(&doc, &status), StatusRoom::BARE);
    }

    #[test]
    fn another_kind_or_version_is_not_found() {
        let doc = document(json!({"type": "object"}));
        let mut other = kind();
        other.version = "v1".into();
        assert!(find_status_schema(&doc, &other).is_none());
    }
}
