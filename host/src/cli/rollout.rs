//! `bosun rollout status|promote|abort|step NAME`: a ReconcilerModule's
//! staged candidate, what its shadow run found or where its canary stands,
//! and what to do with it.
//!
//! Promote and abort replace the resource as it was read (its
//! resourceVersion a precondition), so a candidate restaged meanwhile is
//! never promoted (or dropped) by a decision about another one.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use kube::api::{Api, PostParams};

use super::output::fail;
use crate::modules::resource::{
    CanaryStatus, ReconcilerModule, RolloutMode, RolloutStatus, VersionCounts,
};
use crate::modules::staging::PHASE_ROLLED_BACK;
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
    /// Drop the candidate; the running version goes on (a canary's
    /// objects return to it).
    Abort {
        /// The ReconcilerModule.
        name: String,
    },
    /// Take a canary's next step (`spec.rollout.canary.step`): the
    /// candidate reconciles the next share of the objects.
    Step {
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
            RolloutAction::Step { name } => step(&api, name).await,
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
                "ReconcilerModule {name} has no candidate staged (bosun push --shadow or --canary stages one)"
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
        found
            .candidate_digest
            .as_deref()
            // Abbreviated as git abbreviates: the status has it whole.
            .map_or_else(
                || "not fetched".to_owned(),
                |digest| format!("{}…", digest.get(..8).unwrap_or(digest))
            )
    );
    if let Some(message) = &found.message {
        println!("  {message}");
    }
    if let Some(canary) = &found.canary {
        print_canary(canary);
        return;
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

fn print_canary(canary: &CanaryStatus) {
    let steps: Vec<String> = canary.steps.iter().map(|p| format!("{p}%")).collect();
    println!(
        "  canary share: {}% of the objects (step {} of {}: {}; {} steps), window {}s",
        canary.percent,
        canary.step + 1,
        canary.steps.len(),
        steps.join(" → "),
        if canary.automatic {
            "automatic"
        } else {
            "manual"
        },
        canary.window_seconds
    );
    let line = |who: &str, c: &VersionCounts| {
        println!(
            "  {who:<10} calls: {}, errors: {}, traps: {}, hot loops: {}, failure ratio: {:.3}",
            c.calls, c.errors, c.traps, c.hot_loops, c.failure_ratio
        );
    };
    line("live", &canary.live);
    line("candidate", &canary.candidate);
}

async fn step(api: &Api<ReconcilerModule>, name: &str) -> anyhow::Result<ExitCode> {
    let mut module = get(api, name).await?;
    let status = module.status.clone().unwrap_or_default().rollout;
    let Some(rollout) = module
        .spec
        .rollout
        .as_mut()
        .filter(|r| r.mode == RolloutMode::Canary)
    else {
        return Ok(fail(
            EXIT_NO_CANDIDATE,
            &format!(
                "ReconcilerModule {name} has no canary staged (bosun push --canary PERCENT stages one)"
            ),
        ));
    };
    if status
        .as_ref()
        .is_some_and(|s| s.phase == PHASE_ROLLED_BACK)
    {
        bail!(
            "the host rolled ReconcilerModule {name}'s canary back; push a new version with --canary, or bosun rollout abort {name}"
        );
    }
    let canary = rollout.canary.get_or_insert_with(Default::default);
    let current = status
        .and_then(|s| s.canary)
        .map_or(canary.step, |c| c.step.max(canary.step));
    let last = u32::try_from(canary.steps.len().saturating_sub(1)).unwrap_or(u32::MAX);
    if current >= last {
        bail!(
            "ReconcilerModule {name}'s canary is at its last step already; bosun rollout promote {name} makes it the source"
        );
    }
    canary.step = current + 1;
    let percent = canary
        .steps
        .get(canary.step as usize)
        .copied()
        .unwrap_or_default();
    replace(api, name, &module).await?;
    println!("ReconcilerModule {name}: canary stepped up to {percent}% of the objects");
    Ok(ExitCode::SUCCESS)
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
