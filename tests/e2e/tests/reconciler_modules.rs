//! `bosun run --modules-from-cluster`: ReconcilerModule resources load,
//! swap, reconfigure, pause and remove modules while the host runs, and a
//! bad version never replaces a good one.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{
    Answer, Cluster, Host, condition, eventually, get, guest, label, misbehave, permissions_of,
    permissions_with_namespaces, serve, sha256, wait_loaded,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

const LONG: Duration = Duration::from_secs(60);

#[tokio::test]
async fn reconciler_modules_load_swap_keep_the_last_good_version_pause_and_unload() {
    let cluster = Cluster::start().await;
    let _host = Host::start(&cluster, &[], &["--modules-from-cluster"]).await;
    let modules = cluster.reconciler_modules();
    let deployments = cluster.api("apps", "v1", "Deployment", "deployments");

    // A small component in a ConfigMap's binaryData (ConfigMaps hold at
    // most 1 MiB), beside a broken one.
    let bundle = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("modules".into()),
            ..Default::default()
        },
        binary_data: Some(BTreeMap::from([
            (
                "misbehave.wasm".to_owned(),
                ByteString(std::fs::read(guest("misbehave")).unwrap()),
            ),
            (
                "garbage.wasm".to_owned(),
                ByteString(b"\0asm\x01\0\0\0 not a component".to_vec()),
            ),
        ])),
        ..Default::default()
    };
    let config_maps = Api::<ConfigMap>::namespaced(cluster.client.clone(), &cluster.namespace);
    config_maps
        .create(&PostParams::default(), &bundle)
        .await
        .unwrap();
    let from_key =
        |key: &str| json!({"configMap": {"namespace": "e2e", "name": "modules", "key": key}});
    let from_config_map: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "bosun.dev/v1alpha1", "kind": "ReconcilerModule",
        "metadata": {"name": "misbehave"},
        "spec": {"source": from_key("misbehave.wasm"), "permissions": permissions_of(&guest("misbehave"))}
    }))
    .unwrap();
    modules
        .create(&PostParams::default(), &from_config_map)
        .await
        .unwrap();
    let loaded = wait_loaded(&modules, "misbehave", "True", "Loaded").await;
    assert_eq!(loaded.data["status"]["moduleName"], "misbehave");
    assert_eq!(loaded.data["status"]["digest"].as_str().unwrap().len(), 64);
    assert_eq!(condition(&loaded, "Ready").unwrap()["status"], "True");
    let misbehaves = cluster.misbehaves();
    misbehaves
        .create(&PostParams::default(), &misbehave("one", "ok"))
        .await
        .unwrap();
    eventually("the module from the ConfigMap reconciles", LONG, || async {
        config_maps.get_opt("one-child").await.unwrap()
    })
    .await;

    // Garbage: refused with the reason; the last good version keeps working.
    modules
        .patch(
            "misbehave",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"source": from_key("garbage.wasm")}})),
        )
        .await
        .unwrap();
    let refused = wait_loaded(&modules, "misbehave", "False", "LoadFailed").await;
    let message = condition(&refused, "Loaded").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("not a WebAssembly component"), "{message}");
    assert_eq!(
        condition(&refused, "Ready").unwrap()["reason"],
        "PreviousVersionRunning"
    );
    misbehaves
        .create(&PostParams::default(), &misbehave("two", "ok"))
        .await
        .unwrap();
    eventually("the last good version still reconciles", LONG, || async {
        config_maps.get_opt("two-child").await.unwrap()
    })
    .await;

    // URL sources pinned by sha256: the webapp, then a new version of it.
    let webapp = std::fs::read(guest("webapp")).unwrap();
    let next = std::fs::read(bosun_testenv::guests::webapp_next().unwrap()).unwrap();
    let (webapp_sha, next_sha) = (sha256(&webapp), sha256(&next));
    let port = serve(vec![
        ("/webapp.wasm", Answer::Bytes(webapp)),
        ("/webapp-next.wasm", Answer::Bytes(next)),
    ])
    .await;
    let from_url = |path: &str, sha: &str| json!({"url": {"url": format!("http://127.0.0.1:{port}{path}"), "sha256": sha}});
    let from_web: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "bosun.dev/v1alpha1", "kind": "ReconcilerModule",
        "metadata": {"name": "webapp"},
        "spec": {"source": from_url("/webapp.wasm", &"0".repeat(64)), "settings": {"commonLabels": {"team": "x"}}, "permissions": permissions_of(&guest("webapp"))}
    }))
    .unwrap();
    modules
        .create(&PostParams::default(), &from_web)
        .await
        .unwrap();
    let mismatch = wait_loaded(&modules, "webapp", "False", "DigestMismatch").await;
    assert_eq!(
        condition(&mismatch, "Ready").unwrap()["status"],
        "False",
        "nothing runs yet"
    );
    modules
        .patch(
            "webapp",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"source": from_url("/webapp.wasm", &webapp_sha)}})),
        )
        .await
        .unwrap();
    let loaded = wait_loaded(&modules, "webapp", "True", "Loaded").await;
    assert_eq!(loaded.data["status"]["version"], "0.1.0");
    let app = |name: &str| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
            "metadata": {"name": name}, "spec": {"image": "nginx", "replicas": 1}
        }))
        .unwrap()
    };
    cluster
        .webapps()
        .create(&PostParams::default(), &app("shop"))
        .await
        .unwrap();
    eventually(
        "the Deployment with the module's settings",
        LONG,
        || async {
            get(&deployments, "shop")
                .await
                .filter(|d| label(d, "team").as_deref() == Some("x"))
        },
    )
    .await;

    // A new version: swapped in, every object reconciled by it.
    modules
        .patch(
            "webapp",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"source": from_url("/webapp-next.wasm", &next_sha)}})),
        )
        .await
        .unwrap();
    let swapped = wait_loaded(&modules, "webapp", "True", "Loaded").await;
    assert_eq!(swapped.data["status"]["version"], "0.1.0+rev2");
    eventually(
        "the Deployment reconciled by the new version",
        LONG,
        || async {
            get(&deployments, "shop")
                .await
                .filter(|d| label(d, webapp::REVISION_LABEL).as_deref() == Some("2"))
        },
    )
    .await;

    // A wrong digest for an update: refused, the running version stays.
    modules
        .patch(
            "webapp",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"source": from_url("/webapp.wasm", &next_sha)}})),
        )
        .await
        .unwrap();
    let refused = wait_loaded(&modules, "webapp", "False", "DigestMismatch").await;
    assert_eq!(refused.data["status"]["version"], "0.1.0+rev2");
    assert_eq!(
        condition(&refused, "Ready").unwrap()["reason"],
        "PreviousVersionRunning"
    );

    // Paused: the caches stay, no work is handed out; unpaused, it catches up.
    modules
        .patch(
            "webapp",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"source": from_url("/webapp-next.wasm", &next_sha), "paused": true}})),
        )
        .await
        .unwrap();
    let paused = wait_loaded(&modules, "webapp", "True", "Loaded").await;
    assert_eq!(condition(&paused, "Ready").unwrap()["reason"], "Paused");
    cluster
        .webapps()
        .create(&PostParams::default(), &app("later"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        get(&deployments, "later").await.is_none(),
        "a paused module reconciles nothing"
    );
    modules
        .patch(
            "webapp",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": false}})),
        )
        .await
        .unwrap();
    eventually("the unpaused module catches up", LONG, || async {
        get(&deployments, "later").await
    })
    .await;

    // Deleted: the controller stops.
    modules
        .delete("webapp", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the ReconcilerModule gone", LONG, || async {
        get(&modules, "webapp").await.is_none().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster
        .webapps()
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        get(&deployments, "shop").await.unwrap().data["spec"]["replicas"],
        1,
        "a removed module reconciles nothing"
    );
}

