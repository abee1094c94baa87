//! The trust boundary, attacked from every side it has, on the real control
//! plane: hostile objects driving the shipped examples, hostile guests,
//! CRDs whose status has room for nothing the host adds, hostile
//! declarations and hostile ReconcilerModules, and a replica that loses its
//! lease mid-reconcile.
//!
//! Each test checks what a user would: the host stays up and keeps serving
//! the other modules; nothing outside the grant was written (bystanders'
//! resourceVersion, ownerReferences and field managers unchanged, read from
//! the API server); the reason is on the object (an event, the `Reconciled`
//! condition) or on the ReconcilerModule's status.
//!
//! Tests of module files share one control plane, each in a namespace of
//! its own with a host confined there by its grants; the tests of
//! ReconcilerModules and of leadership, which need the whole cluster, have
//! one each.

mod common;

use std::time::Duration;

use common::{
    Cluster, Host, eventually, fingerprint, get, guest, misbehave, permissions_of,
    permissions_with_namespaces, reconciled_condition, schedule_in, warning,
};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(60);

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).expect("an object")
}

fn webapp(name: &str) -> DynamicObject {
    object(json!({
        "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
        "metadata": {"name": name},
        "spec": {"image": "nginx", "replicas": 1, "port": 8080}
    }))
}

fn at(name: &str, schedule: &str) -> DynamicObject {
    object(json!({
        "apiVersion": "cnat.programming-kubernetes.info/v1alpha1", "kind": "At",
        "metadata": {"name": name},
        "spec": {"schedule": schedule, "command": "echo YAY"}
    }))
}

/// A ConfigMap `bystander` the module has no business with, and its
/// fingerprint to compare at the end.
async fn bystander_config_map(
    config_maps: &Api<DynamicObject>,
) -> (Option<String>, Value, Vec<String>) {
    config_maps
        .create(
            &PostParams::default(),
            &object(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "bystander"}, "data": {"mine": "yes"}})),
        )
        .await
        .unwrap();
    fingerprint(config_maps, "bystander").await
}

/// Waits for the host's `Reconciled=False` condition with `reason` on `name`.
async fn reconciled_false(api: &Api<DynamicObject>, name: &str, reason: &str) -> Value {
    eventually(
        &format!("Reconciled=False {reason} on {name}"),
        LONG,
        || async {
            get(api, name)
                .await
                .as_ref()
                .and_then(reconciled_condition)
                .filter(|c| c["status"] == "False" && c["reason"] == reason)
        },
    )
    .await
}

// ------------------------------------------------------------------------
// Hostile objects driving the shipped examples

#[tokio::test]
async fn a_webapp_named_like_the_clusters_own_service_takes_nothing_over() {
    // The API server's own Service is `kubernetes` in `default`: a WebApp
    // of that name wants a Service of that name.
    let cluster = Cluster::tenant("default").await;
    let host = Host::start_confined(&cluster, &["webapp"], &[]).await;
    let services = cluster.api("", "v1", "Service", "services");
    let before = fingerprint(&services, "kubernetes").await;
    let ports_before = get(&services, "kubernetes").await.unwrap().data["spec"]["ports"].clone();

    cluster
        .webapps()
        .create(&PostParams::default(), &webapp("kubernetes"))
        .await
        .unwrap();

    let condition = reconciled_false(&cluster.webapps(), "kubernetes", "ChildExists").await;
    let message = condition["message"].as_str().unwrap();
    assert!(
        message.contains("Service.v1 default/kubernetes already exists")
            && message.contains("not controlled by WebApp kubernetes"),
        "{message}"
    );
    warning(&cluster, "kubernetes", "ChildExists").await;
    // Retried with backoff, so a few more attempts pass; none may write.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        fingerprint(&services, "kubernetes").await,
        before,
        "the cluster's own Service was written"
    );
    assert_eq!(
        get(&services, "kubernetes").await.unwrap().data["spec"]["ports"],
        ports_before
    );
    let _ = cluster
        .webapps()
        .delete("kubernetes", &DeleteParams::default())
        .await;
    drop(host);
}

#[tokio::test]
async fn an_at_whose_pod_name_is_taken_says_so_and_leaves_the_pod() {
    let cluster = Cluster::tenant("adv-pod").await;
    let pods = cluster.api("", "v1", "Pod", "pods");
    pods.create(
        &PostParams::default(),
        &object(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "victim-pod", "labels": {"made": "by-hand"}},
            "spec": {"containers": [{"name": "mine", "image": "busybox"}]}})),
    )
    .await
    .unwrap();
    let before = fingerprint(&pods, "victim-pod").await;
    let host = Host::start_confined(&cluster, &["cnat"], &[]).await;
    cluster
        .ats()
        .create(&PostParams::default(), &at("victim", &schedule_in(0)))
        .await
        .unwrap();

    // The At's status now has conditions: the user sees why on the At.
    let condition = reconciled_false(&cluster.ats(), "victim", "ChildExists").await;
    assert!(
        condition["message"]
            .as_str()
            .unwrap()
            .contains("Pod.v1 adv-pod/victim-pod already exists"),
        "{condition}"
    );
    warning(&cluster, "victim", "ChildExists").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fingerprint(&pods, "victim-pod").await, before);
    // Backoff, not a loop every few seconds forever: 5 ms doubling.
    let refused = "bosun_write_failures_total{module=\"cnat\",reason=\"ChildExists\"}";
    let failures = host.metric(refused).await;
    assert!(
        (1.0..=15.0).contains(&failures),
        "{failures} refused writes"
    );
}

