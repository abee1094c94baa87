//! No single object can stop a watch, and a stop waits only for work that
//! exists: `bosun run` against a real control plane.
//!
//! The API server accepts a custom object nested about 10,000 levels deep
//! wherever its schema preserves unknown fields (Misbehave's status here);
//! kube-client alone decodes a list page in one piece under serde_json's
//! limit of 128 levels, so one such object used to fail every list of its
//! kind: the watch never synced, `/readyz` stayed failing and nothing of
//! the kind was reconciled.

mod common;

use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const KIND: &str = "Misbehave.tests.bosun.dev/v1";

/// `{"d":{"d":…1…}}`: `levels` nested objects.
fn nested(levels: usize) -> String {
    format!("{}1{}", "{\"d\":".repeat(levels), "}".repeat(levels))
}

/// Sets the status of Misbehave `name` to `status` (JSON text), by a raw
/// merge patch: kube-client would fail to decode the deep answer.
async fn set_status(cluster: &Cluster, name: &str, status: &str) {
    let request = http::Request::builder()
        .method("PATCH")
        .uri(format!(
            "/apis/tests.bosun.dev/v1/namespaces/{}/misbehaves/{name}/status",
            cluster.namespace
        ))
        .header("Content-Type", "application/merge-patch+json")
        .body(format!(r#"{{"status":{status}}}"#).into_bytes())
        .unwrap();
    cluster
        .client
        .request_text(request)
        .await
        .unwrap_or_else(|e| panic!("patch the status of {name}: {e}"));
}

/// Creates Misbehave `name` (mode `ok`: it desires ConfigMap
/// `<name>-child`), nested 200 levels deep when `deep`.
async fn create(cluster: &Cluster, name: &str, deep: bool) {
    create_of_depth(cluster, name, deep.then_some(200)).await;
}

/// Creates Misbehave `name`, nested `levels` deep in all when given (the
/// object, its status, and `levels - 2` more).
async fn create_of_depth(cluster: &Cluster, name: &str, levels: Option<usize>) {
    cluster
        .misbehaves()
        .create(&PostParams::default(), &misbehave(name, "ok"))
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    if let Some(levels) = levels {
        let status = format!(r#"{{"deep":{}}}"#, nested(levels - 2));
        set_status(cluster, name, &status).await;
    }
}

async fn child(cluster: &Cluster, name: &str) -> serde_json::Value {
    let child = format!("{name}-child");
    let found = eventually(
        &format!("ConfigMap {child}"),
        Duration::from_secs(60),
        || async { get(&cluster.config_maps(), &child).await },
    )
    .await;
    json!(found.metadata.name)
}

async fn skipped_now(host: &Host, namespace: &str) -> f64 {
    host.metric(&format!(
        r#"bosun_skipped_objects{{kind="{KIND}",namespace="{namespace}"}}"#
    ))
    .await
}

async fn wait_skipped(host: &Host, namespace: &str, expected: f64) {
    eventually(
        &format!("{expected} skipped objects"),
        Duration::from_secs(30),
        || async { (skipped_now(host, namespace).await == expected).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn one_deep_object_does_not_stop_the_watch_of_its_kind() {
    let cluster = Cluster::tenant("watch-deep").await;
    let ns = cluster.namespace.clone();
    create(&cluster, "plain", false).await;
    create(&cluster, "deep", true).await;
    // At the bound: cached, and handed to the guest, which decodes it.
    create_of_depth(&cluster, "edge", Some(100)).await;

    // Ready: the list completed without the deep object.
    let host = Host::start_confined(&cluster, &["misbehave"], &[]).await;
    child(&cluster, "plain").await;
    child(&cluster, "edge").await;
    assert_eq!(skipped_now(&host, &ns).await, 1.0);
    assert_eq!(
        host.metric(&format!(
            r#"bosun_undecodable_objects_total{{kind="{KIND}",reason="too_deep"}}"#
        ))
        .await,
        1.0
    );
    let note = warning(&cluster, "deep", "Undecodable").await;
    assert!(
        note.contains("nested deeper than 100 levels"),
        "the event says why: {note}"
    );
    assert!(
        host.log()
            .contains("skipping an object the host cannot decode")
            && host.log().contains("watch-deep/deep"),
        "the log names it"
    );

    // A deep object arriving on the watch: it is skipped, and the watch
    // goes on delivering what comes after it.
    create(&cluster, "later", true).await;
    wait_skipped(&host, &ns, 2.0).await;
    create(&cluster, "after", false).await;
    child(&cluster, "after").await;

    // Shallow again: cached and reconciled.
    set_status(&cluster, "deep", r#"{"deep":null}"#).await;
    child(&cluster, "deep").await;
    wait_skipped(&host, &ns, 1.0).await;

    assert_eq!(host.get("/readyz").await.unwrap().0, 200);
    assert!(
        !host.log().contains("watch failed"),
        "no list or watch failed:\n{}",
        host.log()
    );
}

#[tokio::test]
async fn sigterm_with_nothing_in_flight_exits_at_once() {
    let cluster = Cluster::tenant("watch-idle").await;
    create(&cluster, "idle", false).await;
    let mut host =
        Host::start_confined(&cluster, &["misbehave"], &["--shutdown-grace", "60s"]).await;
    child(&cluster, "idle").await;
    let asked = Instant::now();
    assert_eq!(host.terminate(), Some(0));
    let took = asked.elapsed();
    eprintln!("an idle host exited {took:?} after SIGTERM");
    assert!(
        took < Duration::from_secs(3),
        "an idle host took {took:?} to exit"
    );
}

/// A host whose only kind never syncs — its conversion webhook is down, so
/// every list fails — has nothing in flight, and exits at once.
#[tokio::test]
async fn sigterm_before_the_caches_synced_exits_at_once() {
    let cluster = Cluster::start().await;
    let crds = Api::<CustomResourceDefinition>::all(cluster.client.clone());
    let mut crd = crds.get("misbehaves.tests.bosun.dev").await.unwrap();
    let mut v2 = crd.spec.versions[0].clone();
    v2.name = "v2".into();
    crd.spec.versions[0].storage = false;
    crd.spec.versions.push(v2);
    let patch = json!({"spec": {
        "versions": crd.spec.versions,
        "conversion": {"strategy": "Webhook", "webhook": {
            "conversionReviewVersions": ["v1"],
            "clientConfig": {"url": "https://127.0.0.1:9/convert"},
        }},
    }});
    crds.patch(
        "misbehaves.tests.bosun.dev",
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .unwrap();
    // Stored as v2: listing it as v1, the version misbehave declares,
    // needs the webhook.
    let v2 = cluster.api("tests.bosun.dev", "v2", "Misbehave", "misbehaves");
    let mut object = misbehave("stuck", "ok");
    object.types.as_mut().unwrap().api_version = "tests.bosun.dev/v2".into();
    eventually("a v2 object", Duration::from_secs(30), || async {
        v2.create(&PostParams::default(), &object).await.ok()
    })
    .await;

    let mut host = Host::spawn(&cluster, &["misbehave"], &["--shutdown-grace", "60s"]);
    eventually("a failing list", Duration::from_secs(60), || async {
        host.log().contains("watch failed").then_some(())
    })
    .await;
    assert_eq!(host.get("/readyz").await.unwrap().0, 503);
    let asked = Instant::now();
    assert_eq!(host.terminate(), Some(0));
    let took = asked.elapsed();
    eprintln!("a host with nothing synced exited {took:?} after SIGTERM");
    assert!(
        took < Duration::from_secs(3),
        "a host with nothing synced took {took:?} to exit:\n{}",
        host.log()
    );
}
