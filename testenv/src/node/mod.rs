//! A real node beside the control plane: kube-controller-manager and
//! kube-scheduler on the machine; containerd (with runc and the bridge
//! CNI), the kubelet and kube-proxy inside a network and mount namespace
//! of the node's own and a cgroup that holds every process it starts.
//!
//! Start one with [`crate::TestEnvBuilder::node`]; the environment's API
//! server then binds and advertises the host's end of the node's link, so
//! Pods reach it through the `kubernetes` Service, and uses the node's
//! Service range. What a node changes on the machine, and how it is
//! undone on drop (also when a test panics; at exit for a process-wide
//! one; at the next start when a test process was killed):
//!
//! | change | undone by |
//! |---|---|
//! | processes: containerd, shims, containers, kubelet, kube-proxy | killing the node's cgroup ([`cgroup`]) |
//! | kube-controller-manager, kube-scheduler, the docker.io mirror | killing their process groups |
//! | interfaces, routes, iptables chains, Pod network namespaces, per-namespace sysctls | the node's namespace dies with its last process ([`sandbox`]) |
//! | mounts (volumes, overlay snapshots, private tmpfs) | the node's mount namespace dies with its last process |
//! | `bosun<slot>` and the routes through it on the machine | go with the veth's other end |
//! | `vm.*` and `kernel.*` sysctls the kubelet sets | the ledger's last claim writes them back ([`kernel`]) |
//! | files | all under the environment's temporary directory |
//!
//! Node-backed tests are slower to start (about 10 s more than the
//! control plane alone) and need root and the packages [`requirements`]
//! lists; tests that need no Pod to run keep to the control plane alone.

pub(crate) mod cgroup;
mod containerd;
mod controllers;
mod error;
pub mod images;
pub(crate) mod kernel;
mod kubelet;
mod network;
mod proxy;
pub mod requirements;
pub(crate) mod sandbox;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::{Api, Client};

use crate::assets::{self, NodeAssets};
use crate::certs::{CertPaths, Identity};

pub use containerd::PAUSE_IMAGE;
pub use error::NodeError;
pub use images::ImageArchive;
pub use network::NetworkPlan;

use containerd::Containerd;
use controllers::{Controllers, ControllersSetup};
use images::Mirror;
use kubelet::{Kubelet, KubeletSetup};
use proxy::Proxy;
use sandbox::Sandbox;

/// Options for a node; see [`crate::TestEnvBuilder::node`].
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The Node's name (default `bosun-node`).
    pub name: String,
    /// How long each component may take to become ready (default 60 s).
    pub timeout: Duration,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            name: "bosun-node".into(),
            timeout: Duration::from_secs(60),
        }
    }
}

/// Whether this machine can run a node: root, cgroups, the programs and
/// the node's binaries. The error says what to install.
pub fn available() -> Result<(), NodeError> {
    requirements::check()?;
    assets::locate_node().map_err(|e| NodeError::Unavailable {
        missing: "the node's binaries".into(),
        install: e.to_string(),
    })?;
    Ok(())
}

/// The part of a node that exists before the API server starts: its
/// cgroup, namespaces and addresses, which the API server's flags and
/// certificate name.
#[derive(Debug)]
pub(crate) struct Prepared {
    options: NodeOptions,
    dir: PathBuf,
    assets: NodeAssets,
    network: NetworkPlan,
    sandbox: Sandbox,
}

