//! The DNS-record operator against a real PowerDNS and a real control
//! plane: `bosun run --modules-from-cluster` with the dnsrecord module
//! granted the PowerDNS API's origin, its key bound from a Secret.
//!
//! One control plane and one PowerDNS per test: the scenario, told in
//! steps (create, change, hand edit corrected on resync, PowerDNS down and
//! back, the Secret rotated, the grant withdrawn, delete), and the
//! connections a burst of reconciles opens, counted by a proxy in front of
//! PowerDNS.

mod common;

use std::time::Duration;

use bosun_testenv::dns::RecordKind;
use bosun_testenv::{CountingProxy, PowerDns};
use common::{Cluster, Host, eventually, get};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const ZONE: &str = "example.org.";
const WWW: &str = "www.example.org.";
const WAIT: Duration = Duration::from_secs(60);

/// The API port the shipped component reaches (8081), held by one test at
/// a time: whichever serves there runs the component as shipped, and the
/// other would otherwise build a variant for a port of its own.
static DEFAULT_PORT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The port of [`dnsrecord::DEFAULT_API_URL`].
fn default_port() -> Option<u16> {
    dnsrecord::DEFAULT_API_URL
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
}

/// The dnsrecord component declaring `api_url`: the shipped one when that
/// is its default, else one built for it.
fn dnsrecord_reaching(api_url: &str) -> String {
    if api_url == dnsrecord::DEFAULT_API_URL {
        bosun_testenv::guests::path("dnsrecord")
    } else {
        bosun_testenv::guests::dnsrecord_for_origin(api_url)
    }
    .expect("the dnsrecord component for the test's PowerDNS")
    .display()
    .to_string()
}

fn pdns_present() -> bool {
    match bosun_testenv::tools::for_test("pdns_server", bosun_testenv::powerdns::INSTALL) {
        Ok(Some(_)) => true,
        Ok(None) => PowerDns::installed(),
        Err(missing) => PowerDns::installed() || panic!("{missing}"),
    }
}

fn dns_records(cluster: &Cluster) -> Api<DynamicObject> {
    cluster.api("examples.bosun.dev", "v1alpha1", "DnsRecord", "dnsrecords")
}

/// The ReconcilerModule running `wasm` against the API at `api_url`
/// (granted that origin, with the key from the Secret, when `granted`).
fn module(api_url: &str, wasm: &str, granted: bool, resync_seconds: u64) -> DynamicObject {
    let http = if granted {
        json!([{
            "origin": api_url,
            "credentials": {
                "header": "X-API-Key",
                "secretRef": {"namespace": "e2e", "name": "pdns-api", "key": "api-key"},
            },
        }])
    } else {
        json!([])
    };
    serde_json::from_value(json!({
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "ReconcilerModule",
        "metadata": {"name": "dnsrecord"},
        "spec": {
            "source": {"file": {"path": wasm}},
            "permissions": {
                "reconciles": {"group": "examples.bosun.dev", "kind": "DnsRecord"},
                "finalizer": dnsrecord::FINALIZER,
                "http": http,
            },
            "settings": {"apiUrl": api_url, "resyncSeconds": resync_seconds},
        },
    }))
    .unwrap()
}

/// `module` with at most `concurrency` reconciles in flight.
fn with_concurrency(mut module: DynamicObject, concurrency: u32) -> DynamicObject {
    module.data["spec"]["concurrency"] = json!(concurrency);
    module
}

async fn put_secret(cluster: &Cluster, key: &str) {
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "pdns-api"},
        "stringData": {"api-key": key},
    }))
    .unwrap();
    secrets
        .patch(
            "pdns-api",
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&secret),
        )
        .await
        .expect("the API key Secret is written");
}

