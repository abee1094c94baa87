//! The DNS-record operator against a real PowerDNS and a real control
//! plane: `bosun run --modules-from-cluster` with the dnsrecord module
//! granted the PowerDNS API's origin, its key bound from a Secret.
//!
//! One control plane and one PowerDNS for the binary's one scenario, told
//! in steps: create, change, hand edit corrected on resync, PowerDNS down
//! and back, the Secret rotated, the grant withdrawn, delete.

mod common;

use std::time::Duration;

use bosun_testenv::PowerDns;
use bosun_testenv::dns::RecordKind;
use common::{Cluster, Host, eventually, get};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const ZONE: &str = "example.org.";
const WWW: &str = "www.example.org.";
const WAIT: Duration = Duration::from_secs(60);

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

fn module(pdns: &PowerDns, wasm: &str, granted: bool) -> DynamicObject {
    let http = if granted {
        json!([{
            "origin": pdns.api_url(),
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
            // A short resync, so that a hand edit is found within the test.
            "settings": {"apiUrl": pdns.api_url(), "resyncSeconds": 2},
        },
    }))
    .unwrap()
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
    let default_port = dnsrecord::DEFAULT_API_URL
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok());
    let mut pdns = default_port
        .and_then(|port| PowerDns::start_at(port).ok())
        .map_or_else(PowerDns::start, Ok)
        .expect("PowerDNS starts");
    pdns.create_zone(ZONE).expect("zone created");
    let wasm = if pdns.api_url() == dnsrecord::DEFAULT_API_URL {
        bosun_testenv::guests::path("dnsrecord")
    } else {
        bosun_testenv::guests::dnsrecord_for_origin(&pdns.api_url())
    }
    .expect("the dnsrecord component for the test's PowerDNS");

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
        .create(
            &PostParams::default(),
            &module(&pdns, &wasm.display().to_string(), true),
        )
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
            let mut withdrawn = module(&pdns, &wasm.display().to_string(), false);
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
            let mut granted = module(&pdns, &wasm.display().to_string(), true);
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
