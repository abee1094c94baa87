//! [`TestEnv`]: starting, using and stopping the control plane.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tempfile::TempDir;

use crate::assets::{self, Assets};
use crate::certs::{self, CertPaths};
use crate::crds::{self, CrdSource};
use crate::error::{Error, NotReady};
use crate::node::{self, Node, NodeOptions};
use crate::process::{self, ManagedProcess};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// Environment variable: when `true` (or `1`/`yes`), [`TestEnv::start`] uses the
/// cluster of the current kubeconfig instead of starting a control plane.
pub const USE_EXISTING_CLUSTER: &str = "USE_EXISTING_CLUSTER";

/// Environment variable: when set, the temporary directory (certificates,
/// kubeconfig, logs, etcd data) is kept after the environment is dropped.
const KEEP_DIR: &str = "BOSUN_TESTENV_KEEP_DIR";

/// Environment variable overriding the startup timeout, in seconds.
const START_TIMEOUT: &str = "BOSUN_TESTENV_START_TIMEOUT";

/// How many times startup is retried when a reserved port was taken meanwhile.
const PORT_ATTEMPTS: usize = 3;

/// A running Kubernetes control plane (or a connection to an existing cluster).
///
/// Dropping it kills `kube-apiserver` and `etcd` (their whole process groups)
/// and removes the temporary directory.
pub struct TestEnv {
    client: Client,
    kubeconfig: Option<PathBuf>,
    local: Option<Local>,
}

/// The processes and files of a control plane this harness started.
/// Fields drop in order: the node first, the apiserver, then etcd, then the
/// directory.
#[derive(Debug)]
struct Local {
    node: Option<Node>,
    apiserver: ManagedProcess,
    etcd: ManagedProcess,
    server_url: String,
    startup: Duration,
    /// How the apiserver was started, to start it again (`restart_apiserver`).
    apiserver_binary: PathBuf,
    apiserver_args: Vec<String>,
    restarts: u32,
    dir: Dir,
}

#[derive(Debug)]
enum Dir {
    Temp(TempDir),
    Kept(PathBuf),
}

impl Dir {
    fn path(&self) -> &Path {
        match self {
            Dir::Temp(dir) => dir.path(),
            Dir::Kept(path) => path,
        }
    }
}

/// Options for [`TestEnv`]; start with [`TestEnv::builder`].
#[derive(Debug, Clone, Default)]
pub struct TestEnvBuilder {
    start_timeout: Option<Duration>,
    apiserver_args: Vec<String>,
    etcd_args: Vec<String>,
    use_existing_cluster: Option<bool>,
    assets: Option<Assets>,
    node: Option<NodeOptions>,
}

