//! Event-driven reads on a real control plane: the host reconciles exactly
//! the primaries whose last reconcile read what changed — by name (a miss
//! included) and by label selector (entering and leaving it) — and nothing
//! else; and a module confined to a namespace watches, caches and needs
//! RBAC there only.
//!
//! The `mirror` example reads ConfigMaps by name and by selector, and
//! Secrets by name; it declares `reads::<ConfigMap>()` and
//! `reads::<Secret>()` and nothing more.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, Host, eventually, get};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// How long a read change may take to show: "within a few seconds".
const SOON: Duration = Duration::from_secs(15);
/// How long nothing must happen for the host to count as quiet.
const QUIET: Duration = Duration::from_secs(3);

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).expect("an object")
}

fn config_map(name: &str, labels: Value, data: Value) -> DynamicObject {
    object(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": data,
    }))
}

fn mirror(name: &str, spec: Value) -> DynamicObject {
    object(json!({
        "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "Mirror",
        "metadata": {"name": name}, "spec": spec,
    }))
}

/// Objects of kind `K` in `namespace`, untyped.
fn in_namespace_of<K: kube::Resource<DynamicType = ()>>(
    cluster: &Cluster,
    namespace: &str,
) -> Api<DynamicObject> {
    Api::namespaced_with(
        cluster.client.clone(),
        namespace,
        &ApiResource::erase::<K>(&()),
    )
}

/// Every reconcile of the mirror module so far, whatever its result.
async fn reconciles(host: &Host) -> f64 {
    let mut total = 0.0;
    for result in ["success", "error", "requeue", "requeue_after"] {
        total += host
            .metric(&format!(
                "controller_runtime_reconcile_total{{controller=\"mirror\",result=\"{result}\"}}"
            ))
            .await;
    }
    total
}

async fn read_triggers(host: &Host) -> f64 {
    host.metric("bosun_read_triggers_total{module=\"mirror\"}")
        .await
}