#[tokio::test]
async fn quarantine_and_counts_show_in_the_status() {
    let cluster = Cluster::start().await;
    let host = Host::start(
        &cluster,
        &[],
        &["--modules-from-cluster", "--quarantine-after", "3"],
    )
    .await;
    let modules = cluster.reconciler_modules();
    let module: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "bosun.dev/v1alpha1", "kind": "ReconcilerModule",
        "metadata": {"name": "misbehave"},
        "spec": {"source": {"file": {"path": guest("misbehave")}}, "timeoutMs": 200,
                 "permissions": permissions_with_namespaces(&guest("misbehave"), &["e2e"])}
    }))
    .unwrap();
    modules
        .create(&PostParams::default(), &module)
        .await
        .unwrap();
    wait_loaded(&modules, "misbehave", "True", "Loaded").await;
    cluster
        .misbehaves()
        .create(&PostParams::default(), &misbehave("spin", "loop"))
        .await
        .unwrap();
    let quarantined = eventually("quarantine in the status", LONG, || async {
        get(&modules, "misbehave")
            .await
            .filter(|m| m.data.pointer("/status/quarantined") == Some(&json!(true)))
    })
    .await;
    assert!(
        quarantined.data["status"]["traps"].as_u64().unwrap() >= 3,
        "{}",
        quarantined.data["status"]
    );
    assert!(quarantined.data["status"]["reconciles"].as_u64().unwrap() >= 3);
    assert_eq!(
        host.metric("bosun_module_quarantined{module=\"misbehave\"}")
            .await,
        1.0
    );
}
