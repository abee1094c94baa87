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

use std::cell::Cell;
use std::fmt;

use kube::api::{ApiResource, DynamicObject, ObjectMeta, Resource, TypeMeta};
use kube::core::DynamicResourceScope;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

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
        let state = State {
            limits,
            bytes: Cell::new(0),
            problem: Cell::new(None),
        };
        let read = deserializer.deserialize_any(TopVisitor { state: &state })?;
        let problem = state.problem();
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

/// The identity fields, and the longest value kept of each: names are at
/// most 253 bytes, uids 36, resourceVersions a number.
const IDENTITY: [&str; 4] = ["name", "namespace", "uid", "resourceVersion"];
const MAX_IDENTITY_BYTES: usize = 1024;

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

/// What one object's decoding has spent, and the first bound it passed.
/// Cells, not a `RefCell`: they are read for every value decoded.
struct State {
    limits: DecodeLimits,
    bytes: Cell<usize>,
    problem: Cell<Option<Passed>>,
}

/// The bound an object passed.
#[derive(Clone, Copy)]
enum Passed {
    Depth,
    Size,
}

impl State {
    fn healthy(&self) -> bool {
        self.problem.get().is_none()
    }

    /// Counts `bytes`; false (and the object is too large) past the bound.
    fn charge(&self, bytes: usize) -> bool {
        if !self.healthy() {
            return false;
        }
        let spent = self.bytes.get().saturating_add(bytes);
        self.bytes.set(spent);
        if spent > self.limits.max_bytes {
            self.problem.set(Some(Passed::Size));
            return false;
        }
        true
    }

    fn too_deep(&self) {
        if self.healthy() {
            self.problem.set(Some(Passed::Depth));
        }
    }

    fn problem(&self) -> Option<Undecodable> {
        self.problem.get().map(|passed| match passed {
            Passed::Depth => Undecodable::TooDeep {
                limit: self.limits.max_depth,
            },
            Passed::Size => Undecodable::TooLarge {
                limit: self.limits.max_bytes,
            },
        })
    }
}

/// What any value other than a string costs.
const SCALAR_BYTES: usize = 8;

/// The top level of one object: its metadata apart, the rest as a map.
enum Top {
    Object {
        metadata: Option<Value>,
        rest: Map<String, Value>,
    },
    /// What it was instead.
    NotAnObject(&'static str),
}

struct TopVisitor<'a> {
    state: &'a State,
}

impl<'de> Visitor<'de> for TopVisitor<'_> {
    type Value = Top;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let mut metadata = None;
        let mut rest = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed { state: self.state })? {
            match key {
                // The identity is wanted even when something before it
                // already passed a bound.
                Some(key) if key == "metadata" => {
                    metadata = Some(map.next_value_seed(Node {
                        state: self.state,
                        depth: 2,
                        shape: Shape::Metadata,
                    })?);
                }
                Some(key) => {
                    let value = map.next_value_seed(Node {
                        state: self.state,
                        depth: 2,
                        shape: Shape::Any,
                    })?;
                    if self.state.healthy() {
                        rest.insert(key, value);
                    }
                }
                // Past the size bound: read past, never built.
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Top::Object { metadata, rest })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Top::NotAnObject("an array"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Top, E> {
        Ok(Top::NotAnObject("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Top, E> {
        Ok(Top::NotAnObject("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Top, E> {
        Ok(Top::NotAnObject("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Top, E> {
        Ok(Top::NotAnObject("a number"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Top, E> {
        Ok(Top::NotAnObject("a string"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Top, E> {
        Ok(Top::NotAnObject("null"))
    }
}

/// A map key, kept only while the object is within its size bound.
struct KeySeed<'a> {
    state: &'a State,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        if self.state.charge(key.len()) {
            return Ok(Some(key.to_owned()));
        }
        // A key the metadata's identity needs is read past a bound too:
        // it is short, and only the top level of `metadata` is looked at.
        let wanted = key == "metadata" || IDENTITY.contains(&key);
        Ok(wanted.then(|| key.to_owned()))
    }
}

/// Where in an object a value sits, as far as decoding cares.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Any,
    /// The top-level `metadata`.
    Metadata,
    /// `metadata.managedFields`.
    ManagedFields,
    /// One entry of it.
    ManagedEntry,
}

/// One value at `depth` (what it would be, were it an object or array).
struct Node<'a> {
    state: &'a State,
    depth: usize,
    shape: Shape,
}

impl Node<'_> {
    fn child(&self, shape: Shape) -> Node<'_> {
        Node {
            state: self.state,
            depth: self.depth + 1,
            shape,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        // Past a bound only the metadata's identity is still read.
        if !self.state.healthy() && self.shape != Shape::Metadata {
            deserializer.deserialize_ignored_any(IgnoredAny)?;
            return Ok(Value::Null);
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        Ok(self.scalar(Value::Bool(value)))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        Ok(self.scalar(Value::Number(value.into())))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        Ok(self.scalar(Value::Number(value.into())))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        // As serde_json's own `Value`: a float JSON cannot hold is null.
        Ok(self.scalar(Number::from_f64(value).map_or(Value::Null, Value::Number)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        Ok(if self.state.charge(value.len()) {
            Value::String(value.to_owned())
        } else {
            Value::Null
        })
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        Ok(if self.state.charge(value.len()) {
            Value::String(value)
        } else {
            Value::Null
        })
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(self.scalar(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(self.scalar(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if !self.enter() {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(Value::Null);
        }
        let shape = match self.shape {
            Shape::ManagedFields => Shape::ManagedEntry,
            _ => Shape::Any,
        };
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.child(shape))? {
            if self.state.healthy() {
                items.push(item);
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        if !self.enter() {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Value::Null);
        }
        let mut entries = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed { state: self.state })? {
            let Some(key) = key else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let shape = match (self.shape, key.as_str()) {
                // Dropped by the compaction: read past, never built.
                (Shape::ManagedEntry, "fieldsV1" | "fieldsType" | "time") => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                (Shape::Metadata, "managedFields") => Shape::ManagedFields,
                _ => Shape::Any,
            };
            if self.shape == Shape::Metadata && !self.state.healthy() {
                // Past a bound: the identity only, from short strings.
                let value = map.next_value_seed(IdentitySeed)?;
                if let Some(value) = value {
                    entries.insert(key, Value::String(value));
                }
                continue;
            }
            let value = map.next_value_seed(self.child(shape))?;
            if self.state.healthy() {
                entries.insert(key, value);
            }
        }
        Ok(Value::Object(entries))
    }
}

impl Node<'_> {
    fn scalar(&self, value: Value) -> Value {
        if self.state.charge(SCALAR_BYTES) {
            value
        } else {
            Value::Null
        }
    }

    /// Whether an object or array at this depth may be read: within the
    /// depth bound, and while nothing else passed a bound (the metadata
    /// excepted, whose identity is still wanted).
    fn enter(&self) -> bool {
        let state = self.state;
        if self.depth > state.limits.max_depth {
            state.too_deep();
            return false;
        }
        if self.shape == Shape::Metadata {
            return true;
        }
        state.healthy() && state.charge(SCALAR_BYTES)
    }
}

/// A short string, or nothing (anything else is read past).
struct IdentitySeed;

impl<'de> DeserializeSeed<'de> for IdentitySeed {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IdentitySeed {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an identity field")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok((value.len() <= MAX_IDENTITY_BYTES).then(|| value.to_owned()))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