/// Waits until the host has reconciled nothing for [`QUIET`].
async fn quiet(host: &Host) {
    let mut last = reconciles(host).await;
    let mut since = Instant::now();
    let started = Instant::now();
    while since.elapsed() < QUIET {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the host never went quiet"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = reconciles(host).await;
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
}

/// The reconciles of `name` the host logged with a read trigger.
fn read_triggered_reconciles(host: &Host, namespace: &str, name: &str) -> usize {
    let object = format!("object={namespace}/{name} ");
    host.log()
        .lines()
        .filter(|line| line.contains(&object) && line.contains("trigger=Trigger::ReadChanged"))
        .filter(|line| line.contains("reconciled"))
        .count()
}

async fn status(mirrors: &Api<DynamicObject>, name: &str) -> Value {
    get(mirrors, name)
        .await
        .and_then(|m| m.data.get("status").cloned())
        .unwrap_or(Value::Null)
}

async fn wait_status(
    mirrors: &Api<DynamicObject>,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) {
    eventually(&format!("Mirror {name}: {what}"), SOON, || async {
        check(&status(mirrors, name).await).then_some(())
    })
    .await;
}

/// The Mirrors, each reading something else.
const MIRRORS: [&str; 4] = ["by-name", "waiting", "by-label", "bystander"];

#[tokio::test]
async fn a_change_of_what_a_reconcile_read_reconciles_exactly_the_primaries_that_read_it() {
    let cluster = Cluster::tenant("reads").await;
    let host = Host::start_confined(&cluster, &["mirror"], &[]).await;
    let config_maps = cluster.config_maps();
    let mirrors = cluster.mirrors();
    let post = PostParams::default();
    config_maps
        .create(
            &post,
            &config_map(
                "settings",
                json!({"app": "shop"}),
                json!({"greeting": "hello"}),
            ),
        )
        .await
        .unwrap();
    config_maps
        .create(
            &post,
            &config_map("blog", json!({"app": "blog"}), json!({})),
        )
        .await
        .unwrap();
    for (name, spec) in [
        ("by-name", json!({"configMapName": "settings"})),
        ("waiting", json!({"configMapName": "later"})),
        (
            "by-label",
            json!({"configMapName": "absent", "selector": "app=shop"}),
        ),
        ("bystander", json!({"configMapName": "unrelated"})),
    ] {
        mirrors.create(&post, &mirror(name, spec)).await.unwrap();
    }
    wait_status(&mirrors, "by-name", "mirrors settings", |s| {
        s["found"] == true && s["data"]["greeting"] == "hello"
    })
    .await;
    wait_status(&mirrors, "waiting", "found nothing", |s| {
        s["found"] == false
    })
    .await;
    wait_status(&mirrors, "by-label", "selects settings", |s| {
        s["selected"] == json!(["settings"])
    })
    .await;
    wait_status(&mirrors, "bystander", "found nothing", |s| {
        s["found"] == false
    })
    .await;
    quiet(&host).await;
    let ns = cluster.namespace.clone();

    // Each change, and the Mirrors it must bring back: no more, no fewer.
    let steps: Vec<(&str, Vec<&str>)> = vec![
        (
            "the data of a ConfigMap read by name and by selector changes",
            vec!["by-name", "by-label"],
        ),
        (
            "a ConfigMap read by name, and missed, is created",
            vec!["waiting"],
        ),
        (
            "a ConfigMap's labels move it into a selection",
            vec!["by-label"],
        ),
        ("... and out of it again", vec!["by-label"]),
        (
            "a ConfigMap read by name and by selector is deleted",
            vec!["by-name", "by-label"],
        ),
    ];
    for (at, (what, readers)) in steps.into_iter().enumerate() {
        let triggers = read_triggers(&host).await;
        let logged: Vec<usize> = MIRRORS
            .iter()
            .map(|m| read_triggered_reconciles(&host, &ns, m))
            .collect();
        match at {
            0 => {
                let patch = json!({"data": {"greeting": "hi"}});
                config_maps
                    .patch("settings", &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap();
                wait_status(&mirrors, "by-name", what, |s| s["data"]["greeting"] == "hi").await;
            }
            1 => {
                config_maps
                    .create(
                        &post,
                        &config_map("later", json!({}), json!({"now": "here"})),
                    )
                    .await
                    .unwrap();
                wait_status(&mirrors, "waiting", what, |s| {
                    s["found"] == true && s["data"]["now"] == "here"
                })
                .await;
            }
            2 => {
                let patch = json!({"metadata": {"labels": {"app": "shop"}}});
                config_maps
                    .patch("blog", &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap();
                wait_status(&mirrors, "by-label", what, |s| {
                    s["selected"] == json!(["blog", "settings"])
                })
                .await;
            }
            3 => {
                let patch = json!({"metadata": {"labels": {"app": "blog"}}});
                config_maps
                    .patch("blog", &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap();
                wait_status(&mirrors, "by-label", what, |s| {
                    s["selected"] == json!(["settings"])
                })
                .await;
            }
            _ => {
                config_maps
                    .delete("settings", &DeleteParams::default())
                    .await
                    .unwrap();
                wait_status(&mirrors, "by-name", what, |s| {
                    s["found"] == false && s["data"] == json!({})
                })
                .await;
                wait_status(&mirrors, "by-label", what, |s| s["selected"] == json!([])).await;
            }
        }
        quiet(&host).await;
        assert_eq!(
            read_triggers(&host).await - triggers,
            readers.len() as f64,
            "{what}: the host should have queued exactly {readers:?}"
        );
        for (mirror, before) in MIRRORS.iter().zip(logged) {
            let again = read_triggered_reconciles(&host, &ns, mirror) - before;
            let expected = usize::from(readers.contains(mirror));
            assert_eq!(
                again, expected,
                "{what}: Mirror {mirror} was reconciled {again} times for it, expected {expected}"
            );
        }
    }

    // Changes nobody read: an unrelated ConfigMap of the namespace, and a
    // ConfigMap of a read name in a namespace the module is not granted.
    let before = reconciles(&host).await;
    config_maps
        .create(
            &post,
            &config_map("noise", json!({"app": "blog"}), json!({"a": "b"})),
        )
        .await
        .unwrap();
    let elsewhere = format!("{ns}-elsewhere");
    let namespaces = Api::<Namespace>::all(cluster.client.clone());
    namespaces
        .create(
            &post,
            &serde_json::from_value(json!({"metadata": {"name": elsewhere}})).unwrap(),
        )
        .await
        .unwrap();
    in_namespace_of::<ConfigMap>(&cluster, &elsewhere)
        .create(
            &post,
            &config_map(
                "settings",
                json!({"app": "shop"}),
                json!({"greeting": "other"}),
            ),
        )
        .await
        .unwrap();
    tokio::time::sleep(QUIET).await;
    quiet(&host).await;
    assert_eq!(
        reconciles(&host).await,
        before,
        "a change nobody read reconciled something"
    );
    // Not even cached: the host watches ConfigMaps in its namespace only.
    let cached = format!("bosun_cached_objects{{kind=\"ConfigMap.v1\",namespace=\"{elsewhere}\"}}");
    let (_, metrics) = host.get("/metrics").await.unwrap();
    assert!(!metrics.contains(&cached), "{metrics}");
    assert!(
        !metrics.contains("bosun_cached_objects{kind=\"ConfigMap.v1\",namespace=\"\"}"),
        "a confined module's ConfigMaps are watched cluster-wide:\n{metrics}"
    );
}

#[tokio::test]
async fn a_module_confined_to_a_namespace_watches_caches_and_needs_rbac_there_only() {
    let cluster = Cluster::tenant("reads-confined").await;
    let ns = cluster.namespace.clone();
    let dir = tempfile::tempdir().unwrap();
    let grant = cluster.confined_grant("mirror", &dir.path().join("mirror.grant.json"));
    let mirror_wasm = common::guest("mirror");

    // The roles `bosun rbac` prints for the module under this grant: a Role
    // in the namespace, no ClusterRole; plus two of the host's own needs:
    // the Events it records, and the API server's endpoints (one named
    // object in `default`), which its guests' HTTP must never reach.
    let printed = common::bosun_json(
        &[
            "rbac",
            "--name",
            "mirror",
            "--module",
            &mirror_wasm,
            "--grant",
            &grant,
        ],
        None,
    );
    let mut roles: Vec<Value> = match printed["kind"].as_str() {
        Some("List") => printed["items"].as_array().unwrap().clone(),
        _ => vec![printed.clone()],
    };
    assert!(
        roles
            .iter()
            .all(|r| r["kind"] == "Role" && r["metadata"]["namespace"] == ns),
        "a confined module needs a Role in its namespace and nothing cluster-wide: {printed}"
    );
    roles.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "events", "namespace": ns},
        "rules": [{"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]}],
    }));
    roles.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": format!("{ns}-api-server-endpoints"), "namespace": "default"},
        "rules": [{"apiGroups": [""], "resources": ["endpoints"], "resourceNames": ["kubernetes"], "verbs": ["get"]}],
    }));
    let kubeconfig = cluster
        .service_account_kubeconfig("mirror-host", &roles, &dir.path().join("kubeconfig"))
        .await;

    // A cluster-wide list or watch would be refused: the host would never
    // be ready.
    let host = Host::start_as(&kubeconfig, &cluster, &["mirror"], &["--grant", &grant]).await;
    let secrets = cluster.api("", "v1", "Secret", "secrets");
    let post = PostParams::default();
    let secret = |name: &str, keys: &[&str]| {
        let data: serde_json::Map<String, Value> = keys
            .iter()
            .map(|k| ((*k).to_owned(), json!(common::base64("s3cret"))))
            .collect();
        object(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data}),
        )
    };
    secrets
        .create(&post, &secret("credentials", &["user"]))
        .await
        .unwrap();
    let mirrors = cluster.mirrors();
    mirrors
        .create(
            &post,
            &mirror(
                "keys",
                json!({"configMapName": "none", "secretName": "credentials"}),
            ),
        )
        .await
        .unwrap();
    wait_status(&mirrors, "keys", "lists the Secret's keys", |s| {
        s["secretKeys"] == json!(["user"])
    })
    .await;
    // A read Secret changes: the Mirror follows.
    let patch = json!({"data": {"password": common::base64("s3cret")}});
    secrets
        .patch(
            "credentials",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    wait_status(&mirrors, "keys", "lists the new key", |s| {
        s["secretKeys"] == json!(["password", "user"])
    })
    .await;

    // A Secret in another namespace is not cached.
    let elsewhere = format!("{ns}-elsewhere");
    Api::<Namespace>::all(cluster.client.clone())
        .create(
            &post,
            &serde_json::from_value(json!({"metadata": {"name": elsewhere}})).unwrap(),
        )
        .await
        .unwrap();
    in_namespace_of::<Secret>(&cluster, &elsewhere)
        .create(&post, &secret("credentials", &["other"]))
        .await
        .expect("a Secret elsewhere");
    let in_namespace = format!("bosun_cached_objects{{kind=\"Secret.v1\",namespace=\"{ns}\"}}");
    eventually("the Secret cache of the namespace", SOON, || async {
        (host.metric(&in_namespace).await == 1.0).then_some(())
    })
    .await;
    tokio::time::sleep(QUIET).await;
    let (_, metrics) = host.get("/metrics").await.unwrap();
    let secret_caches: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("bosun_cached_objects{kind=\"Secret.v1\""))
        .collect();
    assert_eq!(
        secret_caches,
        [format!("{in_namespace} 1")],
        "the host caches Secrets outside the module's namespace"
    );
    let log = host.log().to_lowercase();
    assert!(!log.contains("forbidden"), "the host met a refusal:\n{log}");
}

