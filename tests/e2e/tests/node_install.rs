//! README's "Install in a cluster", run as written on a real node: the
//! shell blocks marked `<!-- tested: … -->` are read from README.md and run
//! whole (`sh -e`), in a directory that looks like the repository's root
//! (`deploy`, `charts`, `examples` and `target` link there), against a
//! control plane with kube-controller-manager, kube-scheduler, a kubelet,
//! containerd and kube-proxy. The image is `cargo xtask image`'s, built
//! from the debug binary the other tests use and loaded into the node's
//! containerd as `registry.example.com/bosun:0.1.0` (and `:0.2.0`), the
//! way README says for a cluster without a registry.
//!
//! With kustomize: two replicas Ready under the restricted profile, one
//! leading; a module from a ConfigMap (README's block) and one by `bosun
//! push`, each reconciled by the host inside the Pod; then what a node
//! does to it — the kubelet restarted, the leader Pod deleted, the
//! leader's process killed — each time the other replica leads and writes
//! nothing that was converged; then `kubectl delete -k` leaves nothing.
//! With Helm: installed, a module pushed and reconciled, `helm upgrade` to
//! a new tag rolled out, `helm uninstall` leaves nothing.
//!
//! The two installs share cluster-scoped objects (the CRD, the
//! ClusterRoles), so they run one after the other in one test; this binary
//! has its node to itself.

mod common;
#[path = "node_install/walkthrough.rs"]
mod walkthrough;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Cluster, eventually, get, root, schedule_in};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use serde_json::json;
use walkthrough::{run_block, workdir};

const NAMESPACE: &str = "bosun-system";
const LONG: Duration = Duration::from_secs(180);
const IMAGE: &str = "registry.example.com/bosun";

/// The replicas of the host's Deployment, once it is rolled out: the Pods
/// Ready, running `image`.
async fn rolled_out(cluster: &Cluster, image: &str) -> Vec<Pod> {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    eventually("2 Ready replicas of the new image", LONG, || async {
        let deployment = deployments.get_opt("bosun").await.ok()??;
        let status = deployment.status?;
        let done = status.ready_replicas == Some(2)
            && status.updated_replicas == Some(2)
            && status.replicas == Some(2);
        if !done {
            return None;
        }
        let list = pods
            .list(&ListParams::default().labels("app.kubernetes.io/name=bosun"))
            .await
            .ok()?;
        let running: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        let ready = running.len() == 2
            && running.iter().all(|p| {
                p.spec
                    .as_ref()
                    .is_some_and(|s| s.containers[0].image.as_deref() == Some(image))
                    && p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            });
        ready.then_some(running)
    })
    .await
}

/// Who holds the host's Lease: a host process, named by its identity
/// (`<pod>_<random>`, new for every start of the container), in a Pod.
#[derive(Clone, Debug, PartialEq)]
struct Holder {
    identity: String,
    pod: String,
}

