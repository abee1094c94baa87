//! Membership: each sharded replica holds a Lease of its own,
//! `bosun-shard-<class>-<replica>` (labelled [`CLASS_LABEL`]), whose
//! [`BUCKETS_ANNOTATION`] names the buckets it holds, and reads its
//! class's Leases to see who else is alive and what they hold.
//!
//! Liveness is judged as leader election judges it ([`crate::leader`]): a
//! Lease is dead once its record has not changed for its
//! `leaseDurationSeconds` *as timed by the reader's own monotonic clock*
//! from when the reader first saw that record, so clock skew between
//! replicas does not matter. The writer, for its part, stops writing once
//! no renewal has succeeded within the renew deadline (shorter than the
//! duration): by the time anyone else may count it gone, it has stopped.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use tokio::time::Instant;

use super::ring::Buckets;
use super::{BUCKETS_ANNOTATION, CLASS_LABEL};
use crate::modules::class::HostClass;

/// Why a replica identity cannot name a Lease.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a replica id: use at most 63 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
)]
pub struct InvalidReplica(String);

/// A replica's identity: part of its Lease's name, so a DNS subdomain.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplicaId(String);

impl ReplicaId {
    /// The identity `id`, if it can name a Lease.
    pub fn new(id: &str) -> Result<ReplicaId, InvalidReplica> {
        let valid = !id.is_empty()
            && id.len() <= 63
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && id.as_bytes()[0].is_ascii_alphanumeric()
            && id.as_bytes()[id.len() - 1].is_ascii_alphanumeric();
        if valid {
            Ok(ReplicaId(id.to_owned()))
        } else {
            Err(InvalidReplica(id.to_owned()))
        }
    }

    /// This host's default identity: the Pod's name (`HOSTNAME`), else the
    /// machine's, lower-cased.
    pub fn from_host() -> Result<ReplicaId, InvalidReplica> {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_ascii_lowercase())
            .unwrap_or_default();
        ReplicaId::new(&host)
    }

    /// The identity.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ReplicaId {
    type Err = InvalidReplica;

    fn from_str(id: &str) -> Result<Self, Self::Err> {
        ReplicaId::new(id)
    }
}

impl std::fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Another replica as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its identity (the Lease's holder).
    pub replica: String,
    /// The buckets its Lease claims.
    pub claims: Buckets,
    /// Whether its Lease changed within its duration.
    pub alive: bool,
}

/// One replica's Lease, and what it saw of the others'.
pub struct Membership {
    leases: Api<Lease>,
    class: HostClass,
    replica: ReplicaId,
    duration: Duration,
    /// Per Lease name: its resourceVersion when first seen, and when.
    seen: HashMap<String, (String, Instant)>,
}

