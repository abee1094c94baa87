//! Host classes: which bosun host runs which ReconcilerModule.
//!
//! A host runs with a class (`bosun run --host-class NAME`, `default` when
//! unset) and loads only the ReconcilerModules whose `spec.hostClass` names
//! it, so two installations — a platform team's and a tenant's, each with
//! its own ServiceAccount, RBAC and leader Lease — share one cluster
//! without loading each other's modules or writing each other's status (as
//! Kubewarden policies name their `policyServer`).
//!
//! Hosts announce their class with a Lease, `bosun-host-class-<class>`
//! (labelled [`LABEL`]), in their own namespace, renewed by the host that
//! leads its class. A module naming a class no announcement keeps alive is
//! reported in its status by exactly one host: the one whose class comes
//! first by name among the live ones. The rule needs no coordination of
//! its own — every host reads the same Leases — and a class that is served
//! never has its modules' status written by another class.
//!
//! Why Leases and not a field in each module's status: a host that cannot
//! reach a module (its source gone, say) still serves its class, and a
//! status is the module's, not the host's.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};

/// The class of hosts and modules that name none.
pub const DEFAULT: &str = "default";

/// The label on announcement Leases; its value is the class.
pub const LABEL: &str = "bosun.dev/host-class";

/// The announcement Lease's name is this prefix and the class.
const LEASE_PREFIX: &str = "bosun-host-class-";

/// The longest class name: a Lease name is a DNS subdomain, and a label
/// value at most 63 characters; 40 keeps room for the prefix.
pub const MAX_LEN: usize = 40;

/// How long an announcement holds without renewal. Longer than a leader
/// Lease's failover, so a class whose leader moves never looks unserved.
pub const ANNOUNCEMENT_DURATION: Duration = Duration::from_secs(30);

/// How often the leading host renews its class's announcement, and looks
/// for modules no host serves.
pub const ANNOUNCE_PERIOD: Duration = Duration::from_secs(10);

/// The condition reason of a module whose class no host serves.
pub const NO_HOST_REASON: &str = "NoHostForClass";

/// A host class: a DNS label of at most [`MAX_LEN`] characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostClass(String);

/// Why a name is not a host class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{name:?} is not a host class: use at most {MAX_LEN} lowercase letters, digits and '-', starting and ending with a letter or digit"
)]
pub struct InvalidClass {
    name: String,
}

impl HostClass {
    /// The class named `name`, if it is a valid one.
    pub fn new(name: &str) -> Result<HostClass, InvalidClass> {
        let valid = !name.is_empty()
            && name.len() <= MAX_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if valid {
            Ok(HostClass(name.to_owned()))
        } else {
            Err(InvalidClass {
                name: name.to_owned(),
            })
        }
    }

    /// Its name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name of the Lease that announces it.
    pub fn lease_name(&self) -> String {
        format!("{LEASE_PREFIX}{}", self.0)
    }
}

impl Default for HostClass {
    fn default() -> Self {
        HostClass(DEFAULT.to_owned())
    }
}

impl fmt::Display for HostClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for HostClass {
    type Err = InvalidClass;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        HostClass::new(name)
    }
}

/// Keeps this host's class announced while it leads.
pub struct Announcer {
    leases: Api<Lease>,
    class: HostClass,
    identity: String,
}

impl Announcer {
    /// Announces `class` with a Lease in `namespace`, held as `identity`.
    pub fn new(client: Client, namespace: &str, class: HostClass, identity: String) -> Self {
        Announcer {
            leases: Api::namespaced(client, namespace),
            class,
            identity,
        }
    }

    /// The class announced.
    pub fn class(&self) -> &HostClass {
        &self.class
    }

    /// Creates or renews the announcement. A conflict (another replica of
    /// the class renewed it first) is as good as a renewal.
    pub async fn renew(&self) -> Result<(), kube::Error> {
        let name = self.class.lease_name();
        let now = MicroTime(Timestamp::now());
        let spec = LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(ANNOUNCEMENT_DURATION.as_secs() as i32),
            renew_time: Some(now.clone()),
            ..LeaseSpec::default()
        };
        match self.leases.get_opt(&name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name),
                        labels: Some([(LABEL.to_owned(), self.class.0.clone())].into()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        acquire_time: Some(now),
                        ..spec
                    }),
                };
                match self.leases.create(&PostParams::default(), &lease).await {
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
                    other => other.map(drop),
                }
            }
            Some(mut lease) => {
                let acquire = lease.spec.as_ref().and_then(|s| s.acquire_time.clone());
                lease.spec = Some(LeaseSpec {
                    acquire_time: acquire,
                    ..spec
                });
                match self
                    .leases
                    .replace(&name, &PostParams::default(), &lease)
                    .await
                {
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
                    other => other.map(drop),
                }
            }
        }
    }
}

