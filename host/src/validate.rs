//! Checks everything a guest returned before anything is written.
//!
//! The rules are DESIGN.md's safety rules: a guest may write only kinds it
//! declared, only in its primary's namespace (for a namespaced primary),
//! with well-formed objects, and never an ownerReference or a finalizer of
//! its own making. Any violation fails the whole reconcile: nothing is
//! written.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::engine::bindings as wit;
use crate::meta::{Kind, ModuleMeta, Scope, is_dns_subdomain, truncate_at_char_boundary};

/// The most a single event note may hold, as the Events API allows.
pub const MAX_EVENT_NOTE_BYTES: usize = 1024;

/// The reconciled object, as far as validation and planning need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Primary {
    /// `apiVersion` of the object.
    pub api_version: String,
    /// `kind` of the object.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, for namespaced kinds.
    pub namespace: Option<String>,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.generation`, when the kind has one.
    pub generation: Option<i64>,
}

impl Primary {
    /// Reads the identifying fields of `object`.
    pub fn from_object(object: &Value) -> Result<Self, ValidationError> {
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let required = |pointer: &'static str| {
            text(pointer)
                .filter(|s| !s.is_empty())
                .ok_or(ValidationError::PrimaryField { field: pointer })
        };
        Ok(Primary {
            api_version: required("/apiVersion")?,
            kind: required("/kind")?,
            name: required("/metadata/name")?,
            namespace: text("/metadata/namespace").filter(|s| !s.is_empty()),
            uid: text("/metadata/uid").unwrap_or_default(),
            generation: object
                .pointer("/metadata/generation")
                .and_then(Value::as_i64),
        })
    }
}

/// A guest output that breaks a rule. Nothing of the reconcile is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The primary object lacks a field every object has.
    #[error("the object has no {field}")]
    PrimaryField {
        /// The JSON pointer of the missing field.
        field: &'static str,
    },
    /// A child is not a JSON object.
    #[error("desired child #{index} is not a JSON object: {reason}")]
    ChildNotJson {
        /// Its position in the response.
        index: usize,
        /// The parser's complaint.
        reason: String,
    },
    /// A child lacks apiVersion, kind or metadata.name.
    #[error("desired child #{index} has no {field}")]
    ChildField {
        /// Its position in the response.
        index: usize,
        /// The missing field.
        field: &'static str,
    },
    /// A child's name is not a valid Kubernetes name.
    #[error(
        "desired {kind} {name:?} has an invalid name: names are lower-case RFC 1123 subdomains"
    )]
    ChildName {
        /// Its kind.
        kind: String,
        /// The name.
        name: String,
    },
    /// A child of a kind the module did not declare in `owns`.
    #[error(
        "desired {kind}.{api_version} {name:?} is not a kind the module declared it owns; declare it with Metadata::owns"
    )]
    UndeclaredKind {
        /// Its apiVersion.
        api_version: String,
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
    },
    /// A child outside the namespace it must live in.
    #[error("desired {kind} {name:?} is in namespace {namespace:?}, but {rule}")]
    WrongNamespace {
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
        /// The namespace it asked for.
        namespace: String,
        /// The rule it broke.
        rule: String,
    },
    /// A child carries an ownerReference the host did not make.
    #[error(
        "desired {kind} {name:?} carries an ownerReference to {owner:?} (uid {uid:?}); only the host sets ownerReferences, to the reconciled object"
    )]
    ForgedOwner {
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
        /// The owner it named.
        owner: String,
        /// The uid it named.
        uid: String,
    },
    /// A child carries finalizers. A finalizer on a child would let a
    /// module block the deletion of its children (and of their namespace)
    /// with nothing to remove it.
    #[error(
        "desired {kind} {name:?} carries finalizers {finalizers:?}; children may not carry finalizers (the host removes only its own, from primaries)"
    )]
    ChildFinalizers {
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
        /// The finalizers it carries.
        finalizers: Vec<String>,
    },
    /// The same child twice.
    #[error("desired {kind} {name:?} appears more than once")]
    Duplicate {
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
    },
    /// The status is not a JSON object.
    #[error("desired status is not a JSON object: {reason}")]
    Status {
        /// What is wrong with it.
        reason: String,
    },
    /// An event without a reason.
    #[error("event #{index} has an empty reason")]
    EventReason {
        /// Its position in the response.
        index: usize,
    },
}

/// A child that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Child {
    /// Its declared kind.
    pub kind: Kind,
    /// Its namespace, resolved: the primary's for a namespaced primary.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// The object as the guest returned it.
    pub object: Map<String, Value>,
}

/// A response that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidResponse {
    /// The desired children.
    pub children: Vec<Child>,
    /// The desired status.
    pub status: Option<Map<String, Value>>,
    /// When to reconcile again.
    pub requeue_after: Option<Duration>,
    /// Events to record (notes cut to [`MAX_EVENT_NOTE_BYTES`]).
    pub events: Vec<wit::Event>,
}

/// Checks a guest's response against the module's declaration and the
/// primary object.
///
/// `namespaces` are the namespaces the module was granted (empty: every
/// one); a child elsewhere is refused even where the primary's scope
/// would allow it.
pub fn validate(
    meta: &ModuleMeta,
    primary: &Primary,
    namespaces: &[String],
    response: wit::Response,
) -> Result<ValidResponse, ValidationError> {
    let mut seen = HashSet::new();
    let children = response
        .children
        .iter()
        .enumerate()
        .map(|(index, json)| {
            let child = validate_child(meta, primary, namespaces, index, json)?;
            if !seen.insert((
                child.kind.clone(),
                child.namespace.clone(),
                child.name.clone(),
            )) {
                return Err(ValidationError::Duplicate {
                    kind: child.kind.kind.clone(),
                    name: child.name.clone(),
                });
            }
            Ok(child)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let status = response
        .status
        .map(|json| match serde_json::from_str(&json) {
            Ok(Value::Object(status)) => Ok(status),
            Ok(other) => Err(ValidationError::Status {
                reason: format!("got {}", json_type(&other)),
            }),
            Err(e) => Err(ValidationError::Status {
                reason: e.to_string(),
            }),
        })
        .transpose()?;
    let events = validate_events(response.events)?;
    Ok(ValidResponse {
        children,
        status,
        requeue_after: response.requeue_after_ms.map(Duration::from_millis),
        events,
    })
}

/// Checks the events of a reconcile or finalize response.
pub fn validate_events(events: Vec<wit::Event>) -> Result<Vec<wit::Event>, ValidationError> {
    events
        .into_iter()
        .enumerate()
        .map(|(index, mut event)| {
            if event.reason.trim().is_empty() {
                return Err(ValidationError::EventReason { index });
            }
            let kept = truncate_at_char_boundary(&event.note, MAX_EVENT_NOTE_BYTES).len();
            event.note.truncate(kept);
            Ok(event)
        })
        .collect()
}

fn validate_child(
    meta: &ModuleMeta,
    primary: &Primary,
    namespaces: &[String],
    index: usize,
    json: &str,
) -> Result<Child, ValidationError> {
    let object = match serde_json::from_str(json) {
        Ok(Value::Object(object)) => object,
        Ok(other) => {
            return Err(ValidationError::ChildNotJson {
                index,
                reason: format!("got {}", json_type(&other)),
            });
        }
        Err(e) => {
            return Err(ValidationError::ChildNotJson {
                index,
                reason: e.to_string(),
            });
        }
    };
    let field = |name: &'static str, value: Option<&Value>| {
        value
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or(ValidationError::ChildField { index, field: name })
    };
    let api_version = field("apiVersion", object.get("apiVersion"))?;
    let kind_name = field("kind", object.get("kind"))?;
    let metadata = object.get("metadata");
    let name = field("metadata.name", metadata.and_then(|m| m.get("name")))?;
    if !is_dns_subdomain(&name) {
        return Err(ValidationError::ChildName {
            kind: kind_name,
            name,
        });
    }
    let kind = meta
        .owned(&api_version, &kind_name)
        .ok_or_else(|| ValidationError::UndeclaredKind {
            api_version: api_version.clone(),
            kind: kind_name.clone(),
            name: name.clone(),
        })?
        .clone();

    let asked = metadata
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .filter(|ns| !ns.is_empty());
    let wrong = |namespace: &str, rule: String| ValidationError::WrongNamespace {
        kind: kind_name.clone(),
        name: name.clone(),
        namespace: namespace.to_owned(),
        rule,
    };
    let namespace = match (kind.scope, meta.primary.scope) {
        (Scope::Cluster, _) => match asked {
            Some(ns) => return Err(wrong(ns, format!("{kind_name} is cluster-scoped"))),
            None => None,
        },
        (Scope::Namespaced, Scope::Namespaced) => {
            let own = primary.namespace.clone().unwrap_or_default();
            match asked {
                Some(ns) if ns != own => {
                    return Err(wrong(
                        ns,
                        format!(
                            "children of a namespaced object must live in its namespace {own:?}"
                        ),
                    ));
                }
                _ => Some(own),
            }
        }
        (Scope::Namespaced, Scope::Cluster) => {
            match asked {
                Some(ns) => Some(ns.to_owned()),
                None => {
                    return Err(wrong("", "the primary is cluster-scoped, so a namespaced child must name its namespace".into()));
                }
            }
        }
    };

    if let Some(namespace) = &namespace
        && !namespaces.is_empty()
        && !namespaces.contains(namespace)
    {
        return Err(wrong(
            namespace,
            format!("the module was granted only the namespaces {namespaces:?}"),
        ));
    }

    let finalizers: Vec<String> = metadata
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|f| f.as_str().map_or_else(|| f.to_string(), str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !finalizers.is_empty() {
        return Err(ValidationError::ChildFinalizers {
            kind: kind_name,
            name,
            finalizers,
        });
    }

    let owners = metadata
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for owner in owners {
        let uid = owner.get("uid").and_then(Value::as_str).unwrap_or_default();
        if primary.uid.is_empty() || uid != primary.uid {
            return Err(ValidationError::ForgedOwner {
                kind: kind_name,
                name,
                owner: owner
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                uid: uid.to_owned(),
            });
        }
    }

    Ok(Child {
        kind,
        namespace,
        name,
        object,
    })
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::meta::Kind;

    fn kind(group: &str, version: &str, kind: &str, scope: Scope) -> Kind {
        Kind {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: format!("{}s", kind.to_lowercase()),
            scope,
        }
    }

    fn meta() -> ModuleMeta {
        ModuleMeta {
            name: "webapp".into(),
            version: "0.1.0".into(),
            primary: kind(
                "examples.bosun.dev",
                "v1alpha1",
                "WebApp",
                Scope::Namespaced,
            ),
            owns: vec![
                kind("apps", "v1", "Deployment", Scope::Namespaced),
                kind("", "v1", "Service", Scope::Namespaced),
            ],
            reads: vec![],
            finalizer: None,
            http_origins: vec![],
        }
    }

    fn primary() -> Primary {
        Primary::from_object(&json!({
            "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
            "metadata": {"name": "shop", "namespace": "team-a", "uid": "u-1", "generation": 3}
        }))
        .unwrap()
    }

    fn response(children: Vec<Value>) -> wit::Response {
        wit::Response {
            children: children.iter().map(Value::to_string).collect(),
            status: None,
            requeue_after_ms: None,
            events: vec![],
        }
    }

    fn check(children: Vec<Value>) -> Result<ValidResponse, ValidationError> {
        validate(&meta(), &primary(), &[], response(children))
    }

    #[test]
    fn accepts_declared_children_and_resolves_their_namespace() {
        let valid = check(vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shop"}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop", "namespace": "team-a"}}),
        ])
        .unwrap();
        assert_eq!(valid.children.len(), 2);
        assert!(
            valid
                .children
                .iter()
                .all(|c| c.namespace.as_deref() == Some("team-a"))
        );
    }

    #[test]
    fn rejects_an_undeclared_kind() {
        let err = check(vec![
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}),
        ])
        .unwrap_err();
        assert!(
            matches!(err, ValidationError::UndeclaredKind { ref kind, .. } if kind == "Secret"),
            "{err}"
        );
    }

    #[test]
    fn rejects_the_right_kind_name_under_another_group() {
        let err = check(vec![json!({"apiVersion": "extensions/v1beta1", "kind": "Deployment", "metadata": {"name": "x"}})]).unwrap_err();
        assert!(
            matches!(err, ValidationError::UndeclaredKind { .. }),
            "{err}"
        );
    }

    #[test]
    fn rejects_another_namespace() {
        let err = check(vec![json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "kube-system"}})]).unwrap_err();
        assert!(
            matches!(err, ValidationError::WrongNamespace { ref namespace, .. } if namespace == "kube-system"),
            "{err}"
        );
    }

    #[test]
    fn rejects_missing_identity_fields() {
        for (child, field) in [
            (
                json!({"kind": "Service", "metadata": {"name": "x"}}),
                "apiVersion",
            ),
            (
                json!({"apiVersion": "v1", "metadata": {"name": "x"}}),
                "kind",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {}}),
                "metadata.name",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Service"}),
                "metadata.name",
            ),
        ] {
            assert_eq!(
                check(vec![child]).unwrap_err(),
                ValidationError::ChildField { index: 0, field }
            );
        }
    }

    #[test]
    fn rejects_invalid_json_and_non_objects() {
        let mut bad = response(vec![]);
        bad.children.push("{not json".into());
        assert!(matches!(
            validate(&meta(), &primary(), &[], bad).unwrap_err(),
            ValidationError::ChildNotJson { .. }
        ));
        assert!(matches!(
            check(vec![json!([1, 2])]).unwrap_err(),
            ValidationError::ChildNotJson { .. }
        ));
    }

    #[test]
    fn rejects_an_invalid_name() {
        let err = check(vec![
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "Not_Valid"}}),
        ])
        .unwrap_err();
        assert!(matches!(err, ValidationError::ChildName { .. }), "{err}");
    }

    #[test]
    fn rejects_forged_owner_references_but_allows_the_primary() {
        let forged = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Namespace", "name": "team-a", "uid": "u-2", "controller": true}]}});
        assert!(matches!(
            check(vec![forged]).unwrap_err(),
            ValidationError::ForgedOwner { .. }
        ));
        let honest = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x",
            "ownerReferences": [{"apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp", "name": "shop", "uid": "u-1"}]}});
        assert!(check(vec![honest]).is_ok());
    }

    #[test]
    fn rejects_children_with_finalizers() {
        let err = check(vec![
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {
            "name": "x", "finalizers": ["example.com/never-let-go"]}}),
        ])
        .unwrap_err();
        assert!(
            matches!(err, ValidationError::ChildFinalizers { ref finalizers, .. } if finalizers == &["example.com/never-let-go"]),
            "{err}"
        );
    }

    #[test]
    fn a_cluster_scoped_primary_writes_only_in_the_granted_namespaces() {
        let mut cluster = meta();
        cluster.primary.scope = Scope::Cluster;
        let primary = Primary::from_object(&json!({
            "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
            "metadata": {"name": "shop", "uid": "u-1"}
        }))
        .unwrap();
        let child = |ns: &str| {
            response(vec![
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": ns}}),
            ])
        };
        let granted = ["shop".to_owned()];
        assert!(validate(&cluster, &primary, &granted, child("shop")).is_ok());
        let err = validate(&cluster, &primary, &granted, child("kube-system")).unwrap_err();
        assert!(
            matches!(err, ValidationError::WrongNamespace { ref namespace, .. } if namespace == "kube-system"),
            "{err}"
        );
    }

    #[test]
    fn rejects_duplicates() {
        let child = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}});
        assert!(matches!(
            check(vec![child.clone(), child]).unwrap_err(),
            ValidationError::Duplicate { .. }
        ));
    }

    #[test]
    fn rejects_a_status_that_is_not_an_object() {
        let mut bad = response(vec![]);
        bad.status = Some("\"ready\"".into());
        assert!(matches!(
            validate(&meta(), &primary(), &[], bad).unwrap_err(),
            ValidationError::Status { .. }
        ));
    }

    #[test]
    fn cuts_long_event_notes_and_rejects_empty_reasons() {
        let event = |reason: &str, note: String| wit::Event {
            event_type: wit::EventType::Normal,
            reason: reason.into(),
            note,
            action: "Reconcile".into(),
        };
        let events = validate_events(vec![event("Big", "é".repeat(1000))]).unwrap();
        assert!(events[0].note.len() <= MAX_EVENT_NOTE_BYTES);
        assert_eq!(
            validate_events(vec![event(" ", String::new())]).unwrap_err(),
            ValidationError::EventReason { index: 0 }
        );
    }
}
