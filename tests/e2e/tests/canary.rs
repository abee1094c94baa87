//! Canaries as a user runs them, against a real control plane and a host
//! running `--modules-from-cluster`: `bosun push --canary` stages a
//! candidate that reconciles a share of the WebApps for real; one that
//! fails on some objects is rolled back by the host, which says why in the
//! status and in an Event, and the canary's objects return to the live
//! version's state; a clean one steps up by itself after a clean window.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{
    Cluster, Host, assert_prints_as_readme, eventually, get, label, reconciled_condition,
    rollout_status, stderr, stdout, webapp_next,
};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(120);

/// The host's bucket of a primary, written out again here: the algorithm
/// (FNV-1a over `namespace/name`, modulo 100) is part of the contract —
/// README "Canaries" — and a change to it would move objects between
/// versions.
fn bucket(namespace: &str, name: &str) -> u8 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in format!("{namespace}/{name}").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % 100) as u8
}

/// WebApp names `web-0`, `web-1`, … — at least `total`, and enough that
/// `at_least` of them fall below `percent` — with those that do.
fn names(
    namespace: &str,
    total: usize,
    percent: u8,
    at_least: usize,
) -> (Vec<String>, Vec<String>) {
    let mut all = Vec::new();
    let mut canary = Vec::new();
    let mut i = 0;
    while all.len() < total || canary.len() < at_least {
        let name = format!("web-{i}");
        if bucket(namespace, &name) < percent {
            canary.push(name.clone());
        }
        all.push(name);
        i += 1;
    }
    (all, canary)
}

async fn create_webapps(cluster: &Cluster, names: &[String], breaking: &BTreeSet<String>) {
    for name in names {
        let mut labels = json!({});
        if breaking.contains(name) {
            labels[webapp::BREAKS_REVISION_LABEL] = json!("2");
        }
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
            "metadata": {"name": name, "labels": labels},
            "spec": {"image": "nginx", "replicas": 1, "port": 8080},
        }))
        .unwrap();
        cluster
            .webapps()
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }
}