#[tokio::test]
async fn a_guest_that_reads_without_bound_is_tracked_coarsely_within_its_cap() {
    let cluster = Cluster::tenant("reads-flood").await;
    let host = Host::start_confined(&cluster, &["misbehave"], &[]).await;
    let post = PostParams::default();
    cluster
        .misbehaves()
        .create(&post, &common::misbehave("greedy", "read-many"))
        .await
        .unwrap();
    let note = common::warning(&cluster, "greedy", "TooManyReads").await;
    assert!(note.contains("more than 256"), "{note}");
    eventually("greedy reports its reads", SOON, || async {
        let status = status(&cluster.misbehaves(), "greedy").await;
        (status["read"] == 22_000).then_some(())
    })
    .await;
    let tracked = host
        .metric("bosun_tracked_reads{module=\"misbehave\"}")
        .await;
    assert!(
        (1.0..=2.0 * 256.0 + 8.0).contains(&tracked),
        "22,000 reads tracked as {tracked} entries"
    );
    assert!(
        host.metric("bosun_tracked_reads_overflows_total{module=\"misbehave\"}")
            .await
            >= 1.0
    );
    // Past the cap, any ConfigMap of the namespace brings it back: coarse,
    // never lost.
    quiet_module(&host, "misbehave").await;
    let triggers = host
        .metric("bosun_read_triggers_total{module=\"misbehave\"}")
        .await;
    cluster
        .config_maps()
        .create(&post, &config_map("x-19999", json!({}), json!({})))
        .await
        .unwrap();
    eventually("the greedy reader is reconciled again", SOON, || async {
        (host
            .metric("bosun_read_triggers_total{module=\"misbehave\"}")
            .await
            > triggers)
            .then_some(())
    })
    .await;
    let (status, _) = host.get("/healthz").await.unwrap();
    assert_eq!(status, 200);
}

