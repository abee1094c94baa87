//! A guest that floods: its status changes on every call, it returns 32
//! events with new reasons each time and asks to be requeued after 250 ms.
//! Reproduced before this was bounded, for 30 s on one object: 90 status
//! writes (the requeue went around the hot-loop hold) and 2,880 Events.
//! Now the requeue waits for the hold, the events count as writes, and
//! each object has an event budget.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, Host, misbehave};
use futures::StreamExt;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

const FLOOD: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_flooding_guest_is_held_back_and_its_events_stay_within_the_budget() {
    let cluster = Cluster::tenant("floods").await;
    let host = Host::start_confined(&cluster, &["misbehave"], &[]).await;
    let misbehaves = cluster.misbehaves();

    // Every write of the object, seen on a watch of it alone.
    let writes = tokio::spawn({
        let misbehaves = misbehaves.clone();
        async move {
            let config = watcher::Config::default().fields("metadata.name=flood");
            let mut versions = std::collections::BTreeSet::new();
            let stream = watcher(misbehaves, config).applied_objects();
            let mut stream = std::pin::pin!(stream);
            let started = Instant::now();
            while let Ok(Some(Ok(object))) =
                tokio::time::timeout(FLOOD.saturating_sub(started.elapsed()), stream.next()).await
            {
                if object.data.pointer("/status/tick").is_some() {
                    versions.extend(object.metadata.resource_version);
                }
            }
            versions.len()
        }
    });
    misbehaves
        .create(&PostParams::default(), &misbehave("flood", "tick-flood"))
        .await
        .unwrap();
    let status_writes = writes.await.unwrap();

    let events = Api::<Event>::namespaced(cluster.client.clone(), &cluster.namespace)
        .list(&ListParams::default())
        .await
        .unwrap();
    let about_flood: Vec<&Event> = events
        .items
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("flood"))
        .collect();
    let guests = about_flood
        .iter()
        .filter(|e| e.action.as_deref() == Some("Tick"))
        .count();
    let dropped = host
        .metric("bosun_events_dropped_total{module=\"misbehave\"}")
        .await;
    eprintln!(
        "in {FLOOD:?}: {status_writes} status writes, {} Events about the object ({guests} of the guest's), {dropped} events dropped",
        about_flood.len()
    );
    assert!(
        status_writes <= 20,
        "{status_writes} status writes in {FLOOD:?}: the requeue went around the hold"
    );
    assert!(
        guests <= 25,
        "{guests} of the guest's Events for one object: over its budget"
    );
    assert!(dropped > 0.0, "nothing was dropped");
    assert!(
        about_flood
            .iter()
            .any(|e| e.reason.as_deref() == Some("HotLoop")),
        "the host's own warning was not crowded out: {:?}",
        about_flood.iter().map(|e| &e.reason).collect::<Vec<_>>()
    );
}
