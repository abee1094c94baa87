//! The handover: how buckets move between replicas with one writer per
//! object at any moment.
//!
//! Every retry period a replica renews its Lease, reads its class's
//! Leases and computes its share of the buckets over the live replicas
//! ([`ring::assign`]). Then, in this order:
//!
//! 1. **Release** what it holds and should not: the [`Gate`] stops letting
//!    reconciles of those buckets start and waits for the ones in flight,
//!    then the Lease is written without them, then the filtered watches
//!    drop them. A bucket is published as free only once nothing of it
//!    runs here.
//! 2. **Claim** what it should hold and no other live Lease claims: the
//!    claim is written to the Lease *first*, then every Lease is read
//!    again; a bucket another live Lease claims by then is withdrawn
//!    unstarted. Of two replicas claiming one bucket at once, at least one
//!    sees the other's claim (each wrote before it read), so at most one
//!    starts. Only then does the gate let its reconciles in and the
//!    watches list it.
//!
//! A replica that cannot renew its Lease within the renew deadline stops
//! writing at once and the host exits ([`HandoverError::LostLease`]): the
//! others count it gone only a full lease duration after they last saw it
//! renewed, later than that. A dead replica's claims lapse with its Lease,
//! so an object is without an owner for at most the lease duration and a
//! period or two.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, sleep, timeout_at};

use super::membership::{Member, Membership};
use super::ring::{self, Buckets};
use super::{Sharding, labels};
use crate::apply::Applier;
use crate::telemetry::Metrics;

/// Timings, shared with leader election's flags.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a Lease holds without renewal.
    pub lease_duration: Duration,
    /// How long a replica keeps writing without a successful renewal.
    pub renew_deadline: Duration,
    /// How often it renews and rebalances.
    pub retry_period: Duration,
}

/// Why a sharded replica stopped.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// No renewal succeeded within the renew deadline: others may take
    /// this replica's buckets soon, so it writes nothing more.
    #[error(
        "could not renew the shard Lease {lease} within the renew deadline ({deadline:?}); writes stopped: {last_error}"
    )]
    LostLease {
        /// The Lease.
        lease: String,
        /// The renew deadline.
        deadline: Duration,
        /// The last renewal's failure.
        last_error: String,
    },
}

/// Runs the membership and handover loop until `stop` resolves, then lets
/// go of every bucket and leaves. Returns an error only when this replica
/// must stop writing (its Lease lapsed).
pub async fn run(
    client: kube::Client,
    mut membership: Membership,
    timing: Timing,
    sharding: Arc<Sharding>,
    applier: Arc<Applier>,
    metrics: Metrics,
    stop: impl Future<Output = ()> + Send,
) -> Result<(), HandoverError> {
    let labeller = tokio::spawn(labels::label_unlabelled(
        client,
        sharding.clone(),
        timing.retry_period,
    ));
    let mut stop = std::pin::pin!(stop);
    let mut renewed = Instant::now();
    // Replicas started together would otherwise each claim every bucket
    // their first look finds unclaimed, list all of it and hand most of
    // it back a round later: a memory high-water mark the allocator
    // keeps. A new replica announces itself and claims from its third
    // round on, when its peers' Leases are there to be seen.
    let claims_from = Instant::now() + timing.retry_period * 2;
    let mut last_error = String::from("none yet");
    let outcome = loop {
        // A round is cut off at the renew deadline while this replica
        // holds buckets; holding none, it gets as long from its start.
        let deadline = if sharding.gate.held().is_empty() {
            Instant::now() + timing.renew_deadline
        } else {
            renewed + timing.renew_deadline
        };
        let mut round = Round {
            membership: &mut membership,
            sharding: &sharding,
            metrics: &metrics,
            renewed: &mut renewed,
            may_claim: Instant::now() >= claims_from,
        };
        tokio::select! {
            () = &mut stop => break Ok(()),
            result = timeout_at(deadline, round.run()) => match result {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, "shard membership round failed");
                    last_error = error.to_string();
                }
                Err(_) => last_error = "the round did not finish within the renew deadline".to_owned(),
            },
        }
        // A replica holding nothing has nothing to stop: it keeps trying
        // (its Lease, if it lapses, claims nothing anyway).
        if Instant::now() >= renewed + timing.renew_deadline && !sharding.gate.held().is_empty() {
            // Not one more write: another replica may take these buckets
            // a lease duration after it last saw our Lease change.
            applier.close();
            sharding.gate.revoke(Buckets::ALL).await;
            break Err(HandoverError::LostLease {
                lease: membership.lease_name(),
                deadline: timing.renew_deadline,
                last_error,
            });
        }
        tokio::select! {
            () = &mut stop => break Ok(()),
            () = sleep(timing.retry_period) => {}
        }
    };
    labeller.abort();
    if outcome.is_ok() {
        // A graceful stop: nothing runs any more (the controllers stopped
        // first), so the buckets are free as soon as the Lease is gone.
        sharding.gate.revoke(Buckets::ALL).await;
        sharding.watch(Buckets::NONE);
        metrics.set_shard_buckets(0);
        match membership.leave().await {
            Ok(()) => tracing::info!(lease = %membership.lease_name(), "left the shard ring"),
            Err(error) => {
                tracing::warn!(%error, "could not delete the shard Lease; it will expire instead")
            }
        }
    }
    outcome
}