async fn every_deployment(cluster: &Cluster, count: usize) {
    let deployments = cluster.api("apps", "v1", "Deployment", "deployments");
    eventually("every WebApp has its Deployment", LONG, || async {
        let d = deployments.list(&ListParams::default()).await.unwrap();
        (d.items.len() == count).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_canary_that_fails_on_some_objects_is_rolled_back_by_the_host() {
    let cluster = Cluster::start().await;
    let _host = Host::start(&cluster, &[], &["--modules-from-cluster"]).await;
    let modules = cluster.reconciler_modules();
    let deployments = cluster.api("apps", "v1", "Deployment", "deployments");
    let ns = cluster.namespace.clone();
    let webapp = common::guest("webapp");
    let next = webapp_next();

    // Thirty WebApps; revision 2 fails on those labelled for it: every
    // canary object but one, and a few outside the canary (where the live
    // version, which never fails on them, keeps them).
    let (all, canary) = names(&ns, 30, 20, 3);
    let mut breaking: BTreeSet<String> = canary.iter().skip(1).cloned().collect();
    breaking.extend(all.iter().filter(|n| !canary.contains(n)).take(3).cloned());
    let out = cluster.bosun(&["push", &webapp, "--name", "webapp", "-n", &ns]);
    assert!(out.status.success(), "{}", stderr(&out));
    create_webapps(&cluster, &all, &breaking).await;
    every_deployment(&cluster, all.len()).await;

    let out = cluster.bosun(&[
        "push",
        &next,
        "--name",
        "webapp",
        "-n",
        &ns,
        "--canary",
        "20",
        "--canary-min-calls",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // README's "Canaries" transcript, as written (its push has no
    // --canary-min-calls: the defaults would take longer to judge here).
    let readme = "bosun push webapp-next.wasm --name webapp -n shop --canary 20";
    assert_prints_as_readme(readme, readme, &stdout(&out), &ns);

    // The host sees the candidate fail where the live version does not,
    // and rolls it back by itself.
    let found = rollout_status(
        &modules,
        "webapp",
        "the host rolls the canary back",
        LONG,
        |r| r["phase"] == "RolledBack",
    )
    .await;
    assert_eq!(found["candidateVersion"], "0.1.0+rev2", "{found:#}");
    let message = found["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("rolled back by the host: the candidate failed")
            && message.contains("maxFailureRatio 0.10"),
        "{found:#}"
    );
    let counted = &found["canary"]["candidate"];
    assert!(counted["errors"].as_u64().unwrap() >= 2, "{found:#}");
    assert_eq!(counted["traps"], 0, "{found:#}");
    assert_eq!(found["canary"]["percent"], 0, "{found:#}");
    assert_eq!(found["canary"]["steps"], json!([20]), "{found:#}");
    // The candidate's failures were reported on the canary's objects.
    let note = common::warning(&cluster, &canary[1], "BrokenRevision").await;
    assert!(note.contains("revision 2 fails"), "{note}");

    // The Event on the ReconcilerModule.
    let events =
        Api::<k8s_openapi::api::events::v1::Event>::namespaced(cluster.client.clone(), "default");
    let event = eventually("a CanaryRolledBack event", LONG, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("CanaryRolledBack")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("webapp")
                && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("ReconcilerModule")
        })
    })
    .await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert!(
        event
            .note
            .as_deref()
            .is_some_and(|n| n.contains("the candidate failed")),
        "{event:?}"
    );

    // Every canary object returns to the live version's state, read from
    // the API server: no revision label on its Deployment, no
    // Reconciled=False left by the candidate's failures.
    eventually(
        "the canary's objects are the live version's again",
        LONG,
        || async {
            let d = deployments.list(&ListParams::default()).await.unwrap();
            let labelled: Vec<_> = d
                .items
                .iter()
                .filter(|o| label(o, webapp::REVISION_LABEL).is_some())
                .collect();
            if !labelled.is_empty() {
                return None;
            }
            for name in &canary {
                let object = get(&cluster.webapps(), name).await?;
                if reconciled_condition(&object).is_some() {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    let module = get(&modules, "webapp").await.unwrap();
    assert_eq!(module.data["status"]["version"], "0.1.0");
    assert_eq!(
        module.data["status"]["quarantined"], false,
        "the candidate's failures are not the live version's"
    );

    let out = cluster.bosun(&["rollout", "status", "webapp"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(printed.contains("RolledBack 0.1.0+rev2"), "{printed}");
    assert!(printed.contains("candidate  calls: "), "{printed}");
    assert_prints_as_readme(readme, "bosun rollout status webapp", &printed, &ns);
    let out = cluster.bosun(&["rollout", "step", "webapp"]);
    assert!(!out.status.success(), "no step after a rollback");
    assert!(stderr(&out).contains("rolled"), "{}", stderr(&out));

    // The same digest is not staged again by the next load of the spec.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let module = get(&modules, "webapp").await.unwrap();
    assert_eq!(module.data["status"]["rollout"]["phase"], "RolledBack");
    let d = deployments.list(&ListParams::default()).await.unwrap();
    assert!(
        d.items
            .iter()
            .all(|o| label(o, webapp::REVISION_LABEL).is_none()),
        "nothing went back to the candidate"
    );

    // Pushing the same candidate again is refused with the reason.
    let out = cluster.bosun(&[
        "push",
        &next,
        "--name",
        "webapp",
        "-n",
        &ns,
        "--canary",
        "20",
        "--canary-min-calls",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("rolled this candidate back before"),
        "{}",
        stderr(&out)
    );

    // Abort resets it.
    let out = cluster.bosun(&["rollout", "abort", "webapp"]);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually("the rollout status is cleared", LONG, || async {
        get(&modules, "webapp")
            .await
            .filter(|m| m.data.pointer("/status/rollout").is_none_or(Value::is_null))
    })
    .await;
}

#[tokio::test]
async fn a_clean_canary_steps_up_after_a_clean_window() {
    let cluster = Cluster::start().await;
    let _host = Host::start(&cluster, &[], &["--modules-from-cluster"]).await;
    let modules = cluster.reconciler_modules();
    let deployments = cluster.api("apps", "v1", "Deployment", "deployments");
    let ns = cluster.namespace.clone();
    let webapp = common::guest("webapp");
    let next = webapp_next();

    let (all, _) = names(&ns, 20, 10, 1);
    let out = cluster.bosun(&["push", &webapp, "--name", "webapp", "-n", &ns]);
    assert!(out.status.success(), "{}", stderr(&out));
    create_webapps(&cluster, &all, &BTreeSet::new()).await;
    every_deployment(&cluster, all.len()).await;

    let out = cluster.bosun(&[
        "push",
        &next,
        "--name",
        "webapp",
        "-n",
        &ns,
        "--canary",
        "10,50",
        "--canary-automatic",
        "--canary-window",
        "5",
        "--canary-min-calls",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let found = rollout_status(
        &modules,
        "webapp",
        "the canary steps up to 50%",
        LONG,
        |r| r["canary"]["percent"] == 50,
    )
    .await;
    assert_eq!(found["phase"], "Canary", "{found:#}");
    assert_eq!(found["canary"]["step"], 1, "{found:#}");

    // The candidate writes exactly its half: the objects whose bucket is
    // below 50 carry its revision label, the others do not.
    eventually("the candidate reconciles its 50%", LONG, || async {
        let d = deployments.list(&ListParams::default()).await.unwrap();
        d.items
            .iter()
            .all(|o| {
                let name = o.metadata.name.clone().unwrap_or_default();
                let candidate = bucket(&ns, &name) < 50;
                (label(o, webapp::REVISION_LABEL).as_deref() == Some("2")) == candidate
            })
            .then_some(())
    })
    .await;
    let out = cluster.bosun(&["rollout", "status", "webapp"]);
    let printed = stdout(&out);
    assert!(
        printed
            .contains("canary share: 50% of the objects (step 2 of 2: 10% → 50%; automatic steps)"),
        "{printed}"
    );
    // At its last step: promote, not step.
    let out = cluster.bosun(&["rollout", "step", "webapp"]);
    assert!(stderr(&out).contains("last step"), "{}", stderr(&out));
    let out = cluster.bosun(&["rollout", "promote", "webapp"]);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually("every child carries the revision label", LONG, || async {
        let d = deployments.list(&ListParams::default()).await.unwrap();
        d.items
            .iter()
            .all(|o| label(o, webapp::REVISION_LABEL).as_deref() == Some("2"))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_trapping_canary_never_quarantines_the_live_version() {
    let cluster = Cluster::start().await;
    let _host = Host::start(&cluster, &[], &["--modules-from-cluster"]).await;
    let modules = cluster.reconciler_modules();
    cluster.push_misbehave("ok", &[]);
    cluster.misbehaves_reconciled(&["a", "b", "c"]).await;

    // Every object to a candidate that panics, judged only after more
    // traps than the live version's quarantine takes (10 in a row).
    cluster.push_misbehave("panic", &["--canary", "100", "--canary-min-calls", "15"]);
    let found = eventually("the host rolls the canary back", LONG, || async {
        get(&modules, "misbehave")
            .await
            .and_then(|m| m.data.pointer("/status/rollout").cloned())
            .filter(|r| r["phase"] == "RolledBack")
    })
    .await;
    assert!(
        found["canary"]["candidate"]["traps"].as_u64().unwrap() >= 15,
        "{found:#}"
    );
    assert!(
        found["message"]
            .as_str()
            .is_some_and(|m| m.contains("traps: 100%")),
        "{found:#}"
    );
    let module = eventually("the counts refreshed after the rollback", LONG, || async {
        get(&modules, "misbehave")
            .await
            .filter(|m| m.data["status"]["traps"].as_u64().is_some_and(|t| t >= 15))
    })
    .await;
    assert_eq!(
        module.data["status"]["quarantined"], false,
        "{:#}",
        module.data["status"]
    );
    assert_eq!(
        common::condition(&module, "Ready").unwrap()["status"],
        "True"
    );
    // The live version reconciles every object again, a new one too.
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave",
        "metadata": {"name": "d"}, "spec": {},
    }))
    .unwrap();
    cluster
        .misbehaves()
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    eventually(
        "the live version reconciles after the rollback",
        LONG,
        || async { get(&cluster.config_maps(), "d-child").await },
    )
    .await;
    let module = get(&modules, "misbehave").await.unwrap();
    assert_eq!(module.data["status"]["quarantined"], false);
}

#[tokio::test]
async fn a_manual_canary_steps_up_with_bosun_rollout_step_and_a_bad_one_is_refused() {
    let cluster = Cluster::start().await;
    let _host = Host::start(&cluster, &[], &["--modules-from-cluster"]).await;
    let modules = cluster.reconciler_modules();
    let ns = cluster.namespace.clone();
    let webapp = common::guest("webapp");
    let next = webapp_next();
    let (all, _) = names(&ns, 10, 10, 1);
    let out = cluster.bosun(&["push", &webapp, "--name", "webapp", "-n", &ns]);
    assert!(out.status.success(), "{}", stderr(&out));
    create_webapps(&cluster, &all, &BTreeSet::new()).await;
    every_deployment(&cluster, all.len()).await;

    // Steps that do not ascend are the user's mistake, caught before
    // anything is written.
    let out = cluster.bosun(&[
        "push", &next, "--name", "webapp", "-n", &ns, "--canary", "50,10",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("spec.rollout.canary.steps: [50, 10] must be strictly ascending"),
        "{}",
        stderr(&out)
    );

    let out = cluster.bosun(&[
        "push",
        &next,
        "--name",
        "webapp",
        "-n",
        &ns,
        "--canary",
        "10,50,100",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    rollout_status(&modules, "webapp", "the canary takes 10%", LONG, |r| {
        r["phase"] == "Canary" && r["canary"]["percent"] == 10
    })
    .await;
    let out = cluster.bosun(&["rollout", "step", "webapp"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("canary stepped up to 50% of the objects"),
        "{}",
        stdout(&out)
    );
    let found = rollout_status(&modules, "webapp", "the canary takes 50%", LONG, |r| {
        r["canary"]["percent"] == 50
    })
    .await;
    assert_eq!(found["canary"]["step"], 1, "{found:#}");
    assert_eq!(found["canary"]["automatic"], false, "{found:#}");

    // A spec written by hand past the bounds: refused, naming the field;
    // the running version goes on.
    modules
        .patch(
            "webapp",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"rollout": {"canary": {"steps": [0, 200]}}}})),
        )
        .await
        .unwrap();
    let module = eventually("the spec is refused", LONG, || async {
        get(&modules, "webapp").await.filter(|m| {
            common::condition(m, "Loaded").is_some_and(|c| c["reason"] == "InvalidSpec")
        })
    })
    .await;
    let loaded = common::condition(&module, "Loaded").unwrap();
    assert!(
        loaded["message"]
            .as_str()
            .is_some_and(|m| m.contains("spec.rollout.canary.steps: 0 is not a percent in 1-100")),
        "{loaded:#}"
    );
    assert_eq!(module.data["status"]["rollout"]["phase"], "Refused");
    assert_eq!(
        common::condition(&module, "Ready").unwrap()["status"],
        "True"
    );
}
