//! A warm standby: a replica waiting for the Lease loads its modules, lists
//! and watches their kinds and queues their objects, writes nothing, and
//! once it takes the Lease reconciles without listing anything again.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Cluster, Host, eventually, get};
use kube::api::{DynamicObject, PostParams};
use serde_json::json;

const LONG: Duration = Duration::from_secs(60);
const WEBAPPS: usize = 50;

fn webapp(name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "WebApp",
        "metadata": {"name": name}, "spec": {"image": "nginx", "replicas": 1},
    }))
    .unwrap()
}

/// The LISTs the API server served for webapp's kinds so far, by
/// resource and response code: a mismatch then says which kind was listed
/// again and whether an earlier list had failed.
async fn lists(cluster: &Cluster) -> BTreeMap<String, f64> {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = cluster
        .client
        .request_text(request)
        .await
        .expect("the API server's /metrics");
    let mut served = BTreeMap::new();
    for line in text.lines().filter(|line| {
        line.starts_with("apiserver_request_total{") && line.contains("verb=\"LIST\"")
    }) {
        let label = |name: &str| {
            let start = line
                .find(&format!("{name}=\""))
                .map(|at| at + name.len() + 2)?;
            let len = line[start..].find('"')?;
            Some(line[start..start + len].to_owned())
        };
        let (Some(resource), Some(code)) = (label("resource"), label("code")) else {
            continue;
        };
        if !["webapps", "deployments", "services"].contains(&resource.as_str()) {
            continue;
        }
        if let Some(count) = line
            .rsplit_once(' ')
            .and_then(|(_, n)| n.parse::<f64>().ok())
        {
            *served.entry(format!("{resource} {code}")).or_default() += count;
        }
    }
    served
}

fn leads(host: &Host) -> bool {
    host.log().contains("became the leader")
}

/// When `host` logged the first line containing `needle`, as logged.
fn logged_at(host: &Host, needle: &str) -> Option<jiff::Timestamp> {
    let log = host.log();
    let line = log.lines().find(|line| line.contains(needle))?;
    line.split_whitespace().next()?.parse().ok()
}

#[tokio::test]
async fn a_warm_standby_takes_over_without_a_list_and_wrote_nothing_before() {
    let cluster = Cluster::start().await;
    let webapps = cluster.webapps();
    for at in 0..WEBAPPS {
        webapps
            .create(&PostParams::default(), &webapp(&format!("app-{at}")))
            .await
            .unwrap();
    }
    let flags = [
        "--leader-elect",
        "--leader-election-namespace",
        "e2e",
        "--lease-duration",
        "4s",
        "--renew-deadline",
        "3s",
        "--retry-period",
        "500ms",
    ];
    let mut hosts = [
        Host::start(&cluster, &["webapp"], &flags).await,
        Host::start(&cluster, &["webapp"], &flags).await,
    ];
    let leader = eventually("a leader", LONG, || async { hosts.iter().position(leads) }).await;
    let standby = 1 - leader;
    let deployments = cluster.api("apps", "v1", "Deployment", "deployments");
    eventually("the leader reconciles every WebApp", LONG, || async {
        get(&deployments, &format!("app-{}", WEBAPPS - 1)).await
    })
    .await;

    // The standby holds every WebApp in its cache, has listed each of
    // webapp's kinds, and has written nothing. Waiting for every kind's
    // first list, not just WebApp's: a standby whose first list of a kind
    // failed lists it again on its backoff — its start-up, not the takeover
    // this test measures.
    let cached = "bosun_cached_objects{kind=\"WebApp.examples.bosun.dev/v1alpha1\",namespace=\"\"}";
    eventually("the standby's cache is full", LONG, || async {
        (hosts[standby].metric(cached).await == WEBAPPS as f64).then_some(())
    })
    .await;
    for kind in ["Deployment.apps/v1", "Service.v1"] {
        let synced = format!("cache synced kind={kind}");
        eventually(&format!("the standby lists every {kind}"), LONG, || async {
            hosts[standby].log().contains(&synced).then_some(())
        })
        .await;
    }
    assert!(!leads(&hosts[standby]), "only one leader");
    for result in ["success", "error", "requeue", "requeue_after"] {
        let sample = format!(
            "controller_runtime_reconcile_total{{controller=\"webapp\",result=\"{result}\"}}"
        );
        assert_eq!(
            hosts[standby].metric(&sample).await,
            0.0,
            "the standby reconciled ({result})"
        );
    }
    let (_, metrics) = hosts[standby].get("/metrics").await.unwrap();
    assert!(
        !metrics.contains("bosun_write_failures_total"),
        "the standby tried to write:\n{metrics}"
    );

    // The leader goes; the standby takes the Lease and reconciles — a new
    // WebApp, and the ones it queued while standing by — with no LIST.
    hosts[leader].kill();
    let killed = Instant::now();
    // Counted once the old leader is gone: whatever it listed is not the
    // standby's doing.
    let listed = lists(&cluster).await;
    eventually("the standby takes over", LONG, || async {
        leads(&hosts[standby]).then_some(())
    })
    .await;
    webapps
        .create(&PostParams::default(), &webapp("after"))
        .await
        .unwrap();
    eventually("the new leader reconciles", LONG, || async {
        get(&deployments, "after").await
    })
    .await;
    let reconciled = "controller_runtime_reconcile_total{controller=\"webapp\",result=\"success\"}";
    eventually("the new leader reconciles every WebApp", LONG, || async {
        (hosts[standby].metric(reconciled).await >= (WEBAPPS + 1) as f64).then_some(())
    })
    .await;
    let after = lists(&cluster).await;
    assert_eq!(
        after,
        listed,
        "the new leader listed webapp's kinds again after taking the Lease; its log:\n{}",
        hosts[standby].log()
    );
    let took_lease = logged_at(&hosts[standby], "became the leader").expect("logged");
    let first =
        logged_at(&hosts[standby], "bosun::controller::worker: reconciled").expect("logged");
    eprintln!(
        "killed to first reconcile {:?}; Lease to first reconcile {} ms",
        killed.elapsed(),
        first.duration_since(took_lease).as_millis()
    );
    assert!(first >= took_lease, "the standby reconciled before it led");
}

