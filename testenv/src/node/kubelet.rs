//! The kubelet: its configuration, starting (and restarting) it in the
//! node, and waiting until its Node is Ready.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node as NodeObject;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;

use super::error::NodeError;
use super::network::NetworkPlan;
use super::sandbox::Sandbox;
use crate::process::{self, ManagedProcess};

/// What the kubelet is started with.
#[derive(Debug, Clone)]
pub(crate) struct KubeletSetup {
    pub binary: PathBuf,
    pub dir: PathBuf,
    pub node_name: String,
    pub kubeconfig: PathBuf,
    pub ca_cert: PathBuf,
    pub runtime_endpoint: String,
    pub cgroup_root: String,
}

/// A running kubelet.
#[derive(Debug)]
pub(crate) struct Kubelet {
    setup: KubeletSetup,
    process: ManagedProcess,
    starts: u32,
}

impl KubeletSetup {
    /// The KubeletConfiguration: this machine's cgroup v1 accepted, no
    /// swap check, Pods under the node's own cgroup, x509 clients of the
    /// cluster's CA (the API server, for logs and exec) and nothing else,
    /// eviction thresholds a busy shared disk does not reach, images never
    /// garbage-collected (they cannot be pulled again), no DNS handed to
    /// Pods (nothing resolves names for them here).
    fn config(&self, network: &NetworkPlan) -> String {
        let q = |path: &Path| serde_json::Value::String(path.display().to_string()).to_string();
        format!(
            r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {node_ip}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
containerRuntimeEndpoint: {endpoint}
cgroupDriver: cgroupfs
cgroupRoot: {cgroup_root}
failCgroupV1: false
failSwapOn: false
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: false}}
  x509: {{clientCAFile: {ca}}}
authorization: {{mode: AlwaysAllow}}
resolvConf: ""
podLogsDir: {logs}
evictionHard: {{"memory.available": "1Mi", "nodefs.available": "1%", "nodefs.inodesFree": "1%", "imagefs.available": "1%"}}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusUpdateFrequency: 4s
serializeImagePulls: false
"#,
            node_ip = network.node_ip,
            endpoint = self.runtime_endpoint,
            cgroup_root = self.cgroup_root,
            ca = q(&self.ca_cert),
            logs = q(&self.dir.join("pod-logs")),
        )
    }
}

impl Kubelet {
    /// Writes the configuration and starts the kubelet in the node.
    pub fn start(
        sandbox: &Sandbox,
        setup: KubeletSetup,
        network: &NetworkPlan,
    ) -> Result<Kubelet, NodeError> {
        let config = setup.dir.join("config.yaml");
        std::fs::write(&config, setup.config(network))
            .map_err(NodeError::setup(format!("writing {}", config.display())))?;
        let process = spawn(sandbox, &setup, network, 0)?;
        Ok(Kubelet {
            setup,
            process,
            starts: 1,
        })
    }

    /// Kills the kubelet (SIGKILL, as a crash or a node's reboot would)
    /// and starts it again with the same configuration; its Pods keep
    /// running in containerd meanwhile.
    pub fn restart(&mut self, sandbox: &Sandbox, network: &NetworkPlan) -> Result<(), NodeError> {
        self.process.kill();
        self.process = spawn(sandbox, &self.setup, network, self.starts)?;
        self.starts += 1;
        Ok(())
    }

    /// The kubelet's current log file.
    pub fn log(&self) -> &Path {
        &self.process.log
    }

    /// The Node's last `Ready` heartbeat, if it has one.
    pub async fn heartbeat(&self, client: &kube::Client) -> Option<Time> {
        let nodes: Api<NodeObject> = Api::all(client.clone());
        let node = nodes.get_opt(&self.setup.node_name).await.ok()??;
        node.status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Ready")?
            .last_heartbeat_time
    }

    /// Waits until the Node object reports `Ready=True` (after a restart:
    /// with a heartbeat later than `since`).
    pub async fn wait_ready(
        &mut self,
        client: &kube::Client,
        since: Option<Time>,
        timeout: Duration,
    ) -> Result<(), NodeError> {
        let nodes: Api<NodeObject> = Api::all(client.clone());
        let started = Instant::now();
        let mut last = String::from("no Node object yet");
        loop {
            if let Some(status) = self.process.try_wait() {
                return Err(self.not_ready(timeout, format!("exited ({status})")));
            }
            match nodes.get_opt(&self.setup.node_name).await {
                Ok(Some(node)) => {
                    let ready = node
                        .status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .into_iter()
                        .find(|c| c.type_ == "Ready");
                    match ready {
                        Some(c) if c.status == "True" => {
                            let fresh = match (&since, &c.last_heartbeat_time) {
                                (Some(since), Some(beat)) => beat.0 > since.0,
                                (Some(_), None) => false,
                                (None, _) => true,
                            };
                            if fresh {
                                return Ok(());
                            }
                            last = "Ready, but no heartbeat since the restart yet".into();
                        }
                        Some(c) => {
                            last = format!(
                                "Ready={} ({}: {})",
                                c.status,
                                c.reason.unwrap_or_default(),
                                c.message.unwrap_or_default()
                            )
                        }
                        None => last = "no Ready condition yet".into(),
                    }
                }
                Ok(None) => {}
                Err(e) => last = e.to_string(),
            }
            if started.elapsed() > timeout {
                return Err(self.not_ready(timeout, last));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn not_ready(&self, timeout: Duration, last: String) -> NodeError {
        NodeError::NotReady {
            component: "kubelet",
            timeout,
            last,
            tail: process::tail(&self.process.log, 40),
            log: self.process.log.clone(),
        }
    }
}

fn spawn(
    sandbox: &Sandbox,
    setup: &KubeletSetup,
    network: &NetworkPlan,
    starts: u32,
) -> Result<ManagedProcess, NodeError> {
    let mut command = sandbox.command(&setup.binary, &setup.dir);
    command
        .arg(format!(
            "--config={}",
            setup.dir.join("config.yaml").display()
        ))
        .arg(format!("--kubeconfig={}", setup.kubeconfig.display()))
        .arg(format!("--root-dir={}", setup.dir.join("root").display()))
        .arg(format!("--cert-dir={}", setup.dir.join("pki").display()))
        .arg(format!("--hostname-override={}", setup.node_name))
        .arg(format!("--node-ip={}", network.node_ip))
        .arg("--v=1");
    let log = if starts == 0 {
        setup.dir.join("kubelet.log")
    } else {
        setup.dir.join(format!("kubelet-{starts}.log"))
    };
    ManagedProcess::start("kubelet", command, log).map_err(|e| NodeError::Setup {
        what: "starting the kubelet".into(),
        source: std::io::Error::other(e.to_string()),
    })
}
