//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! With `--leader-elect`, several hosts may run against one cluster but only
//! the one holding the Lease reconciles. The protocol is client-go's
//! (`k8s.io/client-go/tools/leaderelection`), with its defaults: a lease of
//! 15 s, a renew deadline of 10 s and a retry period of 2 s.
//!
//! - A candidate reads the Lease every retry period. It takes the Lease when
//!   the Lease has no holder, or when the holder's record has not changed for
//!   `leaseDurationSeconds` *as timed by the candidate's own monotonic clock*
//!   (so clock skew between hosts does not matter).
//! - Every write is a `replace` carrying the `resourceVersion` that was read,
//!   so two candidates racing for an expired Lease cannot both win: the API
//!   server rejects the second write with a conflict.
//! - The leader renews every retry period. If no renewal has succeeded within
//!   the renew deadline (counted from the *start* of the last successful
//!   renewal, and enforced by a timer even while a request hangs), it steps
//!   down: the receiver turns `false` before any other host can consider the
//!   Lease expired, because others wait at least the lease duration from when
//!   they saw that renewal. The gap between renew deadline and lease duration
//!   is the time the host has to stop reconciling.
//! - A graceful [`LeaderElection::step_down`] clears the holder so the next
//!   leader can take over at once rather than waiting for expiry.
//!
//! # Why not `kube-lease-manager`
//!
//! The crate is a dependency, but it cannot give the guarantee above, so this
//! module talks to the Lease API itself:
//! - its `watch()` loop keeps reporting `true` while renewals fail (it logs
//!   the error and backs off for up to 30 s), and it has no bound on a hung
//!   request (kube's default client has no read timeout), so a partitioned
//!   leader keeps "leading" after another host has taken the Lease;
//! - durations are whole seconds, with renewal at `duration - grace`, so a
//!   retry period below a second cannot be expressed;
//! - expiry is judged by comparing the holder's written `renewTime` with the
//!   local wall clock, which depends on synchronised clocks, and releasing an
//!   expired Lease is a patch without a `resourceVersion` precondition.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout_at};
use tracing::Instrument;

/// Default name of the Lease object: `bosun-leader`.
pub const DEFAULT_LEASE_NAME: &str = "bosun-leader";

/// Default namespace of the Lease: `default`. The CLI overrides it with
/// `--leader-election-namespace` (usually the namespace the host runs in).
pub const DEFAULT_NAMESPACE: &str = "default";

/// Default lease duration (client-go's `LeaseDuration`): how long other
/// candidates wait, after last seeing the record change, before taking over.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);

/// Default renew deadline (client-go's `RenewDeadline`): how long the leader
/// keeps leading without a successful renewal.
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);

/// Default retry period (client-go's `RetryPeriod`): the pause between
/// attempts to acquire or renew.
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);

/// Field manager recorded on the Lease writes.
const FIELD_MANAGER: &str = "bosun-leader-election";

/// Candidates spread their attempts over up to 20 % more than the retry period
/// (client-go's `JitterFactor` of 1.2), so hosts started together do not hit
/// the API server in lockstep.
const JITTER: f64 = 0.2;

/// Settings for [`LeaderElection`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderConfig {
    /// Name of the Lease object (created when missing).
    pub lease_name: String,
    /// Namespace of the Lease object.
    pub namespace: String,
    /// This candidate's identity, written as the Lease's `holderIdentity`.
    /// Must be unique among candidates; see [`default_identity`].
    pub identity: String,
    /// How long others wait, after last seeing the Lease change, before they
    /// may take it. Recorded on the Lease in whole seconds, rounded up.
    pub lease_duration: Duration,
    /// How long the leader keeps leading without a successful renewal; must
    /// be shorter than `lease_duration`.
    pub renew_deadline: Duration,
    /// Pause between attempts to acquire or renew; must be shorter than
    /// `renew_deadline`.
    pub retry_period: Duration,
}

