//! Origins: `scheme://host[:port]`, the unit in which a module declares and
//! an operator grants outbound HTTP.
//!
//! The syntax is deliberately narrow, so that what an operator reads in a
//! grant is exactly what is reachable: `http` or `https`, a lower-case DNS
//! name or an IP literal (`[…]` for IPv6), an optional port (the scheme's
//! default otherwise), nothing else — no path, no user info, no query. A
//! leading `*.` matches subdomains only (`*.example.com` covers
//! `a.example.com` and `a.b.example.com`, never `example.com`), never an IP
//! literal, and never a whole top-level domain.

use std::fmt;
use std::net::IpAddr;

/// The scheme of an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS, verified.
    Https,
}

impl Scheme {
    /// The port a URL of this scheme means when it names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// The host part of an origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// A DNS name, lower-case, without a trailing dot.
    Name(String),
    /// `*.` and a DNS name: any name strictly below it.
    Wildcard(String),
    /// An IP address literal.
    Ip(IpAddr),
}

/// One origin, parsed and normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// The host or wildcard.
    pub host: Host,
    /// The port, the scheme's default filled in.
    pub port: u16,
}

/// Why a string is not an origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not an origin: {reason}; write scheme://host[:port] (http or https, an optional leading *. for subdomains), e.g. https://dns.example.com:8081"
)]
pub struct OriginError {
    /// What was given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Origin {
    /// Parses `text` as an origin pattern (a wildcard allowed).
    pub fn parse(text: &str) -> Result<Origin, OriginError> {
        let fail = |reason| OriginError {
            text: text.chars().take(256).collect(),
            reason,
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| fail("no scheme"))?;
        let scheme = match scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(fail("the scheme must be http or https")),
        };
        if rest.contains(['/', '?', '#', '@', '\\']) || rest.chars().any(char::is_whitespace) {
            return Err(fail("an origin has no path, query, user info or spaces"));
        }
        let (host, port) =
            split_port(rest).ok_or_else(|| fail("the port is not a number from 1 to 65535"))?;
        let port = port.unwrap_or(scheme.default_port());
        let host = if let Some(v6) = host.strip_prefix('[') {
            let v6 = v6
                .strip_suffix(']')
                .ok_or_else(|| fail("an IPv6 literal needs its closing ]"))?;
            let ip: std::net::Ipv6Addr = v6.parse().map_err(|_| fail("not an IPv6 address"))?;
            Host::Ip(IpAddr::V6(ip))
        } else if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
            Host::Ip(IpAddr::V4(ip))
        } else if let Some(below) = host.strip_prefix("*.") {
            check_name(below).map_err(fail)?;
            if !below.contains('.') {
                return Err(fail(
                    "a wildcard must stay below a registrable name, not a whole top-level domain",
                ));
            }
            if below.parse::<std::net::Ipv4Addr>().is_ok() || looks_numeric(below) {
                return Err(fail("a wildcard cannot cover IP addresses"));
            }
            Host::Wildcard(below.to_owned())
        } else {
            check_name(host).map_err(fail)?;
            if looks_numeric(host) {
                return Err(fail(
                    "the host is neither a DNS name nor a dotted IPv4 address",
                ));
            }
            Host::Name(host.to_owned())
        };
        Ok(Origin { scheme, host, port })
    }

    /// Whether a request to `scheme://host:port` is within this origin.
    /// `host` is what the request names: a DNS name (compared without case
    /// and without a trailing dot) or an IP literal.
    pub fn matches(&self, scheme: Scheme, host: &str, port: u16) -> bool {
        if self.scheme != scheme || self.port != port {
            return false;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let literal = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&host)
            .parse::<IpAddr>()
            .ok();
        match (&self.host, literal) {
            (Host::Ip(ip), Some(requested)) => *ip == requested,
            (Host::Name(name), None) => *name == host,
            (Host::Wildcard(below), None) => host
                .strip_suffix(below.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            _ => false,
        }
    }

    /// Whether every request this origin allows is allowed by `granted`
    /// too: the check of a declared origin against a grant.
    pub fn covered_by(&self, granted: &Origin) -> bool {
        if self.scheme != granted.scheme || self.port != granted.port {
            return false;
        }
        match (&granted.host, &self.host) {
            (g, d) if g == d => true,
            (Host::Wildcard(below), Host::Name(name) | Host::Wildcard(name)) => name
                .strip_suffix(below.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            _ => false,
        }
    }

    /// True when the origin names its host literally (a name or an IP, not
    /// a wildcard): only such origins open loopback and other guarded
    /// addresses.
    pub fn is_literal(&self) -> bool {
        !matches!(self.host, Host::Wildcard(_))
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        match &self.host {
            Host::Name(name) => f.write_str(name)?,
            Host::Wildcard(below) => write!(f, "*.{below}")?,
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}")?,
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
        }
        if self.port != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Origin {
    type Err = OriginError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Origin::parse(text)
    }
}

impl serde::Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Origin {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Origin::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Origin {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Origin".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "scheme://host[:port]: http or https, a DNS name (an optional leading *. for subdomains only) or an IP literal, an optional port",
            "pattern": "^https?://[^/?#@\\s]+$",
            "maxLength": 300,
        })
    }
}

