//! Helpers for the end-to-end tests: a control plane per test, the `bosun`
//! binary run as an operator would run it, and polling.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bosun_testenv::TestEnv;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The CRDs every end-to-end test may need.
fn crds() -> Vec<PathBuf> {
    [
        "examples/cnat/crd.yaml",
        "examples/webapp/crd.yaml",
        "examples/mirror/crd.yaml",
        "tests/guests/janitor/crd.yaml",
        "tests/guests/misbehave/crd.yaml",
        "tests/guests/samplecontroller/crd.yaml",
        "tests/guests/documents/crd.yaml",
        "deploy/base/reconcilermodule-crd.yaml",
    ]
    .into_iter()
    .map(|path| root().join(path))
    .collect()
}

/// A control plane: a test's own, or one shared by the tests of a binary.
pub enum Env {
    /// Started for this test, torn down with it.
    Own(Box<TestEnv>),
    /// Shared by the whole test binary.
    Shared(&'static TestEnv),
}

impl std::ops::Deref for Env {
    type Target = TestEnv;

    fn deref(&self) -> &TestEnv {
        match self {
            Env::Own(env) => env,
            Env::Shared(env) => env,
        }
    }
}

impl Env {
    /// The test's own control plane, to restart it.
    pub fn own_mut(&mut self) -> &mut TestEnv {
        match self {
            Env::Own(env) => env,
            Env::Shared(_) => panic!("a shared control plane is not this test's to restart"),
        }
    }
}

/// A control plane with the test CRDs installed, and a namespace for the
/// test. With [`Cluster::start`] the control plane is the test's own (for
/// tests whose host watches everything); with [`Cluster::tenant`] it is
/// shared by the test binary and the test gets a namespace of its own, with
/// hosts confined to it by their grants ([`Host::start_confined`]).
pub struct Cluster {
    pub env: Env,
    pub client: Client,
    pub namespace: String,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let env = TestEnv::start()
            .await
            .unwrap_or_else(|e| panic!("control plane failed to start:\n{e}"));
        env.install_crds(crds())
            .await
            .expect("install the example CRDs");
        let client = env.client();
        Cluster::with_namespace(Env::Own(Box::new(env)), client, "e2e").await
    }

    /// Writes to `file` the grant of `module` (a guest package) confined to
    /// this cluster's namespace: what it declares, there only. Returns the path.
    pub fn confined_grant(&self, module: &str, file: &Path) -> String {
        let mut grant = grant_of(&guest(module));
        grant["permissions"]["namespaces"] = json!([self.namespace]);
        std::fs::write(file, grant.to_string()).unwrap();
        file.display().to_string()
    }

    /// A namespace `name` of its own on the control plane this test binary
    /// shares.
    pub async fn tenant(name: &str) -> Cluster {
        static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
        let env = TestEnv::shared()
            .await
            .unwrap_or_else(|e| panic!("control plane failed to start:\n{e}"));
        INSTALLED
            .get_or_init(|| async {
                env.install_crds(crds())
                    .await
                    .expect("install the example CRDs");
            })
            .await;
        // A client on this test's runtime: the shared one belongs to the
        // first test's, which may have ended.
        let client = env.new_client().await.expect("a client");
        Cluster::with_namespace(Env::Shared(env), client, name).await
    }

    /// A namespace `name` of its own on the control plane *and node* this
    /// test binary shares (`TestEnv::shared_with_node`): Pods really run,
    /// the garbage collector and the workload controllers act. `None`
    /// (after saying why) on a machine that cannot run a node, outside CI;
    /// in CI that fails the test.
    pub async fn on_node(name: &str) -> Option<Cluster> {
        let existing = std::env::var(bosun_testenv::USE_EXISTING_CLUSTER)
            .is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"));
        // A cluster of one's own has nodes already.
        if existing {
            let env = TestEnv::shared()
                .await
                .unwrap_or_else(|e| panic!("no cluster to connect to:\n{e}"));
            let client = env.new_client().await.expect("a client");
            return Some(Cluster::with_namespace(Env::Shared(env), client, name).await);
        }
        if let Err(why) = bosun_testenv::node::available() {
            assert!(
                !bosun_testenv::tools::in_ci(),
                "CI must run the node-backed tests: {why}"
            );
            eprintln!("skipped: {why}");
            return None;
        }
        static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
        let env = TestEnv::shared_with_node()
            .await
            .unwrap_or_else(|e| panic!("control plane and node failed to start:\n{e}"));
        INSTALLED
            .get_or_init(|| async {
                env.install_crds(crds())
                    .await
                    .expect("install the example CRDs");
            })
            .await;
        let client = env.new_client().await.expect("a client");
        Some(Cluster::with_namespace(Env::Shared(env), client, name).await)
    }