impl Default for LeaderConfig {
    /// Lease `bosun-leader` in namespace `default`, a fresh
    /// [`default_identity`], and client-go's 15 s / 10 s / 2 s timings.
    fn default() -> Self {
        Self {
            lease_name: DEFAULT_LEASE_NAME.to_owned(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            identity: default_identity(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_deadline: DEFAULT_RENEW_DEADLINE,
            retry_period: DEFAULT_RETRY_PERIOD,
        }
    }
}

impl LeaderConfig {
    /// Checks that the names are usable and that the timings keep two hosts
    /// from leading at once: `0 < retry_period < renew_deadline < lease_duration`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !is_dns_subdomain(&self.lease_name) {
            return Err(ConfigError::InvalidLeaseName(self.lease_name.clone()));
        }
        if !is_dns_label(&self.namespace) {
            return Err(ConfigError::InvalidNamespace(self.namespace.clone()));
        }
        if self.identity.trim().is_empty() {
            return Err(ConfigError::EmptyIdentity);
        }
        if self.retry_period.is_zero() {
            return Err(ConfigError::ZeroRetryPeriod);
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(ConfigError::RenewDeadlineNotBelowLeaseDuration {
                renew_deadline: self.renew_deadline,
                lease_duration: self.lease_duration,
            });
        }
        if self.retry_period >= self.renew_deadline {
            return Err(ConfigError::RetryPeriodNotBelowRenewDeadline {
                retry_period: self.retry_period,
                renew_deadline: self.renew_deadline,
            });
        }
        Ok(())
    }

    /// The lease duration as recorded on the Lease: whole seconds, rounded
    /// up so others never wait less than configured.
    fn lease_duration_seconds(&self) -> i32 {
        let secs =
            self.lease_duration.as_secs() + u64::from(self.lease_duration.subsec_nanos() > 0);
        i32::try_from(secs).unwrap_or(i32::MAX)
    }
}

/// Why a [`LeaderConfig`] was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The Lease name is not a DNS subdomain name, so the API server would
    /// refuse it.
    #[error("lease name {0:?} is not a valid object name (lowercase DNS subdomain)")]
    InvalidLeaseName(String),
    /// The namespace is not a DNS label.
    #[error("namespace {0:?} is not a valid namespace name (lowercase DNS label)")]
    InvalidNamespace(String),
    /// The identity is empty; an empty `holderIdentity` means "no holder".
    #[error("leader election identity must not be empty")]
    EmptyIdentity,
    /// A zero retry period would renew in a busy loop.
    #[error("retry period must be greater than zero")]
    ZeroRetryPeriod,
    /// The leader could still think it leads after others consider the Lease
    /// expired.
    #[error(
        "renew deadline ({renew_deadline:?}) must be shorter than the lease duration ({lease_duration:?})"
    )]
    RenewDeadlineNotBelowLeaseDuration {
        /// The configured renew deadline.
        renew_deadline: Duration,
        /// The configured lease duration.
        lease_duration: Duration,
    },
    /// The leader would get at most one renewal attempt per deadline.
    #[error(
        "retry period ({retry_period:?}) must be shorter than the renew deadline ({renew_deadline:?})"
    )]
    RetryPeriodNotBelowRenewDeadline {
        /// The configured retry period.
        retry_period: Duration,
        /// The configured renew deadline.
        renew_deadline: Duration,
    },
}

/// A unique identity for this process: the host name (a Pod's name in a
/// cluster) and a random suffix, as client-go does, so two hosts on one
/// machine or a restarted Pod never share an identity.
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "bosun".to_owned());
    format!("{host}_{:016x}", random_u64())
}

