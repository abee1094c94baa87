//! The harness's node: it starts, runs real Pods from the stand-in images
//! (a busybox `echo`, an nginx stand-in behind a Service), survives a
//! kubelet restart, and leaves the machine as it found it — interfaces,
//! routes, the host's iptables rules, mounts, cgroups and the kernel
//! settings the kubelet changes. One test, so nothing else runs beside it.
//!
//! A machine that cannot run a node (not root, packages missing) skips it,
//! saying what to install; under `CI=true` it fails instead.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use bosun_testenv::TestEnv;
use bosun_testenv::node::{self, NodeOptions};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, LogParams, PostParams};
use serde_json::json;

/// What a node may change on the machine, read from the machine.
#[derive(Debug, PartialEq)]
struct MachineState {
    interfaces: BTreeSet<String>,
    routes: BTreeSet<String>,
    iptables: String,
    mounts: BTreeSet<String>,
    cgroups: BTreeSet<String>,
    sysctls: Vec<(String, String)>,
}

fn sh(command: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", command])
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .output()
        .expect("sh runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn machine_state() -> MachineState {
    let lines = |text: String| text.lines().map(str::to_owned).collect::<BTreeSet<_>>();
    MachineState {
        interfaces: lines(sh("ip -o link show | cut -d: -f2")),
        routes: lines(sh("ip route show table all")),
        // The counters change with traffic; the rules must not.
        iptables: sh("iptables-save 2>/dev/null | grep -v '^#' | sed 's/\\[[0-9:]*\\]//'"),
        mounts: lines(sh("cut -d' ' -f5 /proc/self/mountinfo")),
        cgroups: lines(sh("ls -d /sys/fs/cgroup/*/bosun-testenv 2>/dev/null")),
        sysctls: [
            "vm/overcommit_memory",
            "vm/panic_on_oom",
            "kernel/panic",
            "kernel/panic_on_oops",
        ]
        .iter()
        .map(|k| {
            (
                (*k).to_owned(),
                std::fs::read_to_string(format!("/proc/sys/{k}"))
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            )
        })
        .collect(),
    }
}

async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_node_runs_pods_from_the_stand_ins_and_leaves_the_machine_as_it_was() {
    if common::skipped("node") {
        return;
    }
    if let Err(e) = node::available() {
        assert!(
            !bosun_testenv::tools::in_ci(),
            "CI must run the node test: {e}"
        );
        eprintln!("skipped: {e}");
        return;
    }
    let before = machine_state();
    let env = TestEnv::builder()
        .node(NodeOptions::default())
        .start()
        .await
        .unwrap_or_else(|e| panic!("the control plane and node failed to start:\n{e}"));
    let node = env.node().expect("a node");
    eprintln!(
        "control plane and node ready in {:.1}s (the node {:.1}s of it)",
        env.startup_duration().unwrap_or_default().as_secs_f64(),
        node.startup_duration().as_secs_f64()
    );
    let client = env.client();
    let images = node.loaded_images().expect("ctr lists images");
    for image in [
        "registry.k8s.io/pause:3.10",
        "docker.io/library/busybox:latest",
        "docker.io/library/busybox:1.36",
        "docker.io/library/nginx:1.27",
    ] {
        assert!(images.iter().any(|i| i == image), "{image} in {images:?}");
    }

    // busybox, untagged: pull policy Always, answered by the mirror.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "hello"},
            "spec": {"restartPolicy": "Never", "containers": [
                {"name": "busybox", "image": "busybox", "command": ["echo", "YAY"]}
            ]}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    eventually("the Pod Succeeded", Duration::from_secs(90), || async {
        let pod = pods.get("hello").await.ok()?;
        let phase = pod.status?.phase?;
        assert_ne!(phase, "Failed", "the Pod failed");
        (phase == "Succeeded").then_some(())
    })
    .await;
    let logs = pods
        .logs("hello", &LogParams::default())
        .await
        .expect("the kubelet serves the Pod's log");
    assert_eq!(logs.trim(), "YAY");

    // An image nobody loaded, from a registry that is not the mirror: the
    // pull fails at once, at containerd's closed proxy on the node's own
    // loopback, and nothing leaves the machine.
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "elsewhere"},
            "spec": {"restartPolicy": "Never", "containers": [
                {"name": "x", "image": "quay.io/nobody/nothing:1", "imagePullPolicy": "Always"}
            ]}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let reason = eventually("the pull refused", Duration::from_secs(60), || async {
        let list = events
            .list(&kube::api::ListParams::default().fields("involvedObject.name=elsewhere"))
            .await
            .ok()?;
        list.items
            .into_iter()
            .filter_map(|e| e.message)
            .find(|m| m.contains("127.0.0.1:9"))
    })
    .await;
    assert!(reason.contains("proxyconnect"), "{reason}");

    // The nginx stand-in, by a Deployment (the controller makes the Pods)
    // behind a Service (kube-proxy's rules, inside the node).
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "web"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                        {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 8080, "name": "http"}]}
                    ]}}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let service = services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    eventually("2 ready replicas", Duration::from_secs(90), || async {
        let d = deployments.get("web").await.ok()?;
        (d.status?.ready_replicas? == 2).then_some(())
    })
    .await;
    let ip = service.spec.unwrap().cluster_ip.unwrap();
    let page = eventually("the Service answers", Duration::from_secs(30), || async {
        let out = sh(&format!(
            "wget -q -T 2 -O - http://{ip}/ || busybox wget -q -T 2 -O - http://{ip}/"
        ));
        (!out.is_empty()).then_some(out)
    })
    .await;
    assert!(page.contains("nginx stand-in"), "{page}");

    // The kubelet crashes and comes back; the Pods it left keep running.
    let took = node
        .restart_kubelet(&client)
        .await
        .expect("the kubelet comes back");
    eprintln!(
        "kubelet restarted, Node Ready again in {:.1}s",
        took.as_secs_f64()
    );
    let d = deployments.get("web").await.unwrap();
    assert_eq!(d.status.unwrap().ready_replicas, Some(2));

    drop(env);
    let after = machine_state();
    assert_eq!(before, after, "the node left something behind");
}
