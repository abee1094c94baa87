//! kube-proxy in iptables mode, inside the node: its chains are in the
//! node's network namespace and go with it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::NodeError;
use super::network::NetworkPlan;
use super::sandbox::Sandbox;
use crate::process::{self, ManagedProcess};

/// A running kube-proxy.
#[derive(Debug)]
pub(crate) struct Proxy {
    process: ManagedProcess,
}

impl Proxy {
    /// Starts kube-proxy; ready once its `/healthz` (on the node's address)
    /// answers 200, that is once it has written the rules for the Services
    /// and endpoints it saw.
    pub fn start(
        sandbox: &Sandbox,
        binary: &Path,
        dir: &Path,
        kubeconfig: PathBuf,
        node_name: &str,
        network: &NetworkPlan,
        timeout: Duration,
    ) -> Result<Proxy, NodeError> {
        let q = |path: &Path| serde_json::Value::String(path.display().to_string()).to_string();
        // conntrack settings are left as they are (0): they are the
        // machine's, and this sandbox may not change them.
        let config = format!(
            r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {{kubeconfig: {kubeconfig}}}
hostnameOverride: {node_name}
clusterCIDR: {pod_cidr}
healthzBindAddress: {node_ip}:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [{node_ip}/32]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  minSyncPeriod: 0s
  syncPeriod: 30s
"#,
            kubeconfig = q(&kubeconfig),
            pod_cidr = network.pod_cidr,
            node_ip = network.node_ip,
        );
        let file = dir.join("kube-proxy.yaml");
        std::fs::write(&file, config)
            .map_err(NodeError::setup(format!("writing {}", file.display())))?;
        let mut command = sandbox.command(binary, dir);
        command
            .arg(format!("--config={}", file.display()))
            .arg("--v=1");
        let mut process = ManagedProcess::start("kube-proxy", command, dir.join("kube-proxy.log"))
            .map_err(|e| NodeError::Setup {
                what: "starting kube-proxy".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let started = Instant::now();
        let address = format!("{}:10256", network.node_ip);
        loop {
            let last = match process.try_wait() {
                Some(status) => format!("exited ({status})"),
                None => match healthz(&address) {
                    Ok(()) => return Ok(Proxy { process }),
                    Err(e) => e,
                },
            };
            if started.elapsed() > timeout || process.try_wait().is_some() {
                return Err(NodeError::NotReady {
                    component: "kube-proxy",
                    timeout,
                    last,
                    tail: process::tail(&process.log, 30),
                    log: process.log.clone(),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// kube-proxy's log file.
    pub fn log(&self) -> &Path {
        &self.process.log
    }
}

/// `GET /healthz`; Ok on 200.
fn healthz(address: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: kube-proxy\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer.lines().next().unwrap_or_default().to_owned();
    if status.contains(" 200") {
        Ok(())
    } else {
        Err(format!("/healthz: {status}"))
    }
}
