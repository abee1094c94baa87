use kube::api::{DynamicObject, ObjectList, WatchEvent};
use serde_json::json;

use super::*;

/// `{"d":{"d":…1…}}`: `levels` nested objects.
fn nested(levels: usize) -> String {
    format!("{}1{}", "{\"d\":".repeat(levels), "}".repeat(levels))
}

/// An object `levels` deep in all: itself, then `status` and `levels - 2`
/// more inside it.
fn object_of_depth(name: &str, levels: usize) -> String {
    format!(
        r#"{{"apiVersion":"tests.bosun.dev/v1","kind":"Misbehave","metadata":{{"name":"{name}","namespace":"shop","uid":"uid-{name}","resourceVersion":"7"}},"status":{}}}"#,
        nested(levels - 1)
    )
}

fn decode(json: &str, limits: DecodeLimits) -> Decoded {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    Decoded::decode(&mut deserializer, limits).expect("JSON")
}

fn skipped(decoded: Decoded) -> SkippedObject {
    match decoded {
        Decoded::Skipped(skipped) => skipped,
        Decoded::Object(object) => panic!("decoded {:?}", object.metadata.name),
    }
}

fn object(decoded: Decoded) -> DynamicObject {
    match decoded {
        Decoded::Object(object) => object,
        Decoded::Skipped(skipped) => panic!("skipped: {skipped:?}"),
    }
}

#[test]
fn an_object_within_bounds_decodes_as_kube_decodes_it() {
    let text = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": "web", "namespace": "shop", "uid": "u1", "resourceVersion": "12",
            "labels": {"app": "web"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "u0", "controller": true}],
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"replicas": 3, "ratio": 0.5, "paused": false, "none": null,
                 "template": {"spec": {"containers": [{"name": "c", "args": ["a", "b"]}]}}},
        "status": {"big": 18446744073709551615_u64, "negative": -4},
    })
    .to_string();
    let kube: DynamicObject = serde_json::from_str(&text).unwrap();
    assert_eq!(object(decode(&text, DecodeLimits::DEFAULT)), kube);

    // A list item of a built-in kind carries no type fields.
    let text = r#"{"metadata":{"name":"a"},"data":{"k":"v"}}"#;
    let kube: DynamicObject = serde_json::from_str(text).unwrap();
    let ours = object(decode(text, DecodeLimits::DEFAULT));
    assert_eq!(ours, kube);
    assert!(ours.types.is_none());
}

#[test]
fn managed_fields_keep_manager_and_operation_only() {
    let text = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "a", "managedFields": [{
            "manager": "bosun/mirror", "operation": "Apply", "apiVersion": "v1",
            "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:k": {}}},
        }]},
    })
    .to_string();
    let decoded = object(decode(&text, DecodeLimits::DEFAULT));
    let entry = &decoded.metadata.managed_fields.unwrap()[0];
    assert_eq!(entry.manager.as_deref(), Some("bosun/mirror"));
    assert_eq!(entry.operation.as_deref(), Some("Apply"));
    assert_eq!(entry.api_version.as_deref(), Some("v1"));
    assert!(entry.fields_v1.is_none() && entry.fields_type.is_none() && entry.time.is_none());
}