    /// The node the harness started under this cluster; `None` for an
    /// existing cluster (`USE_EXISTING_CLUSTER`).
    pub fn node(&self) -> Option<&bosun_testenv::node::Node> {
        self.env.node()
    }

    async fn with_namespace(env: Env, client: Client, namespace: &str) -> Cluster {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
        match Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
        {
            // `default` and the like are there already.
            Ok(_) | Err(kube::Error::Api(_)) if namespace == "default" => {}
            Ok(_) => {}
            Err(e) => panic!("create the test namespace {namespace}: {e}"),
        }
        Cluster {
            env,
            client,
            namespace: namespace.to_owned(),
        }
    }

    /// An API for a kind in the test namespace.
    pub fn api(&self, group: &str, version: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
        let resource = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: if group.is_empty() {
                version.into()
            } else {
                format!("{group}/{version}")
            },
            kind: kind.into(),
            plural: plural.into(),
        };
        Api::namespaced_with(self.client.clone(), &self.namespace, &resource)
    }

    pub fn ats(&self) -> Api<DynamicObject> {
        self.api("cnat.programming-kubernetes.info", "v1alpha1", "At", "ats")
    }

    pub fn webapps(&self) -> Api<DynamicObject> {
        self.api("examples.bosun.dev", "v1alpha1", "WebApp", "webapps")
    }

    /// The mirror example's primary objects.
    pub fn mirrors(&self) -> Api<DynamicObject> {
        self.api("examples.bosun.dev", "v1alpha1", "Mirror", "mirrors")
    }

    /// The misbehave test guest's primary objects.
    /// `bosun push` of the misbehave guest as the ReconcilerModule
    /// `misbehave` in this namespace, in `mode` (its settings), with
    /// `extra` flags (`--shadow`, `--canary …`); panics unless it succeeds.
    pub fn push_misbehave(&self, mode: &str, extra: &[&str]) {
        let dir = tempfile::tempdir().unwrap();
        let settings = dir.path().join(format!("{mode}.yaml"));
        std::fs::write(&settings, format!("mode: {mode}\n")).unwrap();
        let (misbehave, settings) = (guest("misbehave"), settings.display().to_string());
        let mut args = vec![
            "push",
            &misbehave,
            "--name",
            "misbehave",
            "-n",
            &self.namespace,
            "--settings",
            &settings,
        ];
        args.extend(extra);
        let out = self.bosun(&args);
        assert!(out.status.success(), "{}", stderr(&out));
    }

    /// Creates empty Misbehaves `names` and waits until the last one's
    /// child exists: the live version reconciles them.
    pub async fn misbehaves_reconciled(&self, names: &[&str]) {
        for name in names {
            let object: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave",
                "metadata": {"name": name}, "spec": {},
            }))
            .unwrap();
            self.misbehaves()
                .create(&PostParams::default(), &object)
                .await
                .unwrap();
        }
        let last = format!("{}-child", names.last().expect("a name"));
        eventually(
            "the live version reconciles",
            Duration::from_secs(120),
            || async { get(&self.config_maps(), &last).await },
        )
        .await;
    }

    pub fn misbehaves(&self) -> Api<DynamicObject> {
        self.api("tests.bosun.dev", "v1", "Misbehave", "misbehaves")
    }

    /// ConfigMaps in the test namespace (misbehave's children).
    pub fn config_maps(&self) -> Api<DynamicObject> {
        self.api("", "v1", "ConfigMap", "configmaps")
    }

    /// The cluster-scoped ReconcilerModules.
    pub fn reconciler_modules(&self) -> Api<DynamicObject> {
        let resource = ApiResource {
            group: "bosun.dev".into(),
            version: "v1alpha1".into(),
            api_version: "bosun.dev/v1alpha1".into(),
            kind: "ReconcilerModule".into(),
            plural: "reconcilermodules".into(),
        };
        Api::all_with(self.client.clone(), &resource)
    }

    pub fn kubeconfig(&self) -> &Path {
        self.env
            .kubeconfig_path()
            .expect("a local control plane writes a kubeconfig")
    }

    /// Runs a `bosun` command (`push`, `rollout`, `diff`, …) against this
    /// cluster, as a user with its kubeconfig would, and echoes it with
    /// its output.
    pub fn bosun(&self, args: &[&str]) -> Output {
        self.bosun_with(args, &[])
    }

    /// [`Cluster::bosun`] with these variables set besides.
    pub fn bosun_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let binary = bosun_testenv::guests::host_binary().expect("bosun builds");
        let out = Command::new(binary)
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("BOSUN_CACHE_DIR", root().join("target/e2e-module-cache"))
            .envs(env.iter().copied())
            .output()
            .expect("bosun runs");
        eprintln!(
            "$ bosun {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// A kubeconfig at `file` for a new ServiceAccount `name` in this
    /// cluster's namespace, holding nothing but what `roles` grant (Role
    /// objects, each bound to it in its own namespace) — with a token from
    /// the TokenRequest API, as the kubelet would mount it.
    pub async fn service_account_kubeconfig(
        &self,
        name: &str,
        roles: &[serde_json::Value],
        file: &Path,
    ) -> PathBuf {
        use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
        use k8s_openapi::api::core::v1::ServiceAccount;
        use k8s_openapi::api::rbac::v1::{Role, RoleBinding};

        let accounts = Api::<ServiceAccount>::namespaced(self.client.clone(), &self.namespace);
        accounts
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
            )
            .await
            .expect("the ServiceAccount");
        for role in roles {
            let role: Role = serde_json::from_value(role.clone()).expect("a Role");
            let namespace = role.metadata.namespace.clone().expect("a namespaced Role");
            let role_name = role.metadata.name.clone().expect("a named Role");
            Api::<Role>::namespaced(self.client.clone(), &namespace)
                .create(&PostParams::default(), &role)
                .await
                .expect("the Role");
            let binding: RoleBinding = serde_json::from_value(json!({
                "metadata": {"name": role_name, "namespace": namespace},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": self.namespace}],
            }))
            .unwrap();
            Api::<RoleBinding>::namespaced(self.client.clone(), &namespace)
                .create(&PostParams::default(), &binding)
                .await
                .expect("the RoleBinding");
        }
        let token = accounts
            .create_token_request(
                name,
                &PostParams::default(),
                &TokenRequest {
                    spec: TokenRequestSpec {
                        audiences: vec![],
                        expiration_seconds: Some(3600),
                        ..TokenRequestSpec::default()
                    },
                    ..TokenRequest::default()
                },
            )
            .await
            .expect("a token")
            .status
            .expect("a token status")
            .token;
        let mut kubeconfig: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(self.kubeconfig()).unwrap()).unwrap();
        kubeconfig["users"][0]["user"] = serde_yaml::to_value(json!({"token": token})).unwrap();
        std::fs::write(file, serde_yaml::to_string(&kubeconfig).unwrap()).unwrap();
        file.to_owned()
    }
}

