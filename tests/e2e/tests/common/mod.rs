//! Helpers for the end-to-end tests: a control plane per test, the `bosun`
//! binary run as an operator would run it, and polling.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

/// A control plane of its own (the host watches every namespace, so tests
/// cannot share one), with the example CRDs installed and a namespace.
pub struct Cluster {
    pub env: TestEnv,
    pub client: Client,
    pub namespace: String,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let env = TestEnv::start()
            .await
            .unwrap_or_else(|e| panic!("control plane failed to start:\n{e}"));
        env.install_crds([
            root().join("examples/cnat/crd.yaml"),
            root().join("examples/webapp/crd.yaml"),
            root().join("tests/guests/janitor/crd.yaml"),
            root().join("deploy/reconcilermodule-crd.yaml"),
        ])
        .await
        .expect("install the example CRDs");
        let client = env.client();
        let namespace = "e2e".to_owned();
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create the test namespace");
        Cluster {
            env,
            client,
            namespace,
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
}

/// The path of a built guest component.
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
}

impl Host {
    /// Starts `bosun run` with these modules (package names) and extra
    /// flags, and waits until it is ready (or, with leader election, serving).
    pub async fn start(cluster: &Cluster, modules: &[&str], extra: &[&str]) -> Host {
        let binary = bosun_testenv::guests::host_binary().expect("bosun builds");
        Host::start_binary(&binary, cluster, modules, extra).await
    }

    /// Starts `bosun run` without waiting.
    pub fn spawn(cluster: &Cluster, modules: &[&str], extra: &[&str]) -> Host {
        let binary = bosun_testenv::guests::host_binary().expect("bosun builds");
        Host::spawn_binary(&binary, cluster, modules, extra)
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

    fn spawn_binary(binary: &Path, cluster: &Cluster, modules: &[&str], extra: &[&str]) -> Host {
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
                    .flat_map(|m| ["--module".to_owned(), guest(m)]),
            )
            .args(["--telemetry-addr", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("KUBECONFIG", cluster.kubeconfig())
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
                let (name, value) = line.rsplit_once(' ')?;
                (name == sample).then(|| value.parse().ok()).flatten()
            })
            .unwrap_or(0.0)
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

/// A UTC time `seconds` from now in cnat's schedule layout.
pub fn schedule_in(seconds: i64) -> String {
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(seconds);
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
