//! `bosun rbac`: the roles the host needs to run the given modules: a Role
//! in each namespace a module is confined to, a ClusterRole for what is
//! needed cluster-wide.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use kube::ResourceExt as _;
use kube::api::ListParams;

use super::output::{fail, print};
use super::{EXIT_LOAD_FAILED, OutputFormat};
use crate::discovery::Discovery;
use crate::engine::Engine;
use crate::grants::read_grant_file;
use crate::modules::resource::ReconcilerModuleSpec;
use crate::rbac::{Need, grant_needs, host_needs, http_needs, module_needs, rbac_objects};

/// Arguments of `bosun rbac`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["modules", "from_cluster", "with_host"])))]
pub struct RbacArgs {
    /// A reconciler component to cover, by what it declares (repeatable).
    #[arg(long = "module", value_name = "FILE")]
    pub modules: Vec<PathBuf>,
    /// A grant file (as `bosun inspect --grant` prints and `bosun run
    /// --grant` takes) for the `--module` of the same name: its namespaces
    /// confine the roles, its HTTP credentials add the Secrets they name
    /// (repeatable).
    #[arg(long = "grant", value_name = "FILE", requires = "modules")]
    pub grants: Vec<PathBuf>,
    /// Cover every ReconcilerModule of the cluster (kubeconfig or in-cluster
    /// config), by what each is granted in `spec.permissions`, and the pull
    /// secret its OCI source names.
    #[arg(long)]
    pub from_cluster: bool,
    /// Also cover what the host needs for itself: ReconcilerModules and
    /// their status, ConfigMaps (module sources), Leases, Events.
    #[arg(long)]
    pub with_host: bool,
    /// The name of the roles printed.
    #[arg(long, default_value = "bosun-modules")]
    pub name: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
}

pub(super) fn run(args: &RbacArgs, engine: &Engine) -> anyhow::Result<ExitCode> {
    let mut grants = Vec::new();
    for path in &args.grants {
        grants
            .extend(read_grant_file(path).with_context(|| format!("reading {}", path.display()))?);
    }
    let mut needs: Vec<Need> = Vec::new();
    for path in &args.modules {
        let module = match engine.load_file(path) {
            Ok(module) => module,
            Err(error) => return Ok(fail(EXIT_LOAD_FAILED, &error)),
        };
        let meta = module.meta();
        match grants.iter().find(|grant| grant.module == meta.name) {
            Some(grant) => {
                needs.extend(module_needs(meta, &grant.permissions.namespaces));
                needs.extend(http_needs(&grant.permissions));
            }
            None => needs.extend(module_needs(meta, &[])),
        }
    }
    if args.from_cluster {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        needs.extend(runtime.block_on(from_cluster())?);
    }
    if args.with_host {
        needs.extend(host_needs());
    }
    needs.sort();
    needs.dedup();
    // One object prints as itself (a ClusterRole, as before namespaced
    // roles existed); several as a List, which kubectl applies whole.
    let objects = rbac_objects(&args.name, &needs);
    match objects.as_slice() {
        [one] => print(args.output, one)?,
        _ => print(
            args.output,
            &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects}),
        )?,
    }
    Ok(ExitCode::SUCCESS)
}

/// What every ReconcilerModule of the cluster is granted, as permissions.
async fn from_cluster() -> anyhow::Result<Vec<Need>> {
    let client = kube::Client::try_default().await.context(
        "connecting to the cluster (set KUBECONFIG, or run in a pod with a service account)",
    )?;
    let discovery = Discovery::new(client.clone());
    // Untyped, then read one by one: one spec the host cannot read (and
    // would not run) must not hide what the others need.
    let modules = crate::modules::cluster::untyped_api(client)
        .list(&ListParams::default())
        .await
        .context("listing ReconcilerModules")?;
    let mut needs = Vec::new();
    for module in modules {
        let name = module.name_any();
        let spec = module.data.get("spec").cloned().unwrap_or_default();
        let spec: ReconcilerModuleSpec = match serde_json::from_value(spec) {
            Ok(spec) => spec,
            Err(error) => {
                eprintln!(
                    "skipping ReconcilerModule {name}: the host cannot read its spec: {error}"
                );
                continue;
            }
        };
        needs.extend(crate::rbac::http_needs(&spec.permissions));
        needs.extend(crate::rbac::pull_secret_needs(spec.source.pull_secret()));
        needs.extend(
            grant_needs(&spec.permissions, &discovery)
                .await
                .with_context(|| format!("the kinds ReconcilerModule {name} is granted"))?,
        );
    }
    Ok(needs)
}
