//! The native baseline is only a baseline if it does what bosun does: the
//! same objects (cnat: a due `At` and a pending one; webapp: with and
//! without a port) given to the bosun host on one control plane and to the
//! native controllers on another must end with the same children and the
//! same status on the API server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bosun_testenv::TestEnv;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use serde_json::{Value, json};

const NAMESPACE: &str = "same";

fn root() -> PathBuf {
    bosun_testenv::guests::workspace_root()
}

fn resource(group: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: "v1alpha1".into(),
        api_version: format!("{group}/v1alpha1"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn ats() -> ApiResource {
    resource("cnat.programming-kubernetes.info", "At", "ats")
}

fn webapps() -> ApiResource {
    resource("examples.bosun.dev", "WebApp", "webapps")
}

/// The primaries both sides are given; `later` is the pending `At`'s schedule.
fn primaries(later: &str) -> Vec<(ApiResource, Value)> {
    vec![
        (
            ats(),
            json!({"metadata": {"name": "due"}, "spec": {"schedule": "2020-01-01T00:00:00Z", "command": "echo due"}}),
        ),
        (
            ats(),
            json!({"metadata": {"name": "later"}, "spec": {"schedule": later, "command": "echo later"}}),
        ),
        (
            webapps(),
            json!({"metadata": {"name": "web"}, "spec": {"image": "nginx:1.27", "replicas": 2, "port": 8080}}),
        ),
        (
            webapps(),
            json!({"metadata": {"name": "worker"}, "spec": {"image": "busybox"}}),
        ),
    ]
}

/// Processes killed on drop.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(mut command: Command, kubeconfig: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("a log file");
    command
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("the log file"))
        .stderr(log)
        .spawn()
        .expect("the controller starts")
}

fn start_bosun(kubeconfig: &Path, dir: &Path) -> Processes {
    let bosun = bosun_testenv::guests::host_binary().expect("bosun builds");
    let mut command = Command::new(bosun);
    command.arg("run");
    for module in ["cnat", "webapp"] {
        command
            .arg("--module")
            .arg(bosun_testenv::guests::path(module).expect("the guests build"));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    command
        .arg("--grant-declared")
        .args(["--telemetry-addr", &format!("127.0.0.1:{port}")])
        .env("BOSUN_CACHE_DIR", root().join("target/e2e-module-cache"));
    Processes(vec![spawn(command, kubeconfig, &dir.join("bosun.log"))])
}

fn start_native(kubeconfig: &Path, dir: &Path) -> Processes {
    Processes(
        ["cnat", "webapp"]
            .into_iter()
            .map(|module| {
                let mut command = Command::new(env!("CARGO_BIN_EXE_native-controller"));
                command.args(["--module", module]);
                spawn(
                    command,
                    kubeconfig,
                    &dir.join(format!("native-{module}.log")),
                )
            })
            .collect(),
    )
}

/// Server fields and what differs by side by construction (uids, field
/// managers, times) removed.
fn comparable(mut object: Value) -> Value {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "generation",
        ] {
            metadata.remove(field);
        }
        if let Some(owners) = metadata
            .get_mut("ownerReferences")
            .and_then(Value::as_array_mut)
        {
            for owner in owners.iter_mut().filter_map(Value::as_object_mut) {
                owner.remove("uid");
            }
        }
    }
    if let Some(conditions) = object
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        for condition in conditions.iter_mut().filter_map(Value::as_object_mut) {
            condition.remove("lastTransitionTime");
        }
    }
    object
}