/// One renewal and rebalance.
struct Round<'a> {
    membership: &'a mut Membership,
    sharding: &'a Sharding,
    metrics: &'a Metrics,
    /// When the last successful renewal started.
    renewed: &'a mut Instant,
    /// Whether this round may claim buckets (not in a replica's first).
    may_claim: bool,
}

impl Round<'_> {
    /// Writes the Lease claiming `claims`; a success counts as a renewal
    /// from when it was sent.
    async fn publish(&mut self, claims: Buckets) -> Result<(), kube::Error> {
        let started = Instant::now();
        self.membership.renew(claims).await?;
        *self.renewed = started;
        Ok(())
    }

    async fn run(&mut self) -> Result<(), kube::Error> {
        let gate = self.sharding.gate.clone();
        let held = gate.held();
        self.publish(held).await?;
        let others = self.membership.others().await?;
        let me = self.membership.replica().as_str().to_owned();
        let plan = plan(&me, held, &others);

        if !plan.release.is_empty() {
            tracing::info!(buckets = %plan.release.to_list(), "releasing buckets: waiting for their reconciles in flight");
            gate.revoke(plan.release).await;
            let held = gate.held();
            self.publish(held).await?;
            self.sharding.watch(held);
            tracing::info!(buckets = %plan.release.to_list(), held = held.len(), "released buckets");
        }
        if self.may_claim && !plan.claim.is_empty() {
            let held = gate.held();
            self.publish(held.or(plan.claim)).await?;
            // Read again after writing: a claim raced by another replica's
            // is withdrawn before anything of it runs.
            let others = self.membership.others().await?;
            let contested = claimed_by_live(&others).and(plan.claim);
            let won = plan.claim.minus(contested);
            if !contested.is_empty() {
                tracing::info!(buckets = %contested.to_list(), "another replica claimed buckets at the same time; withdrawing");
                self.publish(held.or(won)).await?;
            }
            if !won.is_empty() {
                gate.grant(won);
                let held = gate.held();
                self.sharding.watch(held);
                tracing::info!(buckets = %won.to_list(), held = held.len(), "took buckets");
            }
        }
        self.metrics.set_shard_buckets(gate.held().len());
        self.metrics
            .set_shard_replicas(1 + others.iter().filter(|m| m.alive).count());
        Ok(())
    }
}

/// What one round does with the buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Held and no longer ours.
    pub release: Buckets,
    /// Ours, not held, and claimed by no other live replica.
    pub claim: Buckets,
}

/// What replica `me`, holding `held`, does given the `others`' Leases.
pub fn plan(me: &str, held: Buckets, others: &[Member]) -> Plan {
    let mut live: Vec<String> = others
        .iter()
        .filter(|m| m.alive)
        .map(|m| m.replica.clone())
        .collect();
    live.push(me.to_owned());
    let share = ring::assign(&live).remove(me).unwrap_or(Buckets::NONE);
    Plan {
        release: held.minus(share),
        claim: share.minus(held).minus(claimed_by_live(others)),
    }
}

/// Every bucket a live replica's Lease claims.
fn claimed_by_live(others: &[Member]) -> Buckets {
    others
        .iter()
        .filter(|m| m.alive)
        .fold(Buckets::NONE, |all, m| all.or(m.claims))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(replica: &str, claims: Buckets, alive: bool) -> Member {
        Member {
            replica: replica.to_owned(),
            claims,
            alive,
        }
    }

    fn share(of: &str, among: &[&str]) -> Buckets {
        let among: Vec<String> = among.iter().map(|s| s.to_string()).collect();
        ring::assign(&among)[of]
    }

    #[test]
    fn a_lone_replica_claims_every_bucket() {
        let plan = plan("a", Buckets::NONE, &[]);
        assert_eq!(plan.claim, Buckets::ALL);
        assert!(plan.release.is_empty());
    }

    #[test]
    fn a_joiner_waits_until_the_holder_releases() {
        // b joins; a still claims everything.
        let joining = plan("b", Buckets::NONE, &[member("a", Buckets::ALL, true)]);
        assert!(joining.claim.is_empty(), "a still claims them");
        // a sees b and releases b's share, claiming nothing.
        let holder = plan("a", Buckets::ALL, &[member("b", Buckets::NONE, true)]);
        assert_eq!(holder.release, share("b", &["a", "b"]));
        assert!(holder.claim.is_empty());
        // Once a's Lease says so, b claims its share.
        let a_now = Buckets::ALL.minus(holder.release);
        let joined = plan("b", Buckets::NONE, &[member("a", a_now, true)]);
        assert_eq!(joined.claim, share("b", &["a", "b"]));
    }

    #[test]
    fn a_dead_replicas_claims_lapse() {
        let a_share = share("a", &["a", "b"]);
        let b_share = share("b", &["a", "b"]);
        let alive = plan("a", a_share, &[member("b", b_share, true)]);
        assert!(alive.claim.is_empty() && alive.release.is_empty());
        let dead = plan("a", a_share, &[member("b", b_share, false)]);
        assert_eq!(dead.claim, b_share, "b's buckets come to a");
    }

    #[test]
    fn nothing_claimed_by_a_live_replica_is_ever_claimed() {
        // Views disagree: c believes it owns buckets a still claims.
        let a_claims = Buckets::ALL;
        let plan = plan("c", Buckets::NONE, &[member("a", a_claims, true)]);
        assert!(plan.claim.and(a_claims).is_empty());
    }
}
