//! mirror's behaviour, natively, through the SDK's test harness.

use std::collections::BTreeMap;

use bosun_sdk::testing::Harness;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mirror::{Mirror, MirrorSpec, MirrorStatus, Mirrors};

fn mirror(selector: Option<&str>) -> Mirror {
    Mirror {
        metadata: ObjectMeta {
            name: Some("shop".into()),
            namespace: Some("team-a".into()),
            generation: Some(1),
            ..ObjectMeta::default()
        },
        spec: MirrorSpec {
            config_map_name: "settings".into(),
            selector: selector.map(str::to_owned),
            secret_name: None,
        },
        status: None,
    }
}

fn config_map(
    namespace: &str,
    name: &str,
    labels: &[(&str, &str)],
    data: &[(&str, &str)],
) -> ConfigMap {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some(map(labels)),
            ..ObjectMeta::default()
        },
        data: Some(map(data)),
        ..ConfigMap::default()
    }
}

#[test]
fn mirrors_the_data_of_the_config_map_it_names() {
    let outcome = Harness::<Mirrors>::new()
        .object(config_map(
            "team-a",
            "settings",
            &[],
            &[("greeting", "hello")],
        ))
        .object(config_map("team-a", "other", &[], &[("greeting", "no")]))
        .reconcile(&mirror(None))
        .unwrap();
    let status: MirrorStatus = outcome.status().unwrap();
    assert!(status.found);
    assert_eq!(
        status.data.get("greeting").map(String::as_str),
        Some("hello")
    );
    assert!(status.selected.is_empty());
}

#[test]
fn says_so_when_the_config_map_does_not_exist() {
    let outcome = Harness::<Mirrors>::new()
        // Same name, another namespace: not the Mirror's.
        .object(config_map(
            "team-b",
            "settings",
            &[],
            &[("greeting", "hello")],
        ))
        .reconcile(&mirror(None))
        .unwrap();
    let status: MirrorStatus = outcome.status().unwrap();
    assert!(!status.found);
    assert!(status.data.is_empty());
}

#[test]
fn names_the_config_maps_its_selector_picks() {
    let outcome = Harness::<Mirrors>::new()
        .object(config_map("team-a", "b", &[("app", "shop")], &[]))
        .object(config_map("team-a", "a", &[("app", "shop")], &[]))
        .object(config_map("team-a", "c", &[("app", "blog")], &[]))
        .reconcile(&mirror(Some("app=shop")))
        .unwrap();
    let status: MirrorStatus = outcome.status().unwrap();
    assert_eq!(status.selected, ["a", "b"]);
}

#[test]
fn lists_the_keys_of_a_secret_and_never_its_values() {
    let secret = k8s_openapi::api::core::v1::Secret {
        metadata: ObjectMeta {
            name: Some("credentials".into()),
            namespace: Some("team-a".into()),
            ..ObjectMeta::default()
        },
        data: Some(
            [
                (
                    "password".to_owned(),
                    k8s_openapi::ByteString(b"hunter2".to_vec()),
                ),
                (
                    "user".to_owned(),
                    k8s_openapi::ByteString(b"admin".to_vec()),
                ),
            ]
            .into(),
        ),
        ..Default::default()
    };
    let mut with_secret = mirror(None);
    with_secret.spec.secret_name = Some("credentials".into());
    let outcome = Harness::<Mirrors>::new()
        .object(secret)
        .reconcile(&with_secret)
        .unwrap();
    let status: MirrorStatus = outcome.status().unwrap();
    assert_eq!(status.secret_keys, ["password", "user"]);
    let written = serde_json::to_string(&status).unwrap();
    assert!(
        !written.contains("hunter2") && !written.contains("aHVudGVyMg"),
        "{written}"
    );
}

#[test]
fn a_selector_that_does_not_parse_is_a_permanent_error() {
    let error = Harness::<Mirrors>::new()
        .reconcile(&mirror(Some("app in (")))
        .unwrap_err();
    assert!(error.is_permanent(), "{error:?}");
}

#[test]
fn an_empty_name_is_a_permanent_error() {
    let mut bad = mirror(None);
    bad.spec.config_map_name = " ".into();
    assert!(
        Harness::<Mirrors>::new()
            .reconcile(&bad)
            .unwrap_err()
            .is_permanent()
    );
}

/// `BOSUN_UPDATE_CRDS=1 cargo test -p mirror crd` rewrites `crd.yaml`.
#[test]
fn crd_yaml_is_up_to_date() {
    bosun_sdk::testing::assert_crd_up_to_date::<Mirror>(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crd.yaml"
    ));
}