#[test]
fn the_depth_bound_is_exact() {
    let at_bound = object(decode(
        &object_of_depth("ok", MAX_DEPTH),
        DecodeLimits::DEFAULT,
    ));
    assert_eq!(at_bound.metadata.name.as_deref(), Some("ok"));

    let past = skipped(decode(
        &object_of_depth("deep", MAX_DEPTH + 1),
        DecodeLimits::DEFAULT,
    ));
    assert_eq!(past.reason, Undecodable::TooDeep { limit: MAX_DEPTH });
    assert_eq!(past.metadata.name.as_deref(), Some("deep"));
    assert_eq!(past.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(past.metadata.uid.as_deref(), Some("uid-deep"));
    assert_eq!(past.metadata.resource_version.as_deref(), Some("7"));
}

#[test]
fn an_object_as_deep_as_the_api_server_allows_is_skipped_without_recursing() {
    // The API server refuses 10,000 levels; serde_json alone stops at 128.
    // The part past the bound is skipped iteratively: no stack to overflow.
    let text = object_of_depth("abyss", 9_990);
    assert!(serde_json::from_str::<DynamicObject>(&text).is_err());
    let past = skipped(decode(&text, DecodeLimits::DEFAULT));
    assert_eq!(past.reason, Undecodable::TooDeep { limit: MAX_DEPTH });
    assert_eq!(past.describe(), "shop/abyss");
}

#[test]
fn the_identity_is_read_even_when_metadata_comes_after_what_was_too_deep() {
    let text = format!(
        r#"{{"spec":{},"metadata":{{"labels":{{"a":"b"}},"name":"late","namespace":"shop","uid":"u","resourceVersion":"3"}}}}"#,
        nested(500)
    );
    let past = skipped(decode(&text, DecodeLimits::DEFAULT));
    assert_eq!(past.reason, Undecodable::TooDeep { limit: MAX_DEPTH });
    assert_eq!(past.describe(), "shop/late");
    assert_eq!(past.metadata.resource_version.as_deref(), Some("3"));
    assert!(past.metadata.labels.is_none(), "only the identity is kept");
}

#[test]
fn field_sets_in_managed_fields_do_not_count_toward_the_depth() {
    // fieldsV1 mirrors the object's structure a few levels further down.
    let text = format!(
        r#"{{"metadata":{{"name":"a","managedFields":[{{"manager":"m","operation":"Update","fieldsV1":{}}}]}},"spec":{}}}"#,
        nested(MAX_DEPTH + 20),
        nested(MAX_DEPTH - 2),
    );
    object(decode(&text, DecodeLimits::DEFAULT));
}

#[test]
fn the_size_bound_counts_strings_and_values() {
    let limits = DecodeLimits {
        max_depth: MAX_DEPTH,
        max_bytes: 1000,
    };
    let small =
        json!({"metadata": {"name": "small", "namespace": "shop"}, "data": {"k": "x".repeat(800)}});
    object(decode(&small.to_string(), limits));

    let large = json!({"metadata": {"name": "large", "namespace": "shop"}, "data": {"k": "x".repeat(1000)}});
    let past = skipped(decode(&large.to_string(), limits));
    assert_eq!(past.reason, Undecodable::TooLarge { limit: 1000 });
    assert_eq!(past.describe(), "shop/large");

    // Passing the bound just before `metadata` still leaves its identity.
    let text = format!(
        r#"{{"data":{{"k":"{}"}},"metadata":{{"name":"edge","namespace":"shop"}}}}"#,
        "x".repeat(990)
    );
    let past = skipped(decode(&text, limits));
    assert_eq!(past.reason, Undecodable::TooLarge { limit: 1000 });
    assert_eq!(past.describe(), "shop/edge");

    // Many small values count as well as one large one.
    let many = json!({"metadata": {"name": "many"}, "data": {"list": vec![1; 200]}});
    assert_eq!(
        skipped(decode(&many.to_string(), limits)).reason,
        Undecodable::TooLarge { limit: 1000 }
    );
}

#[test]
fn the_default_size_bound_is_eight_mib() {
    let text = |bytes: usize| {
        json!({"metadata": {"name": "blob", "namespace": "shop"}, "data": {"k": "x".repeat(bytes)}})
            .to_string()
    };
    object(decode(
        &text(MAX_OBJECT_BYTES - 1024),
        DecodeLimits::DEFAULT,
    ));
    let past = skipped(decode(&text(MAX_OBJECT_BYTES), DecodeLimits::DEFAULT));
    assert_eq!(past.reason, Undecodable::TooLarge { limit: 8 << 20 });
    assert_eq!(past.describe(), "shop/blob");
}

#[test]
fn metadata_the_host_cannot_read_is_malformed() {
    let text = r#"{"metadata":{"name":"odd","namespace":"shop","labels":{"a":1}},"spec":{}}"#;
    let past = skipped(decode(text, DecodeLimits::DEFAULT));
    assert!(
        matches!(&past.reason, Undecodable::Malformed { reason } if reason.starts_with("metadata: invalid type")),
        "{past:?}"
    );
    assert_eq!(past.describe(), "shop/odd");

    let past = skipped(decode("[1, 2]", DecodeLimits::DEFAULT));
    assert_eq!(
        past.reason,
        Undecodable::Malformed {
            reason: "an array, not a JSON object".into()
        }
    );
    assert_eq!(past.describe(), "(unnamed)");
}

#[test]
fn a_page_with_bad_items_decodes_every_other_item() {
    let good = |name: &str| {
        json!({"apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave", "metadata": {"name": name, "namespace": "shop", "resourceVersion": "5"}}).to_string()
    };
    let page = format!(
        r#"{{"apiVersion":"tests.bosun.dev/v1","kind":"MisbehaveList","metadata":{{"resourceVersion":"99","continue":"next"}},"items":[{},{},{},{},null,{}]}}"#,
        good("first"),
        object_of_depth("deep", 200),
        // At the bound, two levels down in the page: still within
        // serde_json's own limit.
        object_of_depth("edge", MAX_DEPTH),
        good("second"),
        r#"{"metadata":{"name":"odd","labels":{"a":[]}}}"#,
    );
    // kube-client's own decoding loses the whole page.
    assert!(serde_json::from_str::<ObjectList<DynamicObject>>(&page).is_err());

    let list: ObjectList<Decoded> = serde_json::from_str(&page).unwrap();
    assert_eq!(list.metadata.resource_version.as_deref(), Some("99"));
    assert_eq!(list.metadata.continue_.as_deref(), Some("next"));
    let summary: Vec<(String, Option<&'static str>)> = list
        .items
        .iter()
        .map(|item| match item {
            Decoded::Object(o) => (o.metadata.name.clone().unwrap(), None),
            Decoded::Skipped(s) => (s.describe(), Some(s.reason.label())),
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("first".to_owned(), None),
            ("shop/deep".to_owned(), Some("too_deep")),
            ("edge".to_owned(), None),
            ("second".to_owned(), None),
            ("(unnamed)".to_owned(), Some("malformed")),
            ("odd".to_owned(), Some("malformed")),
        ]
    );
}

#[test]
fn a_watch_event_of_a_deep_object_is_an_event_of_a_skipped_object() {
    let line = format!(
        r#"{{"type":"MODIFIED","object":{}}}"#,
        object_of_depth("deep", 300)
    );
    let event: WatchEvent<Decoded> = serde_json::from_str(&line).unwrap();
    let WatchEvent::Modified(Decoded::Skipped(past)) = event else {
        panic!("{event:?}");
    };
    // The watcher needs the version to resume from.
    assert_eq!(past.metadata.resource_version.as_deref(), Some("7"));
    assert_eq!(past.reason, Undecodable::TooDeep { limit: MAX_DEPTH });
}

#[test]
fn text_that_is_not_json_still_fails_the_page() {
    let page = r#"{"metadata":{},"items":[{"metadata":{"name":"a"}}, {"#;
    assert!(serde_json::from_str::<ObjectList<Decoded>>(page).is_err());
}
