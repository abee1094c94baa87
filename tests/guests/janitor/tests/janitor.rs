use bosun_sdk::testing::Harness;
use janitor::{FINALIZER, Janitor, Tidy, TidySpec};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn tidy(release: bool) -> Tidy {
    Tidy {
        metadata: ObjectMeta {
            name: Some("t".into()),
            namespace: Some("ns".into()),
            ..ObjectMeta::default()
        },
        spec: TidySpec { release },
        status: None,
    }
}

#[test]
fn declares_its_finalizer_and_keeps_a_config_map() {
    assert_eq!(
        Harness::<Janitor>::new().metadata().finalizer.as_deref(),
        Some(FINALIZER)
    );
    let outcome = Harness::<Janitor>::new().reconcile(&tidy(false)).unwrap();
    assert!(outcome.child::<ConfigMap>("t-data").is_some());
}

#[test]
fn finalize_holds_until_released() {
    let held = Harness::<Janitor>::new().finalize(&tidy(false)).unwrap();
    assert!(!held.done);
    assert!(held.requeue_after.is_some());
    assert!(
        Harness::<Janitor>::new()
            .finalize(&tidy(true))
            .unwrap()
            .done
    );
}

/// `BOSUN_UPDATE_CRDS=1 cargo test -p janitor crd` rewrites `crd.yaml`.
#[test]
fn crd_yaml_is_up_to_date() {
    bosun_sdk::testing::assert_crd_up_to_date::<Tidy>(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crd.yaml"
    ));
}
