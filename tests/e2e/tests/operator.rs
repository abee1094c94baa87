//! `bosun run` end to end: the real binary, the example components, a real
//! kube-apiserver + etcd per test. There is no kubelet and no
//! controller-manager: the tests play the kubelet (pod status) and the
//! Deployment controller (deployment status) where a scenario needs it.

mod common;

use std::time::Duration;

use common::{Cluster, Host, eventually, get, misbehave, schedule_in};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(60);

fn at(name: &str, schedule: &str) -> kube::api::DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "cnat.programming-kubernetes.info/v1alpha1", "kind": "At",
        "metadata": {"name": name},
        "spec": {"schedule": schedule, "command": "echo YAY"}
    }))
    .unwrap()
}

fn phase(object: &kube::api::DynamicObject) -> Option<String> {
    object
        .data
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

async fn wait_phase(cluster: &Cluster, name: &str, want: &str) -> kube::api::DynamicObject {
    let ats = cluster.ats();
    eventually(&format!("At {name} in phase {want}"), LONG, || async {
        get(&ats, name)
            .await
            .filter(|at| phase(at).as_deref() == Some(want))
    })
    .await
}

#[tokio::test]
async fn cnat_whole_life() {
    cnat_whole_life_of("cnat").await;
}

/// The same scenario with the Python cnat (`examples/cnat-python`, built
/// with the Python SDK): one module, two languages, one behaviour.
#[tokio::test]
async fn cnat_python_whole_life() {
    cnat_whole_life_of("cnat-python").await;
}

/// The same scenario with the TypeScript cnat (`examples/cnat-typescript`,
/// built with the TypeScript SDK on QuickJS).
#[tokio::test]
async fn cnat_typescript_whole_life() {
    cnat_whole_life_of("cnat-typescript").await;
}

/// The same scenario with the Go cnat (`examples/cnat-go`, built with the
/// Go SDK by mainline Go and the WASI preview1 reactor adapter).
#[tokio::test]
async fn cnat_go_whole_life() {
    cnat_whole_life_of("cnat-go").await;
}

/// cnat's whole life, with `module` (a guest package whose module is named
/// `cnat`) reconciling: PENDING, the Pod at the schedule, RUNNING, DONE,
/// converged, and the Pod owned for deletion.
async fn cnat_whole_life_of(module: &str) {
    let cluster = Cluster::start().await;
    let host = Host::start(&cluster, &[module], &["--resync", "1s"]).await;
    // Ready means running: a Python component's first compile takes tens
    // of seconds here, and /readyz must not pass before it is done and the
    // controller runs (it did, once: the At then met no controller).
    assert!(
        host.log().contains("starting controller module=cnat"),
        "/readyz passed before the controller started:\n{}",
        host.log()
    );
    let (ats, pods) = (
        cluster.ats(),
        Api::<Pod>::namespaced(cluster.client.clone(), &cluster.namespace),
    );

    let schedule = schedule_in(8);
    let created = ats
        .create(&PostParams::default(), &at("hello", &schedule))
        .await
        .unwrap();
    wait_phase(&cluster, "hello", "PENDING").await;
    assert!(
        pods.get_opt("hello-pod").await.unwrap().is_none(),
        "no pod before the schedule"
    );

    let pod = eventually("the pod", LONG, || async {
        pods.get_opt("hello-pod").await.unwrap()
    })
    .await;
    let created_at = pod.metadata.creation_timestamp.clone().unwrap().0;
    let due: jiff::Timestamp = schedule.parse().unwrap();
    assert!(
        created_at >= due,
        "pod created at {created_at}, before the schedule {due}"
    );
    assert_eq!(pod.metadata.labels.as_ref().unwrap()["app"], "hello");
    let spec = pod.spec.clone().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("OnFailure"));
    assert_eq!(spec.containers.len(), 1);
    assert_eq!(spec.containers[0].name, "busybox");
    assert_eq!(spec.containers[0].image.as_deref(), Some("busybox"));
    assert_eq!(
        spec.containers[0].command,
        Some(vec!["echo".to_owned(), "YAY".to_owned()])
    );
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("At", "hello"));
    assert_eq!(Some(&owner.uid), created.metadata.uid.as_ref());
    assert_eq!(owner.controller, Some(true));
    wait_phase(&cluster, "hello", "RUNNING").await;

    // The kubelet's part: the pod ran and succeeded.
    pods.patch_status(
        "hello-pod",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
    )
    .await
    .unwrap();
    let done = wait_phase(&cluster, "hello", "DONE").await;

    // Converged: resyncs every second reconcile again, and write nothing.
    let pod_version = pods
        .get("hello-pod")
        .await
        .unwrap()
        .metadata
        .resource_version;
    let successes = "controller_runtime_reconcile_total{controller=\"cnat\",result=\"success\"}";
    let before = host.metric(successes).await;
    eventually("three more reconciles", LONG, || async {
        (host.metric(successes).await >= before + 3.0).then_some(())
    })
    .await;
    assert_eq!(
        get(&ats, "hello").await.unwrap().metadata.resource_version,
        done.metadata.resource_version,
        "no write to the At"
    );
    assert_eq!(
        pods.get("hello-pod")
            .await
            .unwrap()
            .metadata
            .resource_version,
        pod_version,
        "no write to the pod"
    );

    // No garbage collector runs here; what makes the pod go with its At is
    // the ownerReference, with blockOwnerDeletion.
    ats.delete("hello", &DeleteParams::default()).await.unwrap();
    let pod = pods.get("hello-pod").await.unwrap();
    let owner = &pod.metadata.owner_references.unwrap()[0];
    assert_eq!(owner.block_owner_deletion, Some(true));
}

