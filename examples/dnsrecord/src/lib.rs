//! `DnsRecord`: a DNS record kept in sync with a PowerDNS server through
//! its HTTP API — an operator of something outside the cluster.
//!
//! Each `DnsRecord` names a zone, a name in it, a type, a TTL and the
//! record data. The reconciler reads the rrset from PowerDNS, replaces it
//! when it differs from the spec (a changed spec, or a hand edit found on
//! resync), reads it back, and reports what the API holds in the status.
//! A finalizer deletes the rrset from PowerDNS when the object goes.
//!
//! Nothing here holds the API key: the operator's grant binds the origin to
//! a Secret and the host adds the `X-API-Key` header on the way out.
//!
//! The rrsets the operator manages carry a PowerDNS comment naming the
//! object. An rrset without it — made by hand, or by another object — is
//! never replaced or deleted: the object reports `RecordConflict`.

// clippy reads kube's repeated `printcolumn(type_ = …)` arguments as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

pub mod pdns;
pub mod records;

use std::time::Duration;

use bosun_sdk::prelude::*;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::pdns::{Api, Comment, RRSet, Record};
pub use crate::records::RecordType;

/// The finalizer that holds a `DnsRecord` until its rrset is deleted.
pub const FINALIZER: &str = "examples.bosun.dev/dns-record";

/// The API the module calls unless its settings say otherwise, and the
/// origin it declares: PowerDNS's default webserver address and port.
/// `DNSRECORD_ORIGIN=https://dns.example:8081 cargo build …` declares
/// another at build time.
pub const DEFAULT_API_URL: &str = match option_env!("DNSRECORD_ORIGIN") {
    Some(origin) => origin,
    None => "http://127.0.0.1:8081",
};

/// How often a converged record is read again to find hand edits.
pub const DEFAULT_RESYNC_SECONDS: u64 = 300;

/// A DNS record in a zone served by PowerDNS.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "examples.bosun.dev",
    version = "v1alpha1",
    kind = "DnsRecord",
    namespaced,
    status = "DnsRecordStatus",
    shortname = "dnsr",
    printcolumn(name = "Zone", type_ = "string", json_path = ".spec.zone"),
    printcolumn(name = "Name", type_ = "string", json_path = ".spec.name"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DnsRecordSpec {
    /// The zone, as PowerDNS serves it: `example.org` (the trailing dot is optional).
    #[schemars(
        length(min = 1, max = 254),
        regex(
            pattern = r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*\.?$"
        )
    )]
    pub zone: String,
    /// The name in the zone: `www`, `_acme-challenge.api`, `*`, or `@` for the zone itself.
    #[schemars(
        length(min = 1, max = 253),
        regex(
            pattern = r"^(@|(\*\.)?[*a-zA-Z0-9_]([-a-zA-Z0-9_]*[a-zA-Z0-9])?(\.[a-zA-Z0-9_]([-a-zA-Z0-9_]*[a-zA-Z0-9])?)*)$"
        )
    )]
    pub name: String,
    /// The record type.
    #[serde(rename = "type")]
    pub kind: RecordType,
    /// Time to live, in seconds.
    #[serde(default = "default_ttl")]
    #[schemars(range(min = 1, max = 604800))]
    pub ttl: u32,
    /// The record data, one entry per record: `192.0.2.10` (A),
    /// `web.example.org.` (CNAME), `10 mail.example.org.` (MX), free text (TXT).
    #[schemars(length(min = 1, max = 32), inner(length(min = 1, max = 4096)))]
    pub content: Vec<String>,
}

fn default_ttl() -> u32 {
    300
}

/// What PowerDNS holds for the record, and whether it matches the spec.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsRecordStatus {
    /// The generation of the spec this status describes (set by the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The rrset as the API last returned it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<ServedRecord>,
    /// `Ready`: the API holds what the spec asks for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "bosun_sdk::conditions::schema")]
    pub conditions: Vec<Condition>,
}

/// An rrset as PowerDNS holds it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServedRecord {
    /// The zone, fully qualified.
    pub zone: String,
    /// The owner name, fully qualified.
    pub name: String,
    /// The record type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Time to live, in seconds.
    pub ttl: u32,
    /// The record data, sorted.
    pub content: Vec<String>,
}

/// Module settings, given by the operator (the ReconcilerModule's `settings`).
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// The PowerDNS API: `scheme://host[:port]`, which the grant must allow.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// The PowerDNS server id in API paths.
    #[serde(default = "default_server_id")]
    pub server_id: String,
    /// Seconds between reads of a converged record (hand edits are
    /// corrected this often).
    #[serde(default = "default_resync")]
    pub resync_seconds: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            api_url: default_api_url(),
            server_id: default_server_id(),
            resync_seconds: DEFAULT_RESYNC_SECONDS,
        }
    }
}

