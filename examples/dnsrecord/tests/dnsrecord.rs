//! dnsrecord's behaviour, natively, with PowerDNS's API stubbed through
//! the SDK's harness.

use bosun_sdk::conditions;
use bosun_sdk::testing::{Harness, HttpStub};
use dnsrecord::{
    DEFAULT_API_URL, DnsRecord, DnsRecordSpec, DnsRecordStatus, DnsRecords, RecordType,
    ServedRecord,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

const API: &str = DEFAULT_API_URL;
const ZONE_URL: &str = "http://127.0.0.1:8081/api/v1/servers/localhost/zones/example.org.";
const MARKER: &str = "managed by bosun/dnsrecord for team-a/www";

fn record(content: &[&str]) -> DnsRecord {
    DnsRecord {
        metadata: ObjectMeta {
            name: Some("www".into()),
            namespace: Some("team-a".into()),
            generation: Some(1),
            ..ObjectMeta::default()
        },
        spec: DnsRecordSpec {
            zone: "example.org".into(),
            name: "www".into(),
            kind: RecordType::A,
            ttl: 300,
            content: content.iter().map(|c| c.to_string()).collect(),
        },
        status: None,
    }
}

fn harness() -> Harness<DnsRecords> {
    Harness::new()
        .now("2026-12-02T10:00:00Z")
        .settings(json!({"apiUrl": API, "resyncSeconds": 60}))
}

fn zone(rrsets: Value) -> Value {
    json!({"id": "example.org.", "name": "example.org.", "kind": "Native", "rrsets": rrsets})
}

fn www(ttl: u32, contents: &[&str], comment: &str) -> Value {
    let records: Vec<Value> = contents
        .iter()
        .map(|c| json!({"content": c, "disabled": false}))
        .collect();
    let comments = if comment.is_empty() {
        json!([])
    } else {
        json!([{"content": comment, "account": "bosun", "modified_at": 1}])
    };
    json!({"name": "www.example.org.", "type": "A", "ttl": ttl, "records": records, "comments": comments})
}

fn status_of(outcome: &bosun_sdk::testing::Outcome) -> DnsRecordStatus {
    outcome.status().expect("a status")
}

#[test]
fn declares_the_default_origin_and_a_finalizer() {
    let info = Harness::<DnsRecords>::new().metadata();
    assert_eq!(info.finalizer.as_deref(), Some(dnsrecord::FINALIZER));
    assert_eq!(info.http_origins, [DEFAULT_API_URL]);
}

#[test]
fn a_record_in_sync_is_read_and_not_written() {
    let outcome = harness()
        .http(HttpStub::get(ZONE_URL).json(&zone(json!([www(
            300,
            &["192.0.2.10", "192.0.2.9"],
            MARKER
        )]))))
        .reconcile(&record(&["192.0.2.9", "192.0.2.10"]))
        .unwrap();
    assert_eq!(outcome.http_requests().len(), 1, "one read, no write");
    let status = status_of(&outcome);
    assert_eq!(
        status.record,
        Some(ServedRecord {
            zone: "example.org.".into(),
            name: "www.example.org.".into(),
            kind: "A".into(),
            ttl: 300,
            content: vec!["192.0.2.10".into(), "192.0.2.9".into()],
        })
    );
    assert!(conditions::is_true(&status.conditions, "Ready"));
    assert!(outcome.events().is_empty());
    assert_eq!(
        outcome.requeue_after(),
        Some(std::time::Duration::from_secs(60))
    );
}

#[test]
fn creates_a_missing_record_and_reports_what_the_api_then_holds() {
    let outcome = harness()
        .http(HttpStub::get(ZONE_URL).json(&zone(json!([]))).once())
        .http(HttpStub::get(ZONE_URL).json(&zone(json!([www(300, &["192.0.2.9"], MARKER)]))))
        .http(HttpStub::patch(ZONE_URL).status(204))
        .reconcile(&record(&["192.0.2.9"]))
        .unwrap();
    let methods: Vec<_> = outcome
        .http_requests()
        .iter()
        .map(|r| r.method.as_str())
        .collect();
    assert_eq!(methods, ["GET", "PATCH", "GET"]);
    let status = status_of(&outcome);
    assert!(conditions::is_true(&status.conditions, "Ready"));
    assert_eq!(status.record.unwrap().content, ["192.0.2.9"]);
    assert_eq!(outcome.events()[0].reason, "Created");

    // Accepted but not returned: a retry, not a false Ready.
    let lost = harness()
        .http(HttpStub::get(ZONE_URL).json(&zone(json!([]))))
        .http(HttpStub::patch(ZONE_URL).status(204))
        .reconcile(&record(&["192.0.2.9"]))
        .unwrap_err();
    assert_eq!(lost.reason(), "NotStored");
    assert!(!lost.is_permanent());
}

#[test]
fn the_write_replaces_the_rrset_with_the_marker_and_no_key() {
    let outcome = harness()
        .http(HttpStub::get(ZONE_URL).json(&zone(json!([www(60, &["198.51.100.1"], MARKER)]))))
        .http(HttpStub::patch(ZONE_URL).status(204))
        .reconcile(&{
            let mut r = record(&["192.0.2.9"]);
            r.status = Some(DnsRecordStatus {
                observed_generation: Some(1),
                record: None,
                conditions: Vec::new(),
            });
            r
        });
    // The stubbed read-back still shows the old data: Ready=False.
    let outcome = outcome.unwrap();
    let requests = outcome.http_requests();
    assert_eq!(
        requests
            .iter()
            .map(|r| r.method.as_str())
            .collect::<Vec<_>>(),
        ["GET", "PATCH", "GET"]
    );
    let patch: Value = requests[1].json().unwrap();
    assert_eq!(
        patch,
        json!({"rrsets": [{
            "name": "www.example.org.", "type": "A", "ttl": 300, "changetype": "REPLACE",
            "records": [{"content": "192.0.2.9", "disabled": false}],
            "comments": [{"content": MARKER, "account": "bosun"}],
        }]})
    );
    for request in requests {
        assert!(
            request.header("x-api-key").is_none(),
            "the key is the host's to add, never the guest's"
        );
    }
    let status = status_of(&outcome);
    assert!(!conditions::is_true(&status.conditions, "Ready"));
    assert_eq!(
        conditions::find(&status.conditions, "Ready")
            .unwrap()
            .reason,
        "NotInSync"
    );
    assert_eq!(status.record.unwrap().content, ["198.51.100.1"]);
    let events = outcome.events();
    assert_eq!(events[0].reason, "DriftCorrected", "{events:?}");
    assert!(events[0].note.contains("198.51.100.1"), "{events:?}");
}

#[test]
fn an_rrset_not_marked_as_ours_is_a_conflict_and_never_written() {
    let error = harness()
        .http(HttpStub::get(ZONE_URL).json(&zone(json!([www(300, &["203.0.113.5"], "")]))))
        .reconcile(&record(&["192.0.2.9"]))
        .unwrap_err();
    assert!(error.is_permanent());
    assert_eq!(error.reason(), "RecordConflict");

    let other = harness()
        .http(HttpStub::get(ZONE_URL).json(&zone(json!([www(
            300,
            &["203.0.113.5"],
            "managed by bosun/dnsrecord for team-b/www"
        )]))))
        .reconcile(&record(&["192.0.2.9"]))
        .unwrap_err();
    assert_eq!(other.reason(), "RecordConflict");
}

#[test]
fn client_errors_are_permanent_and_server_errors_retryable() {
    let rejected = harness()
        .http(HttpStub::get(ZONE_URL).json(&zone(json!([]))))
        .http(
            HttpStub::patch(ZONE_URL)
                .status(422)
                .json(&json!({"error": "RRset www.example.org. IN A: bad content"})),
        )
        .reconcile(&record(&["192.0.2.9"]))
        .unwrap_err();
    assert!(rejected.is_permanent(), "{rejected}");
    assert!(rejected.message().contains("bad content"), "{rejected}");

    let no_zone = harness()
        .http(HttpStub::get(ZONE_URL).status(404).body("Not Found"))
        .reconcile(&record(&["192.0.2.9"]))
        .unwrap_err();
    assert!(no_zone.is_permanent());
    assert_eq!(no_zone.reason(), "ZoneNotFound");

    for stub in [
        HttpStub::origin(API).status(503),
        HttpStub::origin(API).timeout(),
        HttpStub::origin(API).connection_refused(),
        HttpStub::origin(API).status(401).body("Unauthorized"),
    ] {
        let error = harness()
            .http(stub)
            .reconcile(&record(&["192.0.2.9"]))
            .unwrap_err();
        assert!(!error.is_permanent(), "{error}");
    }

    let refused = harness()
        .http(HttpStub::origin(API).refused())
        .reconcile(&record(&["192.0.2.9"]))
        .unwrap_err();
    assert_eq!(refused.reason(), "HttpRefused");
    assert!(refused.message().contains("not granted"), "{refused}");

    // Settings that point outside the declared origin: refused, never sent.
    let elsewhere = Harness::<DnsRecords>::new()
        .settings(json!({"apiUrl": "http://pdns.elsewhere:8081"}))
        .reconcile(&record(&["192.0.2.9"]))
        .unwrap_err();
    assert_eq!(elsewhere.reason(), "HttpRefused");
}

#[test]
fn an_invalid_spec_is_permanent_and_calls_nothing() {
    for (content, kind) in [
        ("300.1.1.1", RecordType::A),
        ("192.0.2.1", RecordType::AAAA),
    ] {
        let mut bad = record(&[content]);
        bad.spec.kind = kind;
        // No stub: any request would panic.
        let error = harness().reconcile(&bad).unwrap_err();
        assert!(error.is_permanent());
        assert_eq!(error.reason(), "InvalidSpec");
    }
}

#[test]
fn a_moved_record_deletes_the_old_rrset() {
    let mut moved = record(&["192.0.2.9"]);
    moved.spec.name = "web".into();
    moved.status = Some(DnsRecordStatus {
        observed_generation: Some(1),
        record: Some(ServedRecord {
            zone: "example.org.".into(),
            name: "www.example.org.".into(),
            kind: "A".into(),
            ttl: 300,
            content: vec!["192.0.2.9".into()],
        }),
        conditions: Vec::new(),
    });
    let web = json!({"name": "web.example.org.", "type": "A", "ttl": 300,
        "records": [{"content": "192.0.2.9", "disabled": false}],
        "comments": [{"content": MARKER, "account": "bosun"}]});
    let outcome = harness()
        .http(HttpStub::get(ZONE_URL).json(&zone(json!([www(300, &["192.0.2.9"], MARKER), web]))))
        .http(HttpStub::patch(ZONE_URL).status(204))
        .reconcile(&moved)
        .unwrap();
    let patch: Value = outcome.http_requests()[1].json().unwrap();
    assert_eq!(patch["rrsets"][0]["changetype"], "DELETE");
    assert_eq!(patch["rrsets"][0]["name"], "www.example.org.");
    assert_eq!(status_of(&outcome).record.unwrap().name, "web.example.org.");
}

#[test]
fn finalize_deletes_only_its_own_rrset() {
    let mut deleted = record(&["192.0.2.9"]);
    deleted.status = Some(DnsRecordStatus {
        record: Some(ServedRecord {
            zone: "example.org.".into(),
            name: "www.example.org.".into(),
            kind: "A".into(),
            ttl: 300,
            content: vec!["192.0.2.9".into()],
        }),
        ..DnsRecordStatus::default()
    });
    let outcome = harness()
        .http(HttpStub::get(ZONE_URL).json(&zone(json!([www(300, &["192.0.2.9"], MARKER)]))))
        .http(HttpStub::patch(ZONE_URL).status(204))
        .finalize(&deleted)
        .unwrap();
    assert!(outcome.done);
    let patch: Value = outcome.http_requests[1].json().unwrap();
    assert_eq!(
        patch,
        json!({"rrsets": [{"name": "www.example.org.", "type": "A", "ttl": 0,
            "changetype": "DELETE", "records": [], "comments": []}]})
    );

    let foreign = harness()
        .http(HttpStub::get(ZONE_URL).json(&zone(json!([www(300, &["192.0.2.9"], "")]))))
        .finalize(&deleted)
        .unwrap();
    assert!(foreign.done);
    assert_eq!(foreign.http_requests.len(), 1, "nothing deleted");
    assert_eq!(foreign.events[0].reason, "NotDeleted");

    let gone = harness()
        .http(HttpStub::get(ZONE_URL).status(404))
        .finalize(&deleted)
        .unwrap();
    assert!(gone.done, "no zone, nothing to delete");

    let down = harness()
        .http(HttpStub::origin(API).status(502))
        .finalize(&deleted)
        .unwrap_err();
    assert!(!down.is_permanent(), "the host calls finalize again");
}

#[test]
fn crd_yaml_is_up_to_date() {
    bosun_sdk::testing::assert_crd_up_to_date::<DnsRecord>(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crd.yaml"
    ));
}

#[test]
fn samples_parse_as_dns_records() {
    let text = include_str!("../samples/dnsrecord.yaml");
    let record: DnsRecord = serde_yaml::from_str(text).expect("the sample parses");
    assert_eq!(record.spec.kind, RecordType::A);
    let settings: dnsrecord::Settings =
        serde_yaml::from_str(include_str!("../samples/settings.yaml")).expect("settings parse");
    assert!(settings.api_url.starts_with("http"));
}