/// Counts the nodes this process started, for unique cgroup names.
static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Prepared {
    /// Checks the machine, makes the cgroup and namespaces and the link.
    pub fn create(root: &Path, options: NodeOptions) -> Result<Prepared, NodeError> {
        available()?;
        let assets = assets::locate_node().map_err(|e| NodeError::Unavailable {
            missing: "the node's binaries".into(),
            install: e.to_string(),
        })?;
        let dir = root.join("node");
        sandbox::mkdirs(&dir, &[""])?;
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("node-{}-{n}", std::process::id());
        let sandbox = Sandbox::create(&id, &dir)?;
        let network = NetworkPlan::create(&sandbox)?;
        Ok(Prepared {
            options,
            dir,
            assets,
            network,
            sandbox,
        })
    }

    /// The node's addresses.
    pub fn network(&self) -> &NetworkPlan {
        &self.network
    }

    /// What the API server's serving certificate must also name.
    pub fn serving_ips(&self) -> Vec<IpAddr> {
        vec![
            IpAddr::V4(self.network.host_ip),
            IpAddr::V4(self.network.kubernetes_service_ip),
        ]
    }

    /// The client identities the node's components authenticate as.
    pub fn identities(&self) -> Vec<Identity> {
        let identity = |name, common_name: &str, organization| Identity {
            name,
            common_name: common_name.to_owned(),
            organization,
        };
        vec![
            identity(
                "kubelet",
                &format!("system:node:{}", self.options.name),
                Some("system:nodes"),
            ),
            identity(
                "kube-controller-manager",
                "system:kube-controller-manager",
                None,
            ),
            identity("kube-scheduler", "system:kube-scheduler", None),
            identity("kube-proxy", "system:kube-proxy", None),
            identity(
                "apiserver-kubelet-client",
                "kube-apiserver-kubelet-client",
                Some("system:masters"),
            ),
        ]
    }

    /// The API server's flags that a node changes: where it listens and
    /// what it advertises (the host's end of the link), the Service range,
    /// the Node authorizer and admission, the ServiceAccount admission
    /// (kube-controller-manager creates the `default` accounts), and the
    /// client certificate it shows the kubelet.
    pub fn apiserver_args(&self, pki: &CertPaths) -> Vec<String> {
        let mut args = vec![
            format!("--advertise-address={}", self.network.host_ip),
            format!("--bind-address={}", self.network.host_ip),
            format!("--service-cluster-ip-range={}", self.network.service_cidr),
            "--authorization-mode=Node,RBAC".into(),
            "--enable-admission-plugins=NodeRestriction".into(),
            "--disable-admission-plugins=".into(),
            // The node's name resolves nowhere: reach the kubelet by address.
            "--kubelet-preferred-address-types=InternalIP".into(),
        ];
        if let Some((cert, key)) = pki.clients.get("apiserver-kubelet-client") {
            args.push(format!("--kubelet-client-certificate={}", cert.display()));
            args.push(format!("--kubelet-client-key={}", key.display()));
        }
        args
    }
}

/// A running node. Dropping it tears it down.
#[derive(Debug)]
pub struct Node {
    name: String,
    dir: PathBuf,
    network: NetworkPlan,
    images: Vec<ImageArchive>,
    startup: Duration,
    // Fields drop in order: the node's processes first, the cgroup (which
    // kills whatever is left and takes the namespaces) after them, the
    // kernel settings last.
    proxy: Proxy,
    kubelet: tokio::sync::Mutex<Kubelet>,
    containerd: Containerd,
    mirror: Mirror,
    controllers: Mutex<Controllers>,
    sandbox: Sandbox,
    _kernel: kernel::Claim,
}

