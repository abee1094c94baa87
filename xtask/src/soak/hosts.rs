//! The hosts under soak: where they run, how they are found, failed over
//! and restarted.
//!
//! - **The steady host**: one `bosun run` process on the machine, no
//!   leader election, modules from a watched `--modules-dir` with a grant
//!   beside each. Never killed: its memory and descriptors over the whole
//!   run are the leak check's best witness.
//! - **The pair**: two host processes with `--leader-elect`, modules from
//!   ReconcilerModules (`--modules-from-cluster`). A failover kills the
//!   leader (SIGKILL: the Lease lapses) or stops it (SIGTERM: it hands the
//!   Lease over), and a replacement starts at once, as a ReplicaSet would.
//!   With `--node` the pair runs in Pods instead ([`super::pods`]); the
//!   lane is either ([`super::pair`]).
//!
//! A host's identity on the Lease is `HOSTNAME_<random>`: the process's
//! instance name, so the holder names the instance.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;

use super::cluster::SYSTEM_NAMESPACE;
use crate::bench::controllers::{self, Controller};

/// The Lease the pair campaigns for.
pub const LEASE: &str = "bosun-leader";
/// The pair's leader election: client-go's defaults, as the shipped
/// Deployment runs. An API server restart longer than the renew deadline
/// makes the leader step down (and exit): that is counted, not failed.
const LEADER_ARGS: [&str; 9] = [
    "--leader-elect",
    "--leader-election-namespace",
    SYSTEM_NAMESPACE,
    "--lease-duration",
    "15s",
    "--renew-deadline",
    "10s",
    "--retry-period",
    "2s",
];
/// How long a failover may take, from the kill to the new leader ready.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(120);

/// What runs a host process: the binary, its compile cache, its
/// credentials, and where logs go.
#[derive(Debug, Clone)]
pub struct Program {
    /// The `bosun` binary.
    pub binary: PathBuf,
    /// The compile cache the processes share.
    pub cache: PathBuf,
    /// The hosts' kubeconfig (the ServiceAccount's token).
    pub kubeconfig: PathBuf,
    /// Where each process's log goes.
    pub logs: PathBuf,
}

/// One host as the sampler and the chaos see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The instance's name: `steady`, `pair-3`.
    pub id: String,
    /// Its process.
    pub pid: u32,
    /// Where it serves `/metrics`, `/healthz` and `/readyz`.
    pub telemetry: SocketAddr,
}

/// How a failover ends the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailoverKind {
    /// SIGKILL of the leader's process: no hand-over, the Lease lapses.
    KillProcess,
    /// SIGTERM: the leader finishes what is in flight and steps down.
    Terminate,
    /// `--node`: the leader's Pod deleted (SIGTERM from the kubelet, the
    /// Lease handed over); its ReplicaSet makes another.
    DeletePod,
    /// `--node`: the leader's Pod force-deleted (grace 0): the object goes
    /// at once and the kubelet kills the container.
    ForceDeletePod,
    /// `--node`: the leader's process SIGKILLed in its container (a crash:
    /// the Lease lapses); the kubelet restarts the container.
    KillContainer,
}

impl FailoverKind {
    /// The name in the report.
    pub fn name(self) -> &'static str {
        match self {
            FailoverKind::KillProcess => "leader process killed (SIGKILL)",
            FailoverKind::Terminate => "leader stopped (SIGTERM)",
            FailoverKind::DeletePod => "leader Pod deleted",
            FailoverKind::ForceDeletePod => "leader Pod force-deleted (grace 0)",
            FailoverKind::KillContainer => "leader's container killed (SIGKILL)",
        }
    }
}

/// One failover as it happened.
#[derive(Debug, Clone)]
pub struct Failover {
    /// How the leader was ended.
    pub kind: FailoverKind,
    /// The leader's instance.
    pub from: String,
    /// The next leader's.
    pub to: String,
    /// When the leader was ended.
    pub at: Instant,
    /// From then to the Lease held by another instance.
    pub lease_taken: Duration,
    /// From then to the new leader's caches synced (`/readyz`).
    pub ready: Duration,
    /// `--node`: from then to two Pods Ready again (the ReplicaSet's
    /// replacement, or the restarted container).
    pub replaced: Option<Duration>,
}

