//! The examples on a real node: nobody plays the kubelet or the Deployment
//! controller here. cnat's Pod really runs `echo` and Succeeds; webapp's
//! Deployment gets its ready replicas from the Deployment controller and
//! its Service answers from the nginx stand-in; deleting a primary has the
//! garbage collector delete its children, also while the host prunes one
//! of them; a WebApp created again under the name of one whose children
//! are still being deleted waits for them, saying why.
//!
//! The tests share one control plane and node (`Cluster::on_node`), each
//! in a namespace of its own with a host confined there: a node takes
//! about 10 s and 700 MB to start, and a second one beside it would only
//! make both slower on 2 cores.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{Cluster, Host, eventually, get, reconciled_condition, schedule_in};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};

/// Long enough for a Pod to be scheduled, started and reported on a busy
/// 2-core machine.
const LONG: Duration = Duration::from_secs(120);

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).expect("an object")
}

fn webapp(name: &str, port: Option<i32>) -> DynamicObject {
    object(json!({
        "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
        "metadata": {"name": name},
        "spec": {"image": "nginx:1.27", "replicas": 2, "port": port}
    }))
}

fn ready(app: &DynamicObject) -> bool {
    app.data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// The managers that wrote an object's status subresource.
fn status_managers(object: &DynamicObject) -> Vec<String> {
    object
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .filter_map(|m| m.manager.clone())
        .collect()
}

/// `GET /` from `ip:port`, from the machine: the body, if it answered 200.
fn http_get(ip: &str, port: u16) -> Option<String> {
    let address: std::net::SocketAddr = format!("{ip}:{port}").parse().ok()?;
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(format!("GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes())
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then_some(())?;
    head.lines()
        .next()?
        .contains(" 200")
        .then(|| body.to_owned())
}

#[tokio::test]
async fn cnat_runs_its_command_in_a_real_pod_and_the_at_goes_done() {
    let Some(cluster) = Cluster::on_node("node-cnat").await else {
        return;
    };
    let _host = Host::start_confined(&cluster, &["cnat"], &[]).await;
    let (ats, pods) = (
        cluster.ats(),
        Api::<Pod>::namespaced(cluster.client.clone(), &cluster.namespace),
    );
    ats.create(
        &PostParams::default(),
        &object(json!({
            "apiVersion": "cnat.programming-kubernetes.info/v1alpha1", "kind": "At",
            "metadata": {"name": "hello"},
            "spec": {"schedule": schedule_in(0), "command": "echo YAY"}
        })),
    )
    .await
    .unwrap();
    eventually("At hello DONE", LONG, || async {
        get(&ats, "hello")
            .await
            .filter(|at| at.data.pointer("/status/phase") == Some(&json!("DONE")))
    })
    .await;

    let pod = pods.get("hello-pod").await.unwrap();
    let status = pod.status.clone().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Succeeded"));
    let terminated = status.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .expect("the container ran and ended");
    assert_eq!(terminated.exit_code, 0);
    let log = pods
        .logs("hello-pod", &LogParams::default())
        .await
        .expect("the kubelet serves the log");
    assert_eq!(log.trim(), "YAY", "the Pod ran `echo YAY`");
    let pod = serde_json::from_value::<DynamicObject>(serde_json::to_value(&pod).unwrap()).unwrap();
    assert_eq!(
        status_managers(&pod),
        ["kubelet"],
        "only the kubelet wrote the Pod's status"
    );

    // Deleting the At: the garbage collector deletes its Pod.
    ats.delete("hello", &DeleteParams::default()).await.unwrap();
    eventually("the Pod garbage-collected", LONG, || async {
        pods.get_opt("hello-pod")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn webapp_is_ready_when_its_pods_are_and_its_children_go_with_it() {
    let Some(cluster) = Cluster::on_node("node-webapp").await else {
        return;
    };
    let _host = Host::start_confined(&cluster, &["webapp"], &[]).await;
    let apps = cluster.webapps();
    let deployments = cluster.api("apps", "v1", "Deployment", "deployments");
    let replica_sets = cluster.api("apps", "v1", "ReplicaSet", "replicasets");
    let services = cluster.api("", "v1", "Service", "services");
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), &cluster.namespace);
    apps.create(&PostParams::default(), &webapp("shop", Some(8080)))
        .await
        .unwrap();

    let app = eventually("WebApp shop Ready", LONG, || async {
        get(&apps, "shop").await.filter(ready)
    })
    .await;
    assert_eq!(app.data["status"]["readyReplicas"], 2);
    let deployment = get(&deployments, "shop").await.expect("the Deployment");
    assert_eq!(deployment.data["status"]["readyReplicas"], 2);
    assert_eq!(
        status_managers(&deployment),
        ["kube-controller-manager"],
        "the Deployment controller, and nobody else, reported the replicas"
    );

    // The Service answers, from the stand-in's Pods, through kube-proxy.
    let service = get(&services, "shop").await.expect("the Service");
    let ip = service.data["spec"]["clusterIP"]
        .as_str()
        .expect("a ClusterIP")
        .to_owned();
    let page = eventually("the Service answers", Duration::from_secs(30), || async {
        let ip = ip.clone();
        tokio::task::spawn_blocking(move || http_get(&ip, 8080))
            .await
            .unwrap()
    })
    .await;
    assert!(page.contains("nginx stand-in"), "{page}");

    apps.delete("shop", &DeleteParams::default()).await.unwrap();
    eventually("every child garbage-collected", LONG, || async {
        let selector = ListParams::default().labels("app.kubernetes.io/name=shop");
        let left = get(&deployments, "shop").await.is_some()
            || get(&services, "shop").await.is_some()
            || !replica_sets.list(&selector).await.unwrap().items.is_empty()
            || !pods.list(&selector).await.unwrap().items.is_empty();
        (!left).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_garbage_collector_and_the_hosts_prune_race_without_harm() {
    let Some(cluster) = Cluster::on_node("node-race").await else {
        return;
    };
    let host = Host::start_confined(&cluster, &["webapp"], &[]).await;
    let apps = cluster.webapps();
    let services = cluster.api("", "v1", "Service", "services");
    let deployments = cluster.api("apps", "v1", "Deployment", "deployments");
    let names: Vec<String> = (0..4).map(|i| format!("race-{i}")).collect();
    for name in &names {
        apps.create(&PostParams::default(), &webapp(name, Some(8080)))
            .await
            .unwrap();
    }
    for name in &names {
        eventually("the Service", LONG, || async { get(&services, name).await }).await;
    }
    // The spec drops the port (the host prunes the Service) and the WebApp
    // is deleted (the garbage collector deletes the same Service) at once.
    let races = names.iter().map(|name| {
        let apps = apps.clone();
        async move {
            let (params, no_port, delete_params) = (
                PatchParams::default(),
                Patch::Merge(json!({"spec": {"port": null}})),
                DeleteParams::default(),
            );
            let drop_port = apps.patch(name, &params, &no_port);
            let delete = apps.delete(name, &delete_params);
            let (patched, deleted) = futures::join!(drop_port, delete);
            // The patch may come after the delete: then there is nothing to patch.
            if let Err(e) = patched {
                assert!(matches!(&e, kube::Error::Api(s) if s.code == 404), "{e}");
            }
            deleted.expect("the WebApp is deleted");
        }
    });
    futures::future::join_all(races).await;
    for name in &names {
        eventually("the children gone", LONG, || async {
            (get(&services, name).await.is_none() && get(&deployments, name).await.is_none())
                .then_some(())
        })
        .await;
    }
    // Nothing came back, and the host still reconciles.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for name in &names {
        assert!(
            get(&services, name).await.is_none(),
            "{name}'s Service came back"
        );
        assert!(
            get(&deployments, name).await.is_none(),
            "{name}'s Deployment came back"
        );
    }
    apps.create(&PostParams::default(), &webapp("after", None))
        .await
        .unwrap();
    eventually("a WebApp created afterwards reconciled", LONG, || async {
        get(&deployments, "after").await
    })
    .await;
    assert!(
        !host.log().contains("panicked"),
        "the host panicked:\n{}",
        host.log()
    );
}

#[tokio::test]
async fn a_webapp_made_again_waits_for_its_predecessors_children_and_says_so() {
    let Some(cluster) = Cluster::on_node("node-again").await else {
        return;
    };
    let _host = Host::start_confined(&cluster, &["webapp"], &[]).await;
    let apps = cluster.webapps();
    let deployments = cluster.api("apps", "v1", "Deployment", "deployments");
    let first = apps
        .create(&PostParams::default(), &webapp("again", None))
        .await
        .unwrap();
    eventually("the Deployment", LONG, || async {
        get(&deployments, "again").await
    })
    .await;
    // Someone holds the Deployment with a finalizer of their own, so the
    // garbage collector's deletion of it takes a while.
    deployments
        .patch(
            "again",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["e2e.bosun.dev/hold"]}})),
        )
        .await
        .unwrap();
    apps.delete("again", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the WebApp gone", LONG, || async {
        get(&apps, "again").await.is_none().then_some(())
    })
    .await;
    eventually("the Deployment being deleted", LONG, || async {
        get(&deployments, "again")
            .await
            .filter(|d| d.metadata.deletion_timestamp.is_some())
    })
    .await;

    let second = apps
        .create(&PostParams::default(), &webapp("again", None))
        .await
        .unwrap();
    let condition = eventually("the reason on the new WebApp", LONG, || async {
        get(&apps, "again")
            .await
            .as_ref()
            .and_then(reconciled_condition)
    })
    .await;
    let message = condition["message"].as_str().unwrap_or_default().to_owned();
    let old_uid = first.metadata.uid.clone().unwrap();
    assert_eq!(condition["reason"], "ChildExists");
    assert!(
        message.contains(&format!(
            "controlled by an earlier WebApp again (uid {old_uid})"
        )) && message.contains("still being deleted"),
        "{message}"
    );

    // The hold is let go: the old Deployment goes, the new one comes.
    deployments
        .patch(
            "again",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    let new_uid = second.metadata.uid.clone().unwrap();
    eventually("the new WebApp's Deployment", LONG, || async {
        get(&deployments, "again").await.filter(|d| {
            d.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == new_uid)
        })
    })
    .await;
    eventually("the new WebApp Ready", LONG, || async {
        get(&apps, "again")
            .await
            .filter(|a| ready(a) && reconciled_condition(a).is_none())
    })
    .await;
}