/// The path of a built guest component.
/// A command's standard output, as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command's standard error, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The second webapp version (its children labelled revision 2).
pub fn webapp_next() -> String {
    bosun_testenv::guests::webapp_next()
        .expect("the second webapp builds")
        .display()
        .to_string()
}

pub fn guest(package: &str) -> String {
    bosun_testenv::guests::path(package)
        .expect("the guests build")
        .display()
        .to_string()
}

/// A `bosun run` process.
pub struct Host {
    child: Option<Child>,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
    _grants: Option<tempfile::TempDir>,
}

impl Host {
    /// Starts `bosun run` with these modules (package names) and extra
    /// flags, and waits until it is ready (or, with leader election, serving).
    /// Modules run with `--grant-declared` unless `extra` passes grants of
    /// its own (`--grant …`).
    pub async fn start(cluster: &Cluster, modules: &[&str], extra: &[&str]) -> Host {
        let binary = bosun_testenv::guests::host_binary().expect("bosun builds");
        Host::start_binary(&binary, cluster, modules, extra).await
    }

    /// [`Host::start`] confined to the cluster's namespace: each module is
    /// granted what it declares, within that namespace only, so hosts of
    /// tests sharing a control plane never touch each other's objects.
    pub async fn start_confined(cluster: &Cluster, modules: &[&str], extra: &[&str]) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = Vec::new();
        for module in modules {
            let file =
                cluster.confined_grant(module, &dir.path().join(format!("{module}.grant.json")));
            args.extend(["--grant".to_owned(), file]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut host = Host::start(cluster, modules, &args).await;
        host._grants = Some(dir);
        host
    }

    /// Starts `bosun run` without waiting.
    pub fn spawn(cluster: &Cluster, modules: &[&str], extra: &[&str]) -> Host {
        let binary = bosun_testenv::guests::host_binary().expect("bosun builds");
        Host::spawn_binary(&binary, cluster, modules, extra)
    }

    /// [`Host::start`] with the credentials of `kubeconfig` (e.g. a
    /// ServiceAccount's, from [`Cluster::service_account_kubeconfig`])
    /// instead of the cluster admin's.
    pub async fn start_as(
        kubeconfig: &Path,
        cluster: &Cluster,
        modules: &[&str],
        extra: &[&str],
    ) -> Host {
        let binary = bosun_testenv::guests::host_binary().expect("bosun builds");
        let host = Host::spawn_with(&binary, kubeconfig, modules, extra);
        let _ = cluster;
        // Ready includes the modules' first compile: a Python component's
        // takes 20-30 s with the debug host, more on a loaded machine.
        host.wait_until("/readyz", Duration::from_secs(180)).await;
        host
    }

    /// [`Host::start`] with this `bosun` binary (e.g. a release build).
    pub async fn start_binary(
        binary: &Path,
        cluster: &Cluster,
        modules: &[&str],
        extra: &[&str],
    ) -> Host {
        let host = Host::spawn_binary(binary, cluster, modules, extra);
        let wait_for = if extra.contains(&"--leader-elect") {
            "/healthz"
        } else {
            "/readyz"
        };
        host.wait_until(wait_for, Duration::from_secs(60)).await;
        host
    }

    /// Starts `bosun run` the way a pod of the shipped Deployment runs it:
    /// as a ServiceAccount, through in-cluster configuration. `account` holds
    /// what the kubelet mounts (`token`, `ca.crt`, `namespace`); a private
    /// mount namespace binds it over
    /// `/var/run/secrets/kubernetes.io/serviceaccount`, and
    /// `KUBERNETES_SERVICE_HOST`/`PORT` name the API server; there is no
    /// kubeconfig. Needs root (for the mount namespace).
    pub async fn start_in_cluster(cluster: &Cluster, account: &Path, extra: &[&str]) -> Host {
        const MOUNT_POINT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
        std::fs::create_dir_all(MOUNT_POINT).expect("the service account mount point");
        let url: url_parts::Url = cluster
            .env
            .server_url()
            .expect("a local control plane")
            .parse()
            .expect("the API server's URL");
        let binary = bosun_testenv::guests::host_binary().expect("bosun builds");
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("bosun.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!("mount --bind \"$0\" {MOUNT_POINT} && exec \"$@\""))
            .arg(account)
            .arg(binary)
            .arg("run")
            .args(["--telemetry-addr", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env_remove("KUBECONFIG")
            // No ~/.kube/config to find either: in-cluster configuration only.
            .env("HOME", dir.path())
            .env("KUBERNETES_SERVICE_HOST", &url.host)
            .env("KUBERNETES_SERVICE_PORT", url.port.to_string())
            .env("BOSUN_CACHE_DIR", root().join("target/e2e-module-cache"))
            .env("RUST_LOG", "info,bosun=debug")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        let host = Host {
            child: Some(command.spawn().expect("bosun starts")),
            port,
            log,
            _dir: dir,
            _grants: None,
        };
        host.wait_until("/healthz", Duration::from_secs(60)).await;
        host
    }

    fn spawn_binary(binary: &Path, cluster: &Cluster, modules: &[&str], extra: &[&str]) -> Host {
        Host::spawn_with(binary, cluster.kubeconfig(), modules, extra)
    }

    fn spawn_with(binary: &Path, kubeconfig: &Path, modules: &[&str], extra: &[&str]) -> Host {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("bosun.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(binary);
        command
            .arg("run")
            .args(
                modules
                    .iter()
                    // A package's name, or the path of a component (a variant).
                    .flat_map(|m| {
                        let module = if m.ends_with(".wasm") {
                            (*m).to_owned()
                        } else {
                            guest(m)
                        };
                        ["--module".to_owned(), module]
                    }),
            )
            .args(["--telemetry-addr", &format!("127.0.0.1:{port}")])
            .args(
                (!extra.iter().any(|arg| arg.starts_with("--grant"))).then_some("--grant-declared"),
            )
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("BOSUN_CACHE_DIR", root().join("target/e2e-module-cache"))
            .env("RUST_LOG", "info,bosun=debug")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        let child = command.spawn().expect("bosun starts");
        Host {
            child: Some(child),
            port,
            log,
            _dir: dir,
            _grants: None,
        }
    }

    /// Waits until `path` answers 200.
    pub async fn wait_until(&self, path: &str, timeout: Duration) {
        let started = Instant::now();
        loop {
            if let Ok((200, _)) = self.get(path).await {
                return;
            }
            if started.elapsed() > timeout {
                panic!(
                    "bosun did not answer 200 on {path} within {timeout:?}; its log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// GETs a telemetry path: (status, body).
    pub async fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// The value of one metric sample (exact name and labels), 0 if absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        let (_, body) = self.get("/metrics").await.unwrap_or_default();
        body.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                // A bucket's exemplar (` # {trace_id="…"} value`) follows.
                let line = line.split(" # ").next().unwrap_or(line);
                let (name, value) = line.rsplit_once(' ')?;
                (name == sample).then(|| value.parse().ok()).flatten()
            })
            .unwrap_or(0.0)
    }

    /// The process's resident memory now (`VmRSS`), in bytes; None once
    /// it has exited.
    pub fn resident_bytes(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }

    /// What the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        child.wait().ok().and_then(|status| status.code())
    }

    /// Kills the process at once (a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- bosun log ----\n{}", self.log());
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Polls `check` until it returns Some, or panics after `timeout` saying `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if started.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The value of one of `object`'s labels.
pub fn label(object: &DynamicObject, key: &str) -> Option<String> {
    object.metadata.labels.as_ref()?.get(key).cloned()
}

/// Reads an object, None if it does not exist.
pub async fn get(api: &Api<DynamicObject>, name: &str) -> Option<DynamicObject> {
    api.get_opt(name).await.expect("read from the API server")
}

/// A Misbehave object asking for `mode`, in the test namespace.
pub fn misbehave(name: &str, mode: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave",
        "metadata": {"name": name},
        "spec": {"mode": mode}
    }))
    .expect("a Misbehave object")
}

/// The permissions block that grants `module` (a component's path) exactly
/// what it declares: what a ReconcilerModule's `spec.permissions` takes.
pub fn permissions_of(module: &str) -> serde_json::Value {
    grant_of(module)["permissions"].clone()
}

/// The grant file `bosun inspect --grant` prints for `module`.
pub fn grant_of(module: &str) -> serde_json::Value {
    bosun_json(&["inspect", "--grant", module], None)
}

/// What the `bosun` command line prints with `args` and `-o json`, against
/// the cluster of `kubeconfig` when one is given; fails the test, quoting
/// its stderr, when bosun does.
pub fn bosun_json(args: &[&str], kubeconfig: Option<&Path>) -> serde_json::Value {
    let binary = bosun_testenv::guests::host_binary().expect("bosun builds");
    let mut command = Command::new(binary);
    command.args(args).args(["-o", "json"]);
    if let Some(kubeconfig) = kubeconfig {
        command.env("KUBECONFIG", kubeconfig);
    }
    let out = command.output().expect("bosun runs");
    assert!(
        out.status.success(),
        "bosun {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("bosun prints JSON")
}

/// [`permissions_of`] `module`, confined to `namespaces`.
pub fn permissions_with_namespaces(module: &str, namespaces: &[&str]) -> serde_json::Value {
    let mut permissions = permissions_of(module);
    permissions["namespaces"] = json!(namespaces);
    permissions
}

/// A UTC time `seconds` from now in cnat's schedule layout.
pub fn schedule_in(seconds: i64) -> String {
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(seconds);
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The host's `Reconciled` condition on `object`, if it carries one.
pub fn reconciled_condition(object: &DynamicObject) -> Option<serde_json::Value> {
    object
        .data
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Reconciled")
        .cloned()
}

/// Waits for a Warning event with `reason` about the object `name` in the
/// cluster's namespace, and returns its note.
pub async fn warning(cluster: &Cluster, name: &str, reason: &str) -> String {
    event(cluster, name, reason, Some("Warning")).await
}

/// Waits for an event of any type with `reason` about the object `name` in
/// the cluster's namespace, and returns its note.
pub async fn warning_or_normal(cluster: &Cluster, name: &str, reason: &str) -> String {
    event(cluster, name, reason, None).await
}

async fn event(cluster: &Cluster, name: &str, reason: &str, type_: Option<&str>) -> String {
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(
        cluster.client.clone(),
        &cluster.namespace,
    );
    eventually(
        &format!("a {} {reason} event about {name}", type_.unwrap_or("")),
        Duration::from_secs(60),
        || async {
            let list = events.list(&kube::api::ListParams::default()).await.ok()?;
            list.items.into_iter().find_map(|e| {
                (type_.is_none_or(|t| e.type_.as_deref() == Some(t))
                    && e.reason.as_deref() == Some(reason)
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
                .then(|| e.note.unwrap_or_default())
            })
        },
    )
    .await
}

/// What someone checking that an object was not touched compares: its
/// resourceVersion, ownerReferences and field managers, read from the API
/// server.
pub async fn fingerprint(
    api: &Api<DynamicObject>,
    name: &str,
) -> (Option<String>, serde_json::Value, Vec<String>) {
    let object = api.get(name).await.expect("the object exists");
    (
        object.metadata.resource_version.clone(),
        json!(object.metadata.owner_references),
        object
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|m| m.manager.clone())
            .collect(),
    )
}

/// The condition of `type_` in a ReconcilerModule's status.
pub fn condition(module: &DynamicObject, type_: &str) -> Option<serde_json::Value> {
    module
        .data
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

/// Waits until the ReconcilerModule's `Loaded` condition has this status and
/// reason, at the current generation, and returns the resource.
pub async fn wait_loaded(
    modules: &Api<DynamicObject>,
    name: &str,
    status: &str,
    reason: &str,
) -> DynamicObject {
    eventually(
        &format!("ReconcilerModule {name} Loaded={status} ({reason})"),
        Duration::from_secs(60),
        || async {
            get(modules, name).await.filter(|m| {
                let observed = m
                    .data
                    .pointer("/status/observedGeneration")
                    .and_then(serde_json::Value::as_i64);
                observed == m.metadata.generation
                    && condition(m, "Loaded")
                        .is_some_and(|c| c["status"] == status && c["reason"] == reason)
            })
        },
    )
    .await
}

/// How a test server answers a path.
#[derive(Clone)]
pub enum Answer {
    /// 200 OK with these bytes.
    Bytes(Vec<u8>),
    /// 302 Found to this location.
    Redirect(String),
    /// Reads the request and never answers.
    Silent,
}

/// Serves each path's answer to GETs on a loopback port until the test ends
/// (404 for other paths).
pub async fn serve(routes: Vec<(&'static str, Answer)>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let routes = std::sync::Arc::new(routes);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let routes = routes.clone();
            tokio::spawn(async move {
                let mut request = vec![0u8; 8192];
                let n = stream.read(&mut request).await.unwrap_or(0);
                let line = String::from_utf8_lossy(&request[..n])
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let path = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let answer = routes
                    .iter()
                    .find(|(p, _)| *p == path)
                    .map(|(_, answer)| answer.clone());
                let (status, location, body) = match answer {
                    Some(Answer::Bytes(body)) => ("200 OK", None, body),
                    Some(Answer::Redirect(to)) => ("302 Found", Some(to), Vec::new()),
                    Some(Answer::Silent) => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    None => ("404 Not Found", None, Vec::new()),
                };
                let location = location
                    .map(|to| format!("Location: {to}\r\n"))
                    .unwrap_or_default();
                let head = format!(
                    "HTTP/1.1 {status}\r\n{location}Content-Type: application/wasm\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            });
        }
    });
    port
}

/// The sha256 of `bytes`, lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The host and port of an `https://host:port` URL.
mod url_parts {
    pub struct Url {
        pub host: String,
        pub port: u16,
    }

    impl std::str::FromStr for Url {
        type Err = String;

        fn from_str(text: &str) -> Result<Url, String> {
            let rest = text.strip_prefix("https://").ok_or("not https")?;
            let authority = rest.split('/').next().unwrap_or(rest);
            let (host, port) = authority.rsplit_once(':').ok_or("no port")?;
            Ok(Url {
                host: host.to_owned(),
                port: port.parse().map_err(|_| "a bad port")?,
            })
        }
    }
}

/// `bytes`, gzip-compressed.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("compress");
    encoder.finish().expect("compress")
}

/// `text` in standard base64, as Secrets and docker configs hold it.
pub fn base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// README.md's console transcript whose first command is `$ first`: each
/// command (a trailing `# comment` dropped) with the lines README shows it
/// printing. Panics when README has no such transcript: the test and the
/// README have drifted apart.
pub fn readme_transcript(first: &str) -> Vec<(String, Vec<String>)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md reads");
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line != "```console" {
            continue;
        }
        let block: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        let command = |line: &str| {
            line.strip_prefix("$ ")
                .map(|c| c.split("  #").next().unwrap_or(c).trim().to_owned())
        };
        if block.first().and_then(|l| command(l)).as_deref() != Some(first) {
            continue;
        }
        let mut transcript: Vec<(String, Vec<String>)> = Vec::new();
        for line in block {
            match (command(line), transcript.last_mut()) {
                (Some(command), _) => transcript.push((command, Vec::new())),
                (None, Some((_, printed))) => printed.push(line.to_owned()),
                (None, None) => {}
            }
        }
        return transcript;
    }
    panic!("README.md has no console transcript starting with `$ {first}`");
}

/// `line` with what differs between runs made alike: README's namespace
/// (`shop`) is `namespace`, an abbreviated digest (hex, then `…`) is
/// `<digest>…`, and every run of digits is `#`.
pub fn shape(line: &str, namespace: &str) -> String {
    let line = line.replace("shop", namespace);
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let mut digits = false;
        for c in word.chars() {
            if c.is_ascii_digit() {
                if !digits {
                    out.push('#');
                }
                digits = true;
            } else {
                out.push(c);
                digits = false;
            }
        }
        word.clear();
    };
    for c in line.chars() {
        if c == '…' && word.len() >= 6 && word.chars().all(|c| c.is_ascii_hexdigit()) {
            word.clear();
            out.push_str("<digest>");
        }
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Asserts that `printed`, what `command` of README's transcript starting
/// with `first` printed here, has every line README shows for it, in
/// order and alike up to [`shape`] (README's `…` lines stand for lines
/// left out): README's transcripts are tested as written.
pub fn assert_prints_as_readme(first: &str, command: &str, printed: &str, namespace: &str) {
    let transcript = readme_transcript(first);
    let (_, shown) = transcript
        .iter()
        .find(|(c, _)| c == command)
        .unwrap_or_else(|| panic!("README's transcript from `$ {first}` has no `$ {command}`"));
    let actual: Vec<String> = printed.lines().map(|l| shape(l, namespace)).collect();
    let mut from = 0;
    for line in shown.iter().filter(|l| l.trim() != "…") {
        // README writes `shop`; what was printed names `namespace`.
        let expected = shape(line, namespace);
        match actual[from..].iter().position(|a| *a == expected) {
            Some(at) => from += at + 1,
            None => panic!(
                "README shows `$ {command}` printing\n  {line}\nwhich this run did not print (as `{expected}`) after line {from}:\n{printed}"
            ),
        }
    }
}

/// The ReconcilerModule `name`'s `status.rollout`, once it satisfies
/// `done` (within `timeout`).
pub async fn rollout_status(
    modules: &Api<DynamicObject>,
    name: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    eventually(what, timeout, || async {
        get(modules, name)
            .await
            .and_then(|m| m.data.pointer("/status/rollout").cloned())
            .filter(|r| done(r))
    })
    .await
}