#[tokio::test]
async fn a_local_module_runs_only_under_a_grant_the_operator_gave() {
    let cluster = Cluster::tenant("adv-local").await;
    let grants = tempfile::tempdir().unwrap();
    // Grants for webapp only: cnat on the command line is refused, by name,
    // and the host does not start rather than run it with powers nobody gave.
    let webapp_grant = cluster.confined_grant("webapp", &grants.path().join("webapp.grant.json"));
    let mut refused = Host::spawn(&cluster, &["cnat"], &["--grant", &webapp_grant]);
    let started = std::time::Instant::now();
    while refused.is_running() {
        assert!(
            started.elapsed() < LONG,
            "a host with an ungranted module kept running; its log:\n{}",
            refused.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = refused.log();
    assert!(
        log.contains("module cnat declares more than it was granted"),
        "{log}"
    );
    assert!(log.contains("own Pod"), "{log}");

    // A modules directory: cnat beside its grant file runs; janitor, with
    // no grant file, is refused and the host carries on without it.
    let modules = tempfile::tempdir().unwrap();
    cluster.confined_grant("cnat", &modules.path().join("cnat.grant.yaml"));
    std::fs::copy(guest("cnat"), modules.path().join("cnat.wasm")).unwrap();
    std::fs::copy(guest("janitor"), modules.path().join("janitor.wasm")).unwrap();
    let host = Host::start(
        &cluster,
        &[],
        &[
            "--modules-dir",
            modules.path().to_str().unwrap(),
            "--grant",
            &webapp_grant,
        ],
    )
    .await;
    cluster
        .ats()
        .create(&PostParams::default(), &at("granted", &schedule_in(0)))
        .await
        .unwrap();
    eventually("the granted module reconciles", LONG, || async {
        get(&cluster.ats(), "granted")
            .await
            .filter(|at| at.data["status"]["phase"] == "RUNNING")
    })
    .await;
    eventually("janitor refused, by name", LONG, || async {
        let log = host.log();
        log.contains("module janitor declares more than it was granted")
            .then_some(())
    })
    .await;
    assert_eq!(host.get("/readyz").await.unwrap().0, 200, "{}", host.log());
}

#[tokio::test]
async fn a_bad_schedule_is_a_condition_and_an_event_and_no_failing_write() {
    a_bad_schedule_of("cnat", "adv-schedule").await;
}

/// The same with the Python cnat (`examples/cnat-python`), whose permanent
/// error crosses the boundary from Python.
#[tokio::test]
async fn a_bad_schedule_from_python_is_a_condition_and_an_event_too() {
    a_bad_schedule_of("cnat-python", "adv-schedule-py").await;
}

/// The same with the TypeScript cnat (`examples/cnat-typescript`), whose
/// permanent error crosses the boundary from QuickJS.
#[tokio::test]
async fn a_bad_schedule_from_typescript_is_a_condition_and_an_event_too() {
    a_bad_schedule_of("cnat-typescript", "adv-schedule-ts").await;
}

/// The same with the Go cnat (`examples/cnat-go`), whose permanent error
/// crosses the boundary through the Go SDK's hand-written glue.
#[tokio::test]
async fn a_bad_schedule_from_go_is_a_condition_and_an_event_too() {
    a_bad_schedule_of("cnat-go", "adv-schedule-go").await;
}

async fn a_bad_schedule_of(module: &str, tenant: &str) {
    let cluster = Cluster::tenant(tenant).await;
    let host = Host::start_confined(&cluster, &[module], &[]).await;
    cluster
        .ats()
        .create(&PostParams::default(), &at("typo", "tomorrow at noon"))
        .await
        .unwrap();
    let condition = reconciled_false(&cluster.ats(), "typo", "InvalidSchedule").await;
    assert!(condition["observedGeneration"] == 1, "{condition}");
    warning(&cluster, "typo", "InvalidSchedule").await;
    assert_eq!(
        host.metric("bosun_write_failures_total{module=\"cnat\",reason=\"StatusWriteFailed\"}")
            .await,
        0.0,
        "the condition fits the At's status"
    );
}

#[tokio::test]
async fn a_handmade_deployment_with_a_webapps_selector_is_not_taken_over() {
    let cluster = Cluster::tenant("adv-deploy").await;
    let deployments = cluster.api("apps", "v1", "Deployment", "deployments");
    let labels = json!({"app.kubernetes.io/name": "shop"});
    deployments
        .create(
            &PostParams {
                field_manager: Some("kubectl".into()),
                ..PostParams::default()
            },
            &object(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "shop", "labels": labels},
                "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels},
                        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}})),
        )
        .await
        .unwrap();
    let before = fingerprint(&deployments, "shop").await;
    let _host = Host::start_confined(&cluster, &["webapp"], &[]).await;
    let mut shop = webapp("shop");
    shop.data["spec"]["replicas"] = json!(5);
    cluster
        .webapps()
        .create(&PostParams::default(), &shop)
        .await
        .unwrap();
    reconciled_false(&cluster.webapps(), "shop", "ChildExists").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fingerprint(&deployments, "shop").await, before);
    let live = get(&deployments, "shop").await.unwrap();
    assert_eq!(live.data["spec"]["replicas"], 1);
    assert_eq!(
        live.data["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
}

// ------------------------------------------------------------------------
// Reference controllers against their own CRDs, which have no room for
// the host's observedGeneration or conditions

#[tokio::test]
async fn sample_controllers_foo_writes_its_status_and_leaves_a_foreign_deployment_alone() {
    let cluster = Cluster::tenant("adv-foo").await;
    let host = Host::start_confined(&cluster, &["samplecontroller"], &[]).await;
    let foos = cluster.api("samplecontroller.k8s.io", "v1alpha1", "Foo", "foos");
    let deployments = cluster.api("apps", "v1", "Deployment", "deployments");
    let foo = |name: &str, deployment: &str, replicas: i64| {
        object(
            json!({"apiVersion": "samplecontroller.k8s.io/v1alpha1", "kind": "Foo",
            "metadata": {"name": name},
            "spec": {"deploymentName": deployment, "replicas": replicas}}),
        )
    };
    foos.create(
        &PostParams::default(),
        &foo("example-foo", "example-foo", 1),
    )
    .await
    .unwrap();
    let created = eventually("the Foo's Deployment", LONG, || async {
        get(&deployments, "example-foo").await
    })
    .await;
    assert_eq!(created.data["spec"]["replicas"], 1);
    // The Deployment controller's part: a replica became available.
    deployments
        .patch_status(
            "example-foo",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"availableReplicas": 1, "readyReplicas": 1, "replicas": 1}}),
            ),
        )
        .await
        .unwrap();
    let reported = eventually("status.availableReplicas", LONG, || async {
        get(&foos, "example-foo")
            .await
            .filter(|f| f.data.pointer("/status/availableReplicas") == Some(&json!(1)))
    })
    .await;
    // Exactly the guest's status: nothing the schema has no room for.
    assert_eq!(reported.data["status"], json!({"availableReplicas": 1}));

    // sample-controller's own rule: a Deployment the Foo does not control
    // is left alone, with a Warning.
    deployments
        .create(
            &PostParams {
                field_manager: Some("kubectl".into()),
                ..PostParams::default()
            },
            &object(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "handmade"},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "nginx"}},
                    "template": {"metadata": {"labels": {"app": "nginx"}},
                        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}})),
        )
        .await
        .unwrap();
    let before = fingerprint(&deployments, "handmade").await;
    foos.create(&PostParams::default(), &foo("greedy", "handmade", 5))
        .await
        .unwrap();
    let note = warning(&cluster, "greedy", "ChildExists").await;
    assert!(note.contains("handmade already exists"), "{note}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fingerprint(&deployments, "handmade").await, before);
    let handmade = get(&deployments, "handmade").await.unwrap();
    assert_eq!(handmade.data["spec"]["replicas"], 1);
    assert_eq!(
        handmade.data["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    // No status write failed along the way (a 500 for a field the schema
    // lacks was the old behaviour, every time).
    assert_eq!(
        host.metric(
            "bosun_write_failures_total{module=\"samplecontroller\",reason=\"StatusWriteFailed\"}"
        )
        .await,
        0.0
    );
}

#[tokio::test]
async fn controller_rs_documents_keep_their_status_and_their_finalizer() {
    let cluster = Cluster::tenant("adv-docs").await;
    let host = Host::start_confined(&cluster, &["documents"], &[]).await;
    let docs = cluster.api("kube.rs", "v1", "Document", "documents");
    for i in 0..20 {
        docs.create(
            &PostParams::default(),
            &object(json!({"apiVersion": "kube.rs/v1", "kind": "Document",
                "metadata": {"name": format!("doc-{i}")},
                "spec": {"title": "Lorem", "hide": i % 2 == 0, "content": "ipsum"}})),
        )
        .await
        .unwrap();
    }
    for i in 0..20 {
        let name = format!("doc-{i}");
        let doc = eventually(&format!("{name}'s status"), LONG, || async {
            get(&docs, &name)
                .await
                .filter(|d| d.data.pointer("/status/hidden").is_some())
        })
        .await;
        assert_eq!(doc.data["status"], json!({"hidden": i % 2 == 0}), "{name}");
        assert_eq!(
            doc.metadata.finalizers.as_deref(),
            Some(&["documents.kube.rs".to_owned()][..]),
            "{name}: controller-rs's finalizer, as it is"
        );
    }
    assert_eq!(
        host.metric("controller_runtime_reconcile_errors_total{controller=\"documents\"}")
            .await,
        0.0,
        "no failed reconciles"
    );
    docs.delete("doc-3", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the Document gone after finalize", LONG, || async {
        get(&docs, "doc-3").await.is_none().then_some(())
    })
    .await;
}

// ------------------------------------------------------------------------
// Hostile guests

#[tokio::test]
async fn a_guest_blocked_in_a_wasi_call_holds_nothing_and_floods_are_refused() {
    let cluster = Cluster::tenant("adv-block").await;
    // The default deadline: building 100,000 children must fit in it on a
    // busy 2-core machine (at 500 ms the flood sometimes timed out before
    // its output could be refused), and the sleepers ask for 600 s.
    let host = Host::start_confined(&cluster, &["misbehave"], &["--timeout-ms", "2000"]).await;
    let misbehaves = cluster.misbehaves();
    let config_maps = cluster.config_maps();
    for (name, mode) in [
        ("sleepy", "sleep"),
        ("poller", "poll-far"),
        ("randoms", "random-flood"),
        ("crowd", "many-children"),
        ("chatty", "many-events"),
        ("logger", "many-logs"),
        ("clingy", "child-finalizer"),
    ] {
        let mut hostile = misbehave(name, mode);
        hostile.data["spec"]["seconds"] = json!(600);
        misbehaves
            .create(&PostParams::default(), &hostile)
            .await
            .unwrap();
    }
    // Meanwhile, honest work goes through.
    misbehaves
        .create(&PostParams::default(), &misbehave("honest", "ok"))
        .await
        .unwrap();
    eventually("the honest object's child", LONG, || async {
        get(&config_maps, "honest-child").await
    })
    .await;
    for (name, reason, says) in [
        ("sleepy", "Blocked", "waiting in a host call"),
        ("poller", "Blocked", "waiting in a host call"),
        ("randoms", "Trap", "exceeds limit"),
        ("crowd", "OutputTooLarge", "100000 children"),
        ("chatty", "OutputTooLarge", "100000 events"),
        (
            "clingy",
            "InvalidOutput",
            "children may not carry finalizers",
        ),
    ] {
        let note = warning(&cluster, name, reason).await;
        assert!(note.contains(says), "{name}: {note}");
    }
    // The log flood was cut, the call went on.
    eventually("the logger's child", LONG, || async {
        get(&config_maps, "logger-child").await
    })
    .await;
    for name in ["sleepy-child", "poller-child", "clingy-child", "crowd-0"] {
        assert!(
            get(&config_maps, name).await.is_none(),
            "{name} was written"
        );
    }
    let lines = host.log().matches("line ").count();
    assert!(lines <= 2 * 256 + 10, "{lines} guest log lines kept");
    assert!(host.log().contains("dropping the rest"));
}

#[tokio::test]
async fn a_write_the_api_server_refuses_is_reported_and_not_retried_in_a_loop() {
    let cluster = Cluster::tenant("adv-refused").await;
    let config_maps = cluster.config_maps();
    let bystander = bystander_config_map(&config_maps).await;
    let mut host = Host::start_confined(&cluster, &["misbehave"], &[]).await;
    let misbehaves = cluster.misbehaves();
    for (name, mode) in [
        ("refused", "invalid-child"),
        ("wordy", "long-error"),
        ("honest", "ok"),
    ] {
        misbehaves
            .create(&PostParams::default(), &misbehave(name, mode))
            .await
            .unwrap();
    }

    // The API server's 422, on the object, naming the child and the field.
    let condition = reconciled_false(&misbehaves, "refused", "ApplyFailed").await;
    let message = condition["message"].as_str().unwrap();
    assert!(
        message.contains("refused-child")
            && message.contains("is invalid")
            && message.contains("not a valid key!"),
        "{message}"
    );
    let note = warning(&cluster, "refused", "ApplyFailed").await;
    assert!(
        note.contains("refused-child") && note.contains("is invalid"),
        "{note}"
    );
    assert!(get(&config_maps, "refused-child").await.is_none());

    // A 1 MiB error message: still an Event the Events API accepts (its
    // note cut to 1 KiB) and the condition.
    let condition = reconciled_false(&misbehaves, "wordy", "Misbehave").await;
    let message = condition["message"].as_str().unwrap();
    assert!(
        message.starts_with("a very long story") && message.len() <= 8 << 10,
        "{} bytes",
        message.len()
    );
    let note = warning(&cluster, "wordy", "Misbehave").await;
    assert!(
        note.starts_with("a very long story") && note.len() <= 1024,
        "{} bytes: {note}",
        note.len()
    );

    // Meanwhile, honest work goes through.
    eventually("the honest object's child", LONG, || async {
        get(&config_maps, "honest-child").await
    })
    .await;

    // The same write would be refused again: not retried until the object
    // changes. Over ten seconds, no more attempts (a backoff loop would
    // make a dozen, a hot loop hundreds).
    let refusals = "bosun_write_failures_total{module=\"misbehave\",reason=\"ApplyFailed\"}";
    let errors = "controller_runtime_reconcile_total{controller=\"misbehave\",result=\"error\"}";
    let (refused_before, errors_before) = (host.metric(refusals).await, host.metric(errors).await);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (refused_after, errors_after) = (host.metric(refusals).await, host.metric(errors).await);
    assert!(
        (1.0..=3.0).contains(&refused_after),
        "{refused_after} refused writes in all"
    );
    assert!(
        refused_after - refused_before <= 1.0 && errors_after - errors_before <= 2.0,
        "retried in a loop: {} refused writes and {} failed reconciles in 10 s",
        refused_after - refused_before,
        errors_after - errors_before
    );
    assert!(
        errors_after <= 6.0,
        "{errors_after} failed reconciles in all"
    );

    // A new generation is tried again: fixed, it goes through and the
    // condition is gone.
    misbehaves
        .patch(
            "refused",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"mode": "ok"}})),
        )
        .await
        .unwrap();
    eventually("the fixed object's child", LONG, || async {
        get(&config_maps, "refused-child").await
    })
    .await;
    eventually("the Reconciled=False condition removed", LONG, || async {
        get(&misbehaves, "refused")
            .await
            .filter(|o| reconciled_condition(o).is_none())
    })
    .await;

    assert_eq!(
        fingerprint(&config_maps, "bystander").await,
        bystander,
        "the bystander was written"
    );
    assert!(host.is_running(), "the host stayed up:\n{}", host.log());
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            host.get(path).await.map(|(code, _)| code).ok(),
            Some(200),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_guest_whose_writes_trigger_itself_is_slowed_and_named() {
    let cluster = Cluster::tenant("adv-loop").await;
    let host = Host::start_confined(&cluster, &["misbehave"], &[]).await;
    let misbehaves = cluster.misbehaves();
    misbehaves
        .create(&PostParams::default(), &misbehave("ticker", "tick"))
        .await
        .unwrap();
    misbehaves
        .create(&PostParams::default(), &misbehave("eager", "zero-requeue"))
        .await
        .unwrap();
    let note = warning(&cluster, "ticker", "HotLoop").await;
    assert!(
        note.contains("each write brought the next reconcile"),
        "{note}"
    );
    let held = "bosun_hot_loop_holds_total{module=\"misbehave\"}";
    eventually("held reconciles counted", LONG, || async {
        (host.metric(held).await >= 1.0).then_some(())
    })
    .await;
    // Held back: a handful of writes over the next seconds, not the
    // hundreds a write-watch-reconcile loop makes.
    let requeues =
        "controller_runtime_reconcile_total{controller=\"misbehave\",result=\"requeue_after\"}";
    let eager_before = host.metric(requeues).await;
    let mut versions = std::collections::BTreeSet::new();
    for _ in 0..25 {
        if let Some(version) = get(&misbehaves, "ticker")
            .await
            .and_then(|o| o.metadata.resource_version)
        {
            versions.insert(version);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(versions.len() <= 6, "{} writes in 5 s", versions.len());
    // The requeue of 0 ms was raised to the floor (250 ms): about four a
    // second, not as fast as the host can go.
    let eager = host.metric(requeues).await - eager_before;
    assert!((2.0..=30.0).contains(&eager), "{eager} requeues in 5 s");
}

#[tokio::test]
async fn a_guest_cannot_take_over_a_bystander_or_reach_across_namespaces() {
    let cluster = Cluster::tenant("adv-reach").await;
    let elsewhere = Cluster::tenant("adv-reach-other").await;
    let config_maps = cluster.config_maps();
    let bystander = bystander_config_map(&config_maps).await;
    let host = Host::start_confined(&cluster, &["misbehave"], &[]).await;
    let mut grabby = misbehave("grabby", "named");
    grabby.data["spec"]["target"] = json!("bystander");
    cluster
        .misbehaves()
        .create(&PostParams::default(), &grabby)
        .await
        .unwrap();
    reconciled_false(&cluster.misbehaves(), "grabby", "ChildExists").await;
    assert_eq!(fingerprint(&config_maps, "bystander").await, bystander);

    // A look-alike in another namespace, controlled (by hand) by a primary
    // here and written under the module's own field manager: not a child,
    // so never pruned.
    let parent = cluster
        .misbehaves()
        .create(&PostParams::default(), &misbehave("parent", "ok"))
        .await
        .unwrap();
    eventually("the parent's child", LONG, || async {
        get(&config_maps, "parent-child").await
    })
    .await;
    let forged = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "parent-child", "ownerReferences": [{
            "apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave", "name": "parent",
            "uid": parent.metadata.uid.clone().unwrap(), "controller": true}]},
        "data": {"from": "elsewhere"}});
    elsewhere
        .config_maps()
        .patch(
            "parent-child",
            &PatchParams::apply("bosun/misbehave").force(),
            &Patch::Apply(&forged),
        )
        .await
        .unwrap();
    let look_alike = fingerprint(&elsewhere.config_maps(), "parent-child").await;
    cluster
        .misbehaves()
        .patch(
            "parent",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"mode": "none"}})),
        )
        .await
        .unwrap();
    eventually("the real child pruned", LONG, || async {
        get(&config_maps, "parent-child")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        fingerprint(&elsewhere.config_maps(), "parent-child").await,
        look_alike,
        "an object in another namespace was touched"
    );
    // Objects of the other namespace are outside this host's grant: not
    // reconciled at all.
    elsewhere
        .misbehaves()
        .create(&PostParams::default(), &misbehave("outside", "ok"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        get(&elsewhere.config_maps(), "outside-child")
            .await
            .is_none()
    );
    // Reads stay in the primary's namespace too: a list across namespaces
    // answers this one only, a get elsewhere is refused.
    for (tenant, name) in [(&cluster, "ours"), (&elsewhere, "theirs")] {
        tenant
            .config_maps()
            .create(
                &PostParams::default(),
                &object(json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "labels": {"team": "a"}}})),
            )
            .await
            .unwrap();
    }
    cluster
        .misbehaves()
        .create(&PostParams::default(), &misbehave("nosy", "read-around"))
        .await
        .unwrap();
    let nosy = eventually("what the nosy object read", LONG, || async {
        get(&cluster.misbehaves(), "nosy")
            .await
            .filter(|o| o.data.pointer("/status/listed").is_some())
    })
    .await;
    assert_eq!(nosy.data["status"]["listed"], json!(["adv-reach/ours"]));
    let answer = nosy.data["status"]["elsewhere"].as_str().unwrap();
    assert!(
        answer.starts_with("Err(") && answer.contains("outside this object's namespace"),
        "{answer}"
    );
    assert!(host.log().contains("grabby"));
}

