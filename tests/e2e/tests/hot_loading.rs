//! Hot-loading: modules dropped into, replaced in and removed from a watched
//! directory while `bosun run` keeps running; quarantine after repeated traps.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Cluster, Host, eventually, get, guest, label, misbehave};
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

const LONG: Duration = Duration::from_secs(60);

/// Writes a file the way deploy tools do: to a temporary name, then renamed
/// into place, so the watcher never sees half a component.
fn put(dir: &Path, name: &str, bytes: &[u8]) {
    let staging = dir.join(format!(".{name}.partial"));
    std::fs::write(&staging, bytes).unwrap();
    std::fs::rename(&staging, dir.join(name)).unwrap();
}

#[tokio::test]
async fn a_watched_directory_loads_swaps_keeps_the_last_good_version_and_unloads() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(
        &cluster,
        &[],
        &["--modules-dir", dir.path().to_str().unwrap()],
    )
    .await;
    let apps = cluster.webapps();
    let deployments = cluster.api("apps", "v1", "Deployment", "deployments");

    // Dropped in, with settings beside it.
    put(
        dir.path(),
        "webapp.settings.yaml",
        b"commonLabels: {team: a}\n",
    );
    put(
        dir.path(),
        "webapp.wasm",
        &std::fs::read(guest("webapp")).unwrap(),
    );
    let app: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
        "metadata": {"name": "shop"}, "spec": {"image": "nginx", "replicas": 1}
    }))
    .unwrap();
    apps.create(&PostParams::default(), &app).await.unwrap();
    eventually(
        "the Deployment, labelled from the settings",
        LONG,
        || async {
            get(&deployments, "shop")
                .await
                .filter(|d| label(d, "team").as_deref() == Some("a"))
        },
    )
    .await;

    // New settings, same bytes: every object reconciled again, nothing compiled.
    put(
        dir.path(),
        "webapp.settings.yaml",
        b"commonLabels: {team: b}\n",
    );
    eventually(
        "the Deployment relabelled from the new settings",
        LONG,
        || async {
            get(&deployments, "shop")
                .await
                .filter(|d| label(d, "team").as_deref() == Some("b"))
        },
    )
    .await;

    // A new version of the module: every object reconciled with it.
    let next = bosun_testenv::guests::webapp_next().expect("the second webapp version builds");
    let swapped = Instant::now();
    put(dir.path(), "webapp.wasm", &std::fs::read(next).unwrap());
    eventually(
        "the Deployment reconciled by the new version",
        LONG,
        || async {
            get(&deployments, "shop")
                .await
                .filter(|d| label(d, webapp::REVISION_LABEL).as_deref() == Some("2"))
        },
    )
    .await;
    eprintln!(
        "file replaced → object reconciled by the new version: {:?}",
        swapped.elapsed()
    );
    assert!(
        host.log().contains("new version swapped in"),
        "swapped in place, not restarted"
    );

    // Garbage: refused, and the last good version keeps reconciling.
    put(
        dir.path(),
        "webapp.wasm",
        b"\0asm\x01\0\0\0 this is no component",
    );
    eventually("the bad file reported", LONG, || async {
        host.log()
            .contains("the last good version keeps running")
            .then_some(())
    })
    .await;
    apps.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    let scaled = eventually("the last good version still reconciling", LONG, || async {
        get(&deployments, "shop")
            .await
            .filter(|d| d.data["spec"]["replicas"] == 3)
    })
    .await;
    assert_eq!(label(&scaled, webapp::REVISION_LABEL).as_deref(), Some("2"));

    // Back to the first version: the label only the second one set goes,
    // though everything the first one wants is already there.
    put(
        dir.path(),
        "webapp.wasm",
        &std::fs::read(guest("webapp")).unwrap(),
    );
    let back = eventually(
        "the revision label removed by the first version",
        LONG,
        || async {
            get(&deployments, "shop")
                .await
                .filter(|d| label(d, webapp::REVISION_LABEL).is_none())
        },
    )
    .await;
    assert_eq!(back.data["spec"]["replicas"], 3);
    assert_eq!(label(&back, "team").as_deref(), Some("b"));

    // Removed: the controller stops; changes are no longer reconciled.
    std::fs::remove_file(dir.path().join("webapp.wasm")).unwrap();
    eventually("the module unloaded", LONG, || async {
        host.log().contains("module removed").then_some(())
    })
    .await;
    apps.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 4}})),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        get(&deployments, "shop").await.unwrap().data["spec"]["replicas"],
        3
    );
}