/// The holder of the host's Lease, once one does, other than the process
/// `other_than` — which a restarted container in the same Pod is not.
async fn leader(cluster: &Cluster, other_than: Option<&Holder>) -> Holder {
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let started = Instant::now();
    loop {
        let holder = leases
            .get_opt("bosun-leader")
            .await
            .ok()
            .flatten()
            .and_then(|lease| lease.spec?.holder_identity)
            .and_then(|identity| {
                let pod = identity.split('_').next()?.to_owned();
                Some(Holder { identity, pod })
            });
        if let Some(holder) = holder
            && other_than.is_none_or(|old| old.identity != holder.identity)
            // A Pod that is going away may still hold it a moment.
            && pods.get_opt(&holder.pod).await.ok().flatten().is_some()
        {
            return holder;
        }
        if started.elapsed() > LONG {
            panic!(
                "timed out after {LONG:?} waiting for a host leading{}\n{}",
                other_than.map_or(String::new(), |old| format!(" other than {}", old.identity)),
                replicas_report(&leases, &pods).await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The Lease and each replica's state and log tail: what a timeout needs
/// to be explained.
async fn replicas_report(leases: &Api<Lease>, pods: &Api<Pod>) -> String {
    let mut report = format!("Lease: {:?}\n", leases.get_opt("bosun-leader").await);
    let listed = pods.list(&ListParams::default()).await;
    for pod in listed.map(|l| l.items).unwrap_or_default() {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let status = pod.status.as_ref();
        report.push_str(&format!(
            "--- Pod {name}: phase {:?}, conditions {:?}, restarts {}\n",
            status.and_then(|s| s.phase.as_deref()),
            status.and_then(|s| s.conditions.as_ref()).map(|c| c
                .iter()
                .map(|c| format!("{}={}", c.type_, c.status))
                .collect::<Vec<_>>()),
            restarts(&pod)
        ));
        let tail = kube::api::LogParams {
            tail_lines: Some(40),
            ..Default::default()
        };
        match pods.logs(&name, &tail).await {
            Ok(log) => report.push_str(&log),
            Err(error) => report.push_str(&format!("(no log: {error})\n")),
        }
    }
    report
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |c| c.iter().map(|c| c.restart_count).sum())
}

/// What bosun wrote to `objects` ([`versions`]), once two reads three
/// seconds apart agree.
async fn settled(objects: &[(&Api<DynamicObject>, &str)]) -> Vec<String> {
    let started = Instant::now();
    let mut last = versions(objects).await;
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = versions(objects).await;
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

/// What bosun wrote to `objects`: each object's `bosun/…` field-manager
/// entries (manager, operation, subresource, time). A write that changed
/// anything moves its entry's time; another component's writes (the
/// kubelet's to a Pod's status) do not count.
async fn versions(objects: &[(&Api<DynamicObject>, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    for (api, name) in objects {
        let object = get(api, name).await.expect("the object exists");
        for entry in object.metadata.managed_fields.iter().flatten() {
            if entry
                .manager
                .as_deref()
                .is_some_and(|m| m.starts_with("bosun"))
            {
                out.push(format!(
                    "{name}: {} {} {} {}",
                    entry.manager.as_deref().unwrap_or_default(),
                    entry.operation.as_deref().unwrap_or_default(),
                    entry.subresource.as_deref().unwrap_or_default(),
                    entry
                        .time
                        .as_ref()
                        .map(|t| t.0.to_string())
                        .unwrap_or_default()
                ));
            }
        }
    }
    out
}

/// Kills the `bosun` process of `pod` with SIGKILL, from the machine: a
/// crash, not a deletion. Returns how many processes it killed.
fn kill_host_process_of(pod: &str) -> usize {
    let hostname = format!("HOSTNAME={pod}");
    let mut killed = 0;
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if !cmdline.starts_with(b"/bosun\0") {
            continue;
        }
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if environ
            .split(|b| *b == 0)
            .any(|var| var == hostname.as_bytes())
        {
            // SAFETY: plain syscall on a pid just read from /proc.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            killed += 1;
        }
    }
    killed
}

fn at(name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "cnat.programming-kubernetes.info/v1alpha1", "kind": "At",
        "metadata": {"name": name},
        "spec": {"schedule": schedule_in(0), "command": "echo YAY"}
    }))
    .expect("an At")
}

async fn done(ats: &Api<DynamicObject>, name: &str) {
    eventually(&format!("At {name} DONE"), LONG, || async {
        get(ats, name)
            .await
            .filter(|a| a.data.pointer("/status/phase") == Some(&json!("DONE")))
    })
    .await;
}

/// `bosun push` of cnat, as README's "Writing a reconciler" does it.
fn push_cnat(kubeconfig: &Path) {
    let bosun = bosun_testenv::guests::host_binary().expect("bosun builds");
    let out = Command::new(bosun)
        .args([
            "push",
            &common::guest("cnat"),
            "--name",
            "cnat",
            "--timeout",
            "3m",
        ])
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("bosun push runs");
    assert!(
        out.status.success(),
        "bosun push: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_readme_installs_bosun_on_a_node_which_fails_over_upgrades_and_uninstalls() {
    let (Some(_), Some(_)) = (
        bosun_testenv::tools::for_test("kubectl", "kubectl 1.27 or newer").expect("kubectl in CI"),
        bosun_testenv::tools::for_test("helm", "go install helm.sh/helm/v3/cmd/helm@v3.22.0")
            .expect("helm in CI"),
    ) else {
        return;
    };
    let Some(cluster) = Cluster::on_node("default").await else {
        return;
    };
    let Some(node) = cluster.node() else {
        eprintln!(
            "skipped: this test loads the image into the node the harness starts, \
             which an existing cluster is not"
        );
        return;
    };
    let kubeconfig = cluster.kubeconfig().to_owned();

    // The image, loaded as README says for a cluster without a registry.
    let started = Instant::now();
    let binary = bosun_testenv::guests::host_binary().expect("bosun builds");
    let images = bosun_testenv::guests::target_dir().join("install-walkthrough-image");
    let mut options = xtask::image::Options::new(binary, images).expect("image options");
    options.tag = "0.1.0".into();
    let image = xtask::image::build(&options).expect("the image builds");
    node.load_image(&image.archive, IMAGE)
        .expect("ctr imports the image");
    node.tag_image(&format!("{IMAGE}:0.1.0"), &format!("{IMAGE}:0.2.0"))
        .expect("ctr tags it");
    eprintln!(
        "image {} built and loaded in {:.1}s",
        image.manifest.digest,
        started.elapsed().as_secs_f64()
    );
    cluster
        .env
        .install_crds([root().join("examples/cnat/crd.yaml")])
        .await
        .expect("cnat's CRD");
    let dir = workdir();
    let ats = cluster.ats();
    let webapps = cluster.webapps();
    let deployments = cluster.api("apps", "v1", "Deployment", "deployments");
    let services = cluster.api("", "v1", "Service", "services");
    let pods_here = cluster.api("", "v1", "Pod", "pods");
    let host_pods: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);

    // kustomize, as README writes it.
    run_block("install-kustomize", &dir, &kubeconfig, LONG);
    let replicas = rolled_out(&cluster, &format!("{IMAGE}:0.1.0")).await;
    for pod in &replicas {
        let security = &pod.spec.as_ref().unwrap().containers[0].security_context;
        assert_eq!(
            security.as_ref().and_then(|s| s.read_only_root_filesystem),
            Some(true)
        );
    }
    let first = leader(&cluster, None).await;

    // A module from a ConfigMap (README's block), one pushed.
    run_block("run-a-module", &dir, &kubeconfig, LONG);
    push_cnat(&kubeconfig);
    webapps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
                "metadata": {"name": "shop"},
                "spec": {"image": "nginx:1.27", "replicas": 2, "port": 8080}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    ats.create(&PostParams::default(), &at("first"))
        .await
        .unwrap();
    done(&ats, "first").await;
    eventually("WebApp shop Ready", LONG, || async {
        get(&webapps, "shop")
            .await
            .filter(|a| a.data["status"]["readyReplicas"] == 2)
    })
    .await;
    let pod = get(&pods_here, "first-pod").await.expect("cnat's Pod");
    assert_eq!(pod.data["status"]["phase"], "Succeeded");
    // The writes came from the host in the leading Pod: its metrics say so.
    let leader_pod = host_pods.get(&first.pod).await.unwrap();
    let ip = leader_pod
        .status
        .unwrap()
        .pod_ip
        .expect("the leader's Pod IP");
    let metrics = tokio::task::spawn_blocking(move || {
        http_get(&ip, 8080, "/metrics").expect("the leader serves /metrics")
    })
    .await
    .unwrap();
    assert!(
        metrics
            .contains("controller_runtime_reconcile_total{controller=\"cnat\",result=\"success\"}"),
        "{metrics}"
    );

    let converged = [
        (&ats, "first"),
        (&pods_here, "first-pod"),
        (&webapps, "shop"),
        (&deployments, "shop"),
        (&services, "shop"),
    ];
    let before = settled(&converged).await;

    // The kubelet crashes and comes back: the replicas run on, untouched.
    let restarts_before: Vec<i32> = replicas.iter().map(restarts).collect();
    node.restart_kubelet(&cluster.client)
        .await
        .expect("the kubelet comes back");
    let after_kubelet = rolled_out(&cluster, &format!("{IMAGE}:0.1.0")).await;
    let mut restarts_after: Vec<i32> = after_kubelet.iter().map(restarts).collect();
    restarts_after.sort();
    let mut expected = restarts_before.clone();
    expected.sort();
    assert_eq!(
        restarts_after, expected,
        "no container restarted with the kubelet"
    );
    assert_eq!(
        leader(&cluster, None).await,
        first,
        "the leader kept the Lease"
    );

    // The leader's Pod is deleted: it hands the Lease over on SIGTERM.
    Api::<Pod>::namespaced(cluster.client.clone(), NAMESPACE)
        .delete(&first.pod, &DeleteParams::default())
        .await
        .unwrap();
    let second = leader(&cluster, Some(&first)).await;
    ats.create(&PostParams::default(), &at("second"))
        .await
        .unwrap();
    done(&ats, "second").await;
    assert_eq!(
        versions(&converged).await,
        before,
        "the new leader rewrote what was converged"
    );
    rolled_out(&cluster, &format!("{IMAGE}:0.1.0")).await;

    // The new leader's process is killed outright: no hand-over; once the
    // Lease expires (15 s) another host takes it — the other replica, or
    // the container the kubelet restarted in the same Pod, whichever
    // campaigns first.
    let killed_at = Instant::now();
    assert_eq!(
        kill_host_process_of(&second.pod),
        1,
        "one bosun process in {}",
        second.pod
    );
    let third = leader(&cluster, Some(&second)).await;
    eprintln!(
        "{} (in {}) took over {:.1}s after {}'s process was killed",
        third.identity,
        third.pod,
        killed_at.elapsed().as_secs_f64(),
        second.identity
    );
    ats.create(&PostParams::default(), &at("third"))
        .await
        .unwrap();
    done(&ats, "third").await;
    assert_eq!(
        versions(&converged).await,
        before,
        "the new leader rewrote what was converged"
    );
    eventually("the killed container restarted", LONG, || async {
        let pod = host_pods.get_opt(&second.pod).await.ok()??;
        (restarts(&pod) >= 1).then_some(())
    })
    .await;

    run_block("uninstall-kustomize", &dir, &kubeconfig, LONG);
    assert_nothing_left(&cluster).await;

    // Helm, as README writes it, then its upgrade.
    run_block("install-helm", &dir, &kubeconfig, LONG);
    rolled_out(&cluster, &format!("{IMAGE}:0.1.0")).await;
    let helm_leader = leader(&cluster, None).await;
    push_cnat(&kubeconfig);
    ats.create(&PostParams::default(), &at("helm"))
        .await
        .unwrap();
    done(&ats, "helm").await;
    run_block("upgrade-helm", &dir, &kubeconfig, LONG);
    let upgraded = rolled_out(&cluster, &format!("{IMAGE}:0.2.0")).await;
    assert!(
        upgraded
            .iter()
            .all(|p| p.metadata.name.as_deref() != Some(&helm_leader.pod)),
        "every replica was replaced"
    );
    leader(&cluster, Some(&helm_leader)).await;
    ats.create(&PostParams::default(), &at("upgraded"))
        .await
        .unwrap();
    done(&ats, "upgraded").await;
    run_block("uninstall-helm", &dir, &kubeconfig, LONG);
    assert_nothing_left(&cluster).await;

    // What the modules made stays, as README says.
    assert!(get(&deployments, "shop").await.is_some());
}

/// No object of the install is left: the host's Pods, Deployment,
/// ServiceAccount, Service, PodDisruptionBudget, RBAC, Lease and CRD.
async fn assert_nothing_left(cluster: &Cluster) {
    let client = &cluster.client;
    eventually("nothing of the install left", LONG, || async {
        let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
        let labelled = ListParams::default().labels("app.kubernetes.io/name=bosun");
        let mut left: Vec<String> = Vec::new();
        for pod in pods.list(&labelled).await.ok()?.items {
            left.push(format!("Pod {}", pod.metadata.name.unwrap_or_default()));
        }
        for (group, version, kind, plural, namespaced, name) in [
            ("apps", "v1", "Deployment", "deployments", true, "bosun"),
            ("", "v1", "ServiceAccount", "serviceaccounts", true, "bosun"),
            ("", "v1", "Service", "services", true, "bosun-metrics"),
            (
                "policy",
                "v1",
                "PodDisruptionBudget",
                "poddisruptionbudgets",
                true,
                "bosun",
            ),
            (
                "rbac.authorization.k8s.io",
                "v1",
                "Role",
                "roles",
                true,
                "bosun-leader-election",
            ),
            (
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRole",
                "clusterroles",
                false,
                "bosun-host",
            ),
            (
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRoleBinding",
                "clusterrolebindings",
                false,
                "bosun-host",
            ),
            (
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRole",
                "clusterroles",
                false,
                "bosun-example-modules",
            ),
            (
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
                "customresourcedefinitions",
                false,
                "reconcilermodules.bosun.dev",
            ),
        ] {
            let resource = kube::api::ApiResource {
                group: group.into(),
                version: version.into(),
                api_version: if group.is_empty() {
                    version.into()
                } else {
                    format!("{group}/{version}")
                },
                kind: kind.into(),
                plural: plural.into(),
            };
            let api: Api<DynamicObject> = if namespaced {
                Api::namespaced_with(client.clone(), NAMESPACE, &resource)
            } else {
                Api::all_with(client.clone(), &resource)
            };
            if api.get_opt(name).await.ok()?.is_some() {
                left.push(format!("{kind} {name}"));
            }
        }
        if !left.is_empty() {
            eprintln!("still there: {left:?}");
        }
        left.is_empty().then_some(())
    })
    .await;
    // kustomize's namespace goes with it; Helm's stays, empty of the install.
    let _ = Api::<Namespace>::all(client.clone())
        .get_opt(NAMESPACE)
        .await;
}

/// `GET path` from `ip:port`, from the machine: the body of a 200.
fn http_get(ip: &str, port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let address: std::net::SocketAddr = format!("{ip}:{port}").parse().ok()?;
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes())
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.lines()
        .next()?
        .contains(" 200")
        .then(|| body.to_owned())
}
