//! Sharding (`bosun run --sharded`): three real replicas share the
//! objects of one module, each reconciling and caching only the buckets
//! it holds; when one dies its buckets move, and when it comes back they
//! return — and no object is ever written by two replicas in one window.
//!
//! Scaled to what converges in a couple of minutes in a debug build on
//! two shared cores: 1,000 objects (the issue asks for "a few thousand";
//! the benchmark is where 10,000 belong).
//!
//! The writing replica is recorded where the API server shows it: the
//! misbehave guest's `writer` mode writes its settings' `replica` into the
//! object's status, and each replica runs it with its own name there.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Cluster, Host, eventually, guest};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

const OBJECTS: usize = 1_000;
const LONG: Duration = Duration::from_secs(240);
const LABEL: &str = "bosun.dev/shard-bucket";
const CACHED: &str = "bosun_cached_objects{kind=\"Misbehave.tests.bosun.dev/v1\",namespace=\"\"}";

/// The flags of sharded replica `id`: Leases in `e2e`, timed short so
/// that a killed replica's buckets move within seconds.
fn sharded(id: &str) -> Vec<&str> {
    vec![
        "--sharded",
        "--replica-id",
        id,
        "--leader-election-namespace",
        "e2e",
        "--lease-duration",
        "4s",
        "--renew-deadline",
        "3s",
        "--retry-period",
        "500ms",
    ]
}

/// A sharded replica `id`, running misbehave in `writer` mode from a
/// modules directory of its own (so its settings name it).
struct Replica {
    id: &'static str,
    host: Host,
    _dir: tempfile::TempDir,
}

impl Replica {
    fn spawn(cluster: &Cluster, id: &'static str) -> Replica {
        Replica::spawn_with(cluster, id, &sharded(id))
    }

    /// A replica run with `flags` (none: an unsharded host).
    fn spawn_with(cluster: &Cluster, id: &'static str, flags: &[&str]) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(guest("misbehave"), dir.path().join("misbehave.wasm")).unwrap();
        std::fs::write(
            dir.path().join("misbehave.settings.json"),
            json!({"mode": "writer", "replica": id}).to_string(),
        )
        .unwrap();
        let modules = dir.path().display().to_string();
        let mut args = vec!["--modules-dir", modules.as_str()];
        args.extend(flags);
        let host = Host::spawn(cluster, &[], &args);
        Replica {
            id,
            host,
            _dir: dir,
        }
    }

    async fn buckets(&self) -> f64 {
        self.host.metric("bosun_shard_buckets_held").await
    }
}

/// Which replica's Lease claims each bucket, for the live replicas' Leases.
async fn claims(cluster: &Cluster, live: &[&str]) -> BTreeMap<u16, String> {
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "e2e");
    let list = leases
        .list(&ListParams::default().labels("bosun.dev/shard-class=default"))
        .await
        .unwrap();
    let mut claims = BTreeMap::new();
    for lease in list.items {
        let holder = lease
            .spec
            .and_then(|s| s.holder_identity)
            .unwrap_or_default();
        if !live.contains(&holder.as_str()) {
            continue;
        }
        let list = lease
            .metadata
            .annotations
            .and_then(|a| a.get("bosun.dev/shard-buckets").cloned())
            .unwrap_or_default();
        for bucket in list.split(',').filter_map(|b| b.parse::<u16>().ok()) {
            let previous = claims.insert(bucket, holder.clone());
            assert!(
                previous.is_none(),
                "bucket {bucket} claimed by {holder} and {previous:?}"
            );
        }
    }
    claims
}

/// Whether every object is labelled with a bucket and was last written by
/// the live replica whose Lease claims that bucket, and every child
/// carries its primary's label; the objects each replica owns.
async fn converged(cluster: &Cluster, live: &[&str]) -> Option<BTreeMap<String, usize>> {
    let claims = claims(cluster, live).await;
    if claims.len() != 64 {
        return None;
    }
    let objects = cluster
        .misbehaves()
        .list(&ListParams::default())
        .await
        .ok()?;
    if objects.items.len() != OBJECTS {
        return None;
    }
    let mut owned: BTreeMap<String, usize> = BTreeMap::new();
    let mut buckets = HashMap::new();
    for object in &objects.items {
        let bucket: u16 = common::label(object, LABEL)?.parse().ok()?;
        let owner = claims.get(&bucket)?;
        if object.data["status"]["writer"].as_str() != Some(owner.as_str()) {
            return None;
        }
        *owned.entry(owner.clone()).or_default() += 1;
        buckets.insert(
            format!("{}-child", object.metadata.name.as_deref()?),
            bucket,
        );
    }
    let children = cluster
        .config_maps()
        .list(&ListParams::default())
        .await
        .ok()?;
    let mut labelled = 0;
    for child in &children.items {
        if let Some(bucket) = buckets.get(child.metadata.name.as_deref()?) {
            let label: u16 = common::label(child, LABEL)?.parse().ok()?;
            assert_eq!(label, *bucket, "a child labelled with another bucket");
            labelled += 1;
        }
    }
    (labelled == OBJECTS).then_some(owned)
}