/// A running campaign for the Lease; see [`LeaderElection::start`].
///
/// Dropping it stops campaigning at once *without* releasing the Lease, as
/// [`LeaderElection::abort`] does; call [`LeaderElection::step_down`] for a
/// graceful shutdown.
#[derive(Debug)]
pub struct LeaderElection {
    identity: String,
    published: Arc<Published>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl LeaderElection {
    /// Validates `config` and starts campaigning in a background task (so it
    /// must be called within a tokio runtime). The receiver is `true` while
    /// this process leads; it turns `false` when leadership is lost, when a
    /// renewal misses the renew deadline, and when campaigning stops.
    ///
    /// After losing leadership the task keeps campaigning, so the host may
    /// lead again later.
    pub fn start(
        client: kube::Client,
        config: LeaderConfig,
    ) -> Result<(LeaderElection, watch::Receiver<bool>), ConfigError> {
        config.validate()?;
        let (sender, receiver) = watch::channel(false);
        let published = Arc::new(Published {
            sender,
            stopped: AtomicBool::new(false),
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let identity = config.identity.clone();
        let campaign = Campaign {
            api: Api::namespaced(client, &config.namespace),
            lease_duration_seconds: config.lease_duration_seconds(),
            config,
            observed: None,
            published: Arc::clone(&published),
        };
        let span = tracing::info_span!(
            "leader_election",
            lease = %campaign.config.lease_name,
            namespace = %campaign.config.namespace,
            identity = %campaign.config.identity,
        );
        let task = tokio::spawn(campaign.run(stop_rx).instrument(span));
        let election = LeaderElection {
            identity,
            published,
            stop: Some(stop_tx),
            task: Some(task),
        };
        Ok((election, receiver))
    }

    /// This candidate's identity, as written to the Lease's `holderIdentity`.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Stops campaigning and, if the Lease names this process, releases it so
    /// the next leader need not wait for expiry. The receiver turns `false`
    /// before the Lease is released; stop the work that leadership guards
    /// before calling this. The release is bounded by the renew deadline.
    pub async fn step_down(mut self) {
        if let Some(stop) = self.stop.take() {
            // An error means the task already ended; nothing to tell it.
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::error!(identity = %self.identity, %error, "leader election task failed");
        }
    }

    /// Stops campaigning at once without touching the Lease, as if the
    /// process had crashed: other candidates take over once the Lease
    /// expires. The receiver turns `false`.
    pub fn abort(self) {
        drop(self);
    }
}

impl Drop for LeaderElection {
    fn drop(&mut self) {
        // Abort before the stop sender is dropped with the fields: the task
        // must not mistake a dropped handle for a request to release.
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.published.stop();
    }
}

/// The leadership flag, shared by the task (which sets it) and the handle
/// (which forces it to `false` when the task is aborted). `stopped` is
/// checked inside the channel's lock, so an aborted task that was mid-update
/// cannot turn the flag back to `true` after the handle cleared it.
#[derive(Debug)]
struct Published {
    sender: watch::Sender<bool>,
    stopped: AtomicBool,
}

impl Published {
    fn set(&self, leading: bool) {
        self.sender.send_if_modified(|current| {
            if self.stopped.load(Ordering::SeqCst) || *current == leading {
                return false;
            }
            *current = leading;
            true
        });
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.sender.send_replace(false);
    }
}

/// What one look at the Lease found.
#[derive(Debug)]
enum Outcome {
    /// This process holds the Lease (acquired or renewed just now).
    Held,
    /// Another candidate holds an unexpired Lease.
    HeldBy(String),
    /// The write lost a race (409); the next read tells who won.
    Raced,
}

/// The Lease record as last seen, and when it was first seen in that state:
/// expiry is timed from there on this host's monotonic clock.
#[derive(Debug)]
struct Observed {
    spec: LeaseSpec,
    at: Instant,
}

/// The background task's state.
struct Campaign {
    api: Api<Lease>,
    config: LeaderConfig,
    lease_duration_seconds: i32,
    observed: Option<Observed>,
    published: Arc<Published>,
}

impl Campaign {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        tracing::info!("campaigning for leadership");

        // `Some(t)` while leading: leadership ends at `t` unless a renewal
        // succeeds first.
        let mut leading_until: Option<Instant> = None;
        let mut next_attempt = Instant::now();
        let graceful = loop {
            // Until the next attempt, watch the renew deadline: a failed
            // renewal must not let leadership outlive it while we sleep.
            tokio::select! {
                biased;
                stopped = &mut stop => break stopped.is_ok(),
                _ = sleep_until(leading_until.unwrap_or(next_attempt)), if leading_until.is_some_and(|t| t <= next_attempt) => {
                    self.lose(&mut leading_until, "renew deadline passed without a successful renewal");
                    continue;
                }
                _ = sleep_until(next_attempt) => {}
            }

            let started = Instant::now();
            // A leader's attempt is cut off at the renew deadline; a
            // candidate's gets as long, so a hung request cannot stall it.
            let deadline = leading_until.unwrap_or(started + self.config.renew_deadline);
            let result = tokio::select! {
                biased;
                stopped = &mut stop => break stopped.is_ok(),
                result = timeout_at(deadline, self.try_acquire_or_renew(started)) => result,
            };
            let leading = leading_until.is_some();
            match result {
                Ok(Ok(Outcome::Held)) => {
                    if !leading {
                        tracing::info!("became leader");
                    } else {
                        tracing::trace!("renewed lease");
                    }
                    // Counted from the attempt's start: others time expiry
                    // from when they saw this write, which is later still.
                    leading_until = Some(started + self.config.renew_deadline);
                    self.published.set(true);
                }
                Ok(Ok(Outcome::HeldBy(holder))) => {
                    if leading {
                        self.lose(&mut leading_until, "another candidate holds the lease");
                    }
                    tracing::debug!(%holder, "lease is held by another candidate");
                }
                Ok(Ok(Outcome::Raced)) => {
                    tracing::debug!("lost a race writing the lease");
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, leading, "could not acquire or renew the lease");
                }
                Err(_elapsed) if leading => {
                    self.lose(
                        &mut leading_until,
                        "renewal did not finish before the renew deadline",
                    );
                }
                Err(_elapsed) => {
                    tracing::warn!(timeout = ?self.config.renew_deadline, "lease request timed out");
                }
            }
            let pause = if leading_until.is_some() {
                self.config.retry_period
            } else {
                jittered(self.config.retry_period)
            };
            next_attempt = Instant::now() + pause;
        };

        self.published.stop();
        if graceful {
            self.release().await;
        } else {
            tracing::info!("election handle dropped; leaving the lease to expire");
        }
    }

    /// Stops leading: the flag goes `false` first, since reconciling must
    /// stop before anyone else could take over.
    fn lose(&self, leading_until: &mut Option<Instant>, reason: &'static str) {
        *leading_until = None;
        self.published.set(false);
        tracing::warn!(reason, "stepped down as leader");
    }

    /// One round of client-go's `tryAcquireOrRenew`.
    async fn try_acquire_or_renew(&mut self, started: Instant) -> Result<Outcome, kube::Error> {
        let name = self.config.lease_name.clone();
        let name = name.as_str();
        let Some(mut lease) = self.api.get_opt(name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.held_spec(None, Timestamp::now())),
            };
            return match self.api.create(&post_params(), &lease).await {
                Ok(created) => {
                    self.observe(created.spec.unwrap_or_default(), started);
                    Ok(Outcome::Held)
                }
                Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(Outcome::Raced),
                Err(error) => Err(error),
            };
        };