/// Waits until PowerDNS holds `contents` at `ttl` for www (checked through
/// the API and over DNS).
async fn served(pdns: &PowerDns, ttl: u64, contents: &[&str]) {
    eventually(&format!("PowerDNS serving {contents:?}"), WAIT, || async {
        let rrset = pdns.rrset(ZONE, WWW, "A").ok().flatten()?;
        let mut held: Vec<String> = rrset["records"]
            .as_array()?
            .iter()
            .filter_map(|r| r["content"].as_str().map(str::to_owned))
            .collect();
        held.sort();
        (held == contents && rrset["ttl"] == ttl).then_some(())?;
        let answer = pdns.query(WWW, RecordKind::A).ok()?;
        (answer.contents() == contents).then_some(())
    })
    .await;
}

fn ready(record: &DynamicObject) -> Option<Value> {
    record.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_records_follow_their_objects_through_outages_edits_rotation_and_revocation() {
    if !pdns_present() {
        return;
    }
    // The shipped component reaches PowerDNS's default API address: run
    // PowerDNS there when that port is free (and test the component as
    // shipped), else on a free port with a component built for it.
    let _port = DEFAULT_PORT.lock().await;
    let mut pdns = default_port()
        .and_then(|port| PowerDns::start_at(port).ok())
        .map_or_else(PowerDns::start, Ok)
        .expect("PowerDNS starts");
    pdns.create_zone(ZONE).expect("zone created");
    let api_url = pdns.api_url();
    let wasm = dnsrecord_reaching(&api_url);
    // A short resync, so that a hand edit is found within the test.
    let module = |granted| module(&api_url, &wasm, granted, 2);

    let cluster = Cluster::start().await;
    cluster
        .env
        .install_crds([common::root().join("examples/dnsrecord/crd.yaml")])
        .await
        .expect("the DnsRecord CRD installs");
    put_secret(&cluster, pdns.api_key()).await;
    let _host = Host::start(&cluster, &[], &["--modules-from-cluster"]).await;
    let modules = cluster.reconciler_modules();
    modules
        .create(&PostParams::default(), &module(true))
        .await
        .expect("the ReconcilerModule is created");
    common::wait_loaded(&modules, "dnsrecord", "True", "Loaded").await;

    // Create.
    let records = dns_records(&cluster);
    let record: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "examples.bosun.dev/v1alpha1",
        "kind": "DnsRecord",
        "metadata": {"name": "www"},
        "spec": {"zone": "example.org", "name": "www", "type": "A", "ttl": 300, "content": ["192.0.2.10"]},
    }))
    .unwrap();
    records
        .create(&PostParams::default(), &record)
        .await
        .expect("created");
    served(&pdns, 300, &["192.0.2.10"]).await;
    eventually("the status reports what PowerDNS holds", WAIT, || async {
        let record = get(&records, "www").await?;
        let status = &record.data["status"];
        (status["record"]["content"] == json!(["192.0.2.10"])
            && status["observedGeneration"] == json!(record.metadata.generation)
            && ready(&record)?["status"] == "True")
            .then_some(())
    })
    .await;

    // Change.
    records
        .patch(
            "www",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"ttl": 120, "content": ["192.0.2.11", "192.0.2.12"]}})),
        )
        .await
        .expect("changed");
    served(&pdns, 120, &["192.0.2.11", "192.0.2.12"]).await;

    // A hand edit in PowerDNS is undone on resync.
    pdns.edit_rrset(ZONE, WWW, "A", 60, &["203.0.113.66"])
        .expect("edited by hand");
    served(&pdns, 120, &["192.0.2.11", "192.0.2.12"]).await;
    common::warning(&cluster, "www", "DriftCorrected").await;

    // PowerDNS down: the change waits (retried with backoff), nothing lost.
    pdns.stop();
    records
        .patch(
            "www",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"content": ["192.0.2.13"]}})),
        )
        .await
        .expect("changed while PowerDNS is down");
    eventually("the object says PowerDNS is unreachable", WAIT, || async {
        let record = get(&records, "www").await?;
        let reconciled = common::reconciled_condition(&record)?;
        (reconciled["status"] == "False").then_some(())
    })
    .await;
    pdns.start_again().expect("PowerDNS comes back");
    served(&pdns, 120, &["192.0.2.13"]).await;

    // The key rotated: PowerDNS takes a new one, the Secret follows, and the
    // module converges without being reloaded.
    let new_key = pdns.restart_with_key().expect("a new key");
    records
        .patch(
            "www",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"content": ["192.0.2.14"]}})),
        )
        .await
        .expect("changed after the rotation");
    put_secret(&cluster, &new_key).await;
    served(&pdns, 120, &["192.0.2.14"]).await;

    // The grant withdrawn: nothing more reaches PowerDNS, and the
    // ReconcilerModule says why.
    modules
        .replace("dnsrecord", &PostParams::default(), &{
            let mut withdrawn = module(false);
            withdrawn.metadata.resource_version = get(&modules, "dnsrecord")
                .await
                .unwrap()
                .metadata
                .resource_version;
            withdrawn
        })
        .await
        .expect("the grant is withdrawn");
    let stopped = common::wait_loaded(&modules, "dnsrecord", "False", "PermissionDenied").await;
    let message = common::condition(&stopped, "Loaded").unwrap()["message"].to_string();
    assert!(
        message.contains(&pdns.api_url()),
        "the reason names the origin: {message}"
    );
    pdns.edit_rrset(ZONE, WWW, "A", 60, &["203.0.113.77"])
        .expect("edited by hand");
    tokio::time::sleep(Duration::from_secs(5)).await;
    served(&pdns, 60, &["203.0.113.77"]).await;

    // Granted again, then deleted: the finalizer removes the rrset.
    modules
        .replace("dnsrecord", &PostParams::default(), &{
            let mut granted = module(true);
            granted.metadata.resource_version = get(&modules, "dnsrecord")
                .await
                .unwrap()
                .metadata
                .resource_version;
            granted
        })
        .await
        .expect("granted again");
    served(&pdns, 120, &["192.0.2.14"]).await;
    records
        .delete("www", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("the DnsRecord is gone", WAIT, || async {
        get(&records, "www").await.is_none().then_some(())
    })
    .await;
    assert!(
        pdns.rrset(ZONE, WWW, "A").unwrap().is_none(),
        "the rrset was deleted"
    );
    let answer = pdns.query(WWW, RecordKind::A).expect("DNS answers");
    assert_eq!(answer.rcode, 3, "NXDOMAIN once the record is gone");
}