#[tokio::test]
async fn webapp_whole_life_with_pruning() {
    let cluster = Cluster::start().await;
    let _host = Host::start(&cluster, &["webapp"], &[]).await;
    let apps = cluster.webapps();
    let deployments = cluster.api("apps", "v1", "Deployment", "deployments");
    let services = cluster.api("", "v1", "Service", "services");
    let app: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
        "metadata": {"name": "shop"},
        "spec": {"image": "nginx:1.27", "replicas": 2, "port": 8080}
    }))
    .unwrap();
    apps.create(&PostParams::default(), &app).await.unwrap();

    let deployment = eventually("the Deployment", LONG, || async {
        get(&deployments, "shop").await
    })
    .await;
    assert_eq!(deployment.data["spec"]["replicas"], 2);
    let service = eventually("the Service", LONG, || async {
        get(&services, "shop").await
    })
    .await;
    assert_eq!(service.data["spec"]["ports"][0]["port"], 8080);
    let not_ready = eventually("a Ready=False condition", LONG, || async {
        get(&apps, "shop")
            .await
            .filter(|a| a.data.pointer("/status/conditions/0/status") == Some(&json!("False")))
    })
    .await;
    assert_eq!(not_ready.data["status"]["observedGeneration"], 1);

    // The Deployment controller's part: the replicas became ready.
    deployments
        .patch_status(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 2, "readyReplicas": 2}})),
        )
        .await
        .unwrap();
    let ready = eventually("Ready=True", LONG, || async {
        get(&apps, "shop")
            .await
            .filter(|a| a.data.pointer("/status/conditions/0/status") == Some(&json!("True")))
    })
    .await;
    assert_eq!(ready.data["status"]["readyReplicas"], 2);

    // The spec shrinks: the Service is no longer desired and is pruned.
    apps.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"port": null}})),
    )
    .await
    .unwrap();
    eventually("the Service pruned", LONG, || async {
        get(&services, "shop").await.is_none().then_some(())
    })
    .await;
    assert!(
        get(&deployments, "shop").await.is_some(),
        "the Deployment stays"
    );
}

