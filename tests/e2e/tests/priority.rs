//! Storm control: when a host starts with thousands of objects queued by
//! its initial list, a real change made meanwhile goes ahead of them.

mod common;

use std::time::Duration;

use common::{Cluster, Host, eventually, get};
use futures::{StreamExt, TryStreamExt};
use kube::api::{DynamicObject, PostParams};
use serde_json::json;

const STORM: usize = 2_000;

fn mirror(name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "Mirror",
        "metadata": {"name": name}, "spec": {"configMapName": "absent"},
    }))
    .unwrap()
}

#[tokio::test]
async fn a_real_change_is_reconciled_before_the_storm_of_a_start_has_drained() {
    let cluster = Cluster::start().await;
    let mirrors = cluster.mirrors();
    futures::stream::iter(0..STORM)
        .map(|at| {
            let mirrors = mirrors.clone();
            async move {
                mirrors
                    .create(&PostParams::default(), &mirror(&format!("storm-{at}")))
                    .await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("the storm's objects");

    // One worker, so that the initial list takes a while to drain.
    let host = Host::start(&cluster, &["mirror"], &["--concurrency", "1"]).await;
    let reconciled = "controller_runtime_reconcile_total{controller=\"mirror\",result=\"success\"}";
    eventually("the storm begins", Duration::from_secs(60), || async {
        (host.metric(reconciled).await >= 20.0).then_some(())
    })
    .await;

    mirrors
        .create(&PostParams::default(), &mirror("probe"))
        .await
        .unwrap();
    eventually(
        "the probe is reconciled",
        Duration::from_secs(60),
        || async {
            get(&mirrors, "probe")
                .await
                .filter(|m| m.data.pointer("/status/found") == Some(&json!(false)))
        },
    )
    .await;
    let done = host.metric(reconciled).await;
    let waiting = host.metric("workqueue_depth{name=\"mirror\"}").await;
    eprintln!("probe reconciled after {done} of {STORM} reconciles, {waiting} keys still queued");
    assert!(
        waiting > (STORM / 2) as f64,
        "the probe waited behind the storm: {done} reconciles done, {waiting} keys still queued"
    );
}