/// What a side left on the API server: every primary and child, by kind and name.
async fn snapshot(client: &kube::Client) -> Vec<(String, Value)> {
    let mut objects = Vec::new();
    let mut add = |kind: &str, items: Vec<Value>| {
        for item in items {
            let name = item["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            objects.push((format!("{kind}/{name}"), comparable(item)));
        }
    };
    let list = ListParams::default();
    for resource in [ats(), webapps()] {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &resource);
        let items = api.list(&list).await.expect("list primaries").items;
        add(
            &resource.kind,
            items
                .into_iter()
                .map(|o| serde_json::to_value(o).unwrap())
                .collect(),
        );
    }
    let pods = Api::<Pod>::namespaced(client.clone(), NAMESPACE);
    add(
        "Pod",
        pods.list(&list)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|o| serde_json::to_value(o).unwrap())
            .collect(),
    );
    let deployments = Api::<Deployment>::namespaced(client.clone(), NAMESPACE);
    add(
        "Deployment",
        deployments
            .list(&list)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|o| serde_json::to_value(o).unwrap())
            .collect(),
    );
    let services = Api::<Service>::namespaced(client.clone(), NAMESPACE);
    add(
        "Service",
        services
            .list(&list)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|mut o| {
                // The cluster IP is allocated per control plane.
                if let Some(spec) = o.spec.as_mut() {
                    spec.cluster_ip = None;
                    spec.cluster_ips = None;
                }
                serde_json::to_value(o).unwrap()
            })
            .collect(),
    );
    objects.sort_by(|a, b| a.0.cmp(&b.0));
    objects
}

/// Every primary reconciled at its generation, and nothing changing for a moment.
async fn settled(client: &kube::Client, log_dir: &Path) -> Vec<(String, Value)> {
    let started = Instant::now();
    let mut last = Vec::new();
    loop {
        let now = snapshot(client).await;
        let reconciled = now
            .iter()
            .filter(|(key, _)| key.starts_with("At/") || key.starts_with("WebApp/"))
            .all(|(_, o)| o.pointer("/status/observedGeneration").is_some());
        if reconciled && now == last {
            return now;
        }
        last = now;
        if started.elapsed() > Duration::from_secs(120) {
            let logs: Vec<String> = std::fs::read_dir(log_dir)
                .unwrap()
                .flatten()
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect();
            panic!(
                "the primaries did not settle: {last:#?}\nlogs:\n{}",
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn run_side(native: bool, later: &str) -> Vec<(String, Value)> {
    let env = TestEnv::start().await.expect("the control plane starts");
    env.install_crds([
        root().join("examples/cnat/crd.yaml"),
        root().join("examples/webapp/crd.yaml"),
    ])
    .await
    .expect("the CRDs install");
    let client = env.client();
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("the namespace");
    let kubeconfig = env.kubeconfig_path().expect("a kubeconfig");
    let dir = tempfile::tempdir().unwrap();
    let _controllers = if native {
        start_native(kubeconfig, dir.path())
    } else {
        start_bosun(kubeconfig, dir.path())
    };
    for (resource, mut object) in primaries(later) {
        object["apiVersion"] = json!(resource.api_version);
        object["kind"] = json!(resource.kind);
        let object: DynamicObject = serde_json::from_value(object).unwrap();
        Api::<DynamicObject>::namespaced_with(client.clone(), NAMESPACE, &resource)
            .create(&PostParams::default(), &object)
            .await
            .expect("create a primary");
    }
    settled(&client, dir.path()).await
}

#[tokio::test]
async fn the_native_baseline_writes_what_bosun_writes() {
    // One schedule for both sides, a day ahead.
    let later = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let bosun = run_side(false, &later).await;
    let native = run_side(true, &later).await;
    let keys = |side: &[(String, Value)]| side.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(
        keys(&bosun),
        vec![
            "At/due",
            "At/later",
            "Deployment/web",
            "Deployment/worker",
            "Pod/due-pod",
            "Service/web",
            "WebApp/web",
            "WebApp/worker"
        ],
        "bosun's objects"
    );
    assert_eq!(
        keys(&native),
        keys(&bosun),
        "the same objects on both sides"
    );
    for ((key, ours), (_, theirs)) in bosun.iter().zip(&native) {
        assert_eq!(
            ours, theirs,
            "{key} differs between bosun and the native baseline"
        );
    }
    // The statuses the comparison covers are the real ones.
    let status = |key: &str| {
        bosun
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, o)| o["status"].clone())
            .unwrap()
    };
    assert_eq!(status("At/due")["phase"], "RUNNING");
    assert_eq!(status("At/later")["phase"], "PENDING");
    assert_eq!(status("WebApp/web")["url"], "http://web.same.svc:8080");
}
