//! The serde visitors that read one object within its bounds: depth
//! checked before each object or array is entered, bytes counted as
//! strings and values are built, and once a bound is passed everything
//! but the metadata's identity read past with serde_json's iterative
//! `ignore_value` (`IgnoredAny`), which neither recurses nor counts
//! against serde_json's own recursion limit.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::{DecodeLimits, Undecodable};

/// The identity fields, read even past a bound, and the longest value
/// kept of each: names are at most 253 bytes, uids 36, resourceVersions a
/// number.
const IDENTITY: [&str; 4] = ["name", "namespace", "uid", "resourceVersion"];
const MAX_IDENTITY_BYTES: usize = 1024;

/// Reads one object from `deserializer`: what was read, and the first
/// bound it passed. Fails only when the input is not JSON.
pub(super) fn read<'de, D: Deserializer<'de>>(
    deserializer: D,
    limits: DecodeLimits,
) -> Result<(Top, Option<Undecodable>), D::Error> {
    let state = State {
        limits,
        bytes: Cell::new(0),
        problem: Cell::new(None),
    };
    let top = deserializer.deserialize_any(TopVisitor { state: &state })?;
    Ok((top, state.problem()))
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
pub(super) enum Top {
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