#[tokio::test]
async fn guest_errors_back_off_and_show_in_metrics() {
    let cluster = Cluster::start().await;
    let host = Host::start(&cluster, &["misbehave"], &[]).await;
    cluster
        .misbehaves()
        .create(&PostParams::default(), &misbehave("flaky", "retry"))
        .await
        .unwrap();
    eventually("retries counted", LONG, || async {
        (host
            .metric("workqueue_retries_total{name=\"misbehave\"}")
            .await
            >= 3.0)
            .then_some(())
    })
    .await;
    assert!(
        host.metric("controller_runtime_reconcile_errors_total{controller=\"misbehave\"}")
            .await
            >= 3.0
    );
    // Backoff, not a hot loop: 5 ms doubling reaches seconds within a dozen tries.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let retries = host
        .metric("workqueue_retries_total{name=\"misbehave\"}")
        .await;
    assert!(
        retries < 15.0,
        "{retries} retries in a few seconds is no backoff"
    );
}

#[tokio::test]
async fn a_looping_guest_does_not_stop_another_module() {
    let cluster = Cluster::start().await;
    let host = Host::start(&cluster, &["misbehave", "cnat"], &["--timeout-ms", "300"]).await;
    for i in 0..4 {
        cluster
            .misbehaves()
            .create(
                &PostParams::default(),
                &misbehave(&format!("spin-{i}"), "loop"),
            )
            .await
            .unwrap();
    }
    cluster
        .ats()
        .create(&PostParams::default(), &at("meanwhile", &schedule_in(0)))
        .await
        .unwrap();
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), &cluster.namespace);
    eventually("cnat's pod", LONG, || async {
        pods.get_opt("meanwhile-pod").await.unwrap()
    })
    .await;
    eventually("timeouts counted", LONG, || async {
        (host
            .metric("bosun_guest_traps_total{module=\"misbehave\",kind=\"Timeout\"}")
            .await
            >= 1.0)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_guest_cannot_write_or_prune_what_it_does_not_own() {
    let cluster = Cluster::start().await;
    let host = Host::start(&cluster, &["misbehave"], &[]).await;
    let config_maps = cluster.api("", "v1", "ConfigMap", "configmaps");
    let secrets = cluster.api("", "v1", "Secret", "secrets");
    for (name, mode) in [
        ("trespass", "trespass"),
        ("escape", "other-namespace"),
        ("forger", "forge-owner"),
    ] {
        cluster
            .misbehaves()
            .create(&PostParams::default(), &misbehave(name, mode))
            .await
            .unwrap();
    }
    eventually("each bad output refused", LONG, || async {
        (host
            .metric("bosun_guest_traps_total{module=\"misbehave\",kind=\"InvalidOutput\"}")
            .await
            >= 3.0)
            .then_some(())
    })
    .await;
    assert!(
        get(&secrets, "trespass-stolen").await.is_none(),
        "no undeclared Secret"
    );
    let kube_system = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(
        cluster.client.clone(),
        "kube-system",
    );
    assert!(
        kube_system.get_opt("escape-child").await.unwrap().is_none(),
        "nothing outside the namespace"
    );
    assert!(
        get(&config_maps, "forger-child").await.is_none(),
        "nothing with a forged owner"
    );

    // Pruning: only what this module applied goes, never a look-alike.
    let parent = cluster
        .misbehaves()
        .create(&PostParams::default(), &misbehave("parent", "ok"))
        .await
        .unwrap();
    eventually("the applied child", LONG, || async {
        get(&config_maps, "parent-child").await
    })
    .await;
    let look_alike = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "parent-hand-made", "ownerReferences": [{
            "apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave", "name": "parent",
            "uid": parent.metadata.uid.clone().unwrap(), "controller": true
        }]}
    });
    config_maps
        .create(
            &PostParams {
                field_manager: Some("someone-else".into()),
                ..Default::default()
            },
            &serde_json::from_value(look_alike).unwrap(),
        )
        .await
        .unwrap();
    cluster
        .misbehaves()
        .patch(
            "parent",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"mode": "none"}})),
        )
        .await
        .unwrap();
    eventually("the applied child pruned", LONG, || async {
        get(&config_maps, "parent-child")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        get(&config_maps, "parent-hand-made").await.is_some(),
        "a child this module did not apply is never pruned"
    );
}