/// The classes whose announcement is alive, across all namespaces.
pub async fn live_classes(client: Client) -> Result<BTreeSet<HostClass>, kube::Error> {
    let leases = Api::<Lease>::all(client)
        .list(&ListParams::default().labels(LABEL))
        .await?;
    let now = Timestamp::now();
    Ok(leases
        .items
        .iter()
        .filter(|lease| is_alive(lease, now))
        .filter_map(|lease| {
            let class = lease.metadata.labels.as_ref()?.get(LABEL)?;
            // A Lease labelled by hand with a name that is no class is not
            // an announcement.
            HostClass::new(class).ok()
        })
        .collect())
}

/// Whether an announcement was renewed within its duration.
fn is_alive(lease: &Lease, now: Timestamp) -> bool {
    let Some(spec) = &lease.spec else {
        return false;
    };
    let (Some(renewed), Some(seconds)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return false;
    };
    let seconds = i64::from(seconds.max(0));
    renewed.0.as_second().saturating_add(seconds) >= now.as_second()
}

/// Whether the host of `ours` reports the modules no host serves: it does
/// when its class is the first live one by name, so exactly one class
/// does once every host sees the same Leases.
pub fn reports_unserved(live: &BTreeSet<HostClass>, ours: &HostClass) -> bool {
    live.first() == Some(ours)
}

/// What a module of `class` says when no host serves it.
pub fn unserved_message(class: &str, live: &BTreeSet<HostClass>) -> String {
    let served = live
        .iter()
        .map(HostClass::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "no bosun host serves host class {class:?} (the hosts running serve: {served}); run one with `bosun run --modules-from-cluster --host-class {class}`, or set spec.hostClass to a class that is served"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(names: &[&str]) -> BTreeSet<HostClass> {
        names.iter().map(|n| HostClass::new(n).unwrap()).collect()
    }

    #[test]
    fn a_class_is_a_short_dns_label() {
        for good in ["default", "tenant-a", "a", "0x"] {
            assert!(HostClass::new(good).is_ok(), "{good}");
        }
        let long = "a".repeat(MAX_LEN + 1);
        for bad in ["", "Tenant", "-a", "a-", "a.b", "a_b", long.as_str()] {
            let error = HostClass::new(bad).unwrap_err().to_string();
            assert!(error.contains("is not a host class"), "{bad}: {error}");
        }
        assert_eq!(
            HostClass::new("tenant-a").unwrap().lease_name(),
            "bosun-host-class-tenant-a"
        );
    }

    #[test]
    fn the_first_live_class_by_name_reports_and_no_other() {
        let live = classes(&["default", "tenant-a"]);
        assert!(reports_unserved(&live, &HostClass::default()));
        assert!(!reports_unserved(
            &live,
            &HostClass::new("tenant-a").unwrap()
        ));
        let live = classes(&["tenant-b", "tenant-a"]);
        assert!(reports_unserved(
            &live,
            &HostClass::new("tenant-a").unwrap()
        ));
        // A host whose own announcement is not (yet) seen reports nothing.
        assert!(!reports_unserved(&live, &HostClass::default()));
    }

    #[test]
    fn an_announcement_lives_for_its_duration_after_renewal() {
        let renewed: Timestamp = "2026-12-07T10:00:00Z".parse().unwrap();
        let lease = |duration: Option<i32>| Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(renewed)),
                lease_duration_seconds: duration,
                ..LeaseSpec::default()
            }),
        };
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert!(is_alive(&lease(Some(30)), at("2026-12-07T10:00:29Z")));
        assert!(!is_alive(&lease(Some(30)), at("2026-12-07T10:00:31Z")));
        assert!(!is_alive(&lease(None), at("2026-12-07T10:00:01Z")));
        assert!(!is_alive(&lease(Some(-5)), at("2026-12-07T10:00:01Z")));
    }
}
