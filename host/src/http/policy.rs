//! Which requests may leave the host: the origin check against what a
//! module declared and was granted, and the address check on where a name
//! resolves.
//!
//! A request passes two gates. First its scheme, host and port must fall
//! within an origin the module both declared and was granted. Then every
//! address it would connect to is checked: loopback, unspecified,
//! link-local (169.254.0.0/16, fe80::/10 — most clouds' metadata lives
//! there), the cloud metadata and host services that live elsewhere (AWS's
//! IPv6 fd00:ec2::254, Alibaba's 100.100.100.200, Oracle's 192.0.0.192,
//! Azure's WireServer 168.63.129.16), multicast and the API server's own
//! addresses — the Service's and its endpoints' — are *guarded*. A guarded address is reachable
//! only through a granted origin that names it literally: the IP itself,
//! or `localhost` for loopback. A wildcard, or a name that merely resolves
//! there (DNS rebinding), never opens it.

use std::net::{IpAddr, Ipv6Addr};

use crate::grants::HttpGrant;
use crate::meta::ModuleMeta;
use crate::origin::{Host, Origin, Scheme};

/// Why a request was refused; its label in `bosun_guest_http_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No origin both declared and granted covers the request.
    NotGranted,
    /// The request is not one the host sends (no authority, user info, a
    /// scheme other than http/https).
    Malformed,
    /// The name resolved to a loopback or unspecified address.
    Loopback,
    /// A link-local or cloud metadata address.
    LinkLocal,
    /// Multicast or broadcast.
    Multicast,
    /// One of the API server's addresses.
    ApiServer,
    /// The name did not resolve.
    Unresolved,
    /// The call's request budget is spent.
    RequestBudget,
    /// The credentials bound to the origin could not be read.
    Credentials,
    /// This host does not lead (any more): another replica changes the
    /// world now.
    NotLeader,
    /// The grant does not allow this HTTP method with this origin.
    Method,
}

impl Refusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NotGranted => "not_granted",
            Refusal::Malformed => "malformed",
            Refusal::Loopback => "loopback",
            Refusal::LinkLocal => "link_local",
            Refusal::Multicast => "multicast",
            Refusal::ApiServer => "api_server",
            Refusal::Unresolved => "unresolved",
            Refusal::RequestBudget => "request_budget",
            Refusal::Credentials => "credentials",
            Refusal::NotLeader => "not_leader",
            Refusal::Method => "method",
        }
    }
}

/// The origins a module may reach: those it declared, each with the grant
/// covering it.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    allowed: Vec<(Origin, HttpGrant)>,
}

impl Policy {
    /// The intersection of `meta`'s declared origins with `grants`. A
    /// declared origin is paired with the first grant covering it, whose
    /// credentials and CA bundle then apply.
    pub fn new(meta: &ModuleMeta, grants: &[HttpGrant]) -> Self {
        let allowed = meta
            .http_origins
            .iter()
            .filter_map(|declared| {
                grants
                    .iter()
                    .find(|g| declared.covered_by(&g.origin))
                    .map(|g| (declared.clone(), g.clone()))
            })
            .collect();
        Policy { allowed }
    }

    /// True when nothing is reachable.
    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty()
    }

    /// The declared origin and its grant covering `scheme://host:port`.
    pub fn admit(
        &self,
        scheme: Scheme,
        host: &str,
        port: u16,
    ) -> Result<(&Origin, &HttpGrant), Refusal> {
        self.allowed
            .iter()
            .find(|(declared, grant)| {
                declared.matches(scheme, host, port) && grant.origin.matches(scheme, host, port)
            })
            .map(|(o, g)| (o, g))
            .ok_or(Refusal::NotGranted)
    }
}

