//! The pair lane wherever it runs: two processes on the machine
//! ([`Pair`]) or, with `--node`, the shipped Deployment's Pods on the
//! node ([`PodPair`]). The chaos, the sampler and the end of the run see
//! one lane; each kind keeps its own way of failing over and of noticing
//! a host that exited unasked.

use std::time::Duration;

use anyhow::Result;

use super::hosts::{Exit, Failover, FailoverKind, Instance, Pair};
use super::pods::PodPair;

/// The leader-elected pair.
pub enum PairLane {
    /// Two `bosun` processes.
    Processes(Pair),
    /// The shipped Deployment's two Pods.
    Pods(PodPair),
}

impl PairLane {
    /// The failovers, in turn.
    pub fn failover_kinds(&self) -> &'static [FailoverKind] {
        match self {
            PairLane::Processes(pair) => pair.failover_kinds(),
            PairLane::Pods(pods) => pods.failover_kinds(),
        }
    }

    /// The hosts running now.
    pub async fn instances(&self) -> Vec<Instance> {
        match self {
            PairLane::Processes(pair) => pair.instances(),
            PairLane::Pods(pods) => pods.instances().await,
        }
    }

    /// The host holding the Lease, if one does and runs.
    pub async fn leader(&self, client: &kube::Client) -> Option<Instance> {
        match self {
            PairLane::Processes(pair) => pair.leader(client).await,
            PairLane::Pods(pods) => pods.leader().await,
        }
    }

    /// Ends the leader by `kind` and waits for the next one to lead.
    pub async fn fail_over(
        &mut self,
        client: &kube::Client,
        kind: FailoverKind,
    ) -> Result<Failover> {
        match self {
            PairLane::Processes(pair) => pair.fail_over(client, kind).await,
            PairLane::Pods(pods) => pods.fail_over(kind).await,
        }
    }

    /// Waits until both hosts run and one leads with its caches synced.
    pub async fn wait_ready(&mut self, client: &kube::Client, timeout: Duration) -> Result<()> {
        match self {
            PairLane::Processes(pair) => pair.wait_ready(client, timeout).await,
            PairLane::Pods(pods) => pods.wait_ready(timeout).await,
        }
    }

    /// Hosts that exited unasked (a process restarted, as a ReplicaSet
    /// would; a container the kubelet restarted).
    pub async fn supervise(&mut self) -> Vec<Exit> {
        match self {
            PairLane::Processes(pair) => pair.supervise(),
            PairLane::Pods(pods) => pods.supervise().await,
        }
    }

    /// The end of the run: processes stopped; Pods' logs saved to `logs`
    /// (the node goes with the cluster).
    pub async fn stop(self, logs: &std::path::Path) {
        match self {
            PairLane::Processes(pair) => pair.stop(),
            PairLane::Pods(pods) => pods.save_logs(logs).await,
        }
    }
}