fn default_api_url() -> String {
    DEFAULT_API_URL.to_owned()
}

fn default_server_id() -> String {
    "localhost".to_owned()
}

fn default_resync() -> u64 {
    DEFAULT_RESYNC_SECONDS
}

/// The dnsrecord reconciler.
pub struct DnsRecords;

impl Reconciler for DnsRecords {
    type Object = DnsRecord;

    fn metadata() -> Metadata {
        Metadata::new("dnsrecord", env!("CARGO_PKG_VERSION"))
            .finalizer(FINALIZER)
            .http_origin(DEFAULT_API_URL)
    }

    fn reconcile(record: &DnsRecord, ctx: &Context) -> Result<Response, Error> {
        let settings = settings(ctx)?;
        let desired = Desired::from_spec(&record.spec, &marker(record))?;
        let api = Api::new(ctx.http(), &settings.api_url, &settings.server_id);
        let previous = record.status.as_ref().and_then(|s| s.record.clone());
        let mut events = Vec::new();

        // A spec that moved the record (another zone, name or type) leaves
        // the old rrset behind: delete it, if it is still ours.
        if let Some(old) = previous.as_ref().filter(|old| !desired.same_rrset(old))
            && let Some(found) = api.rrset(&old.zone, &old.name, &old.kind)?
            && is_ours(&found, &desired.marker)
        {
            api.patch(&old.zone, &[deletion(&old.name, &old.kind)])?;
            events.push(Event::normal(
                "Moved",
                format!("deleted {} {} from {}", old.name, old.kind, old.zone),
            ));
        }

        let found = api.rrset(&desired.zone, &desired.name, desired.kind.as_str())?;
        if let Some(found) = &found
            && !is_ours(found, &desired.marker)
        {
            return Err(Error::permanent(
                "RecordConflict",
                format!(
                    "PowerDNS already holds {} {} and not for this object; delete it there or pick another name",
                    desired.name,
                    desired.kind.as_str()
                ),
            ));
        }
        let held = match &found {
            Some(found) if desired.matches(found) => found.clone(),
            _ => {
                api.patch(&desired.zone, &[desired.rrset()])?;
                let generation_seen = record.status.as_ref().and_then(|s| s.observed_generation);
                events.push(match (&found, &previous) {
                    (None, None) => Event::normal(
                        "Created",
                        format!("created {} {}", desired.name, desired.kind.as_str()),
                    ),
                    // The spec has not changed since the last success, so
                    // PowerDNS was changed behind the operator's back.
                    _ if generation_seen.is_some()
                        && generation_seen == record.metadata.generation =>
                    {
                        let held = found.as_ref().map_or_else(
                            || "nothing".to_owned(),
                            |f| format!("{} (ttl {})", contents(f).join(", "), f.ttl),
                        );
                        Event::warning(
                            "DriftCorrected",
                            format!(
                                "PowerDNS held {held} for {} {}; restored {} (ttl {})",
                                desired.name,
                                desired.kind.as_str(),
                                desired.content.join(", "),
                                desired.ttl
                            ),
                        )
                    }
                    _ => Event::normal(
                        "Updated",
                        format!("wrote {} {}", desired.name, desired.kind.as_str()),
                    ),
                });
                // Report what the API holds, not what was sent.
                api.rrset(&desired.zone, &desired.name, desired.kind.as_str())?
                    .ok_or_else(|| {
                        Error::retryable(
                            "NotStored",
                            format!(
                                "PowerDNS accepted {} {} but does not return it",
                                desired.name,
                                desired.kind.as_str()
                            ),
                        )
                    })?
            }
        };

        let served = served(&desired.zone, &held);
        let in_sync = desired.matches(&held);
        let mut conditions = record.status.clone().unwrap_or_default().conditions;
        let (reason, message) = if in_sync {
            (
                "InSync",
                format!("PowerDNS serves {} {}", served.name, served.kind),
            )
        } else {
            (
                "NotInSync",
                format!(
                    "PowerDNS returned {} after the update",
                    served.content.join(", ")
                ),
            )
        };
        conditions::set(
            &mut conditions,
            ctx.condition("Ready", in_sync, reason, message),
        );
        let response = events.into_iter().fold(
            Response::new()
                .status(DnsRecordStatus {
                    observed_generation: None,
                    record: Some(served),
                    conditions,
                })
                .requeue_after(Duration::from_secs(settings.resync_seconds.max(1))),
            Response::event,
        );
        Ok(response)
    }

