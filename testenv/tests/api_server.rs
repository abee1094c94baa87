//! The behaviour bosun relies on, checked against the real kube-apiserver the
//! harness starts (one shared control plane for this test binary; each test
//! works in its own namespace). With `USE_EXISTING_CLUSTER=true` the same tests
//! run against the current kubeconfig's cluster.

mod common;

use std::time::Duration;

use common::{widget, widgets, within};
use futures::{StreamExt, TryStreamExt};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher::{self, Event};
use serde_json::json;

#[tokio::test]
async fn custom_object_is_created_and_seen_by_watches() {
    let Some((_client, api, _ns)) = widgets("custom_object_is_created_and_seen_by_watches").await
    else {
        return;
    };

    // A raw watch from the list's resourceVersion sees the creation as ADDED.
    let list = api
        .list(&ListParams::default())
        .await
        .expect("list widgets");
    let rv = list
        .metadata
        .resource_version
        .expect("list resourceVersion");
    let mut stream = api
        .watch(&WatchParams::default().timeout(30), &rv)
        .await
        .expect("start watch")
        .boxed();
    let created = api
        .create(&PostParams::default(), &widget("w1", json!({"size": 1})))
        .await
        .expect("create widget");
    assert!(created.metadata.uid.is_some());
    let added = within("ADDED event", 20, async {
        loop {
            match stream.try_next().await.expect("watch stream") {
                Some(WatchEvent::Added(obj)) if obj.metadata.name.as_deref() == Some("w1") => {
                    break obj;
                }
                Some(WatchEvent::Error(e)) => panic!("watch error: {e:?}"),
                Some(_) => continue,
                None => panic!("watch ended before ADDED"),
            }
        }
    })
    .await;
    assert_eq!(added.data["spec"]["size"], 1);

    // kube-runtime's watcher: after its initial list, a change arrives as Apply.
    let mut events = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    within("watcher InitDone", 20, async {
        loop {
            if let Event::InitDone = events
                .try_next()
                .await
                .expect("watcher")
                .expect("watcher ended")
            {
                break;
            }
        }
    })
    .await;
    api.patch(
        "w1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 2}})),
    )
    .await
    .expect("patch widget");
    within("watcher Apply with size 2", 20, async {
        loop {
            if let Event::Apply(obj) = events
                .try_next()
                .await
                .expect("watcher")
                .expect("watcher ended")
                && obj.data["spec"]["size"] == 2
            {
                assert_eq!(obj.metadata.generation, Some(2));
                break;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn schema_validation_rejects_invalid_objects() {
    let Some((_client, api, _ns)) = widgets("schema_validation_rejects_invalid_objects").await
    else {
        return;
    };
    let err = api
        .create(&PostParams::default(), &widget("bad", json!({"size": -1})))
        .await
        .expect_err("size below the schema minimum must be rejected");
    match err {
        kube::Error::Api(status) => assert_eq!(status.code, 422, "{status:?}"),
        other => panic!("expected 422 Invalid, got {other}"),
    }
}

#[tokio::test]
async fn server_side_apply_conflicts_between_field_managers() {
    let Some((_client, api, _ns)) =
        widgets("server_side_apply_conflicts_between_field_managers").await
    else {
        return;
    };
    let apply = |size: i64| {
        json!({
            "apiVersion": "testenv.bosun.dev/v1",
            "kind": "Widget",
            "metadata": {"name": "shared"},
            "spec": {"size": size},
        })
    };
    api.patch(
        "shared",
        &PatchParams::apply("alice"),
        &Patch::Apply(json!({
            "apiVersion": "testenv.bosun.dev/v1",
            "kind": "Widget",
            "metadata": {"name": "shared"},
            "spec": {"size": 1, "color": "red"},
        })),
    )
    .await
    .expect("alice applies");

    let err = api
        .patch(
            "shared",
            &PatchParams::apply("bob"),
            &Patch::Apply(apply(2)),
        )
        .await
        .expect_err("bob changing alice's field without force must conflict");
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 409, "{status:?}");
            assert_eq!(status.reason, "Conflict", "{status:?}");
            assert!(
                status.message.contains("alice"),
                "conflict names the owner: {}",
                status.message
            );
        }
        other => panic!("expected 409 Conflict, got {other}"),
    }

    let forced = api
        .patch(
            "shared",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(apply(2)),
        )
        .await
        .expect("bob forces");
    assert_eq!(forced.data["spec"]["size"], 2);
    assert_eq!(
        forced.data["spec"]["color"], "red",
        "alice still owns color"
    );
    let managers: Vec<String> = forced
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        managers.contains(&"alice".into()) && managers.contains(&"bob".into()),
        "{managers:?}"
    );
}

#[tokio::test]
async fn status_subresource_is_written_separately_from_spec() {
    let Some((_client, api, _ns)) =
        widgets("status_subresource_is_written_separately_from_spec").await
    else {
        return;
    };
    let created = api
        .create(&PostParams::default(), &widget("s1", json!({"size": 1})))
        .await
        .expect("create widget");
    assert_eq!(created.metadata.generation, Some(1));

    let with_status = api
        .patch_status(
            "s1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready", "observedGeneration": 1}})),
        )
        .await
        .expect("patch status");
    assert_eq!(with_status.data["status"]["phase"], "Ready");
    assert_eq!(
        with_status.metadata.generation,
        Some(1),
        "a status write does not bump generation"
    );

    // On the main resource, status is ignored and a spec change bumps generation.
    let patched = api
        .patch(
            "s1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 5}, "status": {"phase": "Hacked"}})),
        )
        .await
        .expect("patch spec");
    assert_eq!(patched.data["status"]["phase"], "Ready");
    assert_eq!(patched.metadata.generation, Some(2));

    // Server-side apply to the status subresource with its own field manager.
    let applied = api
        .patch_status(
            "s1",
            &PatchParams::apply("bosun/status").force(),
            &Patch::Apply(json!({
                "apiVersion": "testenv.bosun.dev/v1",
                "kind": "Widget",
                "metadata": {"name": "s1"},
                "status": {"phase": "Done", "observedGeneration": 2},
            })),
        )
        .await
        .expect("apply status");
    assert_eq!(applied.data["status"]["phase"], "Done");
    assert_eq!(applied.data["spec"]["size"], 5);
}