/// A host that exited without being asked to.
#[derive(Debug, Clone)]
pub struct Exit {
    /// The instance.
    pub id: String,
    /// When the soak noticed.
    pub at: Instant,
    /// Its exit status.
    pub status: String,
    /// Whether the host said it lost the Lease (expected when the API
    /// server was away longer than the renew deadline).
    pub lost_lease: bool,
    /// The end of its log.
    pub tail: String,
}

/// The steady host.
pub struct Steady {
    controller: Controller,
    /// The directory it watches for modules.
    pub modules_dir: PathBuf,
}

impl Steady {
    /// Starts `bosun run --modules-dir DIR` (the modules and their grants
    /// already in `DIR`).
    pub fn start(program: &Program, modules_dir: &Path) -> Result<Steady> {
        let args = vec![
            "--modules-dir".to_owned(),
            modules_dir.display().to_string(),
        ];
        let controller = Controller::bosun_at(
            &program.binary,
            &program.cache,
            &args,
            &[("HOSTNAME", "steady")],
            &program.kubeconfig,
            &program.logs.join("steady.log"),
        )?;
        Ok(Steady {
            controller,
            modules_dir: modules_dir.to_owned(),
        })
    }

    /// The steady host as an instance.
    pub fn instance(&self) -> Instance {
        Instance {
            id: "steady".into(),
            pid: self.controller.pid(),
            telemetry: telemetry(&self.controller),
        }
    }

    /// Fails, quoting its log, when the steady host has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        self.controller.check_alive()
    }
}

fn telemetry(controller: &Controller) -> SocketAddr {
    (
        [127, 0, 0, 1],
        controller.telemetry_port.expect("a host serves telemetry"),
    )
        .into()
}

/// The leader-elected pair: two processes on the machine.
pub struct Pair {
    program: Program,
    hosts: Vec<(String, Controller)>,
    started: usize,
}

impl Pair {
    /// Starts two host processes.
    pub fn start(program: &Program) -> Result<Pair> {
        let mut pair = Pair {
            program: program.clone(),
            hosts: Vec::new(),
            started: 0,
        };
        pair.start_one()?;
        pair.start_one()?;
        Ok(pair)
    }

