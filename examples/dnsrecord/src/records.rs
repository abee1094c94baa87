//! What a record spec means in DNS terms: the owner name, the record
//! type, and each content in the form PowerDNS stores it, so that what the
//! API holds compares equal to what the spec asks for.

use std::net::{Ipv4Addr, Ipv6Addr};

use bosun_sdk::Error;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The record types the operator manages.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RecordType {
    /// An IPv4 address.
    A,
    /// An IPv6 address.
    #[allow(clippy::upper_case_acronyms)]
    AAAA,
    /// An alias for another name.
    #[allow(clippy::upper_case_acronyms)]
    CNAME,
    /// Free text.
    #[allow(clippy::upper_case_acronyms)]
    TXT,
    /// A mail exchanger: `<preference> <host>`.
    MX,
    /// A service: `<priority> <weight> <port> <host>`.
    #[allow(clippy::upper_case_acronyms)]
    SRV,
    /// A name server of a delegated subzone.
    NS,
    /// Which CAs may issue for the name: `<flags> <tag> "<value>"`.
    #[allow(clippy::upper_case_acronyms)]
    CAA,
}

impl RecordType {
    /// The type's name, as PowerDNS writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::AAAA => "AAAA",
            RecordType::CNAME => "CNAME",
            RecordType::TXT => "TXT",
            RecordType::MX => "MX",
            RecordType::SRV => "SRV",
            RecordType::NS => "NS",
            RecordType::CAA => "CAA",
        }
    }
}

fn invalid(message: String) -> Error {
    Error::permanent("InvalidSpec", message)
}

/// `zone` as PowerDNS names it: lower case, with the trailing dot.
pub fn canonical_zone(zone: &str) -> Result<String, Error> {
    let zone = zone.trim_end_matches('.').to_ascii_lowercase();
    check_hostname(&zone, false).map_err(|e| invalid(format!("spec.zone {zone:?}: {e}")))?;
    Ok(format!("{zone}."))
}

/// The owner name: `@` is the zone itself, anything else is relative to it.
pub fn owner_name(name: &str, zone: &str) -> Result<String, Error> {
    let name = name.to_ascii_lowercase();
    if name == "@" {
        return Ok(zone.to_owned());
    }
    if name.ends_with('.') {
        return Err(invalid(format!(
            "spec.name {name:?} must be relative to the zone (`www`, or `@` for the zone itself)"
        )));
    }
    check_hostname(&name, true).map_err(|e| invalid(format!("spec.name {name:?}: {e}")))?;
    let owner = format!("{name}.{zone}");
    if owner.len() > 254 {
        return Err(invalid(format!("{owner} is longer than 253 characters")));
    }
    Ok(owner)
}

/// Labels of letters, digits and hyphens (and `_` and a leading `*`
/// label where `owner` allows, for `_acme-challenge` and wildcards).
fn check_hostname(name: &str, owner: bool) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("must be 1-253 characters".into());
    }
    for (index, label) in name.split('.').enumerate() {
        if owner && index == 0 && label == "*" {
            continue;
        }
        let ok_char = |c: char| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (owner && c == '_')
        };
        if label.is_empty()
            || label.len() > 63
            || !label.chars().all(ok_char)
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(format!(
                "label {label:?} is not a DNS label (1-63 of a-z, 0-9, '-')"
            ));
        }
    }
    Ok(())
}

/// A host name in record data, fully qualified as PowerDNS stores it.
fn target(text: &str, what: &str) -> Result<String, String> {
    let host = text.trim_end_matches('.').to_ascii_lowercase();
    check_hostname(&host, false).map_err(|e| format!("{what} {text:?}: {e}"))?;
    Ok(format!("{host}."))
}

