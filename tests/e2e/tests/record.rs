//! The flight recorder in a cluster: a reconcile that traps is recorded by
//! the host as a ConfigMap in the namespace it is told, fetched with
//! `bosun record get` (the user's kubeconfig, no shell in the host) and
//! replayed offline to the same error; the store keeps no more recordings
//! per module than it was given.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Cluster, Host, eventually, guest, misbehave};
use kube::api::{DeleteParams, ListParams, PostParams};

const LONG: Duration = Duration::from_secs(90);

#[tokio::test]
async fn a_trap_in_the_cluster_is_recorded_fetched_and_replayed_offline() {
    let cluster = Cluster::tenant("record").await;
    let namespace = cluster.namespace.clone();
    let _host = Host::start_confined(
        &cluster,
        &["misbehave"],
        &[
            "--recordings-namespace",
            &namespace,
            "--recordings-per-module",
            "2",
        ],
    )
    .await;
    // One object first: with a cap of two, a third object's recordings
    // could push all of its own out before the fetch below.
    cluster
        .misbehaves()
        .create(&PostParams::default(), &misbehave("boom-3", "panic"))
        .await
        .unwrap();

    let binary = bosun_testenv::guests::host_binary().expect("bosun builds");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("boom.json");
    let object = format!("{namespace}/boom-3");
    let fetched = eventually("a recording of boom-3", LONG, || {
        let out = Command::new(&binary)
            .args([
                "record",
                "get",
                "misbehave",
                &object,
                "-n",
                &namespace,
                "-f",
            ])
            .arg(&file)
            .env("KUBECONFIG", cluster.kubeconfig())
            .output()
            .unwrap();
        async move { out.status.success().then_some(out) }
    })
    .await;
    let said = String::from_utf8_lossy(&fetched.stderr);
    assert!(said.contains("written to"), "{said}");

    // Offline: the same error the host met.
    let replayed = Command::new(&binary)
        .args(["reconcile", &guest("misbehave"), "--replay"])
        .arg(&file)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&replayed.stderr);
    assert_eq!(replayed.status.code(), Some(4), "{err}");
    assert!(err.contains("deliberate panic for boom-3"), "{err}");

    // Two more objects' panics, each retried and recorded again: the store
    // keeps the newest two recordings, so boom-3's (no longer retried once
    // it is gone) are pruned.
    cluster
        .misbehaves()
        .delete("boom-3", &DeleteParams::default())
        .await
        .unwrap();
    for name in ["boom-1", "boom-2"] {
        cluster
            .misbehaves()
            .create(&PostParams::default(), &misbehave(name, "panic"))
            .await
            .unwrap();
    }
    let maps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(cluster.client.clone(), &namespace);
    eventually("the store pruned to its cap of two", LONG, || async {
        let listed = maps
            .list(&ListParams::default().labels("bosun.dev/recording-of=misbehave"))
            .await
            .unwrap();
        let objects: Vec<String> = listed
            .items
            .iter()
            .filter_map(|map| {
                map.metadata
                    .annotations
                    .as_ref()?
                    .get("bosun.dev/recorded-object")
                    .cloned()
            })
            .collect();
        (objects.len() == 2 && !objects.contains(&object)).then_some(())
    })
    .await;
}
