//! The host as the shipped Deployment runs it: installed with
//! `deploy/overlays/examples` (exactly its ServiceAccount and RBAC), two
//! replicas with leader election, hot-loading ReconcilerModules, each
//! replica configured in-cluster — the ServiceAccount's token from the
//! TokenRequest API, the CA and the namespace laid out where the kubelet
//! mounts them, `KUBERNETES_SERVICE_HOST`/`PORT` — and no kubeconfig.
//!
//! A module loads from a ConfigMap, reconciles, is swapped for a new
//! version; the leader fails over; a module needing what the shipped RBAC
//! does not grant says `MissingRBAC` in its status, and starts by itself
//! once the rules `bosun rbac` prints for it are bound; and neither
//! replica's log has a single 403.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{
    Cluster, Host, condition, eventually, gzip, label, permissions_of, root, sha256, wait_loaded,
};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(60);
const NAMESPACE: &str = "bosun-system";

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).expect("an object")
}

/// Whether this machine can run the test (root for the mount namespace,
/// kubectl for kustomize); in CI it must.
fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let kubectl = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok();
    if root && kubectl {
        return true;
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI must run the in-cluster test: it needs root and kubectl"
    );
    eprintln!("skipped: the in-cluster test needs root (a mount namespace) and kubectl");
    false
}

/// Installs the examples overlay as a user would (`kubectl apply
/// --server-side -k`).
fn install(cluster: &Cluster) {
    let out = Command::new("kubectl")
        .args(["apply", "--server-side", "-k"])
        .arg(root().join("deploy/overlays/examples"))
        .env("KUBECONFIG", cluster.kubeconfig())
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl apply -k deploy/overlays/examples: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the kubelet mounts for the `bosun` ServiceAccount: a token from the
/// TokenRequest API, the cluster's CA, the namespace.
async fn mount_for_service_account(cluster: &Cluster, dir: &std::path::Path) {
    let token = Api::<ServiceAccount>::namespaced(cluster.client.clone(), NAMESPACE)
        .create_token_request(
            "bosun",
            &PostParams::default(),
            &TokenRequest {
                spec: TokenRequestSpec {
                    audiences: vec![],
                    expiration_seconds: Some(3600),
                    ..TokenRequestSpec::default()
                },
                ..TokenRequest::default()
            },
        )
        .await
        .expect("a token for the bosun ServiceAccount")
        .status
        .expect("a token")
        .token;
    let kubeconfig: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(cluster.kubeconfig()).unwrap()).unwrap();
    let ca = kubeconfig["clusters"][0]["cluster"]["certificate-authority"]
        .as_str()
        .expect("the kubeconfig names its CA file");
    std::fs::write(dir.join("token"), token).unwrap();
    std::fs::copy(ca, dir.join("ca.crt")).unwrap();
    std::fs::write(dir.join("namespace"), NAMESPACE).unwrap();
}