/// Every change of an object's `status.writer`, in the order the watch saw
/// them: a name's list of writers, consecutive repeats merged.
type Writers = Arc<Mutex<HashMap<String, Vec<String>>>>;

fn record_writers(cluster: &Cluster) -> (Writers, tokio::task::JoinHandle<()>) {
    let writers: Writers = Arc::default();
    let api = cluster.misbehaves();
    let task = tokio::spawn({
        let writers = writers.clone();
        async move {
            let mut events =
                std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
            while let Some(Ok(object)) = events.next().await {
                let (Some(name), Some(writer)) = (
                    object.metadata.name.clone(),
                    object.data["status"]["writer"].as_str(),
                ) else {
                    continue;
                };
                let mut writers = writers.lock().unwrap();
                let history = writers.entry(name).or_default();
                if history.last().map(String::as_str) != Some(writer) {
                    history.push(writer.to_owned());
                }
            }
        }
    });
    (writers, task)
}

/// Asserts that since `writers` was last cleared each object changed
/// writer at most once, and only as `allowed` says (from, to); clears it.
fn assert_one_handover_each(writers: &Writers, allowed: impl Fn(&str, &str) -> bool, phase: &str) {
    let mut writers = writers.lock().unwrap();
    let mut moved = 0;
    for (name, history) in writers.iter() {
        // The first entry is where the phase started (the watch's list).
        assert!(
            history.len() <= 2,
            "{phase}: {name} was written by {history:?}: two replicas in one window"
        );
        if let [from, to] = history.as_slice() {
            assert!(allowed(from, to), "{phase}: {name} moved {from} -> {to}");
            moved += 1;
        }
    }
    eprintln!("{phase}: {moved} objects changed writer, each once");
    for history in writers.values_mut() {
        let last = history.pop();
        history.clear();
        history.extend(last);
    }
}

#[tokio::test]
async fn three_sharded_replicas_share_the_objects_and_hand_buckets_over() {
    let cluster = Cluster::start().await;
    let misbehaves = cluster.misbehaves();
    futures::stream::iter(0..OBJECTS)
        .map(|at| {
            let api = misbehaves.clone();
            async move {
                let object: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave",
                    "metadata": {"name": format!("m-{at}")}, "spec": {},
                }))
                .unwrap();
                api.create(&PostParams::default(), &object).await.map(drop)
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();

    let mut replicas = vec![
        Replica::spawn(&cluster, "r1"),
        Replica::spawn(&cluster, "r2"),
        Replica::spawn(&cluster, "r3"),
    ];
    for replica in &replicas {
        replica.host.wait_until("/readyz", LONG).await;
    }
    let all = ["r1", "r2", "r3"];
    let owned = eventually("three replicas converge", LONG, || {
        converged(&cluster, &all)
    })
    .await;
    eprintln!("objects per replica: {owned:?}");
    assert_eq!(owned.len(), 3, "every replica owns some: {owned:?}");

    // Each replica's cache holds its share, and only it; the buckets add
    // up to all 64.
    let mut total = 0.0;
    for replica in &replicas {
        let share = owned[replica.id] as f64;
        eventually(
            &format!("{}'s cache holds its share", replica.id),
            LONG,
            || async { (replica.host.metric(CACHED).await == share).then_some(()) },
        )
        .await;
        total += replica.buckets().await;
    }
    assert_eq!(total, 64.0);

    // r3 dies: its buckets move to r1 and r2 once its Lease lapses, and
    // only its objects change writer — once each.
    let (writers, recorder) = record_writers(&cluster);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_one_handover_each(&writers, |_, _| false, "settled");
    replicas[2].host.kill();
    let owned = eventually("r1 and r2 take r3's buckets", LONG, || {
        converged(&cluster, &["r1", "r2"])
    })
    .await;
    assert_eq!(owned.values().sum::<usize>(), OBJECTS);
    assert_eq!(
        replicas[0].buckets().await + replicas[1].buckets().await,
        64.0
    );
    assert_one_handover_each(&writers, |from, to| from == "r3" && to != "r3", "r3 killed");

    // r3 comes back under its name: buckets return to it, released by r1
    // and r2 before it writes anything of them.
    replicas[2] = Replica::spawn(&cluster, "r3");
    replicas[2].host.wait_until("/readyz", LONG).await;
    let back = eventually("r3 gets buckets back", LONG, || async {
        let owned = converged(&cluster, &all).await?;
        (owned.get("r3").copied().unwrap_or(0) > 0).then_some(owned)
    })
    .await;
    eprintln!("objects per replica after r3's return: {back:?}");
    assert_one_handover_each(&writers, |from, to| from != "r3" && to == "r3", "r3 back");
    for replica in &replicas {
        let share = back[replica.id] as f64;
        eventually(
            &format!("{}'s cache holds its share again", replica.id),
            LONG,
            || async { (replica.host.metric(CACHED).await == share).then_some(()) },
        )
        .await;
    }
    recorder.abort();

    // Sharding off: the replicas stop (and leave the ring), one unsharded
    // host runs; it removes the bucket label from every primary (what
    // bosun-sharder set, nothing else) and its children lose it on their
    // next apply.
    for replica in &mut replicas {
        assert_eq!(
            replica.host.terminate(),
            Some(0),
            "{} stops cleanly",
            replica.id
        );
    }
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "e2e");
    let left = leases
        .list(&ListParams::default().labels("bosun.dev/shard-class=default"))
        .await
        .unwrap();
    assert!(left.items.is_empty(), "a stopped replica deletes its Lease");
    let unsharded = Replica::spawn_with(&cluster, "unsharded", &[]);
    unsharded.host.wait_until("/readyz", LONG).await;
    eventually("the bucket labels are gone", LONG, || async {
        let primaries = cluster
            .misbehaves()
            .list(&ListParams::default())
            .await
            .ok()?;
        let children = cluster
            .config_maps()
            .list(&ListParams::default())
            .await
            .ok()?;
        let labelled = primaries
            .items
            .iter()
            .chain(&children.items)
            .filter(|o| common::label(o, LABEL).is_some())
            .count();
        let written = primaries
            .items
            .iter()
            .filter(|o| o.data["status"]["writer"] == "unsharded")
            .count();
        let kept = children
            .items
            .iter()
            .filter(|c| {
                c.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.ends_with("-child"))
            })
            .count();
        (labelled == 0 && written == OBJECTS && kept == OBJECTS).then_some(())
    })
    .await;
}