#[tokio::test]
async fn finalizer_holds_deletion_until_removed() {
    let Some((_client, api, _ns)) = widgets("finalizer_holds_deletion_until_removed").await else {
        return;
    };
    let mut obj = widget("f1", json!({"size": 1}));
    obj.metadata.finalizers = Some(vec!["testenv.bosun.dev/hold".into()]);
    api.create(&PostParams::default(), &obj)
        .await
        .expect("create widget");

    let deleted = api
        .delete("f1", &DeleteParams::default())
        .await
        .expect("delete");
    let pending = deleted
        .left()
        .expect("delete with a finalizer returns the object, not a Status");
    assert!(pending.metadata.deletion_timestamp.is_some());

    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = api
        .get("f1")
        .await
        .expect("object remains while the finalizer is set");
    assert!(still.metadata.deletion_timestamp.is_some());
    assert_eq!(
        still.metadata.finalizers.as_deref(),
        Some(&["testenv.bosun.dev/hold".to_string()][..])
    );

    // New finalizers cannot be added once deletion started; removing ours finishes it.
    api.patch(
        "f1",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("remove finalizer");
    within("the object to disappear", 10, async {
        while api.get_opt("f1").await.expect("get").is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn watch_from_a_stale_resource_version_is_gone() {
    let Some((_client, api, _ns)) = widgets("watch_from_a_stale_resource_version_is_gone").await
    else {
        return;
    };
    for i in 0..3 {
        api.create(
            &PostParams::default(),
            &widget(&format!("g{i}"), json!({"size": i})),
        )
        .await
        .expect("create widget");
    }
    // resourceVersion "1" predates everything in the watch cache's window; the
    // server answers 410 Gone (as an ERROR event, or as the response itself).
    let outcome = within("410 Gone", 20, async {
        match api.watch(&WatchParams::default().timeout(10), "1").await {
            Err(kube::Error::Api(status)) => status.code,
            Err(other) => panic!("unexpected error: {other}"),
            Ok(stream) => match stream.boxed().next().await {
                Some(Ok(WatchEvent::Error(status))) => status.code,
                Some(Err(kube::Error::Api(status))) => status.code,
                Some(Ok(event)) => panic!("expected 410, got {event:?}"),
                Some(Err(other)) => panic!("unexpected error: {other}"),
                None => panic!("watch ended without 410"),
            },
        }
    })
    .await;
    assert_eq!(outcome, 410);
}

#[tokio::test]
async fn kubectl_works_with_the_written_kubeconfig() {
    if common::skipped("kubectl_works_with_the_written_kubeconfig") {
        return;
    }
    let env = common::shared_env().await;
    let Some(kubeconfig) = env.kubeconfig_path() else {
        eprintln!(
            "kubectl_works_with_the_written_kubeconfig: skipped, no kubeconfig file for this cluster"
        );
        return;
    };
    let output = match std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["get", "namespaces", "-o", "name"])
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "kubectl_works_with_the_written_kubeconfig: skipped, kubectl is not installed"
            );
            return;
        }
        Err(e) => panic!("running kubectl: {e}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kubectl failed: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.lines().any(|l| l == "namespace/default"), "{stdout}");
}

#[tokio::test]
async fn crd_install_is_idempotent_and_reports_bad_manifests() {
    if common::skipped("crd_install_is_idempotent_and_reports_bad_manifests") {
        return;
    }
    let env = common::shared_env().await;
    let first = env
        .install_crds([bosun_testenv::CrdSource::yaml(common::WIDGET_CRD)])
        .await
        .expect("install");
    let again = env
        .install_crds([bosun_testenv::CrdSource::yaml(common::WIDGET_CRD)])
        .await
        .expect("install again");
    assert_eq!(first[0].metadata.name.as_deref(), Some(common::CRD_NAME));
    assert_eq!(first[0].metadata.uid, again[0].metadata.uid);

    let err = env
        .install_crds(["/nonexistent/crds.yaml"])
        .await
        .expect_err("a missing manifest is an error");
    assert!(err.to_string().contains("/nonexistent/crds.yaml"), "{err}");

    // Discovery serves the new resource to every client, not just the one that waited.
    let fresh = env.new_client().await.expect("new client");
    let resources = fresh
        .list_api_group_resources("testenv.bosun.dev/v1")
        .await
        .expect("discovery");
    assert!(resources.resources.iter().any(|r| r.name == "widgets"));
    let _: Api<kube::api::DynamicObject> = Api::all_with(fresh, &common::widget_resource());
}
