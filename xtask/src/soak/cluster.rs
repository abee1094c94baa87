//! The soak's cluster: a control plane of its own (kube-apiserver and
//! etcd; with `--node`, testenv's real node beside it), the API server
//! writing an audit log of every write the hosts attempt, the CRDs, the
//! namespaces of each lane, and the identity the hosts run as.
//!
//! The hosts of each lane authenticate as a ServiceAccount of their own
//! (`bosun-system/bosun-steady`, `bosun-system/bosun`). The processes'
//! accounts are bound to `cluster-admin`: RBAC does not stand between a
//! host and a write outside its grants, so nothing but the host's own
//! rules keeps it inside them. With `--node` the pair runs as the shipped
//! install ([`super::pods`]), under the shipped ServiceAccount and RBAC,
//! which refuse some writes a grant would too. Either way the audit log
//! (filtered to those users) shows every write each lane attempted,
//! whatever the API server answered. Processes get a kubeconfig with a
//! token from the TokenRequest API.
//!
//! The audit log also holds the garbage collector's deletes (with
//! `--node`, kube-controller-manager's runs): the orphan check counts the
//! children it took ([`super::checks::orphans`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use bosun_testenv::TestEnv;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, ApiResource, PostParams};
use serde_json::json;

/// Where the hosts keep their Lease, their modules' ConfigMaps and their
/// ServiceAccount.
pub const SYSTEM_NAMESPACE: &str = "bosun-system";
/// Objects no module may touch, of every kind, in a namespace no grant names.
pub const BYSTANDER_NAMESPACE: &str = "soak-bystanders";
/// The user kube-controller-manager's garbage collector acts as (it runs
/// with `--use-service-account-credentials`).
pub const GARBAGE_COLLECTOR: &str = "system:serviceaccount:kube-system:generic-garbage-collector";

/// A set of hosts and the namespaces its modules are granted: the steady
/// host (one process, never killed) or the leader-elected pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    /// One host, no leader election, modules from `--modules-dir`, alive
    /// for the whole run: the one whose memory says most about leaks.
    Steady,
    /// Two hosts with `--leader-elect`, modules from ReconcilerModules:
    /// failovers.
    Pair,
}

impl Lane {
    /// Both lanes.
    pub const ALL: [Lane; 2] = [Lane::Steady, Lane::Pair];

    /// The lane's name, in reports and object names.
    pub fn name(self) -> &'static str {
        match self {
            Lane::Steady => "steady",
            Lane::Pair => "pair",
        }
    }

    /// The namespace of the example modules' objects and of the honest
    /// tenant of misbehave.
    pub fn apps(self) -> String {
        format!("soak-{}", self.name())
    }

    /// The namespace of the hostile guests' objects.
    pub fn hostile(self) -> String {
        format!("soak-{}-hostile", self.name())
    }

    /// Both namespaces.
    pub fn namespaces(self) -> [String; 2] {
        [self.apps(), self.hostile()]
    }

    /// The ServiceAccount the lane's hosts run as.
    pub fn account(self) -> &'static str {
        match self {
            Lane::Steady => "bosun-steady",
            Lane::Pair => "bosun",
        }
    }

    /// The user the API server sees for the lane's hosts.
    pub fn user(self) -> String {
        format!(
            "system:serviceaccount:{SYSTEM_NAMESPACE}:{}",
            self.account()
        )
    }
}

/// The running cluster.
pub struct Cluster {
    /// The control plane; the chaos restarts its API server.
    pub env: TestEnv,
    /// An admin client: the workload, the checks.
    pub client: kube::Client,
    /// The admin's kubeconfig (`bosun push`).
    pub admin_kubeconfig: PathBuf,
    /// Each lane's host processes' kubeconfig: its ServiceAccount's token
    /// (with `--node`, the steady lane's only: the pair runs in Pods).
    pub host_kubeconfigs: std::collections::BTreeMap<Lane, PathBuf>,
    /// The API server's audit log (JSON lines) of the hosts' writes.
    pub audit_log: PathBuf,
}