        let spec = lease.spec.take().unwrap_or_default();
        let seen_at = Instant::now();
        self.observe(spec.clone(), seen_at);
        let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
        if let Some(holder) = holder
            && holder != self.config.identity
            && !self.observed_expired(seen_at)
        {
            return Ok(Outcome::HeldBy(holder.to_owned()));
        }

        // Free, expired, or ours: write ourselves in. The resourceVersion
        // read above makes this a compare-and-swap.
        lease.spec = Some(self.held_spec(Some(&spec), Timestamp::now()));
        match self.api.replace(name, &post_params(), &lease).await {
            Ok(updated) => {
                self.observe(updated.spec.unwrap_or_default(), started);
                Ok(Outcome::Held)
            }
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(Outcome::Raced),
            Err(error) => Err(error),
        }
    }

    /// The spec naming this candidate as holder, renewed `now`. Renewing our
    /// own Lease keeps its acquire time and transition count; taking over an
    /// existing Lease starts a new term (one more transition, as client-go
    /// counts them); `old` is `None` for a Lease we are creating.
    fn held_spec(&self, old: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
        let is_new = old.is_none();
        let old = old.cloned().unwrap_or_default();
        let ours = old.holder_identity.as_deref() == Some(self.config.identity.as_str());
        let transitions = old.lease_transitions.unwrap_or(0);
        let (acquire_time, transitions) = if ours {
            (
                old.acquire_time.clone().unwrap_or(MicroTime(now)),
                transitions,
            )
        } else if is_new {
            (MicroTime(now), 0)
        } else {
            (MicroTime(now), transitions.saturating_add(1))
        };
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.lease_duration_seconds),
            acquire_time: Some(acquire_time),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..old
        }
    }

    /// Records the Lease as seen; the clock restarts only when the record
    /// changed, which is how a live holder's renewals are noticed.
    fn observe(&mut self, spec: LeaseSpec, at: Instant) {
        match &self.observed {
            Some(observed) if observed.spec == spec => {}
            _ => self.observed = Some(Observed { spec, at }),
        }
    }

    /// Whether the observed record has gone unchanged for its own
    /// `leaseDurationSeconds` (ours when missing), as client-go judges it.
    fn observed_expired(&self, now: Instant) -> bool {
        let Some(observed) = &self.observed else {
            return true;
        };
        let duration = observed
            .spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .filter(|&s| s > 0)
            .map(Duration::from_secs)
            .unwrap_or(self.config.lease_duration);
        now >= observed.at + duration
    }

    /// Clears the holder if the Lease still names us, bounded by the renew
    /// deadline so shutdown cannot hang on an unreachable API server.
    async fn release(&mut self) {
        let deadline = Instant::now() + self.config.renew_deadline;
        match timeout_at(deadline, self.try_release()).await {
            Ok(Ok(true)) => tracing::info!("released the lease"),
            Ok(Ok(false)) => tracing::debug!("lease not held by us; nothing to release"),
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not release the lease; it will expire instead");
            }
            Err(_elapsed) => {
                tracing::warn!("releasing the lease timed out; it will expire instead");
            }
        }
    }

    async fn try_release(&self) -> Result<bool, kube::Error> {
        let name = self.config.lease_name.as_str();
        let Some(mut lease) = self.api.get_opt(name).await? else {
            return Ok(false);
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(false);
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(false);
        }
        // client-go's release record: no holder, a one-second duration, so
        // candidates of any implementation take over immediately.
        let now = MicroTime(Timestamp::now());
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.acquire_time = Some(now.clone());
        spec.renew_time = Some(now);
        match self.api.replace(name, &post_params(), &lease).await {
            Ok(_) => Ok(true),
            // Changed meanwhile, so no longer ours to release.
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(false),
            Err(error) => Err(error),
        }
    }
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    }
}