#[tokio::test]
async fn leader_failover() {
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
        "500ms",
    ];
    let mut hosts = [
        Host::start(&cluster, &["cnat"], &flags).await,
        Host::start(&cluster, &["cnat"], &flags).await,
    ];
    let leads = |host: &Host| host.log().contains("became the leader");
    let leader = eventually("a leader", LONG, || async { hosts.iter().position(leads) }).await;
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), &cluster.namespace);
    cluster
        .ats()
        .create(&PostParams::default(), &at("first", &schedule_in(0)))
        .await
        .unwrap();
    eventually("the leader reconciles", LONG, || async {
        pods.get_opt("first-pod").await.unwrap()
    })
    .await;
    let follower = 1 - leader;
    assert!(!leads(&hosts[follower]), "only one leader");
    // Ready while standing by, or a two-replica Deployment never rolls out.
    let (status, body) = hosts[follower].get("/readyz").await.unwrap();
    assert_eq!(status, 200, "the standby is ready: {body}");
    let follower_reconciles = hosts[follower]
        .metric("controller_runtime_reconcile_total{controller=\"cnat\",result=\"success\"}")
        .await;
    assert_eq!(follower_reconciles, 0.0, "the follower does not reconcile");

    hosts[leader].kill();
    let killed = std::time::Instant::now();
    eventually(
        "the follower takes over",
        Duration::from_secs(30),
        || async { leads(&hosts[follower]).then_some(()) },
    )
    .await;
    assert!(
        killed.elapsed() < Duration::from_secs(4 + 6),
        "took over in {:?}",
        killed.elapsed()
    );
    cluster
        .ats()
        .create(&PostParams::default(), &at("second", &schedule_in(0)))
        .await
        .unwrap();
    eventually("the new leader reconciles", LONG, || async {
        pods.get_opt("second-pod").await.unwrap()
    })
    .await;
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_reconcile_finish() {
    let cluster = Cluster::start().await;
    let mut host = Host::start(&cluster, &["misbehave"], &[]).await;
    let config_maps = cluster.api("", "v1", "ConfigMap", "configmaps");
    cluster
        .misbehaves()
        .create(&PostParams::default(), &misbehave("slow", "slow"))
        .await
        .unwrap();
    let active = "controller_runtime_active_workers{controller=\"misbehave\"}";
    eventually("the slow reconcile in flight", LONG, || async {
        (host.metric(active).await >= 1.0).then_some(())
    })
    .await;

    assert_eq!(host.terminate(), Some(0), "SIGTERM stops the host cleanly");
    assert!(
        host.log().contains("finishing in-flight reconciles"),
        "the stop waited for the reconcile:\n{}",
        host.log()
    );
    assert!(
        get(&config_maps, "slow-child").await.is_some(),
        "the reconcile in flight at SIGTERM finished and wrote its child"
    );
}

#[tokio::test]
async fn restart_converges_without_duplicates() {
    let cluster = Cluster::start().await;
    let mut host = Host::start(&cluster, &["cnat", "webapp"], &[]).await;
    cluster
        .ats()
        .create(&PostParams::default(), &at("once", &schedule_in(0)))
        .await
        .unwrap();
    let app: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
        "metadata": {"name": "site"}, "spec": {"image": "nginx", "port": 80}
    }))
    .unwrap();
    cluster
        .webapps()
        .create(&PostParams::default(), &app)
        .await
        .unwrap();
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), &cluster.namespace);
    let services = cluster.api("", "v1", "Service", "services");
    wait_phase(&cluster, "once", "RUNNING").await;
    eventually("the Service", LONG, || async {
        get(&services, "site").await
    })
    .await;
    let pod_version = pods
        .get("once-pod")
        .await
        .unwrap()
        .metadata
        .resource_version;

    assert_eq!(host.terminate(), Some(0), "SIGTERM stops the host cleanly");
    let host = Host::start(&cluster, &["cnat", "webapp"], &[]).await;
    let successes = "controller_runtime_reconcile_total{controller=\"cnat\",result=\"success\"}";
    eventually("the restarted host reconciles", LONG, || async {
        (host.metric(successes).await >= 1.0).then_some(())
    })
    .await;
    let all_pods = pods
        .list(&ListParams::default().labels("app=once"))
        .await
        .unwrap();
    assert_eq!(all_pods.items.len(), 1, "no duplicate pod");
    assert_eq!(
        pods.get("once-pod")
            .await
            .unwrap()
            .metadata
            .resource_version,
        pod_version,
        "the pod was not rewritten"
    );
    assert_eq!(
        services
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1,
        "no duplicate Service"
    );
}