    /// The failovers, in turn.
    pub fn failover_kinds(&self) -> &'static [FailoverKind] {
        &[FailoverKind::KillProcess, FailoverKind::Terminate]
    }

    /// The instances running now.
    pub fn instances(&self) -> Vec<Instance> {
        self.hosts
            .iter()
            .map(|(id, c)| Instance {
                id: id.clone(),
                pid: c.pid(),
                telemetry: telemetry(c),
            })
            .collect()
    }

    /// The instance holding the Lease, if one does and runs.
    pub async fn leader(&self, client: &kube::Client) -> Option<Instance> {
        let holder = holder(client).await?;
        let name = holder.split('_').next()?.to_owned();
        self.instances().into_iter().find(|i| i.id == name)
    }

    /// Ends the leader by `kind`, starts a replacement, and waits for
    /// another instance to lead with its caches synced.
    pub async fn fail_over(
        &mut self,
        client: &kube::Client,
        kind: FailoverKind,
    ) -> Result<Failover> {
        let started = Instant::now();
        let leader = loop {
            if let Some(leader) = self.leader(client).await {
                break leader;
            }
            if started.elapsed() > TAKEOVER_TIMEOUT {
                bail!("no instance of the pair led within {TAKEOVER_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let at = Instant::now();
        self.end(&leader.id, kind)?;
        let to = loop {
            if let Some(holder) = holder(client).await {
                let next = holder.split('_').next().unwrap_or_default().to_owned();
                if next != leader.id {
                    break next;
                }
            }
            if at.elapsed() > TAKEOVER_TIMEOUT {
                bail!(
                    "no other instance took the Lease within {TAKEOVER_TIMEOUT:?} of {}",
                    kind.name()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let lease_taken = at.elapsed();
        loop {
            let ready = match self.instances().into_iter().find(|i| i.id == to) {
                Some(instance) => leads(&instance).await,
                None => false,
            };
            if ready {
                break;
            }
            if at.elapsed() > TAKEOVER_TIMEOUT {
                bail!("the new leader {to} was not ready within {TAKEOVER_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Failover {
            kind,
            from: leader.id,
            to,
            at,
            lease_taken,
            ready: at.elapsed(),
            replaced: None,
        })
    }

    /// Waits until one instance leads with its caches synced and there
    /// are two instances.
    pub async fn wait_ready(&mut self, client: &kube::Client, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            let instances = self.instances();
            if instances.len() == 2
                && let Some(leader) = self.leader(client).await
                && leads(&leader).await
            {
                return Ok(());
            }
            for exit in self.supervise() {
                eprintln!(
                    "soak: pair host {} exited while starting: {}\n{}",
                    exit.id, exit.status, exit.tail
                );
            }
            if started.elapsed() > timeout {
                bail!(
                    "the pair did not lead with its caches synced within {timeout:?} ({} instances)",
                    instances.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Stops every instance (the end of the run).
    pub fn stop(self) {
        for (_, controller) in self.hosts {
            let _ = controller.terminate(Duration::from_secs(10));
        }
    }

    fn start_one(&mut self) -> Result<()> {
        self.started += 1;
        let id = format!("pair-{}", self.started);
        let mut args = vec!["--modules-from-cluster".to_owned()];
        args.extend(LEADER_ARGS.iter().map(|a| (*a).to_owned()));
        let controller = Controller::bosun_at(
            &self.program.binary,
            &self.program.cache,
            &args,
            &[("HOSTNAME", &id)],
            &self.program.kubeconfig,
            &self.program.logs.join(format!("{id}.log")),
        )?;
        self.hosts.push((id, controller));
        Ok(())
    }

    /// Restarts what exited without being asked to, as a ReplicaSet
    /// would, and reports each exit.
    pub fn supervise(&mut self) -> Vec<Exit> {
        let mut exits = Vec::new();
        let mut index = 0;
        while index < self.hosts.len() {
            let exited = self.hosts[index].1.exited().ok().flatten();
            match exited {
                Some(status) => {
                    let (id, controller) = self.hosts.remove(index);
                    let log = std::fs::read_to_string(controller.log_path()).unwrap_or_default();
                    exits.push(Exit {
                        id,
                        at: Instant::now(),
                        status: status.to_string(),
                        lost_lease: log.contains("lost the leader lease"),
                        tail: tail(&log, 12),
                    });
                }
                None => index += 1,
            }
        }
        for _ in 0..exits.len() {
            if let Err(error) = self.start_one() {
                eprintln!("soak: restarting a pair host: {error:#}");
            }
        }
        exits
    }

    fn end(&mut self, id: &str, kind: FailoverKind) -> Result<()> {
        let index = self
            .hosts
            .iter()
            .position(|(i, _)| i == id)
            .with_context(|| format!("no pair host {id}"))?;
        let (id, controller) = self.hosts.remove(index);
        // The replacement starts as soon as the old one is gone, as a
        // ReplicaSet would start a new Pod.
        match kind {
            FailoverKind::Terminate => {
                // It may take its shutdown grace; the soak goes on meanwhile.
                std::thread::spawn(move || controller.terminate(Duration::from_secs(35)));
            }
            FailoverKind::KillProcess => controller.kill()?,
            other => {
                self.hosts.insert(index, (id, controller));
                bail!("{} is not a failover of processes", other.name())
            }
        }
        self.start_one()
    }
}

/// The Lease's holder, if it has one.
pub(super) async fn holder(client: &kube::Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    leases
        .get_opt(LEASE)
        .await
        .ok()??
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

/// Whether `instance` leads with its caches synced: a leader's `/readyz`
/// lists its checks, a standby's none.
pub async fn leads(instance: &Instance) -> bool {
    matches!(
        controllers::http_get(instance.telemetry, "/readyz?verbose").await,
        Ok((200, body)) if body.contains("caches-synced")
    )
}

/// Whether `instance` answers `/healthz`.
pub async fn healthy(instance: &Instance) -> bool {
    matches!(
        controllers::http_get(instance.telemetry, "/healthz").await,
        Ok((200, _))
    )
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