#[tokio::test]
async fn a_module_that_keeps_trapping_is_quarantined() {
    let cluster = Cluster::start().await;
    let host = Host::start(
        &cluster,
        &["misbehave"],
        &["--quarantine-after", "3", "--timeout-ms", "200"],
    )
    .await;
    let config_maps = cluster.config_maps();
    cluster
        .misbehaves()
        .create(&PostParams::default(), &misbehave("spin", "loop"))
        .await
        .unwrap();
    eventually("quarantine visible in the metrics", LONG, || async {
        (host
            .metric("bosun_module_quarantined{module=\"misbehave\"}")
            .await
            == 1.0)
            .then_some(())
    })
    .await;
    assert!(host.log().contains("quarantined after 3 traps in a row"));
    let timeouts = host
        .metric("bosun_guest_traps_total{module=\"misbehave\",kind=\"Timeout\"}")
        .await;
    assert!(timeouts >= 3.0);

    // No more work is handed out: a healthy object is not reconciled.
    cluster
        .misbehaves()
        .create(&PostParams::default(), &misbehave("fine", "ok"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        get(&config_maps, "fine-child").await.is_none(),
        "a quarantined module gets no work"
    );
    assert_eq!(
        host.metric("bosun_guest_traps_total{module=\"misbehave\",kind=\"Timeout\"}")
            .await,
        timeouts,
        "and the looping object is not retried either"
    );
}

#[tokio::test]
async fn new_kinds_restart_the_controller_and_finalizers_outlive_their_module() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(
        &cluster,
        &[],
        &["--modules-dir", dir.path().to_str().unwrap()],
    )
    .await;

    // cnat under the file name `tenant.wasm`, then janitor under the same
    // name: other kinds, so the controller is replaced and cnat's watches stop.
    put(
        dir.path(),
        "tenant.wasm",
        &std::fs::read(guest("cnat")).unwrap(),
    );
    eventually("cnat running", LONG, || async {
        host.log()
            .contains("starting controller module=cnat")
            .then_some(())
    })
    .await;
    put(
        dir.path(),
        "tenant.wasm",
        &std::fs::read(guest("janitor")).unwrap(),
    );
    eventually("the controller replaced", LONG, || async {
        host.log()
            .contains("replacing the controller")
            .then_some(())
    })
    .await;
    eventually("cnat's watches stopped", LONG, || async {
        (host.log().contains("stopping unused watch kind=At")
            && host.log().contains("stopping unused watch kind=Pod"))
        .then_some(())
    })
    .await;

    // janitor holds a finalizer on each Tidy.
    let tidies = cluster.api("tests.bosun.dev", "v1", "Tidy", "tidies");
    let tidy: kube::api::DynamicObject =
        serde_json::from_value(json!({"apiVersion": "tests.bosun.dev/v1", "kind": "Tidy", "metadata": {"name": "kept"}, "spec": {"release": true}}))
            .unwrap();
    tidies.create(&PostParams::default(), &tidy).await.unwrap();
    eventually("the finalizer added", LONG, || async {
        get(&tidies, "kept").await.filter(|t| {
            t.metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| !f.is_empty())
        })
    })
    .await;

    // The module goes while the object still carries its finalizer: the
    // host never drops a finalizer whose cleanup did not run, so the object
    // stays in deletion…
    std::fs::remove_file(dir.path().join("tenant.wasm")).unwrap();
    eventually("the module unloaded", LONG, || async {
        host.log().contains("module removed").then_some(())
    })
    .await;
    tidies
        .delete("kept", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stuck = get(&tidies, "kept")
        .await
        .expect("held by its finalizer while no module runs it");
    assert!(stuck.metadata.deletion_timestamp.is_some());

    // …until a module with that finalizer runs again and finalizes it.
    put(
        dir.path(),
        "janitor.wasm",
        &std::fs::read(guest("janitor")).unwrap(),
    );
    eventually("finalized once the module is back", LONG, || async {
        get(&tidies, "kept").await.is_none().then_some(())
    })
    .await;
}