impl Cluster {
    /// Starts the control plane (and with `node` a node beside it),
    /// installs the CRDs, makes the namespaces and the host processes'
    /// identity.
    pub async fn start(out: &Path, lifetime: Duration, node: bool) -> Result<Cluster> {
        let audit_log = out.join("audit.log");
        let policy = out.join("audit-policy.json");
        let _ = std::fs::remove_file(&audit_log);
        std::fs::write(&policy, audit_policy().to_string())
            .with_context(|| format!("writing {}", policy.display()))?;
        let mut builder = TestEnv::builder().use_existing_cluster(false);
        if node {
            builder = builder.node(bosun_testenv::node::NodeOptions::default());
        }
        let env = builder
            .apiserver_arg(format!("--audit-policy-file={}", policy.display()))
            .apiserver_arg(format!("--audit-log-path={}", audit_log.display()))
            .apiserver_arg("--audit-log-format=json")
            // One file, never rotated (the default rotates at 100 MB).
            .apiserver_arg("--audit-log-maxsize=100000")
            .start()
            .await
            .map_err(|e| anyhow!("the control plane did not start: {e}"))?;
        if let Some(node) = env.node() {
            eprintln!(
                "soak: node {} ready in {:.1} s",
                node.name(),
                node.startup_duration().as_secs_f64()
            );
        }
        let root = bosun_testenv::guests::workspace_root();
        env.install_crds(
            [
                "examples/cnat/crd.yaml",
                "examples/webapp/crd.yaml",
                "examples/mirror/crd.yaml",
                "tests/guests/misbehave/crd.yaml",
                "deploy/base/reconcilermodule-crd.yaml",
            ]
            .map(|path| root.join(path)),
        )
        .await
        .map_err(|e| anyhow!("installing the CRDs: {e}"))?;
        let client = env.client();
        let mut namespaces = vec![SYSTEM_NAMESPACE.to_owned(), BYSTANDER_NAMESPACE.to_owned()];
        for lane in Lane::ALL {
            namespaces.extend(lane.namespaces());
        }
        for name in &namespaces {
            let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
            Api::<Namespace>::all(client.clone())
                .create(&PostParams::default(), &namespace)
                .await
                .with_context(|| format!("creating the namespace {name}"))?;
        }
        let admin_kubeconfig = env
            .kubeconfig_path()
            .context("the control plane wrote no kubeconfig")?
            .to_owned();
        let mut host_kubeconfigs = std::collections::BTreeMap::new();
        // With a node the pair's Pods take the shipped ServiceAccount's
        // token; the install makes the account.
        let processes: &[Lane] = if node { &[Lane::Steady] } else { &Lane::ALL };
        for &lane in processes {
            let file = out.join(format!("{}.kubeconfig", lane.name()));
            host_identity(&env, &client, lane.account(), &file, lifetime).await?;
            host_kubeconfigs.insert(lane, file);
        }
        Ok(Cluster {
            env,
            client,
            admin_kubeconfig,
            host_kubeconfigs,
            audit_log,
        })
    }
}

/// Every write the hosts' user attempts, at the Metadata level (the
/// request's URI — with its `fieldManager` — the object's reference, the
/// answer's code), once the answer is sent, and the garbage collector's
/// deletes; nothing else.
fn audit_policy() -> serde_json::Value {
    json!({
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived", "ResponseStarted", "Panic"],
        "rules": [
            {
                "level": "Metadata",
                "users": Lane::ALL.map(Lane::user),
                "verbs": ["create", "update", "patch", "delete", "deletecollection"],
            },
            {
                "level": "Metadata",
                "users": [GARBAGE_COLLECTOR],
                "verbs": ["delete"],
            },
            {"level": "None"},
        ],
    })
}

/// The ServiceAccount `account` hosts run as, bound to `cluster-admin`,
/// and a kubeconfig at `file` holding a token for it valid for `lifetime`
/// and an hour more.
async fn host_identity(
    env: &TestEnv,
    client: &kube::Client,
    account: &str,
    file: &Path,
    lifetime: Duration,
) -> Result<()> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": account}}))?,
        )
        .await
        .with_context(|| format!("creating the ServiceAccount {account}"))?;
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": format!("soak-{account}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": SYSTEM_NAMESPACE}],
    }))?;
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .with_context(|| format!("binding the ServiceAccount {account}"))?;
    let seconds = lifetime.as_secs() as i64 + 3600;
    let token = accounts
        .create_token_request(
            account,
            &PostParams::default(),
            &TokenRequest {
                spec: TokenRequestSpec {
                    audiences: vec![],
                    expiration_seconds: Some(seconds),
                    ..TokenRequestSpec::default()
                },
                ..TokenRequest::default()
            },
        )
        .await
        .with_context(|| format!("a token for the ServiceAccount {account}"))?
        .status
        .context("a TokenRequest without a status")?
        .token;
    let server = env.server_url().context("no API server URL")?;
    let ca = env
        .dir()
        .context("no control-plane directory")?
        .join("pki/ca.crt");
    // JSON is YAML: a kubeconfig kube and the host read.
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "soak", "cluster": {"server": server, "certificate-authority": ca}}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "soak", "context": {"cluster": "soak", "user": account, "namespace": SYSTEM_NAMESPACE}}],
        "current-context": "soak",
    });
    std::fs::write(file, serde_json::to_string_pretty(&kubeconfig)?)
        .with_context(|| format!("writing {}", file.display()))
}

/// An API resource of the kinds the soak works with.
pub fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// cnat's `At`.
pub fn ats() -> ApiResource {
    resource("cnat.programming-kubernetes.info", "v1alpha1", "At", "ats")
}

/// webapp's `WebApp`.
pub fn webapps() -> ApiResource {
    resource("examples.bosun.dev", "v1alpha1", "WebApp", "webapps")
}

/// mirror's `Mirror`.
pub fn mirrors() -> ApiResource {
    resource("examples.bosun.dev", "v1alpha1", "Mirror", "mirrors")
}

/// misbehave's `Misbehave`.
pub fn misbehaves() -> ApiResource {
    resource("tests.bosun.dev", "v1", "Misbehave", "misbehaves")
}

/// ConfigMaps.
pub fn config_maps() -> ApiResource {
    resource("", "v1", "ConfigMap", "configmaps")
}

/// Pods.
pub fn pods() -> ApiResource {
    resource("", "v1", "Pod", "pods")
}

/// ReplicaSets.
pub fn replica_sets() -> ApiResource {
    resource("apps", "v1", "ReplicaSet", "replicasets")
}

/// Deployments.
pub fn deployments() -> ApiResource {
    resource("apps", "v1", "Deployment", "deployments")
}

/// Services.
pub fn services() -> ApiResource {
    resource("", "v1", "Service", "services")
}