impl TestEnvBuilder {
    /// How long to wait for `/readyz` (default 60 s, or
    /// `BOSUN_TESTENV_START_TIMEOUT` seconds).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = Some(timeout);
        self
    }

    /// Adds a `kube-apiserver` flag (`--name=value`); a later flag of the same
    /// name overrides the harness default.
    pub fn apiserver_arg(mut self, arg: impl Into<String>) -> Self {
        self.apiserver_args.push(arg.into());
        self
    }

    /// Adds an `etcd` flag (`--name=value`); a later flag of the same name
    /// overrides the harness default.
    pub fn etcd_arg(mut self, arg: impl Into<String>) -> Self {
        self.etcd_args.push(arg.into());
        self
    }

    /// Forces (or forbids) using the current kubeconfig's cluster, whatever
    /// `USE_EXISTING_CLUSTER` says.
    pub fn use_existing_cluster(mut self, existing: bool) -> Self {
        self.use_existing_cluster = Some(existing);
        self
    }

    /// Uses these binaries instead of [`assets::locate`].
    pub fn assets(mut self, assets: Assets) -> Self {
        self.assets = Some(assets);
        self
    }

    /// Starts a real node beside the control plane ([`crate::node`]):
    /// kube-controller-manager, kube-scheduler, and containerd, the
    /// kubelet and kube-proxy in a network namespace of the node's own.
    /// Needs root and the packages [`node::requirements::INSTALL`] names
    /// ([`node::available`] tells beforehand); about 10 s more to start.
    /// Not with an existing cluster, which has nodes of its own.
    pub fn node(mut self, options: NodeOptions) -> Self {
        self.node = Some(options);
        self
    }

    /// Starts the environment; see [`TestEnv::start`].
    pub async fn start(self) -> Result<TestEnv, Error> {
        let existing = self
            .use_existing_cluster
            .unwrap_or_else(|| env_flag(USE_EXISTING_CLUSTER));
        if existing {
            return TestEnv::existing().await;
        }
        let assets = match self.assets.clone() {
            Some(assets) => assets,
            None => assets::locate()?,
        };
        let timeout = self.start_timeout.unwrap_or_else(|| {
            std::env::var(START_TIMEOUT)
                .ok()
                .and_then(|s| s.parse().ok())
                .map(Duration::from_secs)
                .unwrap_or(Duration::from_secs(60))
        });
        let mut attempt = 1;
        loop {
            match self.start_local(&assets, timeout).await {
                Err(Error::Process(failure))
                    if attempt < PORT_ATTEMPTS
                        && failure.tail.contains("address already in use") =>
                {
                    tracing::warn!(
                        binary = failure.binary,
                        "port taken during startup, retrying with new ports"
                    );
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_local(&self, assets: &Assets, timeout: Duration) -> Result<TestEnv, Error> {
        let started = Instant::now();
        let tmp = tempfile::Builder::new()
            .prefix("bosun-testenv-")
            .tempdir()
            .map_err(Error::io(
                "creating temporary directory",
                std::env::temp_dir(),
            ))?;
        let root = tmp.path().to_path_buf();
        let dir = if std::env::var_os(KEEP_DIR).is_some() {
            eprintln!("bosun-testenv: keeping {}", root.display());
            Dir::Kept(tmp.keep())
        } else {
            Dir::Temp(tmp)
        };
        let cert_dir = root.join("pki");
        let etcd_data = root.join("etcd");
        for d in [&cert_dir, &etcd_data] {
            std::fs::create_dir_all(d).map_err(Error::io("creating directory", d))?;
        }
        let prepared = match &self.node {
            Some(options) => Some(
                node::Prepared::create(&root, options.clone())
                    .map_err(|e| Error::Node(Box::new(e)))?,
            ),
            None => None,
        };
        let serving_ips = match &prepared {
            Some(node) => node.serving_ips(),
            // The first address of the default --service-cluster-ip-range:
            // the `kubernetes` Service's.
            None => vec![std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1))],
        };
        let identities = prepared
            .as_ref()
            .map(node::Prepared::identities)
            .unwrap_or_default();
        let pki = certs::generate(&cert_dir, &serving_ips, &identities)?;
        let [etcd_client, etcd_peer, secure_port] = free_ports()?;

        let etcd_url = format!("http://127.0.0.1:{etcd_client}");
        let etcd_args = merge_args(
            vec![
                "--name=default".into(),
                format!("--data-dir={}", etcd_data.display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls=http://127.0.0.1:{etcd_peer}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}"),
                format!("--initial-cluster=default=http://127.0.0.1:{etcd_peer}"),
                // Test data is thrown away: skip fsync, it dominates latency on slow disks.
                "--unsafe-no-fsync=true".into(),
                "--log-level=warn".into(),
            ],
            &self.etcd_args,
        );
        let etcd = ManagedProcess::spawn(
            assets::ETCD,
            &assets.etcd,
            &etcd_args,
            &root,
            root.join("etcd.log"),
        )?;

        let host = prepared.as_ref().map_or_else(
            || "127.0.0.1".to_owned(),
            |n| n.network().host_ip.to_string(),
        );
        let server_url = format!("https://{host}:{secure_port}");
        let node_args = prepared
            .as_ref()
            .map(|n| n.apiserver_args(&pki))
            .unwrap_or_default();
        let apiserver_args = merge_args(
            merge_args(
                apiserver_defaults(&pki, &etcd_url, &server_url, secure_port, &cert_dir),
                &node_args,
            ),
            &self.apiserver_args,
        );
        let apiserver = ManagedProcess::spawn(
            assets::KUBE_APISERVER,
            &assets.kube_apiserver,
            &apiserver_args,
            &root,
            root.join("kube-apiserver.log"),
        )?;
        let apiserver_binary = assets.kube_apiserver.clone();

        let kubeconfig = root.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            kubeconfig_yaml(
                &server_url,
                &pki.ca_cert,
                &pki.admin_cert,
                &pki.admin_key,
                "bosun-testenv-admin",
            ),
        )
        .map_err(Error::io("writing kubeconfig", &kubeconfig))?;
        let client = client_from_kubeconfig(&kubeconfig).await?;

        let mut local = Local {
            node: None,
            apiserver,
            etcd,
            server_url,
            startup: Duration::ZERO,
            apiserver_binary,
            apiserver_args,
            restarts: 0,
            dir,
        };
        wait_ready(&client, &mut local, timeout, started).await?;
        if let Some(prepared) = prepared {
            let node = Node::start(prepared, &pki, &local.server_url, &client)
                .await
                .map_err(|e| Error::Node(Box::new(e)))?;
            local.node = Some(node);
        }
        local.startup = started.elapsed();
        tracing::info!(
            server = %local.server_url,
            dir = %local.dir.path().display(),
            startup_ms = local.startup.as_millis() as u64,
            "bosun-testenv control plane ready"
        );
        Ok(TestEnv {
            client,
            kubeconfig: Some(kubeconfig),
            local: Some(local),
        })
    }
}

impl std::fmt::Debug for TestEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestEnv")
            .field("kubeconfig", &self.kubeconfig)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl TestEnv {
    /// Starts etcd and kube-apiserver with default options and waits until the
    /// apiserver's `/readyz` is ok and the `default` namespace exists.
    ///
    /// With `USE_EXISTING_CLUSTER=true`, starts nothing and connects to the
    /// cluster of the current kubeconfig instead.
    ///
    /// Fails if the binaries cannot be found (telling you to run
    /// `cargo xtask control-plane`), if a process exits during startup (naming
    /// it and quoting its last log lines), or on timeout.
    pub async fn start() -> Result<TestEnv, Error> {
        Self::builder().start().await
    }

    /// Options for starting an environment.
    pub fn builder() -> TestEnvBuilder {
        TestEnvBuilder::default()
    }

    async fn existing() -> Result<TestEnv, Error> {
        let client = Client::try_default().await?;
        let kubeconfig = std::env::var_os("KUBECONFIG")
            .and_then(|paths| std::env::split_paths(&paths).next())
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".kube/config")))
            .filter(|p| p.is_file());
        Ok(TestEnv {
            client,
            kubeconfig,
            local: None,
        })
    }

    /// A client for the environment, authenticated as the admin
    /// (`O=system:masters`) when the harness started the control plane.
    ///
    /// The client is bound to the tokio runtime it was created on; a test that
    /// shares one `TestEnv` across runtimes should call [`TestEnv::new_client`].
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Builds a fresh client on the current tokio runtime from the written
    /// kubeconfig (or the current one, for an existing cluster).
    pub async fn new_client(&self) -> Result<Client, Error> {
        match (&self.local, &self.kubeconfig) {
            (Some(_), Some(path)) => client_from_kubeconfig(path).await,
            _ => Ok(Client::try_default().await?),
        }
    }

    /// The kubeconfig file for this environment (for `kubectl --kubeconfig`, the
    /// demo, or a bosun host process). For an existing cluster, the first file in
    /// `KUBECONFIG` or `~/.kube/config`, if it exists.
    pub fn kubeconfig_path(&self) -> Option<&Path> {
        self.kubeconfig.as_deref()
    }

    /// The apiserver URL (`https://127.0.0.1:<port>`) of a started control plane.
    pub fn server_url(&self) -> Option<&str> {
        self.local.as_ref().map(|l| l.server_url.as_str())
    }

    /// The temporary directory holding certificates, kubeconfig, logs and etcd
    /// data of a started control plane.
    pub fn dir(&self) -> Option<&Path> {
        self.local.as_ref().map(|l| l.dir.path())
    }

    /// Whether this environment is the cluster of the current kubeconfig
    /// (`USE_EXISTING_CLUSTER`) rather than one the harness started.
    pub fn is_existing_cluster(&self) -> bool {
        self.local.is_none()
    }

    /// Time from [`TestEnv::start`] to a ready apiserver, for a started control plane.
    pub fn startup_duration(&self) -> Option<Duration> {
        self.local.as_ref().map(|l| l.startup)
    }

    /// The node started beside the control plane, if one was asked for.
    pub fn node(&self) -> Option<&Node> {
        self.local.as_ref().and_then(|l| l.node.as_ref())
    }

    /// Process ids of the started `kube-apiserver` and `etcd` (each is also the
    /// id of its process group), by binary name.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.local
            .iter()
            .flat_map(|l| {
                [
                    (l.apiserver.binary, l.apiserver.id()),
                    (l.etcd.binary, l.etcd.id()),
                ]
            })
            .collect()
    }

    /// Server-side applies the given CRDs (objects, manifest files, or
    /// directories of `.yaml`/`.yml`/`.json` manifests; non-CRD documents are
    /// ignored) and waits until each is Established and its resources are
    /// served by discovery. Returns the CRDs as stored.
    pub async fn install_crds<I>(&self, crds: I) -> Result<Vec<CustomResourceDefinition>, Error>
    where
        I: IntoIterator,
        I::Item: Into<CrdSource>,
    {
        let sources: Vec<CrdSource> = crds.into_iter().map(Into::into).collect();
        crds::install(&self.client, sources, Duration::from_secs(30)).await
    }

    /// Stops kube-apiserver and starts it again on the same port, with etcd
    /// (and so every object) kept: what clients see when the API server is
    /// upgraded or crashes. Returns once `/readyz` is ok again. Watches break
    /// and clients must re-list; that is what this is for.
    ///
    /// Does nothing against an existing cluster.
    pub async fn restart_apiserver(&mut self) -> Result<(), Error> {
        let Some(local) = self.local.as_mut() else {
            return Ok(());
        };
        local.apiserver.kill();
        local.restarts += 1;
        let root = local.dir.path().to_owned();
        local.apiserver = ManagedProcess::spawn(
            assets::KUBE_APISERVER,
            &local.apiserver_binary,
            &local.apiserver_args,
            &root,
            root.join(format!("kube-apiserver-{}.log", local.restarts)),
        )?;
        wait_ready(&self.client, local, Duration::from_secs(60), Instant::now()).await
    }

    /// The temporary directory the environment removes when it ends (none
    /// when kept with `BOSUN_TESTENV_KEEP_DIR`).
    pub(crate) fn temporary_dir(&self) -> Option<PathBuf> {
        match &self.local.as_ref()?.dir {
            Dir::Temp(dir) => Some(dir.path().to_path_buf()),
            Dir::Kept(_) => None,
        }
    }

    /// Stops the control plane now (same as dropping the environment).
    pub fn stop(self) {
        drop(self);
    }
}