/// The sum of every sample of `series` whose labels include `label`.
async fn metric_sum(host: &Host, series: &str, label: &str) -> f64 {
    let (_, body) = host.get("/metrics").await.unwrap_or_default();
    body.lines()
        .filter(|line| line.starts_with(&format!("{series}{{")) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until PowerDNS holds `content` for `name` (fully qualified).
async fn holds(pdns: &PowerDns, name: &str, content: &str) {
    eventually(
        &format!("PowerDNS holding {name} {content}"),
        WAIT,
        || async {
            let rrset = pdns.rrset(ZONE, name, "A").ok().flatten()?;
            (rrset["records"].as_array()?.len() == 1 && rrset["records"][0]["content"] == content)
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_modules_reconciles_reuse_a_handful_of_connections() {
    if !pdns_present() {
        return;
    }
    // PowerDNS answers each request with `Connection: close`, so the
    // counting proxy stands in front of it and keeps the host's connections
    // open as a keep-alive API would: what it counts is what the host
    // opened. The module is granted, and pointed at, the proxy only.
    let _port = DEFAULT_PORT.lock().await;
    let pdns = PowerDns::start().expect("PowerDNS starts");
    pdns.create_zone(ZONE).expect("zone created");
    let proxy = default_port()
        .and_then(|port| CountingProxy::start_at(port, pdns.api_address()).ok())
        .map_or_else(|| CountingProxy::start(pdns.api_address()), Ok)
        .expect("the proxy starts");
    let wasm = dnsrecord_reaching(&proxy.url());

    let cluster = Cluster::start().await;
    cluster
        .env
        .install_crds([common::root().join("examples/dnsrecord/crd.yaml")])
        .await
        .expect("the DnsRecord CRD installs");
    put_secret(&cluster, pdns.api_key()).await;
    let host = Host::start(&cluster, &[], &["--modules-from-cluster"]).await;
    let modules = cluster.reconciler_modules();
    // No resync within the test: every reconcile comes from a change.
    modules
        .create(
            &PostParams::default(),
            &with_concurrency(module(&proxy.url(), &wasm, true, 3600), 4),
        )
        .await
        .expect("the ReconcilerModule is created");
    common::wait_loaded(&modules, "dnsrecord", "True", "Loaded").await;

    // Five records created, then each changed three times: every one of
    // these twenty reconciles reads the zone, replaces the rrset and reads
    // it back over the API, with up to four running at once (the module's
    // concurrency, set below).
    const RECORDS: usize = 5;
    const CHANGES: usize = 3;
    let records = dns_records(&cluster);
    let name = |i: usize| format!("host{i}.example.org.");
    let content = |i: usize, round: usize| format!("192.0.2.{}", 10 * round + i + 1);
    for i in 0..RECORDS {
        let record: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "examples.bosun.dev/v1alpha1",
            "kind": "DnsRecord",
            "metadata": {"name": format!("host{i}")},
            "spec": {"zone": "example.org", "name": format!("host{i}"), "type": "A", "ttl": 300, "content": [content(i, 0)]},
        }))
        .unwrap();
        records
            .create(&PostParams::default(), &record)
            .await
            .expect("created");
    }
    for i in 0..RECORDS {
        holds(&pdns, &name(i), &content(i, 0)).await;
    }
    for round in 1..=CHANGES {
        for i in 0..RECORDS {
            records
                .patch(
                    &format!("host{i}"),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"content": [content(i, round)]}})),
                )
                .await
                .expect("changed");
        }
        for i in 0..RECORDS {
            holds(&pdns, &name(i), &content(i, round)).await;
        }
    }
    // Every object's last reconcile done: its status reports the last
    // change, and PowerDNS serves it over DNS.
    for i in 0..RECORDS {
        eventually("the status reports the last change", WAIT, || async {
            let record = get(&records, &format!("host{i}")).await?;
            let status = &record.data["status"];
            (status["record"]["content"] == json!([content(i, CHANGES)])
                && status["observedGeneration"] == json!(record.metadata.generation)
                && ready(&record)?["status"] == "True")
                .then_some(())
        })
        .await;
        let answer = pdns.query(&name(i), RecordKind::A).expect("DNS answers");
        assert_eq!(answer.contents(), [content(i, CHANGES)]);
    }

    let module_label = "controller=\"dnsrecord\"";
    let reconciles = metric_sum(&host, "controller_runtime_reconcile_total", module_label).await;
    let sent = metric_sum(
        &host,
        "bosun_guest_http_requests_total",
        "module=\"dnsrecord\"",
    )
    .await;
    let (connections, requests) = (proxy.connections(), proxy.requests());
    eprintln!(
        "{reconciles} reconciles sent {sent} requests; the proxy saw {requests} requests on {connections} connections"
    );
    assert!(
        reconciles >= (RECORDS * (1 + CHANGES)) as f64,
        "{reconciles} reconciles"
    );
    assert!(
        requests >= 3 * RECORDS * (1 + CHANGES),
        "every change read, replaced and read back: {requests} requests"
    );
    assert_eq!(
        sent, requests as f64,
        "every request the host sent reached the proxy"
    );
    // Four reconciles at once need four connections; two more for a
    // connection that the pool let go of by its rules (a closed or half-read
    // one) or that a reconcile opened while the others were busy.
    let concurrency = 4;
    assert!(
        connections <= concurrency + 2,
        "{requests} requests from {reconciles} reconciles took {connections} connections: they are not reused across reconciles"
    );
}
