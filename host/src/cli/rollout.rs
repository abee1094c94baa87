//! `bosun rollout status|promote|abort NAME`: a ReconcilerModule's staged
//! candidate, what its shadow run found, and what to do with it.
//!
//! Promote and abort replace the resource as it was read (its
//! resourceVersion a precondition), so a candidate restaged meanwhile is
//! never promoted (or dropped) by a decision about another one.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use kube::api::{Api, PostParams};

use super::output::fail;
use crate::modules::resource::{ReconcilerModule, RolloutStatus};
use crate::rollout::report::change_line;

/// Exit status when the ReconcilerModule has no candidate staged.
pub const EXIT_NO_CANDIDATE: u8 = 1;

/// Arguments of `bosun rollout`.
#[derive(Debug, clap::Args)]
pub struct RolloutArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: RolloutAction,
}

/// The rollout actions.
#[derive(Debug, clap::Subcommand)]
pub enum RolloutAction {
    /// Print the staged candidate and how it compares with the running
    /// version: objects compared, identical, differing, failing by reason,
    /// and example differences.
    Status {
        /// The ReconcilerModule.
        name: String,
    },
    /// Make the candidate the module's source (and its settings, if it
    /// has its own): the host swaps it in as any new version.
    Promote {
        /// The ReconcilerModule.
        name: String,
    },
    /// Drop the candidate; the running version goes on.
    Abort {
        /// The ReconcilerModule.
        name: String,
    },
}

pub(super) fn run(args: &RolloutArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let config = kube::Config::infer()
            .await
            .context("reading the kubeconfig (set KUBECONFIG)")?;
        let client = kube::Client::try_from(config).context("connecting to the cluster")?;
        let api = Api::<ReconcilerModule>::all(client);
        match &args.action {
            RolloutAction::Status { name } => status(&api, name).await,
            RolloutAction::Promote { name } => promote(&api, name).await,
            RolloutAction::Abort { name } => abort(&api, name).await,
        }
    })
}

async fn get(api: &Api<ReconcilerModule>, name: &str) -> anyhow::Result<ReconcilerModule> {
    api.get(name)
        .await
        .with_context(|| format!("reading ReconcilerModule {name}"))
}

async fn status(api: &Api<ReconcilerModule>, name: &str) -> anyhow::Result<ExitCode> {
    let module = get(api, name).await?;
    let Some(rollout) = &module.spec.rollout else {
        return Ok(fail(
            EXIT_NO_CANDIDATE,
            &format!(
                "ReconcilerModule {name} has no candidate staged (bosun push --shadow stages one)"
            ),
        ));
    };
    let status = module.status.clone().unwrap_or_default();
    println!(
        "module {name}: running {} {}",
        status.module_name.as_deref().unwrap_or(name),
        status.version.as_deref().unwrap_or("(not loaded)")
    );
    println!("candidate: {} ({:?})", rollout.candidate, rollout.mode);
    match &status.rollout {
        None => println!("the host has not reported on the candidate yet"),
        Some(found) => print_status(found),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(found: &RolloutStatus) {
    println!(
        "  {} {} ({})",
        found.phase,
        found.candidate_version.as_deref().unwrap_or("?"),
        found.candidate_digest.as_deref().unwrap_or("not fetched")
    );
    if let Some(message) = &found.message {
        println!("  {message}");
    }
    println!(
        "  objects compared: {}, identical: {}, differing: {}, failing: {}",
        found.compared, found.identical, found.differing, found.failing
    );
    for failure in &found.failures {
        println!("    failing with {}: {}", failure.reason, failure.objects);
    }
    if found.skipped > 0 {
        println!(
            "  not compared (past the shadow's bounds): {}",
            found.skipped
        );
    }
    for example in &found.examples {
        match &example.failure {
            Some(failure) => println!("  {}: failing: {failure}", example.object),
            None => println!("  {}: differing", example.object),
        }
        for change in &example.changes {
            println!("    {}", change_line(change));
        }
        if example.omitted > 0 {
            println!("    … and {} more", example.omitted);
        }
    }
}

async fn promote(api: &Api<ReconcilerModule>, name: &str) -> anyhow::Result<ExitCode> {
    let mut module = get(api, name).await?;
    let Some(rollout) = module.spec.rollout.take() else {
        return Ok(fail(
            EXIT_NO_CANDIDATE,
            &format!("ReconcilerModule {name} has no candidate staged: nothing to promote"),
        ));
    };
    module.spec.source = rollout.candidate.clone();
    if let Some(settings) = rollout.settings {
        module.spec.settings = Some(settings);
    }
    replace(api, name, &module).await?;
    println!(
        "ReconcilerModule {name}: {} promoted; the host swaps it in as any new version",
        rollout.candidate
    );
    Ok(ExitCode::SUCCESS)
}

async fn abort(api: &Api<ReconcilerModule>, name: &str) -> anyhow::Result<ExitCode> {
    let mut module = get(api, name).await?;
    let Some(rollout) = module.spec.rollout.take() else {
        return Ok(fail(
            EXIT_NO_CANDIDATE,
            &format!("ReconcilerModule {name} has no candidate staged: nothing to abort"),
        ));
    };
    replace(api, name, &module).await?;
    println!(
        "ReconcilerModule {name}: candidate {} dropped",
        rollout.candidate
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes `module` back over the version it was read at.
async fn replace(
    api: &Api<ReconcilerModule>,
    name: &str,
    module: &ReconcilerModule,
) -> anyhow::Result<()> {
    match api.replace(name, &PostParams::default(), module).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(response)) if response.code == 409 => bail!(
            "ReconcilerModule {name} changed meanwhile; look again with bosun rollout status {name}"
        ),
        Err(error) => Err(error).with_context(|| format!("writing ReconcilerModule {name}")),
    }
}
