//! kube-controller-manager and kube-scheduler: control-plane processes on
//! the machine (not in the node), each with an identity of its own.

use std::path::{Path, PathBuf};

use super::error::NodeError;
use crate::process::ManagedProcess;

/// The two processes.
#[derive(Debug)]
pub(crate) struct Controllers {
    pub controller_manager: ManagedProcess,
    pub scheduler: ManagedProcess,
}

/// What they are started with.
#[derive(Debug)]
pub(crate) struct ControllersSetup<'a> {
    pub controller_manager: &'a Path,
    pub scheduler: &'a Path,
    pub dir: &'a Path,
    pub controller_manager_kubeconfig: PathBuf,
    pub scheduler_kubeconfig: PathBuf,
    pub ca_cert: &'a Path,
    pub ca_key: &'a Path,
    pub sa_private_key: &'a Path,
    pub service_cidr: &'a str,
    /// Free loopback ports for their secure servers.
    pub ports: [u16; 2],
}

impl Controllers {
    /// Starts both: kube-controller-manager with every default controller
    /// (the garbage collector, Deployments and ReplicaSets, namespaces,
    /// ServiceAccounts and their tokens, EndpointSlices, …), each under a
    /// ServiceAccount of its own; the scheduler as it comes. No leader
    /// election: they are alone.
    pub fn start(setup: &ControllersSetup<'_>) -> Result<Controllers, NodeError> {
        let p = |path: &Path| path.display().to_string();
        let kcm = setup.controller_manager_kubeconfig.display().to_string();
        let controller_manager = spawn(
            "kube-controller-manager",
            setup.controller_manager,
            setup.dir,
            &[
                format!("--kubeconfig={kcm}"),
                format!("--authentication-kubeconfig={kcm}"),
                format!("--authorization-kubeconfig={kcm}"),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={}", setup.ports[0]),
                "--leader-elect=false".into(),
                "--use-service-account-credentials=true".into(),
                format!(
                    "--service-account-private-key-file={}",
                    p(setup.sa_private_key)
                ),
                format!("--root-ca-file={}", p(setup.ca_cert)),
                format!("--cluster-signing-cert-file={}", p(setup.ca_cert)),
                format!("--cluster-signing-key-file={}", p(setup.ca_key)),
                format!("--service-cluster-ip-range={}", setup.service_cidr),
                "--controllers=*".into(),
                "--v=1".into(),
            ],
        )?;
        let sched = setup.scheduler_kubeconfig.display().to_string();
        let scheduler = spawn(
            "kube-scheduler",
            setup.scheduler,
            setup.dir,
            &[
                format!("--kubeconfig={sched}"),
                format!("--authentication-kubeconfig={sched}"),
                format!("--authorization-kubeconfig={sched}"),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={}", setup.ports[1]),
                "--leader-elect=false".into(),
                "--v=1".into(),
            ],
        )?;
        Ok(Controllers {
            controller_manager,
            scheduler,
        })
    }

    /// A process that exited, with the error saying so.
    pub fn check(&mut self) -> Result<(), NodeError> {
        for process in [&mut self.controller_manager, &mut self.scheduler] {
            if let Some(status) = process.try_wait() {
                let failure = process.exited(status);
                return Err(NodeError::NotReady {
                    component: failure.binary,
                    timeout: std::time::Duration::ZERO,
                    last: failure.reason,
                    log: failure.log,
                    tail: failure.tail,
                });
            }
        }
        Ok(())
    }
}

fn spawn(
    binary: &'static str,
    path: &Path,
    dir: &Path,
    args: &[String],
) -> Result<ManagedProcess, NodeError> {
    ManagedProcess::spawn(binary, path, args, dir, dir.join(format!("{binary}.log"))).map_err(|e| {
        NodeError::Setup {
            what: format!("starting {binary}"),
            source: std::io::Error::other(e.to_string()),
        }
    })
}