#[tokio::test]
async fn one_tenants_objects_do_not_quarantine_a_module_everyone_shares() {
    let a = Cluster::tenant("adv-fair-a").await;
    let b = Cluster::tenant("adv-fair-b").await;
    // One host serving both tenants.
    let dir = tempfile::tempdir().unwrap();
    let grant = dir.path().join("misbehave.grant.json");
    let mut permissions = permissions_of(&guest("misbehave"));
    permissions["namespaces"] = json!([a.namespace, b.namespace]);
    std::fs::write(
        &grant,
        json!({"module": "misbehave", "permissions": permissions}).to_string(),
    )
    .unwrap();
    let host = Host::start(
        &a,
        &["misbehave"],
        &[
            "--grant",
            grant.to_str().unwrap(),
            "--quarantine-after",
            "3",
            "--timeout-ms",
            "200",
        ],
    )
    .await;
    let quarantined = "bosun_module_quarantined{module=\"misbehave\"}";
    // Tenant b is a tenant before tenant a's objects start trapping: the
    // test depends on no other test's objects.
    b.misbehaves()
        .create(&PostParams::default(), &misbehave("fine", "ok"))
        .await
        .unwrap();
    eventually("tenant b served", LONG, || async {
        get(&b.config_maps(), "fine-child").await
    })
    .await;
    for i in 0..3 {
        a.misbehaves()
            .create(
                &PostParams::default(),
                &misbehave(&format!("spin-{i}"), "loop"),
            )
            .await
            .unwrap();
    }
    let timeouts = "bosun_guest_traps_total{module=\"misbehave\",kind=\"Timeout\"}";
    eventually("tenant a's traps, many in a row", LONG, || async {
        (host.metric(timeouts).await >= 6.0).then_some(())
    })
    .await;
    assert_eq!(host.metric(quarantined).await, 0.0, "{}", host.log());
    b.misbehaves()
        .create(&PostParams::default(), &misbehave("still-fine", "ok"))
        .await
        .unwrap();
    eventually("tenant b still served", LONG, || async {
        get(&b.config_maps(), "still-fine-child").await
    })
    .await;
    assert_eq!(host.metric(quarantined).await, 0.0);
    // Broken for both tenants: now it is the module.
    b.misbehaves()
        .create(&PostParams::default(), &misbehave("spin-b", "loop"))
        .await
        .unwrap();
    eventually(
        "quarantined once both tenants' calls trap",
        LONG,
        || async { (host.metric(quarantined).await == 1.0).then_some(()) },
    )
    .await;
}