fn apiserver_defaults(
    pki: &CertPaths,
    etcd_url: &str,
    server_url: &str,
    secure_port: u16,
    cert_dir: &Path,
) -> Vec<String> {
    let p = |path: &Path| path.display().to_string();
    vec![
        "--advertise-address=127.0.0.1".into(),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={secure_port}"),
        format!("--etcd-servers={etcd_url}"),
        format!("--cert-dir={}", p(cert_dir)),
        format!("--tls-cert-file={}", p(&pki.serving_cert)),
        format!("--tls-private-key-file={}", p(&pki.serving_key)),
        format!("--client-ca-file={}", p(&pki.ca_cert)),
        "--authorization-mode=RBAC".into(),
        "--service-cluster-ip-range=10.0.0.0/24".into(),
        "--allow-privileged=true".into(),
        // As envtest: no controller-manager creates the `default` ServiceAccount.
        "--disable-admission-plugins=ServiceAccount".into(),
        format!("--service-account-issuer={server_url}/"),
        format!("--service-account-key-file={}", p(&pki.sa_public_key)),
        format!(
            "--service-account-signing-key-file={}",
            p(&pki.sa_private_key)
        ),
    ]
}

/// Defaults followed by overrides; an override replaces a default flag of the same name.
fn merge_args(defaults: Vec<String>, overrides: &[String]) -> Vec<String> {
    let flag = |arg: &str| arg.split('=').next().unwrap_or(arg).to_string();
    let overridden: Vec<String> = overrides.iter().map(|a| flag(a)).collect();
    defaults
        .into_iter()
        .filter(|d| !overridden.contains(&flag(d)))
        .chain(overrides.iter().cloned())
        .collect()
}