/// `period` stretched by a random fraction of up to [`JITTER`].
fn jittered(period: Duration) -> Duration {
    let fraction = (random_u64() >> 11) as f64 / (1u64 << 53) as f64;
    period + period.mul_f64(fraction * JITTER)
}

/// A random number without a `rand` dependency: std's `RandomState` is keyed
/// from the OS's randomness, which is all jitter and identity suffixes need.
fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    if let Ok(since_epoch) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since_epoch.as_nanos());
    }
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// RFC 1123 subdomain, as object names must be.
fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

/// RFC 1123 label, as namespace names must be.
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_client_go_timings() {
        let config = LeaderConfig::default();
        assert_eq!(config.lease_duration, Duration::from_secs(15));
        assert_eq!(config.renew_deadline, Duration::from_secs(10));
        assert_eq!(config.retry_period, Duration::from_secs(2));
        assert_eq!(config.lease_name, "bosun-leader");
        assert_eq!(config.namespace, "default");
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn default_identities_differ() {
        assert_ne!(default_identity(), default_identity());
    }

    #[test]
    fn lease_duration_is_recorded_rounded_up() {
        let config = LeaderConfig {
            lease_duration: Duration::from_millis(2500),
            ..LeaderConfig::default()
        };
        assert_eq!(config.lease_duration_seconds(), 3);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let period = Duration::from_secs(2);
        for _ in 0..100 {
            let d = jittered(period);
            assert!(d >= period && d <= period.mul_f64(1.0 + JITTER), "{d:?}");
        }
    }

    #[test]
    fn names_follow_kubernetes_rules() {
        assert!(is_dns_subdomain("bosun-leader"));
        assert!(is_dns_subdomain("a.b-c.d"));
        assert!(!is_dns_subdomain("Bosun"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(!is_dns_subdomain(""));
        assert!(!is_dns_label("kube.system"));
        assert!(!is_dns_label("-ns"));
    }
}