// ------------------------------------------------------------------------
// Hostile declarations and hostile ReconcilerModules

fn reconciler_module(name: &str, spec: Value) -> DynamicObject {
    object(json!({
        "apiVersion": "bosun.dev/v1alpha1", "kind": "ReconcilerModule",
        "metadata": {"name": name}, "spec": spec
    }))
}

fn variant(declares: &str) -> String {
    bosun_testenv::guests::misbehave_declaring(declares)
        .expect("the misbehave variant")
        .display()
        .to_string()
}

/// The `Loaded` condition's message, once it says `reason`.
async fn refused(modules: &Api<DynamicObject>, name: &str, reason: &str) -> String {
    let module = common::wait_loaded(modules, name, "False", reason).await;
    common::condition(&module, "Loaded").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn hostile_declarations_and_reconciler_modules_are_refused_one_by_one() {
    use common::{Answer, serve, sha256};
    let cluster = Cluster::start().await;
    let mut host = Host::start(&cluster, &[], &["--modules-from-cluster"]).await;
    let modules = cluster.reconciler_modules();
    let create = |name: &str, spec: Value| {
        let modules = modules.clone();
        let module = reconciler_module(name, spec);
        async move {
            modules
                .create(&PostParams::default(), &module)
                .await
                .expect("create the ReconcilerModule")
        }
    };
    let file = |path: &str| json!({"file": {"path": path}});
    // Modules that load serve this test's namespace only: the control
    // plane is shared with the other tests of this file.
    let here = |module: &str| permissions_with_namespaces(module, &[&cluster.namespace]);

    // A bystander Pod, and the honest module every refusal must leave alone.
    let pods = cluster.api("", "v1", "Pod", "pods");
    pods.create(
        &PostParams::default(),
        &object(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bystander"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        ),
    )
    .await
    .unwrap();
    let bystander = fingerprint(&pods, "bystander").await;
    create(
        "misbehave",
        json!({"source": file(&guest("misbehave")), "permissions": here(&guest("misbehave"))}),
    )
    .await;
    common::wait_loaded(&modules, "misbehave", "True", "Loaded").await;

    // Kinds the API server contradicts, granted in full: refused all the
    // same, by discovery.
    for (declares, says) in [
        (
            "plural",
            "plural \"secrets\", but the API server serves it with plural \"configmaps\"",
        ),
        (
            "scope",
            "scope \"cluster\", but the API server serves it with scope \"namespaced\"",
        ),
        ("unknown", "which the API server does not serve"),
    ] {
        let path = variant(declares);
        create(
            &format!("declares-{declares}"),
            json!({"source": file(&path), "permissions": permissions_of(&path)}),
        )
        .await;
        let message = refused(&modules, &format!("declares-{declares}"), "KindMismatch").await;
        assert!(message.contains(says), "{declares}: {message}");
    }

    // Every Pod of the cluster, with a finalizer, and no grant for it.
    create("pods", json!({"source": file(&variant("pods"))})).await;
    let message = refused(&modules, "pods", "PermissionDenied").await;
    for missing in ["reconcile Pod", "hold finalizer example.com/hold"] {
        assert!(message.contains(missing), "{message}");
    }
    // Granting it the Pods but not its finalizer is not enough either.
    modules
        .patch(
            "pods",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"permissions": {"reconciles": {"kind": "Pod"}}}})),
        )
        .await
        .unwrap();
    let message = refused(&modules, "pods", "PermissionDenied").await;
    assert!(
        !message.contains("reconcile Pod") && message.contains("hold finalizer"),
        "{message}"
    );

    // A version longer than any status can hold: refused, and the refusal
    // itself fits the status (a 32 KiB version quoted whole made every
    // status write fail, and the status froze).
    create(
        "long-version",
        json!({"source": file(&variant("long-version"))}),
    )
    .await;
    let message = refused(&modules, "long-version", "LoadFailed").await;
    assert!(
        message.contains("must be at most 128 bytes") && message.len() < 1024,
        "{} bytes: {}",
        message.len(),
        &message[..message.len().min(300)]
    );

    // A second module for misbehave's kind.
    let twin = variant("twin");
    create(
        "twin",
        json!({"source": file(&twin), "permissions": here(&twin)}),
    )
    .await;
    let message = refused(&modules, "twin", "Conflict").await;
    assert!(message.contains("module misbehave"), "{message}");
    // Refused for a cause outside its spec, it would wait for the kind and
    // take it over once misbehave stops (below): removed, as its operator
    // would.
    modules
        .delete("twin", &DeleteParams::default())
        .await
        .unwrap();

    // A module whose children would be the objects it reconciles, granted
    // all it asks for: refused at load.
    let mut owns_itself = permissions_of(&guest("misbehave"));
    owns_itself["owns"]
        .as_array_mut()
        .unwrap()
        .push(json!({"group": "tests.bosun.dev", "kind": "Misbehave"}));
    create(
        "owns-itself",
        json!({"source": file(&variant("owns-itself")), "permissions": owns_itself}),
    )
    .await;
    let message = refused(&modules, "owns-itself", "LoadFailed").await;
    assert!(
        message.contains("cannot own its own primary kind"),
        "{message}"
    );

    // Two modules of different kinds holding one finalizer: the second is
    // refused, told who holds it.
    let holder = variant("finalizer");
    create(
        "holder",
        json!({"source": file(&holder), "permissions": here(&holder)}),
    )
    .await;
    common::wait_loaded(&modules, "holder", "True", "Loaded").await;
    let holder_twin = variant("finalizer-twin");
    create(
        "holder-twin",
        json!({"source": file(&holder_twin), "permissions": here(&holder_twin)}),
    )
    .await;
    let message = refused(&modules, "holder-twin", "Conflict").await;
    assert!(
        message.contains("finalizer tests.bosun.dev/hold") && message.contains("module holder "),
        "{message}"
    );

    // Reading a cluster-scoped kind, granted everything but clusterScoped.
    let read_cluster = variant("read-cluster");
    let mut confined = permissions_of(&read_cluster);
    confined["clusterScoped"] = json!(false);
    create(
        "read-cluster",
        json!({"source": file(&read_cluster), "permissions": confined}),
    )
    .await;
    let message = refused(&modules, "read-cluster", "PermissionDenied").await;
    assert!(
        message.contains("clusterScoped (for Namespace)"),
        "{message}"
    );

    // HTTP grants the CRD's schema admits but the host will not read: each
    // refused alone, by name, and the watch goes on (cnat, created after
    // them below, loads).
    for (name, origin, says) in [
        (
            "grants-ip-wildcard",
            "http://*.10.0.0.1",
            "a wildcard cannot cover IP addresses",
        ),
        (
            "grants-tld-wildcard",
            "https://*.com",
            "not a whole top-level domain",
        ),
        (
            "grants-bad-port",
            "http://dns.example:99999",
            "the port is not a number from 1 to 65535",
        ),
    ] {
        let mut permissions = here(&guest("cnat"));
        permissions["http"] = json!([{"origin": origin}]);
        create(
            name,
            json!({"source": file(&guest("cnat")), "permissions": permissions}),
        )
        .await;
        let message = refused(&modules, name, "InvalidSpec").await;
        assert!(message.contains(says), "{name}: {message}");
    }

    // Sources that would make the host a probe, or stall it.
    let cnat = std::fs::read(guest("cnat")).unwrap();
    let elsewhere = serve(vec![("/cnat.wasm", Answer::Bytes(cnat.clone()))]).await;
    let port = serve(vec![
        (
            "/away.wasm",
            Answer::Redirect(format!("http://127.0.0.1:{elsewhere}/cnat.wasm")),
        ),
        (
            "/tampered.wasm",
            Answer::Bytes(b"\0asm not cnat at all".to_vec()),
        ),
        ("/stuck.wasm", Answer::Silent),
    ])
    .await;
    let url = |path: &str| json!({"url": {"url": format!("http://127.0.0.1:{port}{path}"), "sha256": sha256(&cnat)}});
    let cnat_grant = here(&guest("cnat"));
    create(
        "stuck",
        json!({"source": url("/stuck.wasm"), "permissions": cnat_grant}),
    )
    .await;
    create(
        "cnat",
        json!({"source": file(&guest("cnat")), "permissions": cnat_grant}),
    )
    .await;
    common::wait_loaded(&modules, "cnat", "True", "Loaded").await;
    assert!(
        common::condition(&get(&modules, "stuck").await.unwrap(), "Loaded").is_none(),
        "cnat loaded while the stuck download was still waiting"
    );
    modules
        .delete("stuck", &DeleteParams::default())
        .await
        .unwrap();
    create(
        "redirected",
        json!({"source": url("/away.wasm"), "permissions": cnat_grant}),
    )
    .await;
    let message = refused(&modules, "redirected", "FetchFailed").await;
    assert!(
        !message.contains("302") && !message.contains(&elsewhere.to_string()),
        "{message}"
    );
    create(
        "tampered",
        json!({"source": url("/tampered.wasm"), "permissions": cnat_grant}),
    )
    .await;
    let message = refused(&modules, "tampered", "DigestMismatch").await;
    assert!(
        !message.contains(&sha256(b"\0asm not cnat at all")),
        "{message}"
    );
    let bundle = object(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "bundle"},
        "binaryData": {"m.wasm": "AGFzbQ0AAQA="}}));
    cluster
        .config_maps()
        .create(&PostParams::default(), &bundle)
        .await
        .unwrap();
    create(
        "pinned",
        json!({"source": {"configMap": {"namespace": "e2e", "name": "bundle", "key": "m.wasm", "sha256": sha256(&cnat)}}, "permissions": cnat_grant}),
    )
    .await;
    refused(&modules, "pinned", "DigestMismatch").await;

    // Through all of it, the honest module kept working.
    cluster
        .misbehaves()
        .create(&PostParams::default(), &misbehave("steady", "ok"))
        .await
        .unwrap();
    eventually("misbehave still reconciles", LONG, || async {
        get(&cluster.config_maps(), "steady-child").await
    })
    .await;
    assert_eq!(
        fingerprint(&pods, "bystander").await,
        bystander,
        "the bystander Pod was written"
    );

    // A withdrawn grant takes effect: the module stops.
    modules
        .patch(
            "misbehave",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"permissions": null}})),
        )
        .await
        .unwrap();
    refused(&modules, "misbehave", "PermissionDenied").await;
    let stopped = get(&modules, "misbehave").await.unwrap();
    assert_eq!(
        common::condition(&stopped, "Ready").unwrap()["status"],
        "False"
    );
    cluster
        .misbehaves()
        .create(&PostParams::default(), &misbehave("after", "ok"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(get(&cluster.config_maps(), "after-child").await.is_none());

    assert!(host.is_running(), "the host stayed up:\n{}", host.log());
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            host.get(path).await.map(|(code, _)| code).ok(),
            Some(200),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_component_too_costly_to_compile_is_refused_and_the_host_keeps_reconciling() {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::ConfigMap;
    let cluster = Cluster::start().await;
    // A cache of its own: the refusal is remembered there, and the second
    // host below must find this test's, not an earlier run's.
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().display().to_string();
    let flags = [
        "--modules-from-cluster",
        "--cache-dir",
        &cache_dir,
        "--compile-cpu-limit",
        "4s",
    ];
    let mut host = Host::start(&cluster, &[], &flags).await;
    let modules = cluster.reconciler_modules();
    let create = |name: &str, spec: Value| {
        let modules = modules.clone();
        let module = reconciler_module(name, spec);
        async move {
            modules
                .create(&PostParams::default(), &module)
                .await
                .expect("create the ReconcilerModule")
        }
    };
    let grant = permissions_with_namespaces(&guest("cnat"), &[&cluster.namespace]);
    create(
        "cnat",
        json!({"source": {"file": {"path": guest("cnat")}}, "permissions": grant}),
    )
    .await;
    common::wait_loaded(&modules, "cnat", "True", "Loaded").await;

    // One function of 20,000 live values: 151 KB, about 14 s of one core
    // to compile (debug build) — far past the 4 s this host allows.
    let hostile = bosun_testenv::hostile::component(1, 20_000, 1);
    let bundle = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("hostile".into()),
            ..Default::default()
        },
        binary_data: Some(std::collections::BTreeMap::from([(
            "slow.wasm".to_owned(),
            ByteString(hostile),
        )])),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(cluster.client.clone(), &cluster.namespace)
        .create(&PostParams::default(), &bundle)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    create(
        "slow",
        json!({"source": {"configMap": {"namespace": cluster.namespace, "name": "hostile", "key": "slow.wasm"}}, "permissions": grant}),
    )
    .await;
    // While it compiles, cnat reconciles a new object.
    let pods = cluster.api("", "v1", "Pod", "pods");
    cluster
        .ats()
        .create(&PostParams::default(), &at("during", &schedule_in(-5)))
        .await
        .unwrap();
    eventually("cnat reconciles during the compile", LONG, || async {
        get(&pods, "during-pod").await
    })
    .await;
    let reconciled_after = started.elapsed();
    let message = refused(&modules, "slow", "CompileLimit").await;
    let refused_after = started.elapsed();
    println!(
        "the hostile ReconcilerModule was refused after {refused_after:.1?}; cnat's Pod came {reconciled_after:.1?} after it was created"
    );
    assert!(
        message.contains("more than its 4 s of CPU time")
            && message.contains("--compile-cpu-limit"),
        "{message}"
    );
    assert_eq!(
        common::condition(&get(&modules, "slow").await.unwrap(), "Ready").unwrap()["reason"],
        "NotLoaded"
    );
    assert!(host.is_running(), "the host stayed up:\n{}", host.log());
    assert!(
        host.log().contains("CompileLimit"),
        "the host's log says why:\n{}",
        host.log()
    );

    // A restarted host refuses it from the remembered refusal, without
    // compiling it again, and runs cnat.
    host.terminate();
    let host = Host::start(&cluster, &[], &flags).await;
    eventually("the restarted host remembers the refusal", LONG, || async {
        let module = get(&modules, "slow").await?;
        let loaded = common::condition(&module, "Loaded")?;
        (host
            .log()
            .contains("not compiling a component refused before")
            && loaded["reason"] == "CompileLimit")
            .then_some(())
    })
    .await;
    cluster
        .ats()
        .create(&PostParams::default(), &at("after", &schedule_in(-5)))
        .await
        .unwrap();
    eventually("cnat reconciles after the restart", LONG, || async {
        get(&pods, "after-pod").await
    })
    .await;
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            host.get(path).await.map(|(code, _)| code).ok(),
            Some(200),
            "{path}"
        );
    }
}