#[tokio::test]
async fn the_host_survives_an_apiserver_restart() {
    let mut cluster = Cluster::start().await;
    let mut host = Host::start(&cluster, &["cnat"], &[]).await;
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), &cluster.namespace);
    cluster
        .ats()
        .create(&PostParams::default(), &at("before", &schedule_in(0)))
        .await
        .unwrap();
    eventually("the first pod", LONG, || async {
        pods.get_opt("before-pod").await.unwrap()
    })
    .await;

    cluster
        .env
        .own_mut()
        .restart_apiserver()
        .await
        .expect("the API server comes back");
    // Created while the host's watches are broken or re-listing.
    cluster
        .ats()
        .create(&PostParams::default(), &at("after", &schedule_in(0)))
        .await
        .unwrap();
    eventually(
        "a pod for the At created after the restart",
        LONG,
        || async { pods.get_opt("after-pod").await.unwrap() },
    )
    .await;
    assert!(host.is_running(), "the host rode out the restart");
    wait_phase(&cluster, "after", "RUNNING").await;
}

#[tokio::test]
async fn a_finalizer_holds_deletion_until_finalize_is_done() {
    let cluster = Cluster::start().await;
    let _host = Host::start(&cluster, &["janitor"], &[]).await;
    let tidies = cluster.api("tests.bosun.dev", "v1", "Tidy", "tidies");
    let config_maps = cluster.api("", "v1", "ConfigMap", "configmaps");
    let tidy: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "tests.bosun.dev/v1", "kind": "Tidy",
        "metadata": {"name": "t1"}, "spec": {"release": false}
    }))
    .unwrap();
    tidies.create(&PostParams::default(), &tidy).await.unwrap();
    let held = eventually(
        "the finalizer added before the first reconcile",
        LONG,
        || async {
            get(&tidies, "t1").await.filter(|t| {
                t.metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .any(|f| f == "tests.bosun.dev/janitor")
            })
        },
    )
    .await;
    assert!(held.metadata.finalizers.as_ref().unwrap().len() == 1);
    eventually("the reconcile after it", LONG, || async {
        get(&config_maps, "t1-data").await
    })
    .await;

    tidies.delete("t1", &DeleteParams::default()).await.unwrap();
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(
        cluster.client.clone(),
        &cluster.namespace,
    );
    eventually("finalize called (a Holding event)", LONG, || async {
        let list = events.list(&ListParams::default()).await.unwrap();
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("Holding"))
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let terminating = get(&tidies, "t1")
        .await
        .expect("still there while finalize is not done");
    assert!(terminating.metadata.deletion_timestamp.is_some());

    tidies
        .patch(
            "t1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"release": true}})),
        )
        .await
        .unwrap();
    eventually("the object gone once finalize is done", LONG, || async {
        get(&tidies, "t1").await.is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_permanent_error_is_reported_and_not_retried_until_the_spec_changes() {
    let cluster = Cluster::start().await;
    let host = Host::start(&cluster, &["webapp"], &[]).await;
    let apps = cluster.webapps();
    let broken: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
        "metadata": {"name": "broken"}, "spec": {"image": "nginx", "replicas": -1}
    }))
    .unwrap();
    apps.create(&PostParams::default(), &broken).await.unwrap();
    let reconciled = |app: &kube::api::DynamicObject| {
        app.data
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().find(|c| c["type"] == "Reconciled").cloned())
    };
    let condition = eventually("a Reconciled=False condition", LONG, || async {
        get(&apps, "broken").await.as_ref().and_then(reconciled)
    })
    .await;
    assert_eq!(condition["status"], "False");
    assert_eq!(condition["reason"], "InvalidSpec");
    assert!(
        condition["message"]
            .as_str()
            .unwrap()
            .contains("spec.replicas"),
        "{condition}"
    );
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(
        cluster.client.clone(),
        &cluster.namespace,
    );
    eventually("a Warning event", LONG, || async {
        let list = events.list(&ListParams::default()).await.unwrap();
        list.items
            .iter()
            .any(|e| {
                e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("InvalidSpec")
            })
            .then_some(())
    })
    .await;

    let errors = "controller_runtime_reconcile_errors_total{controller=\"webapp\"}";
    let failed = host.metric(errors).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        host.metric(errors).await,
        failed,
        "not retried while the generation stays"
    );
    let deployments = cluster.api("apps", "v1", "Deployment", "deployments");
    assert!(
        get(&deployments, "broken").await.is_none(),
        "nothing written for a failed reconcile"
    );

    apps.patch(
        "broken",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    eventually("the fixed app's Deployment", LONG, || async {
        get(&deployments, "broken").await
    })
    .await;
    eventually("the Reconciled condition cleared", LONG, || async {
        get(&apps, "broken")
            .await
            .filter(|a| reconciled(a).is_none())
    })
    .await;
}

