//! The pair lane on a real node (`cargo xtask soak --node`): the shipped
//! image in Pods, installed the way README's "Install in a cluster" does
//! it — `kubectl apply --server-side -k` of an overlay of
//! `deploy/overlays/examples` naming the image `cargo xtask image` built
//! from the soak's host binary, loaded into the node's containerd. The
//! Deployment's two replicas campaign for the Lease; its ReplicaSet
//! replaces a deleted Pod and the kubelet restarts a killed container.
//!
//! The install runs under the shipped ServiceAccount and RBAC (ClusterRole
//! `bosun-host`, and `bosun-example-modules` for cnat and webapp), plus
//! what README's "RBAC for your modules" says to bind for the rest: `bosun
//! rbac --from-cluster` over the pair's ReconcilerModules (Roles in the
//! namespaces their grants name, `bosun-soak-modules`), each bound to the
//! host's account. RBAC refuses what no module needs; the audit log still
//! shows every write attempted.
//!
//! A failover ends the leader one of three ways, in turn: its Pod deleted
//! (SIGTERM, the Lease handed over), its Pod force-deleted (no grace: the
//! object goes at once, the kubelet kills the container), or its `bosun`
//! process SIGKILLed on the machine (a crash: the Lease lapses, the
//! kubelet restarts the container in the same Pod).
//!
//! Each Pod's host is a process on this machine (under containerd, in the
//! node's cgroup): the sampler reads its `/proc` like a host process's,
//! found by its command line (`/bosun`) and its `HOSTNAME` (the Pod's
//! name) — the lowest such pid, since a compile worker is the host's
//! child. Its telemetry is read at the Pod's IP, which the machine routes
//! to the node.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams};
use serde_json::{Value, json};

use super::cluster::SYSTEM_NAMESPACE;
use super::hosts::{Exit, Failover, FailoverKind, Instance, holder, leads};

/// The repository the soak's image is loaded as.
pub const IMAGE: &str = "registry.example.com/bosun";
/// Its tag.
const TAG: &str = "soak";
/// The shipped Pods' label.
const SELECTOR: &str = "app.kubernetes.io/name=bosun";
/// The shipped `--telemetry-addr` port.
const TELEMETRY_PORT: u16 = 8080;
/// How long a failover may take, from the leader ended to the new leader
/// ready: a new Pod's host compiles its modules when it takes over (the
/// compile cache is an emptyDir), on a 2-core machine shared with the node.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(180);

/// The name of the soak's module roles and their bindings.
const MODULE_ROLES: &str = "bosun-soak-modules";

/// The pair as the shipped Deployment's Pods.
pub struct PodPair {
    client: kube::Client,
    /// Each Pod's container restarts as last seen.
    restarts: BTreeMap<String, i32>,
    /// Pods whose next container restart the chaos caused.
    killed: BTreeSet<String>,
    /// What the install was.
    pub description: String,
}

impl PodPair {
    /// Builds the image from `binary`, loads it into `node`, and installs
    /// the shipped overlay with it (`kubectl apply --server-side -k`).
    /// The modules must be published already: their RBAC is derived from
    /// their ReconcilerModules, and bound before the Pods start so no
    /// module waits out a `MissingRBAC` retry.
    pub fn deploy(
        client: &kube::Client,
        node: &bosun_testenv::node::Node,
        binary: &Path,
        cache: &Path,
        admin_kubeconfig: &Path,
        out: &Path,
    ) -> Result<PodPair> {
        let started = Instant::now();
        let mut options = crate::image::Options::new(binary.to_owned(), out.join("image"))?;
        options.tag = TAG.into();
        let image = crate::image::build(&options).context("building the image")?;
        node.load_image(&image.archive, IMAGE)
            .map_err(|e| anyhow::anyhow!("loading the image into the node: {e}"))?;
        eprintln!(
            "soak: image {} built and loaded in {:.1} s",
            image.manifest.digest,
            started.elapsed().as_secs_f64()
        );
        let dir = out.join("install");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let overlay = bosun_testenv::guests::workspace_root().join("deploy/overlays/examples");
        // kustomize takes only relative paths to other kustomizations.
        let base = relative(&dir, &overlay)?;
        std::fs::write(
            dir.join("kustomization.yaml"),
            format!(
                "resources: [{}]\nimages:\n  - {{name: ghcr.io/bosun-dev/bosun, newName: {IMAGE}, newTag: {TAG}}}\n",
                base.display()
            ),
        )?;
        let rbac = dir.join("modules-rbac.json");
        std::fs::write(
            &rbac,
            serde_json::to_string_pretty(&module_rbac(binary, cache, admin_kubeconfig)?)?,
        )?;
        kubectl(admin_kubeconfig, &["apply", "--server-side", "-f"], &rbac)?;
        kubectl(
            admin_kubeconfig,
            &["apply", "--server-side", "--force-conflicts", "-k"],
            &dir,
        )?;
        Ok(PodPair {
            client: client.clone(),
            restarts: BTreeMap::new(),
            killed: BTreeSet::new(),
            description: format!(
                "the shipped Deployment (deploy/overlays/examples, 2 replicas, --leader-elect with client-go's defaults, --modules-from-cluster) of image {IMAGE}:{TAG} ({}) in Pods on the node, under the shipped ServiceAccount and RBAC plus the Roles `bosun rbac --from-cluster` prints for the modules",
                image.manifest.digest
            ),
        })
    }

