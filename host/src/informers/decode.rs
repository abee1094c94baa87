//! Decoding one object of a list page or a watch event, within bounds.
//!
//! kube-client decodes a whole list page (and each watch event) with
//! serde_json straight into the item type, under serde_json's recursion
//! limit of 128 nested levels. One object nested deeper — the API server
//! accepts about 10,000 levels in a field that preserves unknown fields —
//! fails the page, and with it every list of its kind, for ever: the watch
//! never syncs and nothing of that kind is reconciled. The fix belongs in
//! kube-client (per-item decoding of list pages and watch events); until it
//! is there, the informers ask kube for [`Decoded`] items, whose
//! `Deserialize` never fails because of the content of one object. An
//! object beyond the bounds, or not an object at all, becomes
//! [`Decoded::Skipped`] carrying what could be read of its identity, and
//! the page goes on.
//!
//! The bounds ([`DecodeLimits::DEFAULT`]):
//! - **depth**: at most [`MAX_DEPTH`] (100) nested objects and arrays, the
//!   object itself being the first. Kubernetes' own kinds nest about 15
//!   levels (a Deployment's pod template); serde_json, with which every
//!   Rust guest decodes what it is handed, stops at 127, and the margin
//!   leaves room for a guest that wraps what it read. Decoding recurses
//!   once per level (serde's data model), so the bound is also what keeps
//!   the stack small; past it the rest of the object is skipped by
//!   serde_json's iterative `ignore_value`, which neither recurses nor
//!   counts against its limit.
//! - **size**: at most [`MAX_OBJECT_BYTES`] (8 MiB), counted while
//!   decoding — every string and key byte for byte, 8 bytes for any other
//!   value — so an object is never built past the bound. The API server
//!   takes requests of at most 3 MiB and etcd stores 1.5 MiB by default, so
//!   only a cluster configured for larger objects has one; a guest with the
//!   default 64 MiB memory still takes an object of this size.
//!
//! `managedFields` are compacted while decoding (manager, operation,
//! apiVersion and subresource kept; `fieldsV1`, `fieldsType` and `time`
//! skipped unread): the pruning rule needs no more, and `fieldsV1` mirrors
//! the object's whole structure, so it would double both the memory an
//! object costs and the depth it reaches.

mod bounded;

use kube::api::{ApiResource, DynamicObject, ObjectMeta, Resource, TypeMeta};
use kube::core::DynamicResourceScope;
use serde::Deserialize;
use serde::de::Deserializer;
use serde_json::{Map, Value};

use self::bounded::Top;

/// Objects nested deeper than this many levels (objects and arrays, the
/// object itself the first) are skipped.
pub const MAX_DEPTH: usize = 100;

/// Objects larger than this, as [`DecodeLimits`] counts them, are skipped.
pub const MAX_OBJECT_BYTES: usize = 8 << 20;

/// What one object may cost to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Nested objects and arrays, the object itself counting one.
    pub max_depth: usize,
    /// Bytes: strings and keys byte for byte, 8 for any other value.
    pub max_bytes: usize,
}

impl DecodeLimits {
    /// The bounds the informers decode with (see the module docs).
    pub const DEFAULT: DecodeLimits = DecodeLimits {
        max_depth: MAX_DEPTH,
        max_bytes: MAX_OBJECT_BYTES,
    };
}

/// Why an object was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Undecodable {
    /// Nested deeper than the bound.
    #[error("it is nested deeper than {limit} levels")]
    TooDeep {
        /// The bound.
        limit: usize,
    },
    /// Larger than the bound.
    #[error("it is larger than {limit} bytes")]
    TooLarge {
        /// The bound.
        limit: usize,
    },
    /// Not a JSON object, or metadata the host cannot read.
    #[error("it is not a valid Kubernetes object: {reason}")]
    Malformed {
        /// What is wrong, as the decoder said it (at most 256 bytes).
        reason: String,
    },
}

impl Undecodable {
    /// A short name for metrics: `too_deep`, `too_large` or `malformed`.
    pub fn label(&self) -> &'static str {
        match self {
            Undecodable::TooDeep { .. } => "too_deep",
            Undecodable::TooLarge { .. } => "too_large",
            Undecodable::Malformed { .. } => "malformed",
        }
    }
}

/// An object the informer did not cache: what could be read of its
/// identity (name, namespace, uid, resourceVersion), and why.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedObject {
    /// Only the identity fields are set; any of them may be missing.
    pub metadata: ObjectMeta,
    /// Why it was skipped.
    pub reason: Undecodable,
}

impl SkippedObject {
    /// `namespace/name`, `name`, or `(unnamed)` when not even that could
    /// be read.
    pub fn describe(&self) -> String {
        match (&self.metadata.namespace, &self.metadata.name) {
            (Some(namespace), Some(name)) => format!("{namespace}/{name}"),
            (None, Some(name)) => name.clone(),
            _ => "(unnamed)".to_owned(),
        }
    }
}