/// Splits `host[:port]` (and `[v6]:port`); None when the port is bad.
fn split_port(rest: &str) -> Option<(&str, Option<u16>)> {
    let colon = if rest.starts_with('[') {
        rest.find(']')
            .and_then(|end| rest[end..].find(':').map(|i| end + i))
    } else {
        rest.rfind(':')
    };
    match colon {
        None => Some((rest, None)),
        Some(i) => {
            let port = &rest[i + 1..];
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            match port.parse::<u16>() {
                Ok(0) | Err(_) => None,
                Ok(port) => Some((&rest[..i], Some(port))),
            }
        }
    }
}

/// A lower-case DNS name: labels of letters, digits and `-`, at most 253
/// bytes. Upper case is refused rather than folded so a grant reads the
/// same as the origin it matches.
fn check_name(name: &str) -> Result<(), &'static str> {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err("the host must be a lower-case DNS name or an IP literal");
    }
    Ok(())
}

/// Names like `127.1` or `0x7f.1` that resolvers read as IPv4 addresses:
/// refused, so an address cannot hide as a name.
fn looks_numeric(name: &str) -> bool {
    name.rsplit('.')
        .next()
        .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(text: &str) -> Origin {
        Origin::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_and_prints_normalised() {
        assert_eq!(
            o("https://dns.example.com:443").to_string(),
            "https://dns.example.com"
        );
        assert_eq!(
            o("http://127.0.0.1:8081").to_string(),
            "http://127.0.0.1:8081"
        );
        assert_eq!(o("https://[::1]:9443").to_string(), "https://[::1]:9443");
        assert_eq!(
            o("https://*.example.com").to_string(),
            "https://*.example.com"
        );
    }

    #[test]
    fn refuses_what_is_not_an_origin() {
        for bad in [
            "dns.example.com",
            "ftp://x.example.com",
            "https://x.example.com/path",
            "https://user@x.example.com",
            "https://X.example.com",
            "https://x.example.com:0",
            "https://x.example.com:99999",
            "https://x.example.com:",
            "https://*.com",
            "https://*.10.0.0.1",
            "https://a.*.example.com",
            "https://127.1",
            "https://0x7f.0.0.1",
            "https://[::1",
            "https://",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn a_wildcard_matches_subdomains_only() {
        let any = o("https://*.example.com");
        assert!(any.matches(Scheme::Https, "a.example.com", 443));
        assert!(any.matches(Scheme::Https, "A.b.Example.com.", 443));
        assert!(!any.matches(Scheme::Https, "example.com", 443));
        assert!(!any.matches(Scheme::Https, "badexample.com", 443));
        assert!(!any.matches(Scheme::Https, "a.example.com", 8443));
        assert!(!any.matches(Scheme::Http, "a.example.com", 443));
    }

    #[test]
    fn an_ip_origin_matches_only_that_literal() {
        let local = o("http://127.0.0.1:8081");
        assert!(local.matches(Scheme::Http, "127.0.0.1", 8081));
        assert!(!local.matches(Scheme::Http, "localhost", 8081));
        let v6 = o("http://[::1]:80");
        assert!(v6.matches(Scheme::Http, "[::1]", 80));
    }

    #[test]
    fn coverage_of_a_declaration_by_a_grant() {
        let granted = o("https://*.example.com");
        assert!(o("https://a.example.com").covered_by(&granted));
        assert!(o("https://*.a.example.com").covered_by(&granted));
        assert!(o("https://*.example.com").covered_by(&granted));
        assert!(!o("https://example.com").covered_by(&granted));
        assert!(!o("https://*.example.com").covered_by(&o("https://a.example.com")));
        assert!(!o("http://a.example.com").covered_by(&granted));
    }
}
