//! The JSON guests and the planner see of cached objects.

use kube::api::DynamicObject;
use serde_json::Value;

/// The JSON a guest or the planner sees of a cached object. `managedFields`
/// are removed for guests (`for_guest`), kept (compacted) for the host.
pub fn to_json(object: &DynamicObject, for_guest: bool) -> Value {
    let value = serde_json::to_value(object).unwrap_or(Value::Null);
    if for_guest {
        without_managed_fields(value)
    } else {
        value
    }
}

/// The request JSON a guest is handed of an object whose host view
/// ([`to_json`] without `for_guest`) the caller holds: the same, without
/// `metadata.managedFields`, written in one pass. Going through a second
/// `Value` cost a deep copy of the object per reconcile: for a 117 KB
/// object 366 µs against 95 µs for this (release build, 2 cores).
pub fn guest_json(host_view: &Value) -> String {
    use serde::ser::{Serialize, SerializeMap, Serializer};

    /// A JSON object written without the key `skip`, and the object under
    /// `metadata` (when `nested_metadata`) without its `managedFields`.
    struct Without<'a> {
        value: &'a Value,
        skip: Option<&'static str>,
        nested_metadata: bool,
    }

    impl Serialize for Without<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let Value::Object(map) = self.value else {
                return self.value.serialize(serializer);
            };
            let mut out = serializer.serialize_map(None)?;
            for (key, value) in map {
                if Some(key.as_str()) == self.skip {
                    continue;
                }
                if self.nested_metadata && key == "metadata" {
                    let metadata = Without {
                        value,
                        skip: Some("managedFields"),
                        nested_metadata: false,
                    };
                    out.serialize_entry(key, &metadata)?;
                } else {
                    out.serialize_entry(key, value)?;
                }
            }
            out.end()
        }
    }

    let guest = Without {
        value: host_view,
        skip: None,
        nested_metadata: true,
    };
    serde_json::to_string(&guest).unwrap_or_else(|_| "null".to_owned())
}

/// The JSON a guest is handed of a cached object, written straight from
/// it: without `metadata.managedFields`, and without the deep copy into a
/// `Value` that [`to_json`] makes.
pub fn guest_string(object: &DynamicObject) -> String {
    use serde::ser::{Serialize, SerializeMap, Serializer};

    struct Guest<'a>(&'a DynamicObject);

    impl Serialize for Guest<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let object = self.0;
            let mut out = serializer.serialize_map(None)?;
            if let Some(types) = &object.types {
                out.serialize_entry("apiVersion", &types.api_version)?;
                out.serialize_entry("kind", &types.kind)?;
            }
            let metadata = kube::api::ObjectMeta {
                managed_fields: None,
                ..object.metadata.clone()
            };
            out.serialize_entry("metadata", &metadata)?;
            if let Value::Object(data) = &object.data {
                for (key, value) in data {
                    // The typed fields above win, as when kube serializes
                    // a DynamicObject (its data flattened after them).
                    if !matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                        out.serialize_entry(key, value)?;
                    }
                }
            }
            out.end()
        }
    }

    serde_json::to_string(&Guest(object)).unwrap_or_else(|_| "null".to_owned())
}

/// `object` without `metadata.managedFields`: what guests are handed.
pub fn without_managed_fields(mut object: Value) -> Value {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn guests_get_the_host_view_without_managed_fields_and_nothing_else_changes() {
        let host_view = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": "settings", "namespace": "demo",
                "managedFields": [{"manager": "bosun/mirror", "operation": "Apply"}],
                "labels": {"managedFields": "a label of that name stays"},
            },
            "data": {"managedFields": "and so does data"},
        });
        let guest: Value = serde_json::from_str(&guest_json(&host_view)).unwrap();
        assert_eq!(guest, without_managed_fields(host_view.clone()));
        assert!(guest["metadata"].get("managedFields").is_none());
        assert_eq!(
            guest["metadata"]["labels"]["managedFields"],
            "a label of that name stays"
        );
        assert_eq!(guest["data"]["managedFields"], "and so does data");
        assert_eq!(guest["metadata"]["name"], "settings");
    }
}