    fn finalize(record: &DnsRecord, ctx: &Context) -> Result<Finalized, Error> {
        let settings = settings(ctx)?;
        let marker = marker(record);
        // What was written, by the status; else what the spec names (an
        // invalid spec was never written, so there is nothing to delete).
        let target = match record.status.as_ref().and_then(|s| s.record.clone()) {
            Some(written) => written,
            None => match Desired::from_spec(&record.spec, &marker) {
                Ok(desired) => ServedRecord {
                    zone: desired.zone,
                    name: desired.name,
                    kind: desired.kind.as_str().to_owned(),
                    ..ServedRecord::default()
                },
                Err(_) => return Ok(Finalized::done()),
            },
        };
        let api = Api::new(ctx.http(), &settings.api_url, &settings.server_id);
        let found = match api.rrset(&target.zone, &target.name, &target.kind) {
            Ok(found) => found,
            // No zone, no record.
            Err(e) if e.reason() == "ZoneNotFound" => return Ok(Finalized::done()),
            Err(e) => return Err(e),
        };
        match found {
            None => Ok(Finalized::done()),
            Some(found) if !is_ours(&found, &marker) => {
                Ok(Finalized::done().event(Event::warning(
                    "NotDeleted",
                    format!(
                        "{} {} in PowerDNS is not managed by this object; left in place",
                        target.name, target.kind
                    ),
                )))
            }
            Some(_) => {
                api.patch(&target.zone, &[deletion(&target.name, &target.kind)])?;
                Ok(Finalized::done().event(Event::normal(
                    "Deleted",
                    format!("deleted {} {} from PowerDNS", target.name, target.kind),
                )))
            }
        }
    }
}

bosun_sdk::export!(DnsRecords);

fn settings(ctx: &Context) -> Result<Settings, Error> {
    Ok(ctx.settings()?.unwrap_or_default())
}

/// The comment that marks an rrset as this object's.
pub fn marker(record: &DnsRecord) -> String {
    format!(
        "managed by bosun/dnsrecord for {}/{}",
        record.namespace().unwrap_or_default(),
        record.name_any()
    )
}

fn is_ours(rrset: &RRSet, marker: &str) -> bool {
    rrset.comments.iter().any(|c| c.content == marker)
}

fn contents(rrset: &RRSet) -> Vec<String> {
    let mut contents: Vec<String> = rrset
        .records
        .iter()
        .filter(|r| !r.disabled)
        .map(|r| r.content.clone())
        .collect();
    contents.sort();
    contents
}

fn served(zone: &str, rrset: &RRSet) -> ServedRecord {
    ServedRecord {
        zone: zone.to_owned(),
        name: rrset.name.clone(),
        kind: rrset.kind.clone(),
        ttl: rrset.ttl,
        content: contents(rrset),
    }
}

fn deletion(name: &str, kind: &str) -> RRSet {
    RRSet {
        name: name.to_owned(),
        kind: kind.to_owned(),
        ttl: 0,
        changetype: Some("DELETE".to_owned()),
        records: Vec::new(),
        comments: Vec::new(),
    }
}

/// The rrset the spec asks for, in PowerDNS's terms.
struct Desired {
    zone: String,
    name: String,
    kind: RecordType,
    ttl: u32,
    content: Vec<String>,
    marker: String,
}

impl Desired {
    fn from_spec(spec: &DnsRecordSpec, marker: &str) -> Result<Self, Error> {
        let zone = records::canonical_zone(&spec.zone)?;
        let name = records::owner_name(&spec.name, &zone)?;
        if spec.content.is_empty() {
            return Err(Error::permanent(
                "InvalidSpec",
                "spec.content lists no record",
            ));
        }
        if spec.kind == RecordType::CNAME && spec.content.len() > 1 {
            return Err(Error::permanent(
                "InvalidSpec",
                "a CNAME has exactly one target",
            ));
        }
        let mut content = spec
            .content
            .iter()
            .map(|c| records::canonical_content(spec.kind, c))
            .collect::<Result<Vec<_>, _>>()?;
        content.sort();
        content.dedup();
        Ok(Desired {
            zone,
            name,
            kind: spec.kind,
            ttl: spec.ttl,
            content,
            marker: marker.to_owned(),
        })
    }

    fn same_rrset(&self, served: &ServedRecord) -> bool {
        served.zone == self.zone && served.name == self.name && served.kind == self.kind.as_str()
    }

    fn matches(&self, rrset: &RRSet) -> bool {
        rrset.ttl == self.ttl
            && rrset.records.iter().all(|r| !r.disabled)
            && contents(rrset) == self.content
    }

    fn rrset(&self) -> RRSet {
        RRSet {
            name: self.name.clone(),
            kind: self.kind.as_str().to_owned(),
            ttl: self.ttl,
            changetype: Some("REPLACE".to_owned()),
            records: self
                .content
                .iter()
                .map(|content| Record {
                    content: content.clone(),
                    disabled: false,
                })
                .collect(),
            comments: vec![Comment {
                content: self.marker.clone(),
                account: "bosun".to_owned(),
            }],
        }
    }
}