    /// The failovers, in turn.
    pub fn failover_kinds(&self) -> &'static [FailoverKind] {
        &[
            FailoverKind::DeletePod,
            FailoverKind::ForceDeletePod,
            FailoverKind::KillContainer,
        ]
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), SYSTEM_NAMESPACE)
    }

    /// The Pods running now (not being deleted, with an address), as
    /// instances; the pid is 0 while the host's process is not found.
    pub async fn instances(&self) -> Vec<Instance> {
        let Ok(list) = self
            .pods()
            .list(&ListParams::default().labels(SELECTOR))
            .await
        else {
            return Vec::new();
        };
        list.items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|pod| {
                let name = pod.metadata.name.clone()?;
                let ip: std::net::IpAddr = pod.status.as_ref()?.pod_ip.as_ref()?.parse().ok()?;
                Some(Instance {
                    pid: host_pid(&name).unwrap_or(0),
                    id: name,
                    telemetry: SocketAddr::new(ip, TELEMETRY_PORT),
                })
            })
            .collect()
    }

    /// The instance holding the Lease, if one does and runs.
    pub async fn leader(&self) -> Option<Instance> {
        let holder = holder(&self.client).await?;
        let name = holder.split('_').next()?.to_owned();
        self.instances().await.into_iter().find(|i| i.id == name)
    }

    /// Ends the leader by `kind` and waits for a host (another Pod's, or
    /// for a killed container the same Pod's restarted one) to lead with
    /// its caches synced, then for the Deployment to have two Ready Pods.
    pub async fn fail_over(&mut self, kind: FailoverKind) -> Result<Failover> {
        let started = Instant::now();
        let leader = loop {
            if let Some(leader) = self.leader().await {
                break leader;
            }
            if started.elapsed() > TAKEOVER_TIMEOUT {
                bail!("no Pod of the pair led within {TAKEOVER_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let identity = holder(&self.client).await.unwrap_or_default();
        let at = Instant::now();
        match kind {
            FailoverKind::DeletePod => {
                self.pods()
                    .delete(&leader.id, &DeleteParams::default())
                    .await?;
            }
            FailoverKind::ForceDeletePod => {
                let force = DeleteParams {
                    grace_period_seconds: Some(0),
                    ..DeleteParams::default()
                };
                self.pods().delete(&leader.id, &force).await?;
            }
            FailoverKind::KillContainer => {
                let pid = host_pid(&leader.id)
                    .with_context(|| format!("no bosun process of Pod {}", leader.id))?;
                self.killed.insert(leader.id.clone());
                // SAFETY: a plain syscall on a pid just read from /proc.
                if unsafe { libc::kill(pid as i32, libc::SIGKILL) } != 0 {
                    bail!(
                        "killing {pid} ({}): {}",
                        leader.id,
                        std::io::Error::last_os_error()
                    );
                }
            }
            other => bail!("{} is not a failover of Pods", other.name()),
        }
        // A restarted container keeps its Pod's name; the holder's random
        // suffix tells a new campaign from the old.
        let to = loop {
            if let Some(next) = holder(&self.client).await
                && next != identity
            {
                break next.split('_').next().unwrap_or_default().to_owned();
            }
            if at.elapsed() > TAKEOVER_TIMEOUT {
                bail!(
                    "no other host took the Lease within {TAKEOVER_TIMEOUT:?} of {}",
                    kind.name()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let lease_taken = at.elapsed();
        loop {
            let ready = match self.instances().await.into_iter().find(|i| i.id == to) {
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
        let ready = at.elapsed();
        self.wait_replicas(TAKEOVER_TIMEOUT.saturating_sub(at.elapsed()))
            .await?;
        Ok(Failover {
            kind,
            from: leader.id,
            to,
            at,
            lease_taken,
            ready,
            replaced: Some(at.elapsed()),
        })
    }

    /// Waits until two Pods, not being deleted, are Ready.
    async fn wait_replicas(&self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            let ready = match self
                .pods()
                .list(&ListParams::default().labels(SELECTOR))
                .await
            {
                Ok(list) => list.items.iter().filter(|p| is_ready(p)).count(),
                Err(_) => 0,
            };
            if ready == 2 {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!("the Deployment had {ready} Ready Pods, not 2, after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until two Pods are Ready and one leads with its caches synced.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        self.wait_replicas(timeout).await?;
        loop {
            if let Some(leader) = self.leader().await
                && leads(&leader).await
            {
                // Restarts before the run are told, not counted.
                for exit in self.supervise().await {
                    eprintln!(
                        "soak: pair Pod {} restarted while starting: {}\n{}",
                        exit.id, exit.status, exit.tail
                    );
                }
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!("no Pod of the pair led with its caches synced within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Container restarts the chaos did not cause, each as an exit (the
    /// kubelet restarts the container, as the process lane's supervisor
    /// restarts a process).
    pub async fn supervise(&mut self) -> Vec<Exit> {
        let Ok(list) = self
            .pods()
            .list(&ListParams::default().labels(SELECTOR))
            .await
        else {
            return Vec::new();
        };
        let mut exits = Vec::new();
        let mut seen = BTreeMap::new();
        for pod in &list.items {
            let Some(name) = pod.metadata.name.clone() else {
                continue;
            };
            let statuses = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.clone())
                .unwrap_or_default();
            let restarts: i32 = statuses.iter().map(|c| c.restart_count).sum();
            let before = self.restarts.get(&name).copied().unwrap_or(0);
            if restarts > before && !self.killed.remove(&name) {
                let status = statuses
                    .iter()
                    .find_map(|c| c.last_state.as_ref()?.terminated.as_ref())
                    .map_or_else(
                        || "container restarted".to_owned(),
                        |t| {
                            format!(
                                "container restarted: {} (exit code {})",
                                t.reason.as_deref().unwrap_or("terminated"),
                                t.exit_code
                            )
                        },
                    );
                let log = self
                    .pods()
                    .logs(
                        &name,
                        &LogParams {
                            previous: true,
                            tail_lines: Some(400),
                            ..LogParams::default()
                        },
                    )
                    .await
                    .unwrap_or_default();
                exits.push(Exit {
                    id: name.clone(),
                    at: Instant::now(),
                    status,
                    lost_lease: log.contains("lost the leader lease"),
                    tail: tail(&log, 12),
                });
            }
            seen.insert(name, restarts);
        }
        self.restarts = seen;
        exits
    }

    /// Writes each running Pod's log to `logs/<pod>.log` (the end of the
    /// run; a deleted Pod's log went with it).
    pub async fn save_logs(&self, logs: &Path) {
        for instance in self.instances().await {
            if let Ok(text) = self.pods().logs(&instance.id, &LogParams::default()).await {
                let _ = std::fs::write(logs.join(format!("{}.log", instance.id)), text);
            }
        }
    }
}

/// `kubectl ARGS PATH` as the admin.
fn kubectl(kubeconfig: &Path, args: &[&str], path: &Path) -> Result<()> {
    let output = Command::new("kubectl")
        .args(args)
        .arg(path)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .context("running kubectl (1.27 or newer, with kustomize built in)")?;
    if !output.status.success() {
        bail!(
            "kubectl {} {}: {}{}",
            args.join(" "),
            path.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// What `bosun rbac --from-cluster` prints for the published modules (a
/// role per namespace their grants name, or a ClusterRole), each with a
/// binding to the shipped account, as one `List`.
fn module_rbac(binary: &Path, cache: &Path, kubeconfig: &Path) -> Result<Value> {
    let output = Command::new(binary)
        .args([
            "rbac",
            "--from-cluster",
            "--name",
            MODULE_ROLES,
            "-o",
            "json",
        ])
        .arg("--cache-dir")
        .arg(cache)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .context("running bosun rbac")?;
    if !output.status.success() {
        bail!(
            "bosun rbac --from-cluster: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let printed: Value =
        serde_json::from_slice(&output.stdout).context("bosun rbac printed no JSON")?;
    let roles = match printed["kind"].as_str() {
        Some("List") => printed["items"].as_array().cloned().unwrap_or_default(),
        _ => vec![printed],
    };
    let subject =
        json!([{"kind": "ServiceAccount", "name": "bosun", "namespace": SYSTEM_NAMESPACE}]);
    let mut items = Vec::new();
    for role in roles {
        let binding = match role["kind"].as_str() {
            Some("Role") => json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": role["metadata"]["name"], "namespace": role["metadata"]["namespace"]},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]},
                "subjects": subject,
            }),
            Some("ClusterRole") => json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": role["metadata"]["name"]},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role["metadata"]["name"]},
                "subjects": subject,
            }),
            other => bail!("bosun rbac printed a {other:?}, not a role"),
        };
        items.push(role);
        items.push(binding);
    }
    Ok(json!({"apiVersion": "v1", "kind": "List", "items": items}))
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pid of the `bosun` host in Pod `pod`: a process whose command is
/// `/bosun` and whose `HOSTNAME` is the Pod's name; the lowest, since the
/// compile worker is the host's child.
pub fn host_pid(pod: &str) -> Option<u32> {
    let hostname = format!("HOSTNAME={pod}");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            if !cmdline.starts_with(b"/bosun\0") {
                return None;
            }
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            environ
                .split(|b| *b == 0)
                .any(|var| var == hostname.as_bytes())
                .then_some(pid)
        })
        .min()
}

/// `to` relative to the directory `from` (both made absolute).
fn relative(from: &Path, to: &Path) -> Result<PathBuf> {
    let from = std::fs::canonicalize(from)?;
    let to = std::fs::canonicalize(to)?;
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for component in &to[common..] {
        path.push(component);
    }
    Ok(path)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