/// Reserves `N` distinct free loopback ports. They are released before the
/// processes bind them; the small race is handled by retrying startup.
pub(crate) fn free_ports<const N: usize>() -> Result<[u16; N], Error> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::Ports)?;
    let mut ports = [0u16; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr().map_err(Error::Ports)?.port();
    }
    Ok(ports)
}

/// A kubeconfig for `user`, authenticating with a client certificate.
pub(crate) fn kubeconfig_yaml(
    server_url: &str,
    ca: &Path,
    cert: &Path,
    key: &Path,
    user: &str,
) -> String {
    // JSON strings are valid YAML scalars and quote any path safely.
    let q = |path: &Path| serde_json::Value::String(path.display().to_string()).to_string();
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: bosun-testenv
  cluster:
    server: {server_url}
    certificate-authority: {ca}
users:
- name: {user}
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: bosun-testenv
  context:
    cluster: bosun-testenv
    user: {user}
    namespace: default
current-context: bosun-testenv
",
        ca = q(ca),
        cert = q(cert),
        key = q(key),
    )
}

async fn client_from_kubeconfig(path: &Path) -> Result<Client, Error> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// Polls until `/readyz` answers ok and the `default` namespace exists, failing
/// early when a process exits.
async fn wait_ready(
    client: &Client,
    local: &mut Local,
    timeout: Duration,
    started: Instant,
) -> Result<(), Error> {
    use k8s_openapi::api::core::v1::Namespace;
    let namespaces: kube::Api<Namespace> = kube::Api::all(client.clone());
    let mut last = String::from("no answer yet");
    loop {
        for process in [&mut local.etcd, &mut local.apiserver] {
            if let Some(status) = process.try_wait() {
                return Err(process.exited(status).into());
            }
        }
        if started.elapsed() > timeout {
            return Err(Error::NotReady(Box::new(NotReady {
                timeout,
                last,
                apiserver_tail: process::tail(&local.apiserver.log, 30),
                apiserver_log: local.apiserver.log.clone(),
                etcd_tail: process::tail(&local.etcd.log, 30),
                etcd_log: local.etcd.log.clone(),
            })));
        }
        let probe = async {
            let request = http::Request::get("/readyz")
                .body(Vec::new())
                .map_err(|e| e.to_string())?;
            client
                .request_text(request)
                .await
                .map_err(|e| e.to_string())?;
            match namespaces.get_opt("default").await {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err("namespace default not created yet".to_string()),
                Err(e) => Err(e.to_string()),
            }
        };
        match tokio::time::timeout(Duration::from_secs(5), probe).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => last = e,
            Err(_) => last = "request timed out".into(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_defaults_of_the_same_flag() {
        let merged = merge_args(
            vec!["--a=1".into(), "--b=2".into()],
            &["--b=3".into(), "--c".into()],
        );
        assert_eq!(merged, ["--a=1", "--b=3", "--c"]);
    }

    #[test]
    fn free_ports_are_distinct() {
        let [a, b, c] = free_ports().expect("ports");
        assert!(a != b && b != c && a != c);
    }
}