// ------------------------------------------------------------------------
// Leadership

#[tokio::test]
async fn a_replica_that_loses_its_lease_writes_nothing_more() {
    let cluster = Cluster::start().await;
    let flags = [
        "--leader-elect",
        "--leader-election-namespace",
        "e2e",
        "--lease-duration",
        "4s",
        "--renew-deadline",
        "3s",
        "--retry-period",
        "300ms",
        "--timeout-ms",
        "5000",
    ];
    let mut leader = Host::start(&cluster, &["misbehave"], &flags).await;
    eventually("leading", LONG, || async {
        leader.log().contains("became the leader").then_some(())
    })
    .await;
    // A reconcile that will be in flight when the lease is gone: it sleeps
    // three seconds, then wants its child.
    let mut sleeper = misbehave("sleeper", "sleep");
    sleeper.data["spec"]["seconds"] = json!(3);
    cluster
        .misbehaves()
        .create(&PostParams::default(), &sleeper)
        .await
        .unwrap();
    let active = "controller_runtime_active_workers{controller=\"misbehave\"}";
    eventually("the reconcile in flight", LONG, || async {
        (leader.metric(active).await >= 1.0).then_some(())
    })
    .await;
    // Another replica takes the lease (as one would once it expired).
    let leases =
        Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(cluster.client.clone(), "e2e");
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    leases
        .patch(
            "bosun-leader",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holderIdentity": "another-replica",
                "acquireTime": now, "renewTime": now, "leaseDurationSeconds": 3600}})),
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while leader.is_running() {
        assert!(
            started.elapsed() < LONG,
            "the old leader did not stop:\n{}",
            leader.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = leader.log();
    assert!(log.contains("lost the leader lease"), "{log}");
    assert!(
        log.contains("this host no longer leads"),
        "the reconcile in flight tried to write and was stopped:\n{log}"
    );
    // Its reconcile finished after the loss: what it wanted was not written.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        get(&cluster.config_maps(), "sleeper-child").await.is_none(),
        "a replica that lost its lease wrote:\n{log}"
    );
}