impl Node {
    /// Starts the node's components against the API server at
    /// `server_url` (ready), and waits until the Node is Ready, kube-proxy
    /// has programmed the Services and the `default` ServiceAccount exists.
    pub(crate) async fn start(
        prepared: Prepared,
        pki: &CertPaths,
        server_url: &str,
        client: &Client,
    ) -> Result<Node, NodeError> {
        let started = Instant::now();
        let Prepared {
            options,
            dir,
            assets,
            network,
            sandbox,
        } = prepared;
        let timeout = options.timeout;
        let kubeconfig = |name: &str| -> Result<PathBuf, NodeError> {
            let (cert, key) = pki.clients.get(name).ok_or_else(|| NodeError::Setup {
                what: format!("no certificate was issued for {name}"),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })?;
            let path = dir.join(format!("{name}.kubeconfig"));
            std::fs::write(
                &path,
                crate::env::kubeconfig_yaml(server_url, &pki.ca_cert, cert, key, name),
            )
            .map_err(NodeError::setup(format!("writing {}", path.display())))?;
            Ok(path)
        };

        let [kcm_port, scheduler_port] =
            crate::env::free_ports().map_err(|e| NodeError::Setup {
                what: "reserving ports for kube-controller-manager and kube-scheduler".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let controllers = Controllers::start(&ControllersSetup {
            controller_manager: &assets.kube_controller_manager,
            scheduler: &assets.kube_scheduler,
            dir: &dir,
            controller_manager_kubeconfig: kubeconfig("kube-controller-manager")?,
            scheduler_kubeconfig: kubeconfig("kube-scheduler")?,
            ca_cert: &pki.ca_cert,
            ca_key: &pki.ca_key,
            sa_private_key: &pki.sa_private_key,
            service_cidr: &network.service_cidr,
            ports: [kcm_port, scheduler_port],
        })?;

        let images = images::build(&dir.join("images"), &assets.pause)?;
        let mirror = Mirror::start(IpAddr::V4(network.host_ip), &images)?;
        let paths = containerd::Paths::under(&dir);
        let [hosts_dir, cni_conf_dir, ipam_dir] = [
            paths.hosts_dir.join("docker.io"),
            paths.cni_conf_dir.clone(),
            dir.join("cni/ipam"),
        ];
        for d in [&paths.dir, &hosts_dir, &cni_conf_dir, &ipam_dir] {
            std::fs::create_dir_all(d)
                .map_err(NodeError::setup(format!("creating {}", d.display())))?;
        }
        write(
            &hosts_dir.join("hosts.toml"),
            &containerd::hosts_toml(&mirror.url()),
        )?;
        write(
            &cni_conf_dir.join("10-bosun-testenv.conflist"),
            &network.cni_config(&ipam_dir),
        )?;
        let containerd =
            Containerd::start(&sandbox, &paths, &network.host_ip.to_string(), timeout)?;
        for image in &images {
            containerd.import(&image.archive, &image.repository)?;
            for tag in &image.also_tagged {
                containerd.tag(&image.reference(), &format!("{}:{tag}", image.repository))?;
            }
        }

        let kernel = kernel::Claim::take(sandbox.cgroup().root().trim_start_matches('/')).map_err(
            NodeError::setup("recording the kernel settings the kubelet changes"),
        )?;
        let kubelet_dir = dir.join("kubelet");
        std::fs::create_dir_all(&kubelet_dir).map_err(NodeError::setup(format!(
            "creating {}",
            kubelet_dir.display()
        )))?;
        let mut kubelet = Kubelet::start(
            &sandbox,
            KubeletSetup {
                binary: assets.kubelet.clone(),
                dir: kubelet_dir,
                node_name: options.name.clone(),
                kubeconfig: kubeconfig("kubelet")?,
                ca_cert: pki.ca_cert.clone(),
                runtime_endpoint: containerd.endpoint(),
                cgroup_root: sandbox.cgroup().root(),
            },
            &network,
        )?;
        kubelet.wait_ready(client, None, timeout).await?;

        let proxy_dir = dir.join("kube-proxy");
        std::fs::create_dir_all(&proxy_dir).map_err(NodeError::setup(format!(
            "creating {}",
            proxy_dir.display()
        )))?;
        let proxy = Proxy::start(
            &sandbox,
            &assets.kube_proxy,
            &proxy_dir,
            kubeconfig("kube-proxy")?,
            &options.name,
            &network,
            timeout,
        )?;
        let mut controllers = controllers;
        wait_for_default_service_account(client, &mut controllers, timeout).await?;
        let node = Node {
            name: options.name,
            dir,
            network,
            images,
            startup: started.elapsed(),
            proxy,
            kubelet: tokio::sync::Mutex::new(kubelet),
            containerd,
            mirror,
            controllers: Mutex::new(controllers),
            sandbox,
            _kernel: kernel,
        };
        tracing::info!(
            node = %node.name,
            startup_ms = node.startup.as_millis() as u64,
            "bosun-testenv node ready"
        );
        Ok(node)
    }

    /// The Node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's addresses and ranges.
    pub fn network(&self) -> &NetworkPlan {
        &self.network
    }

    /// The directory holding the node's configuration, state and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long the node took to be ready, after the API server was.
    pub fn startup_duration(&self) -> Duration {
        self.startup
    }

    /// The images loaded at start: the pause image and the stand-ins.
    pub fn images(&self) -> &[ImageArchive] {
        &self.images
    }

    /// Imports an OCI archive (the bosun image from `cargo xtask image`)
    /// into containerd's `k8s.io` namespace as `repository:<its tag>`:
    /// Pods naming that image with `imagePullPolicy: IfNotPresent` or
    /// `Never` run it without a pull.
    pub fn load_image(&self, archive: &Path, repository: &str) -> Result<(), NodeError> {
        self.containerd.import(archive, repository)
    }

    /// Gives a loaded image another name (`repository:tag`).
    pub fn tag_image(&self, source: &str, target: &str) -> Result<(), NodeError> {
        self.containerd.tag(source, target)
    }

    /// The images containerd holds for the kubelet.
    pub fn loaded_images(&self) -> Result<Vec<String>, NodeError> {
        self.containerd.images()
    }

    /// Kills the kubelet (SIGKILL, as a crash would) and starts it again;
    /// returns once the Node reports Ready with a heartbeat from the new
    /// kubelet. Running Pods are not touched.
    pub async fn restart_kubelet(&self, client: &Client) -> Result<Duration, NodeError> {
        let started = Instant::now();
        let mut kubelet = self.kubelet.lock().await;
        let before = kubelet.heartbeat(client).await;
        kubelet.restart(&self.sandbox, &self.network)?;
        kubelet
            .wait_ready(client, before, Duration::from_secs(90))
            .await?;
        Ok(started.elapsed())
    }

    /// The paths of the node's component logs, for a test's failure message.
    pub fn logs(&self) -> Vec<PathBuf> {
        let mut logs = vec![
            self.containerd.log().to_owned(),
            self.proxy.log().to_owned(),
            self.dir.join("kube-controller-manager.log"),
            self.dir.join("kube-scheduler.log"),
        ];
        if let Ok(kubelet) = self.kubelet.try_lock() {
            logs.push(kubelet.log().to_owned());
        }
        logs
    }

    /// Fails if kube-controller-manager or kube-scheduler exited.
    pub fn check(&self) -> Result<(), NodeError> {
        match self.controllers.lock() {
            Ok(mut controllers) => controllers.check(),
            Err(_) => Ok(()),
        }
    }

    /// What the node's processes hold in memory (their resident set
    /// sizes summed): everything in its cgroup (containerd, shims,
    /// containers, the kubelet, kube-proxy), kube-controller-manager,
    /// kube-scheduler and the mirror.
    pub fn resident_bytes(&self) -> u64 {
        let mut pids: Vec<u32> = self
            .sandbox
            .cgroup()
            .pids()
            .into_iter()
            .filter_map(|p| u32::try_from(p).ok())
            .collect();
        if let Ok(controllers) = self.controllers.lock() {
            pids.push(controllers.controller_manager.id());
            pids.push(controllers.scheduler.id());
        }
        pids.push(self.mirror.pid());
        pids.into_iter().map(resident_bytes_of).sum()
    }

    /// The docker.io mirror's URL (`http://ip:port`).
    pub fn mirror_url(&self) -> String {
        self.mirror.url()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Err(e) = self.sandbox.destroy() {
            eprintln!("bosun-testenv: tearing the node down: {e}");
        }
    }
}

/// A process's resident set size (`VmRSS`), 0 if it is gone.
pub fn resident_bytes_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

fn write(path: &Path, text: &str) -> Result<(), NodeError> {
    std::fs::write(path, text).map_err(NodeError::setup(format!("writing {}", path.display())))
}

/// Pods are refused in a namespace until its `default` ServiceAccount
/// exists (the ServiceAccount admission): wait for kube-controller-manager
/// to make the first, which also says it runs.
async fn wait_for_default_service_account(
    client: &Client,
    controllers: &mut Controllers,
    timeout: Duration,
) -> Result<(), NodeError> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let started = Instant::now();
    loop {
        controllers.check()?;
        if let Ok(Some(_)) = accounts.get_opt("default").await {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(NodeError::NotReady {
                component: "kube-controller-manager",
                timeout,
                last: "no ServiceAccount default/default".into(),
                log: controllers.controller_manager.log.clone(),
                tail: crate::process::tail(&controllers.controller_manager.log, 30),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Tears down every node this process still runs: for the exit hook of a
/// process-wide environment, whose `Drop` never runs. Kills each node's
/// cgroup (its namespaces go with it) and gives back the kernel settings.
pub(crate) fn exit_cleanup() {
    for id in sandbox::live() {
        cgroup::kill_and_remove(&id);
    }
    kernel::release_all_of_this_process();
}
