//! webapp's behaviour, natively, through the SDK's test harness.

use bosun_sdk::conditions;
use bosun_sdk::testing::Harness;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;
use webapp::{WebApp, WebAppSpec, WebAppStatus, WebApps};

fn app(port: Option<i32>) -> WebApp {
    WebApp {
        metadata: ObjectMeta {
            name: Some("shop".into()),
            namespace: Some("team-a".into()),
            generation: Some(2),
            ..ObjectMeta::default()
        },
        spec: WebAppSpec {
            image: "nginx:1.27".into(),
            replicas: 2,
            port,
        },
        status: None,
    }
}

#[test]
fn runs_a_deployment_and_exposes_the_port_with_a_service() {
    let outcome = Harness::<WebApps>::new()
        .reconcile(&app(Some(8080)))
        .unwrap();
    let deployment = outcome.child::<Deployment>("shop").expect("a Deployment");
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let container = &spec.template.spec.unwrap().containers[0];
    assert_eq!(container.image.as_deref(), Some("nginx:1.27"));
    assert_eq!(container.ports.as_ref().unwrap()[0].container_port, 8080);
    let service = outcome.child::<Service>("shop").expect("a Service");
    assert_eq!(service.spec.unwrap().ports.unwrap()[0].port, 8080);
    let status: WebAppStatus = outcome.status().unwrap();
    assert_eq!(status.url.as_deref(), Some("http://shop.team-a.svc:8080"));
}

#[test]
fn without_a_port_there_is_no_service() {
    let outcome = Harness::<WebApps>::new().reconcile(&app(None)).unwrap();
    assert!(outcome.child::<Deployment>("shop").is_some());
    assert!(
        outcome.children::<Service>().is_empty(),
        "the Service is no longer desired, so the host prunes it"
    );
}

#[test]
fn reports_readiness_from_the_observed_deployment() {
    let not_ready = Harness::<WebApps>::new()
        .now("2026-11-25T10:00:00Z")
        .reconcile(&app(None))
        .unwrap();
    let status: WebAppStatus = not_ready.status().unwrap();
    assert!(!conditions::is_true(&status.conditions, "Ready"));
    assert_eq!(status.conditions[0].reason, "ReplicasNotReady");
    assert_eq!(status.conditions[0].observed_generation, Some(2));

    let mut observed = webapp::deployment(&app(None), &Default::default());
    observed.status = Some(DeploymentStatus {
        ready_replicas: Some(2),
        ..DeploymentStatus::default()
    });
    let mut with_status = app(None);
    with_status.status = Some(status);
    let ready = Harness::<WebApps>::new()
        .now("2026-11-25T10:05:00Z")
        .child(&observed)
        .reconcile(&with_status)
        .unwrap();
    let status: WebAppStatus = ready.status().unwrap();
    assert_eq!(status.ready_replicas, 2);
    let condition = conditions::find(&status.conditions, "Ready").unwrap();
    assert_eq!(condition.status, "True");
    assert_eq!(
        condition.last_transition_time.0.to_string(),
        "2026-11-25T10:05:00Z"
    );
    assert_eq!(ready.events()[0].reason, "Ready");
}

#[test]
fn settings_add_labels_to_every_child() {
    let outcome = Harness::<WebApps>::new()
        .settings(json!({"commonLabels": {"team": "storefront"}}))
        .reconcile(&app(Some(80)))
        .unwrap();
    for labels in [
        outcome
            .child::<Deployment>("shop")
            .unwrap()
            .metadata
            .labels
            .unwrap(),
        outcome
            .child::<Service>("shop")
            .unwrap()
            .metadata
            .labels
            .unwrap(),
    ] {
        assert_eq!(labels["team"], "storefront");
        assert_eq!(labels["app.kubernetes.io/name"], "shop");
    }
}

#[test]
fn bad_settings_and_impossible_specs_are_permanent_errors() {
    let error = Harness::<WebApps>::new()
        .settings(json!({"commonLabelz": {}}))
        .reconcile(&app(None))
        .unwrap_err();
    assert!(error.is_permanent());
    assert_eq!(error.reason(), "InvalidSettings");

    let mut bad = app(Some(70000));
    let error = Harness::<WebApps>::new().reconcile(&bad).unwrap_err();
    assert!(
        error.is_permanent() && error.message().contains("spec.port"),
        "{error}"
    );
    bad.spec.port = None;
    bad.spec.image = " ".into();
    assert!(
        Harness::<WebApps>::new()
            .reconcile(&bad)
            .unwrap_err()
            .is_permanent()
    );
}

/// `BOSUN_UPDATE_CRDS=1 cargo test -p webapp crd` rewrites `crd.yaml`.
#[test]
fn crd_yaml_is_up_to_date() {
    bosun_sdk::testing::assert_crd_up_to_date::<WebApp>(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crd.yaml"
    ));
}
