//! `bosun push --shadow` and `bosun push --canary`: the published
//! component staged as the ReconcilerModule's candidate.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kube::api::{Api, PostParams};

use super::{EXIT_NOT_LOADED, PushArgs};
use crate::modules::resource::{
    CanarySpec, ModuleSource, ReconcilerModule, RolloutMode, RolloutSpec,
};
use crate::modules::staging::{PHASE_REFUSED, PHASE_ROLLED_BACK};

/// The canary `args` ask for, checked here so that a mistake is the
/// user's error and not a spec the host refuses.
fn canary(args: &PushArgs) -> anyhow::Result<Option<CanarySpec>> {
    let Some(steps) = &args.canary else {
        return Ok(None);
    };
    let defaults = CanarySpec::default();
    let canary = CanarySpec {
        steps: steps.clone(),
        window_seconds: args.canary_window.unwrap_or(defaults.window_seconds),
        min_calls: args.canary_min_calls.unwrap_or(defaults.min_calls),
        automatic: args.canary_automatic,
        ..defaults
    };
    canary.policy().context("--canary")?;
    Ok(Some(canary))
}

/// Sets `spec.rollout` of the ReconcilerModule read as `current` (its
/// resourceVersion a precondition) and waits for the host's word on it.
pub(super) async fn stage(
    client: &kube::Client,
    args: &PushArgs,
    current: Option<ReconcilerModule>,
    candidate: ModuleSource,
    settings: Option<serde_json::Value>,
) -> anyhow::Result<ExitCode> {
    let canary = canary(args)?;
    let Some(mut module) = current else {
        bail!(
            "ReconcilerModule {} does not exist: a candidate is staged beside a running version; push without --shadow or --canary first",
            args.name
        );
    };
    module.spec.rollout = Some(RolloutSpec {
        candidate: candidate.clone(),
        mode: if canary.is_some() {
            RolloutMode::Canary
        } else {
            RolloutMode::Shadow
        },
        settings,
        canary: canary.clone(),
    });
    let api = Api::<ReconcilerModule>::all(client.clone());
    let written = api
        .replace(&args.name, &PostParams::default(), &module)
        .await
        .with_context(|| format!("staging the candidate in ReconcilerModule {}", args.name))?;
    println!(
        "ReconcilerModule {}: candidate {candidate} staged beside the running version",
        args.name
    );
    if args.no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    let generation = written.metadata.generation.unwrap_or(0);
    let started = Instant::now();
    while started.elapsed() < args.timeout {
        let status = api.get(&args.name).await?.status.unwrap_or_default();
        if status.observed_generation.unwrap_or(0) >= generation
            && let Some(rollout) = status.rollout
        {
            if canary.is_some() && rollout.phase == PHASE_ROLLED_BACK {
                eprintln!(
                    "error: the host rolled this candidate back before and does not stage it again: {}; bosun rollout abort {} resets it",
                    rollout.message.unwrap_or_default(),
                    args.name
                );
                return Ok(ExitCode::from(EXIT_NOT_LOADED));
            }
            if rollout.phase == PHASE_REFUSED {
                eprintln!(
                    "error: the host did not stage the candidate: {}",
                    rollout.message.unwrap_or_default()
                );
                return Ok(ExitCode::from(EXIT_NOT_LOADED));
            }
            let version = rollout.candidate_version.unwrap_or_default();
            match (&canary, rollout.canary) {
                (Some(_), found) => println!(
                    "{} {version} runs as a canary on {}% of the objects; bosun rollout status {} shows how it compares",
                    args.name,
                    found.map_or(0, |f| f.percent),
                    args.name
                ),
                (None, _) => println!(
                    "{} {version} runs in shadow beside the running version; bosun rollout status {} shows what it would do",
                    args.name, args.name
                ),
            }
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "error: no word from the host about the candidate within {}s",
        args.timeout.as_secs()
    );
    Ok(ExitCode::from(EXIT_NOT_LOADED))
}