/// The sum of a replica's `controller_runtime_reconcile_total` for
/// `controller`, over every result.
async fn reconciles(host: &Host, controller: &str) -> f64 {
    let mut total = 0.0;
    for result in ["success", "error", "requeue", "requeue_after"] {
        total += host
            .metric(&format!(
                "controller_runtime_reconcile_total{{controller=\"{controller}\",result=\"{result}\"}}"
            ))
            .await;
    }
    total
}

/// With modules from the cluster every sharded replica loads each
/// ReconcilerModule, but its status has one writer — the holder of bucket
/// 0 — whose counts it shows, steadily, instead of each replica writing
/// its own over the others' every refresh.
#[tokio::test]
async fn sharded_replicas_leave_a_cluster_module_one_status_writer() {
    let cluster = Cluster::start().await;
    let ids = ["s1", "s2"];
    let hosts: Vec<Host> = ids
        .iter()
        .map(|id| {
            Host::spawn(
                &cluster,
                &[],
                &[&["--modules-from-cluster"][..], &sharded(id)].concat(),
            )
        })
        .collect();
    for host in &hosts {
        host.wait_until("/readyz", LONG).await;
    }
    let ns = cluster.namespace.clone();
    let out = cluster.bosun(&["push", &guest("webapp"), "--name", "webapp", "-n", &ns]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    for i in 0..60 {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
            "metadata": {"name": format!("web-{i}")},
            "spec": {"image": "nginx", "replicas": 1, "port": 8080},
        }))
        .unwrap();
        cluster
            .webapps()
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }
    let deployments = cluster.api("apps", "v1", "Deployment", "deployments");
    eventually("every WebApp has its Deployment", LONG, || async {
        let d = deployments.list(&ListParams::default()).await.ok()?;
        (d.items.len() == 60).then_some(())
    })
    .await;
    // Settled: neither replica reconciles any more.
    let started = std::time::Instant::now();
    let mut counts = Vec::new();
    loop {
        let now = futures::future::join_all(hosts.iter().map(|h| reconciles(h, "webapp"))).await;
        if now == counts {
            break;
        }
        assert!(
            started.elapsed() < LONG,
            "the replicas never went idle: {now:?}"
        );
        counts = now;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    assert!(
        counts.iter().all(|c| *c > 0.0),
        "both replicas reconcile a share: {counts:?}"
    );
    let holder = claims(&cluster, &ids)
        .await
        .get(&0)
        .cloned()
        .expect("bucket 0 is held");
    let writer = ids.iter().position(|id| **id == holder).unwrap();

    // Over four of the status's 10-second refreshes, status.reconciles is
    // the holder's count, every time (each replica writing its own, it
    // flipped to the other's within this window).
    let modules = cluster.reconciler_modules();
    eventually("the status shows the holder's count", LONG, || async {
        let module = common::get(&modules, "webapp").await?;
        (module.data["status"]["reconciles"].as_f64() == Some(counts[writer])).then_some(())
    })
    .await;
    for _ in 0..22 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let module = common::get(&modules, "webapp").await.unwrap();
        assert_eq!(
            module.data["status"]["reconciles"].as_f64(),
            Some(counts[writer]),
            "only {holder}, which holds bucket 0, writes the status (the replicas counted {counts:?})"
        );
    }
}
