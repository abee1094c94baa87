//! The host's own controller for `ReconcilerModule` resources
//! (`bosun run --modules-from-cluster`), in native Rust.
//!
//! For each ReconcilerModule it fetches the component from its source
//! (verifying a URL's sha256), hands bytes and settings to the [`Registry`]
//! — which compiles and checks a new version before it replaces anything —
//! and reports the outcome in the resource's status: `Loaded` and `Ready`
//! conditions with reasons, the digest and version running, load time and,
//! refreshed periodically, the module's reconcile, error and trap counts and
//! its quarantine. A version that fails to fetch or load leaves the last
//! good one running, and the status says exactly why.
//!
//! Deleting a ReconcilerModule stops its controller; objects it still holds
//! finalizers on keep them (and stay in deletion) until a module with that
//! finalizer runs again: the host never drops a finalizer whose cleanup did
//! not run.
//!
//! Each ReconcilerModule is handled by a task of its own, which always
//! works on the newest spec seen: a slow download or compile holds up only
//! its own module, never the others.
//!
//! ReconcilerModules are watched untyped and read one by one: the CRD's
//! schema cannot say everything the host checks (an origin whose wildcard
//! covers IP addresses, say), and a typed watch would fail whole on one
//! such object, stalling every other module. Such a spec gets
//! `Loaded=False`, reason `InvalidSpec`, like any other refused spec.

mod status;
mod unserved;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::watch;

use self::status::{bounded, refresh_stats, set_condition, write_status};
use self::unserved::serve_class;
use super::class::{self, Announcer};
use super::registry::{Change, Registry, RegistryError};
use super::resource::{
    CONDITION_LOADED, CONDITION_READY, ReconcilerModule, ReconcilerModuleSpec,
    ReconcilerModuleStatus,
};
use super::source;
use crate::controller::ControllerSettings;
use crate::grants::Grant;
use crate::limits::Limits;

/// How often the counts in each ReconcilerModule's status are refreshed.
const STATS_PERIOD: Duration = Duration::from_secs(10);

/// The registry key of a ReconcilerModule.
fn key(name: &str) -> String {
    format!("reconcilermodule/{name}")
}

/// One ReconcilerModule as the watch saw it: its spec, or why the host
/// cannot read a spec the API server admitted.
#[derive(Debug, Clone)]
struct Seen {
    name: String,
    /// `spec.hostClass` as written (the CRD defaults it; a spec the host
    /// cannot read still names its class).
    class: String,
    generation: Option<i64>,
    status: ReconcilerModuleStatus,
    spec: Result<ReconcilerModuleSpec, String>,
}

impl Seen {
    fn read(object: &DynamicObject) -> Seen {
        let field = |name: &str| object.data.get(name).cloned().unwrap_or_default();
        Seen {
            name: object.name_any(),
            class: object
                .data
                .pointer("/spec/hostClass")
                .and_then(|c| c.as_str())
                .unwrap_or(class::DEFAULT)
                .to_owned(),
            generation: object.metadata.generation,
            // A status the host cannot read is one it rewrites.
            status: serde_json::from_value(field("status")).unwrap_or_default(),
            spec: serde_json::from_value(field("spec"))
                .map_err(|e| format!("the host cannot read spec: {e}")),
        }
    }
}

/// The ReconcilerModules of the cluster, untyped (see the module's notes).
pub fn untyped_api(client: Client) -> Api<DynamicObject> {
    Api::all_with(client, &ApiResource::erase::<ReconcilerModule>(&()))
}