#[tokio::test]
async fn a_module_unloaded_while_idle_reconciles_the_next_object_as_before() {
    let cluster = Cluster::start().await;
    let host = Host::start(&cluster, &["cnat"], &["--unload-idle-after", "1s"]).await;
    let (ats, pods) = (
        cluster.ats(),
        Api::<Pod>::namespaced(cluster.client.clone(), &cluster.namespace),
    );
    let due = "2020-01-01T00:00:00Z";

    ats.create(&PostParams::default(), &at("before", due))
        .await
        .unwrap();
    wait_phase(&cluster, "before", "RUNNING").await;
    eventually("the idle module's code let go", LONG, || async {
        host.log()
            .contains("let go of idle modules' code")
            .then_some(())
    })
    .await;

    ats.create(&PostParams::default(), &at("after", due))
        .await
        .unwrap();
    wait_phase(&cluster, "after", "RUNNING").await;
    assert!(
        pods.get_opt("after-pod").await.unwrap().is_some(),
        "the Pod of the object reconciled after the unload"
    );
    assert!(
        host.log().contains("mapped an idle module's code again"),
        "{}",
        host.log()
    );
}

/// A module built against `bosun:reconciler@0.1.0`, before 0.2.0 existed,
/// reconciles in a cluster like any other: its read answered from the
/// host's cache, its child applied, its status and event written.
#[tokio::test]
async fn a_module_built_against_contract_0_1_0_reconciles_in_a_cluster() {
    let cluster = Cluster::start().await;
    let host = Host::start(&cluster, &["contract-0-1"], &[]).await;
    let config_maps = cluster.config_maps();
    let source: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "hello-source"},
        "data": {"greeting": "hi from a cluster"}
    }))
    .unwrap();
    config_maps
        .create(&PostParams::default(), &source)
        .await
        .unwrap();
    let created = cluster
        .misbehaves()
        .create(&PostParams::default(), &misbehave("hello", "echo"))
        .await
        .unwrap();

    let child = eventually("the echo ConfigMap", LONG, || async {
        get(&config_maps, "hello-echo").await
    })
    .await;
    assert_eq!(child.data["data"]["read"], "hi from a cluster");
    let owner = &child.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Misbehave", "hello")
    );
    assert_eq!(Some(&owner.uid), created.metadata.uid.as_ref());

    let status = eventually("the status", LONG, || async {
        let object = get(&cluster.misbehaves(), "hello").await?;
        let status = object.data.get("status")?.clone();
        (status["read"] == "hi from a cluster").then_some(status)
    })
    .await;
    assert_eq!(status["contract"], "0.1.0");
    assert_eq!(status["observedGeneration"], 1);

    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(
        cluster.client.clone(),
        &cluster.namespace,
    );
    eventually("its event", LONG, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Echoed") && e.type_.as_deref() == Some("Normal"))
    })
    .await;

    let log = host.log();
    assert!(
        log.lines().any(|line| line.contains("loaded module")
            && line.contains("contract-0-1")
            && line.contains("bosun:reconciler@0.1.0")),
        "{log}"
    );
}