/// Whether connecting to `ip` for a request admitted under the granted
/// `origin` is allowed; `api_server` holds the API server's addresses.
pub fn check_address(ip: IpAddr, origin: &Origin, api_server: &[IpAddr]) -> Result<(), Refusal> {
    let ip = ip.to_canonical();
    let guard = guarded(ip, api_server);
    let Some(refusal) = guard else {
        return Ok(());
    };
    let named = match &origin.host {
        Host::Ip(literal) => literal.to_canonical() == ip,
        Host::Name(name) => name == "localhost" && refusal == Refusal::Loopback,
        Host::Wildcard(_) => false,
    };
    if named { Ok(()) } else { Err(refusal) }
}

/// Why `ip` is guarded, if it is.
fn guarded(ip: IpAddr, api_server: &[IpAddr]) -> Option<Refusal> {
    if api_server.iter().any(|a| a.to_canonical() == ip) {
        return Some(Refusal::ApiServer);
    }
    const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    // Instance metadata and host services outside 169.254.0.0/16: Alibaba
    // Cloud's metadata, Oracle Cloud's, Azure's WireServer.
    const METADATA_V4: [[u8; 4]; 3] = [[100, 100, 100, 200], [192, 0, 0, 192], [168, 63, 129, 16]];
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_loopback() || v4.is_unspecified() || v4.octets()[0] == 0 {
                Some(Refusal::Loopback)
            } else if v4.is_link_local() || METADATA_V4.contains(&v4.octets()) {
                Some(Refusal::LinkLocal)
            } else if v4.is_multicast() || v4.is_broadcast() {
                Some(Refusal::Multicast)
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() || v6.is_unspecified() {
                Some(Refusal::Loopback)
            } else if v6 == METADATA_V6 || (v6.segments()[0] & 0xffc0) == 0xfe80 {
                Some(Refusal::LinkLocal)
            } else if v6.is_multicast() {
                Some(Refusal::Multicast)
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(text: &str) -> Origin {
        Origin::parse(text).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn guarded_addresses_need_an_origin_naming_them() {
        let api = [ip("10.96.0.1")];
        let name = o("https://api.example.com");
        let wildcard = o("https://*.example.com");
        for (addr, why) in [
            ("127.0.0.1", Refusal::Loopback),
            ("::1", Refusal::Loopback),
            ("::ffff:127.0.0.1", Refusal::Loopback),
            ("0.0.0.0", Refusal::Loopback),
            ("169.254.169.254", Refusal::LinkLocal),
            ("100.100.100.200", Refusal::LinkLocal),
            ("192.0.0.192", Refusal::LinkLocal),
            ("168.63.129.16", Refusal::LinkLocal),
            ("fd00:ec2::254", Refusal::LinkLocal),
            ("fe80::1", Refusal::LinkLocal),
            ("224.0.0.1", Refusal::Multicast),
            ("10.96.0.1", Refusal::ApiServer),
        ] {
            assert_eq!(check_address(ip(addr), &name, &api), Err(why), "{addr}");
            assert_eq!(check_address(ip(addr), &wildcard, &api), Err(why), "{addr}");
        }
        assert_eq!(check_address(ip("93.184.216.34"), &wildcard, &api), Ok(()));
        assert_eq!(check_address(ip("10.1.2.3"), &name, &api), Ok(()));
    }

    #[test]
    fn a_literal_origin_opens_exactly_its_address() {
        let api = [ip("127.0.0.1")];
        assert_eq!(
            check_address(ip("127.0.0.1"), &o("http://127.0.0.1:8081"), &api),
            Ok(())
        );
        assert_eq!(
            check_address(ip("169.254.169.254"), &o("http://169.254.169.254"), &[]),
            Ok(())
        );
        assert_eq!(
            check_address(ip("127.0.0.2"), &o("http://localhost:8081"), &[]),
            Ok(())
        );
        // localhost resolving to the API server's address is still refused.
        assert_eq!(
            check_address(ip("127.0.0.1"), &o("http://localhost:8081"), &api),
            Err(Refusal::ApiServer)
        );
    }
}
