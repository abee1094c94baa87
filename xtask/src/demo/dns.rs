//! The demo's last chapter: the DNS-record operator changing the world
//! outside the cluster through outbound HTTP, against a real PowerDNS on
//! 127.0.0.1:8081 when one can be started.

use anyhow::{Result, bail};
use bosun_testenv::PowerDns;
use bosun_testenv::dns::RecordKind;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};

use super::{NAMESPACE, api, done, object, step, wait_until};

/// Where `examples/dnsrecord` reaches the PowerDNS API unless built for
/// another origin: the demo's PowerDNS serves its API there.
const DNS_API_PORT: u16 = 8081;
pub(super) const DNS_ZONE: &str = "demo.example.";

/// PowerDNS on the port dnsrecord reaches by default, or why not.
pub(super) fn start_powerdns() -> std::result::Result<PowerDns, String> {
    if !PowerDns::installed() {
        return Err(format!(
            "PowerDNS is not installed here (`{}` adds this chapter)",
            bosun_testenv::powerdns::INSTALL
        ));
    }
    PowerDns::start_at(DNS_API_PORT).map_err(|e| {
        format!("PowerDNS did not start with its API on 127.0.0.1:{DNS_API_PORT}: {e}")
    })
}

/// The DNS-record operator: a ReconcilerModule granted the PowerDNS API's
/// origin, its key bound from a Secret; a DnsRecord served over DNS; its
/// deletion held until the record is gone from PowerDNS.
pub(super) async fn tell_dns(
    client: &Client,
    pdns: &PowerDns,
    wasm: &std::path::Path,
) -> Result<()> {
    step(&format!(
        "dnsrecord: PowerDNS runs on 127.0.0.1 (API {}, DNS {}), zone {DNS_ZONE}; its API key goes into Secret {NAMESPACE}/pdns-api",
        pdns.api_url(),
        pdns.dns_address()
    ));
    pdns.create_zone(DNS_ZONE)
        .map_err(|e| anyhow::anyhow!("creating the zone: {e}"))?;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "pdns-api"},
        "stringData": {"api-key": pdns.api_key()},
    }))?;
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await?;
    let module = object(json!({
        "apiVersion": "bosun.dev/v1alpha1", "kind": "ReconcilerModule",
        "metadata": {"name": "dnsrecord"},
        "spec": {
            "source": {"file": {"path": wasm}},
            "permissions": {
                "reconciles": {"group": "examples.bosun.dev", "kind": "DnsRecord"},
                "finalizer": "examples.bosun.dev/dns-record",
                "http": [{
                    "origin": pdns.api_url(),
                    "credentials": {
                        "header": "X-API-Key",
                        "secretRef": {"namespace": NAMESPACE, "name": "pdns-api", "key": "api-key"},
                    },
                }],
            },
            "settings": {"apiUrl": pdns.api_url()},
        },
    }))?;
    let modules: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource {
            group: "bosun.dev".into(),
            version: "v1alpha1".into(),
            api_version: "bosun.dev/v1alpha1".into(),
            kind: "ReconcilerModule".into(),
            plural: "reconcilermodules".into(),
        },
    );
    modules.create(&PostParams::default(), &module).await?;
    let loaded = || async {
        let module = modules.get("dnsrecord").await?;
        Ok::<_, anyhow::Error>(
            module
                .data
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|c| c.iter().find(|c| c["type"] == "Loaded"))
                .map(|c| {
                    (
                        c["status"] == "True",
                        c["message"].as_str().unwrap_or_default().to_owned(),
                    )
                }),
        )
    };
    wait_until("ReconcilerModule dnsrecord loaded", || async {
        Ok(loaded().await?.is_some())
    })
    .await?;
    match loaded().await? {
        Some((true, _)) => done(&format!(
            "ReconcilerModule dnsrecord Loaded, granted {} only; the host adds the X-API-Key header, the module never sees the key",
            pdns.api_url()
        )),
        Some((false, why)) => bail!("ReconcilerModule dnsrecord did not load: {why}"),
        None => bail!("ReconcilerModule dnsrecord has no Loaded condition"),
    }

    step("dnsrecord: creating DnsRecord `www` (www.demo.example. A 192.0.2.10, ttl 300)");
    let records = api(
        client,
        "examples.bosun.dev",
        "v1alpha1",
        "DnsRecord",
        "dnsrecords",
    );
    records
        .create(
            &PostParams::default(),
            &object(json!({
                "apiVersion": "examples.bosun.dev/v1alpha1", "kind": "DnsRecord",
                "metadata": {"name": "www"},
                "spec": {"zone": "demo.example", "name": "www", "type": "A", "ttl": 300, "content": ["192.0.2.10"]}
            }))?,
        )
        .await?;
    let answer = || {
        pdns.query("www.demo.example.", RecordKind::A)
            .map(|a| a.contents())
            .unwrap_or_default()
    };
    wait_until("PowerDNS to answer for www.demo.example.", || async {
        Ok(answer() == ["192.0.2.10"])
    })
    .await?;
    done(&format!(
        "asked over DNS, PowerDNS ({}) answers www.demo.example. A 192.0.2.10",
        pdns.dns_address()
    ));
    wait_until("the DnsRecord's Ready condition", || async {
        Ok(records
            .get("www")
            .await?
            .data
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            }))
    })
    .await?;
    done("DnsRecord www: Ready=True, its status says what the API holds");

    step("dnsrecord: deleting DnsRecord `www`");
    records
        .delete("www", &kube::api::DeleteParams::default())
        .await?;
    wait_until("the DnsRecord gone", || async {
        Ok(records.get_opt("www").await?.is_none())
    })
    .await?;
    anyhow::ensure!(
        answer().is_empty(),
        "PowerDNS still answers for www.demo.example. after the DnsRecord went"
    );
    done("its finalizer deleted the record from PowerDNS first; DNS no longer answers for it");
    Ok(())
}
