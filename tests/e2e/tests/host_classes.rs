//! Host classes (`bosun run --host-class`, `spec.hostClass`): two hosts in
//! one cluster each run only their class's ReconcilerModules, a module that
//! moves between classes moves between hosts, and a module of a class no
//! host serves says so in its status — written by one host only.

mod common;

use std::process::Output;
use std::time::Duration;

use common::*;
use kube::api::{Patch, PatchParams};
use serde_json::json;

/// `bosun push` against the cluster.
fn push(cluster: &Cluster, module: &str, name: &str, class: Option<&str>) -> Output {
    let component = guest(module);
    let mut args = vec![
        "push",
        component.as_str(),
        "--name",
        name,
        "-n",
        &cluster.namespace,
    ];
    if let Some(class) = class {
        args.extend(["--host-class", class]);
    }
    cluster.bosun(&args)
}

/// Whether `host` has the module named `module` (the name it declares)
/// loaded, by its `/metrics`.
async fn runs(host: &Host, module: &str) -> bool {
    let (_, metrics) = host.get("/metrics").await.unwrap_or_default();
    metrics.lines().any(|line| {
        line.starts_with("bosun_module_info{") && line.contains(&format!("module=\"{module}\""))
    })
}

#[tokio::test]
async fn two_host_classes_run_side_by_side_and_a_class_nobody_serves_says_so() {
    let cluster = Cluster::start().await;
    let platform = Host::start(&cluster, &[], &["--modules-from-cluster"]).await;
    let tenant = Host::start(
        &cluster,
        &[],
        &["--modules-from-cluster", "--host-class", "tenant-a"],
    )
    .await;
    let modules = cluster.reconciler_modules();

    // webapp in the default class, cnat in the tenant's: each loads on its
    // own host only, and its status settles (no two hosts taking turns).
    for (module, class) in [("webapp", None), ("cnat", Some("tenant-a"))] {
        let out = push(&cluster, module, module, class);
        assert!(out.status.success(), "bosun push {module}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Loaded=True (Loaded)"),
            "{out:?}"
        );
    }
    assert_eq!(
        get(&modules, "cnat").await.unwrap().data["spec"]["hostClass"],
        "tenant-a"
    );
    assert_eq!(
        get(&modules, "webapp").await.unwrap().data["spec"]["hostClass"],
        "default",
        "the CRD defaults the class"
    );
    assert!(runs(&platform, "webapp").await && !runs(&platform, "cnat").await);
    assert!(runs(&tenant, "cnat").await && !runs(&tenant, "webapp").await);
    // Long enough for a status refresh and an announcement round of both.
    tokio::time::sleep(Duration::from_secs(12)).await;
    for name in ["webapp", "cnat"] {
        let module = get(&modules, name).await.unwrap();
        let loaded = condition(&module, "Loaded").unwrap();
        assert_eq!(loaded["reason"], "Loaded", "{name}: {loaded}");
    }

    // A class nobody serves: the first live class by name (default)
    // reports it, and push says why the module did not load.
    let out = push(&cluster, "mirror", "orphan", Some("tenant-b"));
    assert!(!out.status.success(), "{out:?}");
    let module = wait_loaded(&modules, "orphan", "False", "NoHostForClass").await;
    let message = condition(&module, "Loaded").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("no bosun host serves host class \"tenant-b\"")
            && message.contains("default, tenant-a")
            && message.contains("--host-class tenant-b"),
        "{message}"
    );
    assert_eq!(
        condition(&module, "Ready").unwrap()["reason"],
        "NoHostForClass"
    );
    assert!(!runs(&platform, "mirror").await && !runs(&tenant, "mirror").await);
    assert!(
        platform.log().contains("no host serves the module's class")
            && !tenant.log().contains("no host serves the module's class"),
        "only the default class's host reports"
    );

    // A host of that class starts: it runs the module and its status says so.
    let late = Host::start(
        &cluster,
        &[],
        &["--modules-from-cluster", "--host-class", "tenant-b"],
    )
    .await;
    wait_loaded(&modules, "orphan", "True", "Loaded").await;
    assert!(runs(&late, "mirror").await);

    // cnat moves to the default class: the tenant's host lets it go, the
    // platform's takes it.
    modules
        .patch(
            "cnat",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hostClass": "default"}})),
        )
        .await
        .unwrap();
    eventually("the platform host runs cnat", LONG, || async {
        runs(&platform, "cnat").await.then_some(())
    })
    .await;
    wait_loaded(&modules, "cnat", "True", "Loaded").await;
    eventually("the tenant host let cnat go", LONG, || async {
        (!runs(&tenant, "cnat").await).then_some(())
    })
    .await;
}

const LONG: Duration = Duration::from_secs(60);
