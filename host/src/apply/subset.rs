//! The no-op rule: when a desired object changes nothing in the live one.

use serde_json::{Number, Value};

/// The no-op rule: true when every field of `desired` is in `live` with an
/// equal value, so applying `desired` would change nothing.
///
/// Maps compare key by key (extra keys in `live` are fine: the API server
/// fills in defaults such as `imagePullPolicy` or `terminationMessagePath`,
/// and other field managers own fields too). Lists must have the same
/// length and compare element by element, in order. Numbers compare by
/// value (`1` equals `1.0`). A desired `null`, `{}` or `[]` matches a
/// field missing from `live`, because the API server omits empty fields.
/// Nothing else is ignored.
///
/// The rule cannot see a field the module *stopped* setting (the cache keeps
/// no `fieldsV1` to tell which fields the module owns); [`Applier::apply`](super::Applier::apply)
/// pairs it with a record of the body it applied last for that reason.
pub fn is_semantic_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(desired), Value::Object(live)) => {
            desired.iter().all(|(key, value)| match live.get(key) {
                Some(live) => is_semantic_subset(value, live),
                None => is_empty(value),
            })
        }
        (Value::Array(desired), Value::Array(live)) => {
            desired.len() == live.len()
                && desired
                    .iter()
                    .zip(live)
                    .all(|(d, l)| is_semantic_subset(d, l))
        }
        (Value::Number(desired), Value::Number(live)) => same_number(desired, live),
        (desired, Value::Null) => is_empty(desired),
        (desired, live) => desired == live,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(list) => list.is_empty(),
        _ => false,
    }
}

fn same_number(a: &Number, b: &Number) -> bool {
    // Exact first: large integers lose precision as floats.
    a == b || ((a.is_f64() || b.is_f64()) && a.as_f64() == b.as_f64())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_added_by_the_server_do_not_count_as_changes() {
        let desired = json!({"spec": {"containers": [{"name": "web", "image": "nginx"}]}});
        let live = json!({"spec": {"containers": [{
            "name": "web", "image": "nginx",
            "imagePullPolicy": "Always", "terminationMessagePath": "/dev/termination-log"
        }], "restartPolicy": "Always"}});
        assert!(is_semantic_subset(&desired, &live));
    }

    #[test]
    fn a_changed_or_missing_value_is_a_change() {
        let live = json!({"spec": {"replicas": 2, "ports": [{"port": 80}]}});
        assert!(!is_semantic_subset(
            &json!({"spec": {"replicas": 3}}),
            &live
        ));
        assert!(!is_semantic_subset(
            &json!({"spec": {"paused": true}}),
            &live
        ));
        assert!(!is_semantic_subset(
            &json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}}),
            &live
        ));
        assert!(!is_semantic_subset(
            &json!({"spec": {"ports": [{"port": 81}]}}),
            &live
        ));
        assert!(!is_semantic_subset(
            &json!({"spec": {"replicas": "2"}}),
            &live
        ));
    }

    #[test]
    fn lists_compare_in_order() {
        let live = json!({"args": ["a", "b"]});
        assert!(is_semantic_subset(&json!({"args": ["a", "b"]}), &live));
        assert!(!is_semantic_subset(&json!({"args": ["b", "a"]}), &live));
    }

    #[test]
    fn numbers_compare_by_value_and_empty_values_match_absent_ones() {
        assert!(is_semantic_subset(
            &json!({"weight": 1.0}),
            &json!({"weight": 1})
        ));
        assert!(!is_semantic_subset(
            &json!({"weight": 1.5}),
            &json!({"weight": 1})
        ));
        assert!(is_semantic_subset(
            &json!({"port": null, "labels": {}, "args": []}),
            &json!({})
        ));
        assert!(!is_semantic_subset(
            &json!({"port": 80}),
            &json!({"port": null})
        ));
    }
}