impl Membership {
    /// `replica`'s membership in `class`, its Lease in `namespace`, valid
    /// for `duration` without renewal.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        class: HostClass,
        replica: ReplicaId,
        duration: Duration,
    ) -> Self {
        Membership {
            leases: Api::namespaced(client, namespace),
            class,
            replica,
            duration,
            seen: HashMap::new(),
        }
    }

    /// This replica's identity.
    pub fn replica(&self) -> &ReplicaId {
        &self.replica
    }

    /// The name of this replica's Lease.
    pub fn lease_name(&self) -> String {
        format!("bosun-shard-{}-{}", self.class, self.replica)
    }

    /// Creates or renews this replica's Lease, claiming `claims`.
    pub async fn renew(&self, claims: Buckets) -> Result<(), kube::Error> {
        let seconds = i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX);
        self.write(claims, seconds).await
    }

    /// Writes this replica's Lease: `claims`, valid `seconds`.
    async fn write(&self, claims: Buckets, seconds: i32) -> Result<(), kube::Error> {
        let name = self.lease_name();
        let now = MicroTime(Timestamp::now());
        let spec = LeaseSpec {
            holder_identity: Some(self.replica.0.clone()),
            lease_duration_seconds: Some(seconds),
            renew_time: Some(now.clone()),
            ..LeaseSpec::default()
        };
        let annotations = [(BUCKETS_ANNOTATION.to_owned(), claims.to_list())].into();
        let params = PostParams {
            field_manager: Some("bosun-shard-membership".to_owned()),
            ..PostParams::default()
        };
        match self.leases.get_opt(&name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name),
                        labels: Some([(CLASS_LABEL.to_owned(), self.class.to_string())].into()),
                        annotations: Some(annotations),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        acquire_time: Some(now),
                        ..spec
                    }),
                };
                self.leases.create(&params, &lease).await.map(drop)
            }
            Some(mut lease) => {
                let acquire = lease.spec.as_ref().and_then(|s| s.acquire_time.clone());
                lease.spec = Some(LeaseSpec {
                    acquire_time: acquire.or(Some(now)),
                    ..spec
                });
                lease.metadata.annotations = Some(annotations);
                // Carrying the resourceVersion read: a conflict (someone
                // edited the Lease meanwhile) fails this round, and the
                // next one reads it again.
                self.leases.replace(&name, &params, &lease).await.map(drop)
            }
        }
    }

    /// Leaves the ring on a graceful stop, once this replica holds
    /// nothing: the others need not wait for its Lease to expire. First a
    /// release record (no claims, valid one second, as client-go releases
    /// a leader Lease), so that a host whose RBAC may not delete Leases
    /// still leaves at once; then the Lease is deleted.
    pub async fn leave(&self) -> Result<(), kube::Error> {
        self.write(Buckets::NONE, 1).await?;
        match self
            .leases
            .delete(&self.lease_name(), &Default::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// The other replicas of the class, as their Leases say now.
    pub async fn others(&mut self) -> Result<Vec<Member>, kube::Error> {
        let selector = format!("{CLASS_LABEL}={}", self.class);
        let leases = self
            .leases
            .list(&ListParams::default().labels(&selector))
            .await?;
        let now = Instant::now();
        let mut members = Vec::new();
        let mut names = Vec::new();
        for lease in &leases.items {
            let Some(name) = lease.metadata.name.clone() else {
                continue;
            };
            let Some(replica) = lease.spec.as_ref().and_then(|s| s.holder_identity.clone()) else {
                continue;
            };
            names.push(name.clone());
            if replica == self.replica.0 {
                continue;
            }
            let version = lease.metadata.resource_version.clone().unwrap_or_default();
            let first_seen = first_seen(&mut self.seen, &name, version, now);
            let duration = lease
                .spec
                .as_ref()
                .and_then(|s| s.lease_duration_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .filter(|&s| s > 0)
                .map_or(self.duration, Duration::from_secs);
            let claims = lease
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(BUCKETS_ANNOTATION))
                .map_or(Buckets::NONE, |list| Buckets::from_list(list));
            members.push(Member {
                replica,
                claims,
                alive: now < first_seen + duration,
            });
        }
        self.seen.retain(|name, _| names.contains(name));
        Ok(members)
    }
}

/// When the record `version` of Lease `name` was first seen: `now` if
/// it is new (or changed), which restarts its liveness clock.
fn first_seen(
    seen: &mut HashMap<String, (String, Instant)>,
    name: &str,
    version: String,
    now: Instant,
) -> Instant {
    match seen.get(name) {
        Some((last, at)) if *last == version => *at,
        _ => {
            seen.insert(name.to_owned(), (version, now));
            now
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_lives_while_its_record_changes_by_the_readers_clock() {
        let mut seen = HashMap::new();
        let start = Instant::now();
        let later = start + Duration::from_secs(10);
        // First seen now, whatever its renewTime says.
        assert_eq!(first_seen(&mut seen, "l", "1".into(), start), start);
        // Unchanged: the clock runs from the first sighting.
        assert_eq!(first_seen(&mut seen, "l", "1".into(), later), start);
        // Renewed (a new resourceVersion): the clock restarts.
        assert_eq!(first_seen(&mut seen, "l", "2".into(), later), later);
        assert_eq!(first_seen(&mut seen, "other", "2".into(), later), later);
    }

    #[test]
    fn a_replica_id_names_a_lease() {
        for good in ["r1", "bosun-7d9f-abc", "host.example"] {
            assert!(ReplicaId::new(good).is_ok(), "{good}");
        }
        for bad in ["", "R1", "-r", "r-", "a_b", &"a".repeat(64)] {
            assert!(ReplicaId::new(bad).is_err(), "{bad}");
        }
    }
}