/// `content` in the form PowerDNS stores and returns it, or why it is not
/// valid record data of type `kind`. Host names in record data must be
/// fully qualified; a trailing dot is added when missing.
pub fn canonical_content(kind: RecordType, content: &str) -> Result<String, Error> {
    let text = content.trim();
    let result = match kind {
        RecordType::A => text
            .parse::<Ipv4Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| format!("{text:?} is not an IPv4 address")),
        RecordType::AAAA => text
            .parse::<Ipv6Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| format!("{text:?} is not an IPv6 address")),
        RecordType::CNAME | RecordType::NS => target(text, "target"),
        RecordType::TXT => Ok(quote_txt(text)),
        RecordType::MX => match text.split_whitespace().collect::<Vec<_>>()[..] {
            [preference, host] => preference
                .parse::<u16>()
                .map_err(|_| format!("MX preference {preference:?} is not 0-65535"))
                .and_then(|p| Ok(format!("{p} {}", target(host, "mail exchanger")?))),
            _ => Err(format!("{text:?} is not `<preference> <host>`")),
        },
        RecordType::SRV => match text.split_whitespace().collect::<Vec<_>>()[..] {
            [priority, weight, port, host] => {
                let number = |field: &str, what: &str| {
                    field
                        .parse::<u16>()
                        .map_err(|_| format!("SRV {what} {field:?} is not 0-65535"))
                };
                (|| {
                    Ok(format!(
                        "{} {} {} {}",
                        number(priority, "priority")?,
                        number(weight, "weight")?,
                        number(port, "port")?,
                        target(host, "target")?
                    ))
                })()
            }
            _ => Err(format!(
                "{text:?} is not `<priority> <weight> <port> <host>`"
            )),
        },
        RecordType::CAA => match text.splitn(3, ' ').collect::<Vec<_>>()[..] {
            [flags, tag, value] if flags.parse::<u8>().is_ok() && !tag.is_empty() => {
                let value = value.trim();
                let value = if value.starts_with('"') {
                    value.to_owned()
                } else {
                    quote_txt(value)
                };
                Ok(format!("{flags} {} {value}", tag.to_ascii_lowercase()))
            }
            _ => Err(format!("{text:?} is not `<flags> <tag> <value>`")),
        },
    };
    result.map_err(|e| invalid(format!("spec.content for {}: {e}", kind.as_str())))
}

/// TXT data as a zone file writes it: quoted, with `"` and `\` escaped.
/// Text already in quotes is taken as written.
fn quote_txt(text: &str) -> String {
    if text.len() >= 2 && text.starts_with('"') && text.ends_with('"') {
        return text.to_owned();
    }
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_qualified_in_the_zone() {
        let zone = canonical_zone("Example.ORG").unwrap();
        assert_eq!(zone, "example.org.");
        assert_eq!(owner_name("@", &zone).unwrap(), "example.org.");
        assert_eq!(owner_name("www", &zone).unwrap(), "www.example.org.");
        assert_eq!(
            owner_name("_acme-challenge.api", &zone).unwrap(),
            "_acme-challenge.api.example.org."
        );
        assert_eq!(owner_name("*", &zone).unwrap(), "*.example.org.");
        for bad in ["www.example.org.", "a..b", "-a", "a b", "ü"] {
            assert!(owner_name(bad, &zone).unwrap_err().is_permanent(), "{bad}");
        }
        assert!(canonical_zone("under_score.org").is_err());
    }

    #[test]
    fn content_takes_the_form_powerdns_returns() {
        use RecordType::*;
        let c = |kind, text| canonical_content(kind, text).unwrap();
        assert_eq!(c(A, " 192.0.2.10 "), "192.0.2.10");
        assert_eq!(c(AAAA, "2001:DB8:0:0::1"), "2001:db8::1");
        assert_eq!(c(CNAME, "Web.Example.org"), "web.example.org.");
        assert_eq!(c(TXT, "hello \"world\""), "\"hello \\\"world\\\"\"");
        assert_eq!(c(TXT, "\"already quoted\""), "\"already quoted\"");
        assert_eq!(c(MX, "10 mail.example.org"), "10 mail.example.org.");
        assert_eq!(
            c(SRV, "0 5 5060 sip.example.org."),
            "0 5 5060 sip.example.org."
        );
        assert_eq!(
            c(CAA, "0 issue letsencrypt.org"),
            "0 issue \"letsencrypt.org\""
        );
        for (kind, bad) in [
            (A, "192.0.2.300"),
            (AAAA, "192.0.2.1"),
            (MX, "mail"),
            (SRV, "1 2 x y"),
        ] {
            assert!(
                canonical_content(kind, bad).unwrap_err().is_permanent(),
                "{bad}"
            );
        }
    }
}