/// One item of a list page or watch event: the object, or why it was
/// skipped. What the informers ask kube-client to decode.
#[derive(Debug, Clone)]
pub enum Decoded {
    /// An object within bounds.
    Object(DynamicObject),
    /// An object the host does not cache.
    Skipped(SkippedObject),
}

impl Decoded {
    /// Decodes one object from `deserializer` within `limits`. Fails only
    /// when the input is not JSON at all (the whole page or event is then
    /// unusable, as it would be for kube-client); anything wrong with the
    /// object itself is [`Decoded::Skipped`].
    pub fn decode<'de, D: Deserializer<'de>>(
        deserializer: D,
        limits: DecodeLimits,
    ) -> Result<Decoded, D::Error> {
        let (read, problem) = bounded::read(deserializer, limits)?;
        Ok(match (read, problem) {
            (Top::NotAnObject(what), None) => Decoded::Skipped(SkippedObject {
                metadata: ObjectMeta::default(),
                reason: Undecodable::Malformed {
                    reason: format!("{what}, not a JSON object"),
                },
            }),
            (Top::NotAnObject(_), Some(reason)) => Decoded::Skipped(SkippedObject {
                metadata: ObjectMeta::default(),
                reason,
            }),
            (Top::Object { metadata, .. }, Some(reason)) => Decoded::Skipped(SkippedObject {
                metadata: identity(metadata.as_ref()),
                reason,
            }),
            (Top::Object { metadata, rest }, None) => build(metadata, rest),
        })
    }
}

impl<'de> Deserialize<'de> for Decoded {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Decoded::decode(deserializer, DecodeLimits::DEFAULT)
    }
}

impl Resource for Decoded {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(resource: &ApiResource) -> std::borrow::Cow<'_, str> {
        DynamicObject::kind(resource)
    }
    fn group(resource: &ApiResource) -> std::borrow::Cow<'_, str> {
        DynamicObject::group(resource)
    }
    fn version(resource: &ApiResource) -> std::borrow::Cow<'_, str> {
        DynamicObject::version(resource)
    }
    fn api_version(resource: &ApiResource) -> std::borrow::Cow<'_, str> {
        DynamicObject::api_version(resource)
    }
    fn plural(resource: &ApiResource) -> std::borrow::Cow<'_, str> {
        DynamicObject::plural(resource)
    }
    fn meta(&self) -> &ObjectMeta {
        match self {
            Decoded::Object(object) => &object.metadata,
            Decoded::Skipped(skipped) => &skipped.metadata,
        }
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Decoded::Object(object) => &mut object.metadata,
            Decoded::Skipped(skipped) => &mut skipped.metadata,
        }
    }
}

/// An object's JSON, whole, as decoding found it.
fn build(metadata: Option<Value>, mut rest: Map<String, Value>) -> Decoded {
    let metadata = match metadata {
        None => ObjectMeta::default(),
        Some(value) => {
            let identity = identity(Some(&value));
            match ObjectMeta::deserialize(value) {
                Ok(metadata) => metadata,
                Err(error) => {
                    return Decoded::Skipped(SkippedObject {
                        metadata: identity,
                        reason: malformed(&format!("metadata: {error}")),
                    });
                }
            }
        }
    };
    // As kube's `DynamicObject`: both type fields, or neither, taken out
    // of the data.
    let types = match (rest.get("apiVersion"), rest.get("kind")) {
        (Some(Value::String(_)), Some(Value::String(_))) => {
            let text = |value: Option<Value>| match value {
                Some(Value::String(text)) => text,
                _ => String::new(),
            };
            Some(TypeMeta {
                api_version: text(rest.remove("apiVersion")),
                kind: text(rest.remove("kind")),
            })
        }
        _ => None,
    };
    Decoded::Object(DynamicObject {
        types,
        metadata,
        data: Value::Object(rest),
    })
}

fn malformed(reason: &str) -> Undecodable {
    Undecodable::Malformed {
        reason: crate::meta::truncate_at_char_boundary(reason, 256).to_owned(),
    }
}

/// The identity fields of a (possibly partly read) metadata object.
fn identity(metadata: Option<&Value>) -> ObjectMeta {
    let text = |key: &str| {
        metadata?
            .get(key)?
            .as_str()
            .filter(|text| !text.is_empty())
            .map(str::to_owned)
    };
    ObjectMeta {
        name: text("name"),
        namespace: text("namespace"),
        uid: text("uid"),
        resource_version: text("resourceVersion"),
        ..ObjectMeta::default()
    }
}

#[cfg(test)]
mod tests;
