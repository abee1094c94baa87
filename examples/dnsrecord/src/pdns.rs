//! The slice of PowerDNS's HTTP API the operator uses: read a zone's
//! rrsets, replace one, delete one
//! (<https://doc.powerdns.com/authoritative/http-api/zone.html>).
//!
//! The API key is not here: the host adds the `X-API-Key` header the grant
//! binds to the origin, from a Secret the guest never sees.

use bosun_sdk::Error;
use bosun_sdk::http::{Client, HttpError, HttpErrorKind};
use serde::{Deserialize, Serialize};

/// The PowerDNS API of one server, at `base` (`http://127.0.0.1:8081`).
pub struct Api<'c> {
    client: Client<'c>,
    base: String,
    server: String,
}

/// An rrset as the API reads and writes it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RRSet {
    /// The owner name, fully qualified.
    pub name: String,
    /// The record type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Seconds.
    #[serde(default)]
    pub ttl: u32,
    /// `REPLACE` or `DELETE`, in a PATCH only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changetype: Option<String>,
    /// The records.
    #[serde(default)]
    pub records: Vec<Record>,
    /// Comments: the operator marks the rrsets it manages with one.
    #[serde(default)]
    pub comments: Vec<Comment>,
}

/// One record of an rrset.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The record data, in zone file form.
    pub content: String,
    /// Disabled records are kept but not served.
    #[serde(default)]
    pub disabled: bool,
}

/// A comment on an rrset.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    /// The text.
    pub content: String,
    /// Who wrote it.
    #[serde(default)]
    pub account: String,
}

#[derive(Deserialize)]
struct Zone {
    #[serde(default)]
    rrsets: Vec<RRSet>,
}

#[derive(Serialize)]
struct Patch<'a> {
    rrsets: &'a [RRSet],
}

impl<'c> Api<'c> {
    /// The API at `base` (no trailing slash needed) for `server` (usually `localhost`).
    pub fn new(client: Client<'c>, base: &str, server: &str) -> Self {
        Api {
            client,
            base: base.trim_end_matches('/').to_owned(),
            server: server.to_owned(),
        }
    }

    /// The URL of `zone` (`example.org.`).
    pub fn zone_url(&self, zone: &str) -> String {
        format!("{}/api/v1/servers/{}/zones/{zone}", self.base, self.server)
    }

    /// The rrset `name`/`kind` of `zone`, if the zone holds one.
    ///
    /// PowerDNS 4.7 has no per-rrset read, so the zone is read whole.
    pub fn rrset(&self, zone: &str, name: &str, kind: &str) -> Result<Option<RRSet>, Error> {
        let response = self
            .client
            .get(self.zone_url(zone))
            .header("Accept", "application/json")
            .send()
            .map_err(classify)?;
        if matches!(response.status(), 404 | 422) {
            // PowerDNS answers an unknown zone with 404 (422 in some versions).
            return Err(Error::permanent(
                "ZoneNotFound",
                format!(
                    "the PowerDNS server has no zone {zone} ({}); create it there, then change this object",
                    response.status()
                ),
            ));
        }
        let zone: Zone = response.error_for_status().map_err(classify)?.json()?;
        Ok(zone
            .rrsets
            .into_iter()
            .find(|r| r.name.eq_ignore_ascii_case(name) && r.kind == kind))
    }

    /// Applies `rrsets` (each with its `changetype`) to `zone` in one PATCH.
    pub fn patch(&self, zone: &str, rrsets: &[RRSet]) -> Result<(), Error> {
        self.client
            .patch(self.zone_url(zone))
            .json(&Patch { rrsets })
            .send()
            .and_then(|r| r.error_for_status())
            .map_err(classify)?;
        Ok(())
    }
}

/// The SDK's classification (4xx permanent, 5xx and timeouts retryable),
/// but for a key that was not accepted: retryable, since the Secret can be
/// rotated without the object changing.
pub fn classify(error: HttpError) -> Error {
    match error.kind() {
        HttpErrorKind::Status(401 | 403) => Error::retryable(
            "Unauthorized",
            format!("{error}; check the API key Secret the grant binds to this origin"),
        ),
        _ => error.into(),
    }
}
