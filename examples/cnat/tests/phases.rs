//! cnat's behaviour, natively, through the SDK's test harness.

use std::time::Duration;

use bosun_sdk::testing::Harness;
use cnat::{At, AtSpec, AtStatus, Cnat, PHASE_DONE, PHASE_PENDING, PHASE_RUNNING};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn at(schedule: &str, phase: Option<&str>) -> At {
    At {
        metadata: ObjectMeta {
            name: Some("example-at".into()),
            namespace: Some("default".into()),
            uid: Some("8c6a1c9e-0000-4000-8000-000000000001".into()),
            generation: Some(1),
            ..ObjectMeta::default()
        },
        spec: AtSpec {
            schedule: schedule.into(),
            command: "echo YAY".into(),
        },
        status: phase.map(|p| AtStatus {
            phase: p.into(),
            ..AtStatus::default()
        }),
    }
}

fn phase(outcome: &bosun_sdk::testing::Outcome) -> String {
    outcome
        .status::<AtStatus>()
        .expect("cnat always sets a status")
        .phase
}

#[test]
fn waits_for_the_schedule_and_requeues_for_the_remaining_time() {
    let outcome = Harness::<Cnat>::new()
        .now("2026-12-01T09:59:00Z")
        .reconcile(&at("2026-12-01T10:00:00Z", None))
        .unwrap();
    assert_eq!(phase(&outcome), PHASE_PENDING);
    assert_eq!(outcome.requeue_after(), Some(Duration::from_secs(60)));
    assert!(outcome.children::<Pod>().is_empty());
}

#[test]
fn starts_the_pod_when_due() {
    let outcome = Harness::<Cnat>::new()
        .now("2026-12-01T10:00:01Z")
        .reconcile(&at("2026-12-01T10:00:00Z", Some(PHASE_PENDING)))
        .unwrap();
    assert_eq!(phase(&outcome), PHASE_RUNNING);
    assert_eq!(outcome.requeue_after(), None);
    let pods = outcome.children::<Pod>();
    assert_eq!(pods.len(), 1);
    let pod = &pods[0];
    assert_eq!(pod.metadata.name.as_deref(), Some("example-at-pod"));
    assert_eq!(pod.metadata.labels.as_ref().unwrap()["app"], "example-at");
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("OnFailure"));
    assert_eq!(spec.containers.len(), 1);
    assert_eq!(spec.containers[0].name, "busybox");
    assert_eq!(spec.containers[0].image.as_deref(), Some("busybox"));
    assert_eq!(
        spec.containers[0].command.as_deref(),
        Some(&["echo".to_owned(), "YAY".to_owned()][..])
    );
    assert_eq!(outcome.events()[0].reason, "Started");
}

#[test]
fn stays_running_while_the_pod_runs_and_is_done_when_it_finishes() {
    let running = at("2026-12-01T10:00:00Z", Some(PHASE_RUNNING));
    let mut pod = cnat::pod(&running);
    pod.status = Some(PodStatus {
        phase: Some("Running".into()),
        ..PodStatus::default()
    });
    let outcome = Harness::<Cnat>::new()
        .child(&pod)
        .reconcile(&running)
        .unwrap();
    assert_eq!(phase(&outcome), PHASE_RUNNING);
    assert_eq!(outcome.children::<Pod>().len(), 1, "the pod stays desired");

    for finished in ["Succeeded", "Failed"] {
        pod.status.as_mut().unwrap().phase = Some(finished.into());
        let outcome = Harness::<Cnat>::new()
            .child(&pod)
            .reconcile(&running)
            .unwrap();
        assert_eq!(phase(&outcome), PHASE_DONE, "pod {finished}");
        assert_eq!(
            outcome.children::<Pod>().len(),
            1,
            "the finished pod is kept, not pruned"
        );
    }
}

#[test]
fn done_keeps_the_pod_as_it_was_applied_not_as_observed() {
    let done = at("2026-12-01T10:00:00Z", Some(PHASE_DONE));
    let applied = cnat::pod(&done);
    // The Pod as the API server holds it: fields it defaulted, a status.
    let mut observed = applied.clone();
    observed.spec.as_mut().unwrap().dns_policy = Some("ClusterFirst".into());
    observed.status = Some(PodStatus {
        phase: Some("Succeeded".into()),
        ..PodStatus::default()
    });
    let outcome = Harness::<Cnat>::new()
        .child(&observed)
        .reconcile(&done)
        .unwrap();
    assert_eq!(phase(&outcome), PHASE_DONE);
    // The body the host applied while it ran, so the host writes nothing.
    assert_eq!(outcome.children::<Pod>(), vec![applied]);
}

#[test]
fn done_is_final() {
    let done = at("2026-12-01T10:00:00Z", Some(PHASE_DONE));
    let outcome = Harness::<Cnat>::new().reconcile(&done).unwrap();
    assert_eq!(phase(&outcome), PHASE_DONE);
    assert!(outcome.children::<Pod>().is_empty(), "no new pod once done");
}

#[test]
fn a_bad_schedule_is_a_permanent_error() {
    let error = Harness::<Cnat>::new()
        .reconcile(&at("next tuesday", None))
        .unwrap_err();
    assert!(error.is_permanent());
    assert_eq!(error.reason(), "InvalidSchedule");
    // The book's layout has no offset: anything else is rejected too.
    assert!(
        Harness::<Cnat>::new()
            .reconcile(&at("2026-12-01T10:00:00+02:00", None))
            .is_err()
    );
}

#[test]
fn declares_pods_as_its_only_owned_kind() {
    let info = Harness::<Cnat>::new().metadata();
    assert_eq!(info.name, "cnat");
    assert_eq!(info.primary.group, "cnat.programming-kubernetes.info");
    assert_eq!(info.primary.kind, "At");
    assert_eq!(info.primary.plural, "ats");
    assert_eq!(info.owns.len(), 1);
    assert_eq!(info.owns[0].kind, "Pod");
}

/// `crd.yaml` is generated from the Rust types; this keeps the committed
/// file in step. `BOSUN_UPDATE_CRDS=1 cargo test -p cnat crd` rewrites it.
#[test]
fn crd_yaml_is_up_to_date() {
    bosun_sdk::testing::assert_crd_up_to_date::<At>(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crd.yaml"
    ));
}