#[tokio::test]
async fn the_shipped_deployment_hot_loads_fails_over_and_never_meets_a_403() {
    if !can_run() {
        return;
    }
    let cluster = Cluster::start().await;
    install(&cluster);
    let account = tempfile::tempdir().unwrap();
    mount_for_service_account(&cluster, account.path()).await;
    let flags = [
        "--modules-from-cluster",
        "--leader-elect",
        "--lease-duration",
        "4s",
        "--renew-deadline",
        "3s",
        "--retry-period",
        "500ms",
    ];
    let mut hosts = [
        Host::start_in_cluster(&cluster, account.path(), &flags).await,
        Host::start_in_cluster(&cluster, account.path(), &flags).await,
    ];
    let leads = |host: &Host| host.log().contains("became the leader");
    let leader = eventually("a leader", LONG, || async { hosts.iter().position(leads) }).await;

    // A module from a ConfigMap, compressed to fit its 1 MiB, pinned.
    let webapp = gzip(&std::fs::read(common::guest("webapp")).unwrap());
    let next = gzip(&std::fs::read(bosun_testenv::guests::webapp_next().unwrap()).unwrap());
    assert!(webapp.len() < 1 << 20, "{} bytes compressed", webapp.len());
    let bundle = ConfigMap {
        metadata: ObjectMeta {
            name: Some("webapp-module".into()),
            ..ObjectMeta::default()
        },
        binary_data: Some(BTreeMap::from([
            ("webapp.wasm.gz".to_owned(), ByteString(webapp.clone())),
            ("webapp-2.wasm.gz".to_owned(), ByteString(next.clone())),
        ])),
        ..ConfigMap::default()
    };
    Api::<ConfigMap>::namespaced(cluster.client.clone(), NAMESPACE)
        .create(&PostParams::default(), &bundle)
        .await
        .expect("the module's ConfigMap");
    let modules = cluster.reconciler_modules();
    let source = |key: &str, bytes: &[u8]| json!({"configMap": {"namespace": NAMESPACE, "name": "webapp-module", "key": key, "sha256": sha256(bytes)}});
    modules
        .create(
            &PostParams::default(),
            &object(json!({"apiVersion": "bosun.dev/v1alpha1", "kind": "ReconcilerModule",
                "metadata": {"name": "webapp"},
                "spec": {"source": source("webapp.wasm.gz", &webapp), "permissions": permissions_of(&common::guest("webapp"))}})),
        )
        .await
        .unwrap();
    let loaded = wait_loaded(&modules, "webapp", "True", "Loaded").await;
    assert_eq!(condition(&loaded, "Ready").unwrap()["status"], "True");

    let deployments = cluster.api("apps", "v1", "Deployment", "deployments");
    cluster
        .webapps()
        .create(
            &PostParams::default(),
            &object(json!({"apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
                "metadata": {"name": "shop"}, "spec": {"image": "nginx", "replicas": 1, "port": 8080}})),
        )
        .await
        .unwrap();
    eventually("the Deployment", LONG, || async {
        common::get(&deployments, "shop").await
    })
    .await;

    // A new version, swapped in.
    modules
        .patch(
            "webapp",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"source": source("webapp-2.wasm.gz", &next)}})),
        )
        .await
        .unwrap();
    eventually(
        "the Deployment reconciled by the new version",
        LONG,
        || async {
            common::get(&deployments, "shop")
                .await
                .filter(|d| label(d, "examples.bosun.dev/revision").as_deref() == Some("2"))
        },
    )
    .await;

    // A module the shipped RBAC does not cover: refused, by name.
    let misbehave = common::guest("misbehave");
    modules
        .create(
            &PostParams::default(),
            &object(json!({"apiVersion": "bosun.dev/v1alpha1", "kind": "ReconcilerModule",
                "metadata": {"name": "misbehave"},
                "spec": {"source": {"file": {"path": misbehave}}, "permissions": permissions_of(&misbehave)}})),
        )
        .await
        .unwrap();
    let refused = wait_loaded(&modules, "misbehave", "False", "MissingRBAC").await;
    let message = condition(&refused, "Loaded").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("watch misbehaves (tests.bosun.dev)") && message.contains("- misbehaves"),
        "{message}"
    );

    // The rules `bosun rbac` derives for it, bound to the host's account:
    // the module starts without anyone touching its spec.
    let role: ClusterRole = serde_json::from_value(common::bosun_json(
        &["rbac", "--name", "bosun-misbehave", "--module", &misbehave],
        None,
    ))
    .expect("bosun rbac prints a ClusterRole");
    Api::<ClusterRole>::all(cluster.client.clone())
        .create(&PostParams::default(), &role)
        .await
        .expect("the ClusterRole bosun rbac printed");
    Api::<ClusterRoleBinding>::all(cluster.client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "bosun-misbehave"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "bosun-misbehave"},
                "subjects": [{"kind": "ServiceAccount", "name": "bosun", "namespace": NAMESPACE}]}))
            .unwrap(),
        )
        .await
        .expect("the binding");
    wait_loaded(&modules, "misbehave", "True", "Loaded").await;

    // What the swapped version wrote, once it has settled: the next leader
    // must re-converge on it without writing any of it again.
    let services = cluster.api("", "v1", "Service", "services");
    let webapps = cluster.webapps();
    let written = [
        (&deployments, "shop"),
        (&services, "shop"),
        (&webapps, "shop"),
    ];
    let settled = settled_versions(&written).await;

    // The leader goes; the standby takes over and reconciles.
    hosts[leader].kill();
    let follower = 1 - leader;
    eventually("the standby takes over", LONG, || async {
        leads(&hosts[follower]).then_some(())
    })
    .await;
    cluster
        .webapps()
        .create(
            &PostParams::default(),
            &object(
                json!({"apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
                "metadata": {"name": "after"}, "spec": {"image": "nginx", "replicas": 1}}),
            ),
        )
        .await
        .unwrap();
    eventually("the new leader reconciles", LONG, || async {
        common::get(&deployments, "after").await
    })
    .await;

    let successes = "controller_runtime_reconcile_total{controller=\"webapp\",result=\"success\"}";
    eventually("the new leader reconciles every WebApp", LONG, || async {
        (hosts[follower].metric(successes).await >= 2.0).then_some(())
    })
    .await;
    assert_eq!(
        resource_versions(&written).await,
        settled,
        "the new leader rewrote the Deployment, Service or status it found converged"
    );

    // `bosun rbac --from-cluster` covers what every ReconcilerModule is
    // granted, and with --with-host what the host needs for itself.
    let role: ClusterRole = serde_json::from_value(common::bosun_json(
        &["rbac", "--from-cluster", "--with-host"],
        Some(cluster.kubeconfig()),
    ))
    .expect("bosun rbac prints a ClusterRole");
    let covers = |group: &str, resource: &str, verb: &str| {
        role.rules.iter().flatten().any(|rule| {
            rule.api_groups.iter().flatten().any(|g| g == group)
                && rule.resources.iter().flatten().any(|r| r == resource)
                && rule.verbs.iter().any(|v| v == verb)
        })
    };
    for (group, resource, verb) in [
        ("examples.bosun.dev", "webapps", "watch"),
        ("examples.bosun.dev", "webapps/status", "patch"),
        ("apps", "deployments", "create"),
        ("", "services", "delete"),
        ("tests.bosun.dev", "misbehaves", "list"),
        ("bosun.dev", "reconcilermodules", "watch"),
        ("bosun.dev", "reconcilermodules/status", "patch"),
        ("coordination.k8s.io", "leases", "update"),
    ] {
        assert!(
            covers(group, resource, verb),
            "no {verb} on {resource}: {role:?}"
        );
    }

    // A refusal shows in kube's errors as `code: 403` and the word
    // forbidden (a bare "403" could be a timestamp's digits).
    for host in &hosts {
        let log = host.log().to_lowercase();
        for refusal in ["code: 403", "forbidden"] {
            assert!(!log.contains(refusal), "a replica met {refusal}:\n{log}");
        }
    }
}

/// The resourceVersions of `objects`, once two reads three seconds apart
/// agree.
async fn settled_versions(objects: &[(&Api<DynamicObject>, &str)]) -> Vec<String> {
    let started = std::time::Instant::now();
    let mut last = resource_versions(objects).await;
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = resource_versions(objects).await;
        if now == last {
            return now;
        }
        assert!(
            started.elapsed() < LONG,
            "the objects never settled: {now:?}"
        );
        last = now;
    }
}

async fn resource_versions(objects: &[(&Api<DynamicObject>, &str)]) -> Vec<String> {
    let mut versions = Vec::new();
    for (api, name) in objects {
        let object = common::get(api, name).await.expect("the object exists");
        versions.push(object.metadata.resource_version.unwrap_or_default());
    }
    versions
}