/// Reconciles the ReconcilerModules of `announcer`'s class until `stop`
/// resolves. Modules load whether or not this host leads (a warm standby
/// runs them, handing out no work); their status is written, and the
/// class announced, only while `leading`. Modules of other classes are
/// left alone, unless no host serves their class and this host's class is
/// the one that reports so ([`class::reports_unserved`]).
pub async fn run(
    client: Client,
    registry: Arc<Registry>,
    defaults: ControllerSettings,
    leading: watch::Receiver<bool>,
    announcer: Announcer,
    stop: impl Future<Output = ()> + Send,
) {
    let api = untyped_api(client.clone());
    let mut events =
        std::pin::pin!(watcher(api.clone(), watcher::Config::default()).default_backoff());
    // The generation each resource of this class was last handed to its worker at.
    let mut handled: HashMap<String, Option<i64>> = HashMap::new();
    let mut workers: HashMap<String, watch::Sender<Option<Seen>>> = HashMap::new();
    // The resources of other classes, as last seen.
    let mut others: HashMap<String, Seen> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut stats = tokio::time::interval(STATS_PERIOD);
    let mut announce = tokio::time::interval(class::ANNOUNCE_PERIOD);
    let mut stop = std::pin::pin!(stop);
    let ours = announcer.class().as_str().to_owned();
    let mut announce_failing = false;
    loop {
        tokio::select! {
            () = &mut stop => {
                tasks.abort_all();
                return;
            }
            _ = stats.tick(), if *leading.borrow() => refresh_stats(&api, &registry, &handled).await,
            _ = announce.tick(), if *leading.borrow() => serve_class(&client, &api, &announcer, &others, &mut announce_failing).await,
            event = events.next() => match event {
                Some(Ok(watcher::Event::Apply(module) | watcher::Event::InitApply(module))) => {
                    let name = module.name_any();
                    let seen = Seen::read(&module);
                    if seen.class != ours {
                        // Another class's (perhaps just moved there): its
                        // hosts run it; this one lets go.
                        handled.remove(&name);
                        stop_worker(&name, &mut workers, &registry).await;
                        others.insert(name, seen);
                        continue;
                    }
                    others.remove(&name);
                    if handled.get(&name) == Some(&module.metadata.generation) {
                        continue;
                    }
                    handled.insert(name.clone(), module.metadata.generation);
                    let worker = workers.entry(name.clone()).or_insert_with(|| {
                        let (latest, rx) = watch::channel(None);
                        tasks.spawn(work(name.clone(), rx, client.clone(), api.clone(), registry.clone(), defaults.clone(), leading.clone()));
                        latest
                    });
                    // The worker takes the newest spec when it is free;
                    // specs it did not get to are skipped.
                    worker.send_replace(Some(seen));
                }
                Some(Ok(watcher::Event::Delete(module))) => {
                    let name = module.name_any();
                    handled.remove(&name);
                    others.remove(&name);
                    stop_worker(&name, &mut workers, &registry).await;
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => tracing::warn!(%error, "watching ReconcilerModules failed; retrying"),
                None => return,
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

/// Stops the worker of the ReconcilerModule `name`, which removes its
/// module; or removes the module if it has no worker.
async fn stop_worker(
    name: &str,
    workers: &mut HashMap<String, watch::Sender<Option<Seen>>>,
    registry: &Registry,
) {
    match workers.remove(name) {
        Some(worker) => {
            worker.send_replace(None);
        }
        None => registry.remove(&key(name)).await,
    }
}

/// One ReconcilerModule's worker: loads each newest spec in turn; removes
/// the module and ends when the resource is deleted (`None`).
///
/// A load that failed for a cause outside the spec — a source that did not
/// answer, a CRD not installed yet, an RBAC rule not bound yet, a module
/// that held the kind and has gone — is tried again with backoff, so the
/// module starts once the world is right without anyone editing its spec.
///
/// The status of the last load waits for `leading`: a standby loads, and
/// writes what it found once it leads (unless a newer spec came first).
async fn work(
    name: String,
    mut latest: watch::Receiver<Option<Seen>>,
    client: Client,
    api: Api<DynamicObject>,
    registry: Arc<Registry>,
    defaults: ControllerSettings,
    mut leading: watch::Receiver<bool>,
) {
    let mut retry = RetryDelay::default();
    let mut current: Option<Seen> = None;
    let mut unwritten: Option<ReconcilerModuleStatus> = None;
    loop {
        let delay = retry.next().filter(|_| current.is_some());
        let changed = tokio::select! {
            changed = latest.changed() => Some(changed),
            () = async { tokio::time::sleep(delay.unwrap_or_default()).await }, if delay.is_some() => None,
            led = async { leading.wait_for(|leads| *leads).await.is_ok() }, if unwritten.is_some() => {
                if !led {
                    // The host is stopping.
                    return;
                }
                if let Some(status) = unwritten.take() {
                    write_status(&api, &name, &status).await;
                }
                continue;
            }
        };
        match changed {
            // The sender is gone: the host is stopping.
            Some(Err(_)) => return,
            Some(Ok(())) => {
                let Some(module) = latest.borrow_and_update().clone() else {
                    registry.remove(&key(&name)).await;
                    return;
                };
                current = Some(module);
                retry = RetryDelay::default();
            }
            // The retry is due: the same spec again.
            None => {}
        }
        let Some(module) = &current else { continue };
        let span = tracing::info_span!("reconcilermodule", name = %name);
        let (outcome, status) =
            tracing::Instrument::instrument(load(&client, &registry, &defaults, module), span)
                .await;
        unwritten = Some(status);
        match outcome {
            Err(reason) if heals_by_itself(reason) => retry.arm(),
            _ => retry = RetryDelay::default(),
        }
    }
}

/// Whether a load that failed for `reason` may succeed later with the same
/// spec: the cause is in the cluster, the network or the host's load, not
/// in the bytes or the grant. (`CompileLimit` is the bytes' doing: it stays
/// until they or the host's limits change.)
pub fn heals_by_itself(reason: &str) -> bool {
    matches!(
        reason,
        "FetchFailed"
            | "DiscoveryFailed"
            | "KindMismatch"
            | "MissingRBAC"
            | "Conflict"
            | "CompileUnavailable"
            | "HostStarved"
    )
}

/// The delay before the next try of a load that failed for a cause outside
/// its spec: 5 s doubling to 5 min, or none while nothing failed.
#[derive(Debug, Default)]
struct RetryDelay {
    failures: u32,
}

impl RetryDelay {
    const FIRST: Duration = Duration::from_secs(5);
    const MAX: Duration = Duration::from_secs(300);

    fn arm(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    fn next(&self) -> Option<Duration> {
        let doublings = self.failures.checked_sub(1)?;
        Some(
            Self::FIRST
                .saturating_mul(1 << doublings.min(16))
                .min(Self::MAX),
        )
    }
}

/// Fetches and loads one ReconcilerModule; returns how it went and the
/// status that says so.
async fn load(
    client: &Client,
    registry: &Registry,
    defaults: &ControllerSettings,
    module: &Seen,
) -> (Result<(), &'static str>, ReconcilerModuleStatus) {
    let name = module.name.clone();
    let generation = module.generation;
    let mut status = module.status.clone();
    status.observed_generation = generation;

    let outcome = async {
        let spec = module
            .spec
            .as_ref()
            .map_err(|e| ("InvalidSpec", e.clone()))?;
        spec.validate()
            .map_err(|e| ("InvalidSpec", e.to_string()))?;
        let grant = Grant::Granted {
            module: None,
            permissions: Box::new(spec.permissions.clone()),
        };
        let fetched = source::fetch(client, &spec.source).await.map_err(|e| {
            let reason = if matches!(e, source::SourceError::Digest { .. }) {
                "DigestMismatch"
            } else {
                "FetchFailed"
            };
            (reason, e.to_string())
        })?;
        let settings = ControllerSettings {
            settings: spec.settings.as_ref().map(|s| s.to_string()),
            limits: Limits {
                timeout: spec
                    .timeout_ms
                    .map_or(defaults.limits.timeout, Duration::from_millis),
                memory_bytes: spec
                    .memory_limit_mib
                    .map_or(defaults.limits.memory_bytes, |mib| (mib as usize) << 20),
                ..defaults.limits
            },
            queue: crate::queue::QueueConfig {
                concurrency: spec
                    .concurrency
                    .map_or(defaults.queue.concurrency, |c| c as usize),
                ..defaults.queue.clone()
            },
            paused: spec.paused,
            ..defaults.clone()
        };
        registry
            .upsert(
                &key(&name),
                &fetched.description,
                Arc::from(fetched.bytes),
                settings,
                &|_| grant.clone(),
            )
            .await
            .map_err(|e: RegistryError| (e.reason(), e.to_string()))
    }
    .await;

    let spec = module.spec.as_ref().ok();
    status.rollout = super::staging::reconcile(
        client,
        registry,
        &key(&name),
        spec,
        module.status.rollout.as_ref(),
    )
    .await;

    let now = Time(jiff::Timestamp::now());
    let result = match outcome {
        Ok(loaded) => {
            let how = match loaded.change {
                Change::SettingsChanged | Change::Unchanged => "settings applied".to_owned(),
                _ if loaded.from_cache => format!(
                    "loaded from the compile cache in {} ms",
                    loaded.load_time.as_millis()
                ),
                _ => format!("compiled in {} ms", loaded.load_time.as_millis()),
            };
            tracing::info!(module = %loaded.name, version = %loaded.version, change = ?loaded.change, "{how}");
            let message = format!("{} {}: {how}", loaded.name, loaded.version);
            set_condition(
                &mut status.conditions,
                CONDITION_LOADED,
                true,
                "Loaded",
                &message,
                generation,
                &now,
            );
            let paused = module.spec.as_ref().is_ok_and(|spec| spec.paused);
            let ready_message = if paused {
                "paused: caches warm, no work handed out"
            } else {
                "reconciling"
            };
            set_condition(
                &mut status.conditions,
                CONDITION_READY,
                !paused,
                if paused { "Paused" } else { "Running" },
                ready_message,
                generation,
                &now,
            );
            if !matches!(loaded.change, Change::SettingsChanged | Change::Unchanged) {
                status.loaded_at = Some(now.clone());
                status.load_time_ms = Some(loaded.load_time.as_millis() as u64);
            }
            status.digest = Some(loaded.digest);
            status.version = Some(loaded.version);
            status.module_name = Some(loaded.name);
            status.quarantined = false;
            status.message = None;
            Ok(())
        }
        Err((reason, message)) => {
            tracing::error!(reason, %message, "ReconcilerModule not loaded; the last good version keeps running");
            set_condition(
                &mut status.conditions,
                CONDITION_LOADED,
                false,
                reason,
                &message,
                generation,
                &now,
            );
            let running = registry.is_running(&key(&name)).await;
            if !running {
                status.digest = None;
                status.version = None;
                status.module_name = None;
            }
            let (ready, why) = if running {
                (true, "the previous version keeps running")
            } else {
                (false, "no version of this module runs")
            };
            set_condition(
                &mut status.conditions,
                CONDITION_READY,
                ready,
                if ready {
                    "PreviousVersionRunning"
                } else {
                    "NotLoaded"
                },
                why,
                generation,
                &now,
            );
            status.message = Some(bounded(&message).to_owned());
            Err(reason)
        }
    };
    (result, status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_that_can_heal_is_retried_with_backoff_up_to_five_minutes() {
        let mut delay = RetryDelay::default();
        assert_eq!(delay.next(), None, "nothing failed: wait for a new spec");
        let mut seen = Vec::new();
        for _ in 0..12 {
            delay.arm();
            seen.push(delay.next().unwrap().as_secs());
        }
        assert_eq!(seen, [5, 10, 20, 40, 80, 160, 300, 300, 300, 300, 300, 300]);
    }

    #[test]
    fn only_causes_outside_the_spec_are_retried() {
        for reason in [
            "FetchFailed",
            "KindMismatch",
            "MissingRBAC",
            "Conflict",
            "CompileUnavailable",
            "HostStarved",
        ] {
            assert!(heals_by_itself(reason), "{reason}");
        }
        for reason in [
            "DigestMismatch",
            "LoadFailed",
            "CompileLimit",
            "PermissionDenied",
            "InvalidSpec",
        ] {
            assert!(!heals_by_itself(reason), "{reason}");
        }
    }
}