/// Waits until `module` has reconciled nothing for [`QUIET`].
async fn quiet_module(host: &Host, module: &str) {
    let sample =
        format!("controller_runtime_reconcile_total{{controller=\"{module}\",result=\"success\"}}");
    let mut last = host.metric(&sample).await;
    let mut since = Instant::now();
    while since.elapsed() < QUIET {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = host.metric(&sample).await;
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
}

#[tokio::test]
async fn what_finalize_read_brings_it_back_too() {
    let cluster = Cluster::tenant("reads-finalize").await;
    let _host = Host::start_confined(&cluster, &["janitor"], &[]).await;
    let tidies = cluster.api("tests.bosun.dev", "v1", "Tidy", "tidies");
    let post = PostParams::default();
    tidies
        .create(
            &post,
            &object(json!({"apiVersion": "tests.bosun.dev/v1", "kind": "Tidy",
                "metadata": {"name": "held"}, "spec": {"release": false}})),
        )
        .await
        .unwrap();
    eventually("the Tidy's ConfigMap", SOON, || async {
        get(&cluster.config_maps(), "held-data").await
    })
    .await;
    tidies
        .delete("held", &DeleteParams::default())
        .await
        .unwrap();
    let note = common::warning_or_normal(&cluster, "held", "Holding").await;
    assert!(note.contains("held-release"), "{note}");
    // finalize read `held-release` and missed; its creation is what brings
    // finalize back (it asked to be called again only after a minute).
    cluster
        .config_maps()
        .create(&post, &config_map("held-release", json!({}), json!({})))
        .await
        .unwrap();
    eventually("the deletion finished", SOON, || async {
        get(&tidies, "held").await.is_none().then_some(())
    })
    .await;
}
