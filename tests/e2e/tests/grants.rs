//! The grant in force when a write is made rules it: a grant narrowed
//! while a reconcile is in flight stops that reconcile's writes, and what
//! is refused that way counts toward nothing.

mod common;

use std::time::Duration;

use common::{Cluster, Host, eventually, get, grant_of, guest};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use serde_json::json;

const LONG: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_grant_narrowed_during_a_reconcile_stops_its_writes() {
    let cluster = Cluster::tenant("grant-narrow").await;
    let other = format!("{}-other", cluster.namespace);
    Api::<Namespace>::all(cluster.client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": other}})).unwrap(),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let module = guest("misbehave");
    std::fs::copy(&module, dir.path().join("misbehave.wasm")).unwrap();
    let grant = |namespaces: &[&str]| {
        let mut grant = grant_of(&module);
        grant["permissions"]["namespaces"] = json!(namespaces);
        grant.to_string()
    };
    let grant_file = dir.path().join("misbehave.grant.yaml");
    std::fs::write(&grant_file, grant(&[&cluster.namespace, &other])).unwrap();
    // A long deadline, so that the reconcile below is in flight for
    // seconds.
    let host = Host::start(
        &cluster,
        &[],
        &[
            "--modules-dir",
            dir.path().to_str().unwrap(),
            "--timeout-ms",
            "10000",
        ],
    )
    .await;

    let mut sleeper = common::misbehave("sleeper", "sleep");
    sleeper.data["spec"]["seconds"] = json!(4);
    cluster
        .misbehaves()
        .create(&PostParams::default(), &sleeper)
        .await
        .unwrap();
    let active = "controller_runtime_active_workers{controller=\"misbehave\"}";
    eventually("the reconcile in flight", LONG, || async {
        (host.metric(active).await >= 1.0).then_some(())
    })
    .await;

    // The operator takes the namespace out of the grant while the guest
    // sleeps; when it wakes, it wants its ConfigMap.
    std::fs::write(&grant_file, grant(&[&other])).unwrap();
    eventually("the narrowed grant applied", LONG, || async {
        host.log()
            .contains("its grant names other namespaces")
            .then_some(())
    })
    .await;
    eventually("the reconcile ended", LONG, || async {
        host.log()
            .contains("not written: the module's grant changed")
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        get(&cluster.config_maps(), "sleeper-child").await.is_none(),
        "a reconcile in flight wrote where the grant no longer reaches"
    );
    assert_eq!(
        host.metric("bosun_module_quarantined{module=\"misbehave\"}")
            .await,
        0.0
    );
    for kind in ["Blocked", "Timeout"] {
        let sample = format!("bosun_guest_traps_total{{module=\"misbehave\",kind=\"{kind}\"}}");
        assert_eq!(
            host.metric(&sample).await,
            0.0,
            "the sleep was counted as {kind}"
        );
    }
    let object = get(&cluster.misbehaves(), "sleeper").await.unwrap();
    assert!(
        common::reconciled_condition(&object).is_none(),
        "the host reported on an object outside the grant: {:?}",
        object.data.get("status")
    );
}