/// A server that takes requests and never answers: it reports each
/// connection it accepted, and when each was closed.
async fn holding_server() -> (u16, tokio::sync::mpsc::UnboundedReceiver<&'static str>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = tx.send("accepted");
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while matches!(stream.read(&mut buffer).await, Ok(n) if n > 0) {}
                let _ = tx.send("closed");
            });
        }
    });
    (port, rx)
}

#[tokio::test]
async fn a_host_that_loses_the_lease_sends_nothing_more_and_cuts_what_is_in_flight() {
    let cluster = Cluster::start().await;
    let (port, mut seen) = holding_server().await;
    let origin = format!("http://127.0.0.1:{port}");
    let module = bosun_testenv::guests::misbehave_reaching(&[&origin]).expect("the variant");
    let module = module.display().to_string();
    let host = Host::start(
        &cluster,
        &[&module],
        &[
            "--leader-elect",
            "--leader-election-namespace",
            "e2e",
            "--lease-duration",
            "4s",
            "--renew-deadline",
            "3s",
            "--retry-period",
            "500ms",
            // Far beyond the test: only lost leadership can end the call.
            "--timeout-ms",
            "60000",
        ],
    )
    .await;
    eventually("it leads", LONG, || async { leads(&host).then_some(()) }).await;
    let mut caller = common::misbehave("caller", "http");
    caller.data["spec"]["url"] = json!(format!("{origin}/held"));
    cluster
        .misbehaves()
        .create(&PostParams::default(), &caller)
        .await
        .unwrap();
    let accepted = tokio::time::timeout(LONG, seen.recv()).await;
    assert_eq!(accepted, Ok(Some("accepted")), "the request went out");

    // Another candidate takes the Lease: this host no longer leads.
    let leases = kube::Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(
        cluster.client.clone(),
        "e2e",
    );
    let stolen = json!({"spec": {"holderIdentity": "someone-else", "renewTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()}});
    leases
        .patch(
            "bosun-leader",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&stolen),
        )
        .await
        .expect("take the Lease");
    let lost = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(10), seen.recv()).await;
    assert_eq!(
        closed,
        Ok(Some("closed")),
        "the request in flight was not cut"
    );
    eprintln!("request cut {:?} after the Lease was taken", lost.elapsed());
    // Nothing more leaves: no new connection, whatever the guest does.
    let more = tokio::time::timeout(Duration::from_secs(3), seen.recv()).await;
    assert!(
        !matches!(more, Ok(Some("accepted"))),
        "a request left after the Lease was lost"
    );
    assert!(
        host.log().contains("lost the leader lease"),
        "{}",
        host.log()
    );
}
