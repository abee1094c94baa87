//! The running modules, and the swap rules.
//!
//! Every module comes from a source under a key (a file path, a directory
//! entry, a ReconcilerModule's name). [`Registry::upsert`] brings a key to
//! the bytes and settings given:
//!
//! - same bytes, other settings: the settings are swapped in, nothing is
//!   compiled, every object is reconciled again;
//! - new bytes: compiled off the async runtime (through the compile cache)
//!   and checked against the world *before* anything changes; if that
//!   fails, the running version stays and the error says why;
//! - a new version with the same name and kinds is swapped into the running
//!   controller: in-flight reconciles finish on the old one, every object is
//!   reconciled again with the new one;
//! - a new version with other kinds (or another name) replaces the
//!   controller: the old one drains, the new one starts its watches, and
//!   watches no module uses any more stop.
//!
//! Before a module runs, its declaration is checked three times: against
//! the API server ([`crate::discovery`]: the kinds exist, with the declared
//! plural and scope), against its grant ([`crate::grants`]), and against
//! what the host's own service account may do ([`crate::rbac`]). A module that fails
//! either never starts; one whose grant is withdrawn while it runs is
//! stopped. No two modules may reconcile the same kind or hold the same
//! finalizer: the second is refused and told which module holds it.
//!
//! Loading compiles code and calls the guest, which takes time: it runs
//! with no lock that other modules need. Changes to one source key are
//! serialized; changes to different keys proceed side by side.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as SyncMutex, PoisonError};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::controller::{Controller, ControllerContext, ControllerSettings};
use crate::discovery::{DiscoveryError, Resolved};
use crate::engine::{CompileSource, Engine, LoadError, Module};
use crate::grants::{Grant, GroupKind, PermissionDenied};
use crate::meta::ModuleMeta;
use crate::rbac::{self, MissingRbac};

/// How long a replaced or removed controller may take to finish its
/// in-flight reconciles before it is abandoned.
const DRAIN: Duration = Duration::from_secs(30);

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A new module started.
    Started,
    /// A new version was swapped into the running controller.
    Swapped,
    /// A new version with other kinds replaced the controller.
    Restarted,
    /// Only the settings (or the grant) changed; nothing was compiled.
    SettingsChanged,
    /// Nothing changed.
    Unchanged,
}

/// The outcome of a successful upsert.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// What happened.
    pub change: Change,
    /// The module's name.
    pub name: String,
    /// The module's version.
    pub version: String,
    /// The sha256 of the component.
    pub digest: String,
    /// How long loading took (zero when nothing was compiled).
    pub load_time: Duration,
    /// Whether the compile cache answered.
    pub from_cache: bool,
}

/// Why an upsert changed nothing (or, for a withdrawn grant, stopped the
/// module). Otherwise the running version, if any, stays.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The bytes did not load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The module's kinds are not what the API server serves.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The module declares more than it was granted. If it was running
    /// under a wider grant, it has been stopped.
    #[error(transparent)]
    PermissionDenied(#[from] PermissionDenied),
    /// The host's own service account lacks what the module needs.
    #[error(transparent)]
    MissingRbac(#[from] MissingRbac),
    /// Another source already runs a module of this name.
    #[error(
        "module {name} from {source_name} is already loaded from {other}; each module needs its own name"
    )]
    DuplicateName {
        /// The module's name.
        name: String,
        /// Where the new bytes came from.
        source_name: String,
        /// The key of the source already running it.
        other: String,
    },
    /// Another module already reconciles this kind or holds this finalizer.
    #[error(
        "module {name} wants {what}, which module {holder} (from {other}) already has; two modules must not reconcile one kind or share a finalizer"
    )]
    Claimed {
        /// The module's name.
        name: String,
        /// What it wants: `to reconcile Kind.group` or `finalizer x`.
        what: String,
        /// The module holding it.
        holder: String,
        /// The key of the source running that module.
        other: String,
    },
    /// Loading could not run.
    #[error("loading {0} failed: its task panicked")]
    Task(String),
}

impl RegistryError {
    /// A CamelCase reason for a status condition.
    pub fn reason(&self) -> &'static str {
        match self {
            // CompileLimit, CompileUnavailable or LoadFailed.
            RegistryError::Load(error) => error.reason(),
            RegistryError::Task(_) => "LoadFailed",
            RegistryError::Discovery(DiscoveryError::Api { .. }) => "DiscoveryFailed",
            RegistryError::Discovery(_) => "KindMismatch",
            RegistryError::PermissionDenied(_) => "PermissionDenied",
            RegistryError::MissingRbac(_) => "MissingRBAC",
            RegistryError::DuplicateName { .. } | RegistryError::Claimed { .. } => "Conflict",
        }
    }
}

struct Running {
    controller: Arc<Controller>,
    digest: String,
    grant: Grant,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// What a running (or starting) module holds exclusively.
#[derive(Debug, Clone)]
struct Claim {
    name: String,
    primary: GroupKind,
    finalizer: Option<String>,
}

impl Claim {
    fn of(meta: &ModuleMeta) -> Self {
        Claim {
            name: meta.name.clone(),
            primary: GroupKind::of(&meta.primary),
            finalizer: meta.finalizer.clone(),
        }
    }
}

/// The grant of a module, by the name it declares (known once it loads).
pub type GrantFor<'a> = dyn Fn(&str) -> Grant + Sync + 'a;

/// The modules a host runs, by source key.
pub struct Registry {
    engine: Arc<Engine>,
    ctx: ControllerContext,
    running: Mutex<HashMap<String, Running>>,
    /// What each key's module holds; kept beside `running` because a key
    /// keeps its claim while its old controller drains.
    claims: SyncMutex<HashMap<String, Claim>>,
    /// One lock per key: changes to a key are serialized, other keys go on.
    keys: SyncMutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl Registry {
    /// An empty registry starting controllers with `ctx` (whose discovery
    /// checks every module's kinds).
    pub fn new(engine: Arc<Engine>, ctx: ControllerContext) -> Self {
        Registry {
            engine,
            ctx,
            running: Mutex::default(),
            claims: SyncMutex::default(),
            keys: SyncMutex::default(),
        }
    }

    /// Brings `key` to these bytes and settings, under the grant that
    /// `grant_for` gives the module's name; see the module docs for the
    /// rules. `source_name` says where the bytes came from, for errors.
    pub async fn upsert(
        &self,
        key: &str,
        source_name: &str,
        bytes: Arc<[u8]>,
        settings: ControllerSettings,
        grant_for: &GrantFor<'_>,
    ) -> Result<Loaded, RegistryError> {
        let key_lock = self.key_lock(key);
        let _serialized = key_lock.lock().await;
        let digest = hex::encode(Sha256::digest(&bytes));

        if let Some(result) = self
            .update_in_place(key, &digest, &settings, grant_for)
            .await
        {
            return result;
        }

        let module = self.load(source_name, bytes).await?;
        let meta = module.meta().clone();
        let grant = grant_for(&meta.name);
        let resolved = self.ctx.discovery.resolve(&meta).await?;
        let effective = match effective_settings(&settings, &grant, &meta, &self.engine) {
            Ok(effective) => effective,
            Err(denied) => {
                // The new version asks for more than the new grant gives;
                // the version running stays only if the new grant covers
                // it, and then under that grant, not the old one.
                let running = self.running.lock().await.get(key).map(|r| r.digest.clone());
                if let Some(digest) = running
                    && let Some(Err(withdrawn)) = self
                        .update_in_place(key, &digest, &settings, grant_for)
                        .await
                {
                    tracing::warn!(%withdrawn, "the running version is not covered by the new grant either; stopped");
                }
                return Err(denied.into());
            }
        };
        // Better a clear refusal now than 403s on every reconcile.
        self.check_rbac(&meta, &grant, &effective).await?;
        self.claim(key, source_name, &meta)?;
        self.ctx.metrics.module_loaded(
            &meta.name,
            &meta.version,
            &digest,
            module.compile_source() == CompileSource::Cache,
            module.load_time(),
        );
        let loaded = |change| Loaded {
            change,
            name: meta.name.clone(),
            version: meta.version.clone(),
            digest: digest.clone(),
            load_time: module.load_time(),
            from_cache: module.compile_source() == CompileSource::Cache,
        };

        let current = self.running.lock().await.remove(key);
        let change = match current {
            None => Change::Started,
            Some(mut current) => match current
                .controller
                .swap(Some((module.clone(), resolved.clone())), effective.clone())
            {
                Ok(()) => {
                    tracing::info!(module = %meta.name, version = %meta.version, digest = %digest, "new version swapped in; reconciling every object again");
                    current.digest = digest.clone();
                    current.grant = grant;
                    self.running.lock().await.insert(key.to_owned(), current);
                    return Ok(loaded(Change::Swapped));
                }
                Err(reason) => {
                    tracing::info!(%reason, "replacing the controller");
                    let old_name = current.controller.meta().name.clone();
                    if current.grant != grant {
                        // What the old version still has in flight was
                        // decided under the grant that is gone.
                        current.controller.revoke();
                    }
                    drain(current).await;
                    if old_name != meta.name {
                        self.ctx.metrics.module_unloaded(&old_name);
                    }
                    Change::Restarted
                }
            },
        };
        let result = loaded(change);
        let started = self.start(module, resolved, effective, digest, grant);
        self.running.lock().await.insert(key.to_owned(), started);
        if change == Change::Restarted {
            self.ctx.informers.release_unused();
        }
        Ok(result)
    }

    /// The same bytes again: apply new settings or a new grant to the
    /// running controller without loading anything. None when the key runs
    /// other bytes (or nothing), and a full load is needed.
    async fn update_in_place(
        &self,
        key: &str,
        digest: &str,
        settings: &ControllerSettings,
        grant_for: &GrantFor<'_>,
    ) -> Option<Result<Loaded, RegistryError>> {
        let mut running = self.running.lock().await;
        let current = running.get_mut(key).filter(|c| c.digest == digest)?;
        let module = current.controller.module();
        let meta = module.meta();
        let grant = &grant_for(&meta.name);
        let effective = match effective_settings(settings, grant, meta, &self.engine) {
            Ok(effective) => effective,
            Err(denied) => {
                // A withdrawn permission must take effect: the module stops.
                tracing::warn!(module = %meta.name, %denied, "grant withdrawn; stopping the module");
                let name = meta.name.clone();
                let current = running.remove(key)?;
                current.controller.revoke();
                drop(running);
                self.claims
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(key);
                drain(current).await;
                self.ctx.metrics.module_unloaded(&name);
                self.ctx.informers.release_unused();
                return Some(Err(denied.into()));
            }
        };
        let unchanged = current.controller.settings() == effective && current.grant == *grant;
        if !unchanged {
            // Same name and kinds by construction; only other namespaces,
            // which the watches follow, need a new controller.
            match current.controller.swap(None, effective.clone()) {
                Ok(()) => {
                    current.grant = grant.clone();
                    tracing::info!(module = %meta.name, "settings changed; reconciling every object again");
                }
                Err(reason) => {
                    tracing::info!(module = %meta.name, %reason, "replacing the controller");
                    let resolved = current.controller.resolved();
                    drop(running);
                    // Other namespaces are other permissions: checked
                    // before the running controller goes.
                    if let Err(missing) = self.check_rbac(meta, grant, &effective).await {
                        return Some(Err(missing.into()));
                    }
                    let current = self.running.lock().await.remove(key)?;
                    current.controller.revoke();
                    drain(current).await;
                    // Watches of namespaces both grants name are still
                    // registered, and the new controller shares them.
                    let started = self.start(
                        module.clone(),
                        resolved,
                        effective,
                        digest.to_owned(),
                        grant.clone(),
                    );
                    self.running.lock().await.insert(key.to_owned(), started);
                    self.ctx.informers.release_unused();
                }
            }
        }
        Some(Ok(Loaded {
            change: if unchanged {
                Change::Unchanged
            } else {
                Change::SettingsChanged
            },
            name: meta.name.clone(),
            version: meta.version.clone(),
            digest: digest.to_owned(),
            load_time: Duration::ZERO,
            from_cache: true,
        }))
    }

    /// Whether the host's own account may do what `meta` needs under
    /// `grant`, in the namespaces `effective` confines it to.
    async fn check_rbac(
        &self,
        meta: &ModuleMeta,
        grant: &Grant,
        effective: &ControllerSettings,
    ) -> Result<(), MissingRbac> {
        let mut needs = rbac::module_needs(meta, &effective.namespaces);
        if let Ok(permissions) = grant.check(meta) {
            needs.extend(rbac::http_needs(&permissions));
        }
        rbac::check(self.ctx.discovery.client(), &meta.name, &needs).await
    }

    /// Records what `key`'s module will hold, unless another key holds it.
    fn claim(&self, key: &str, source_name: &str, meta: &ModuleMeta) -> Result<(), RegistryError> {
        let mut claims = self.claims.lock().unwrap_or_else(PoisonError::into_inner);
        let wanted = Claim::of(meta);
        for (other, held) in claims.iter().filter(|(other, _)| other.as_str() != key) {
            if held.name == wanted.name {
                return Err(RegistryError::DuplicateName {
                    name: wanted.name,
                    source_name: source_name.to_owned(),
                    other: other.clone(),
                });
            }
            let clash = if held.primary == wanted.primary {
                Some(format!("to reconcile {}", wanted.primary))
            } else {
                match (&held.finalizer, &wanted.finalizer) {
                    (Some(a), Some(b)) if a == b => Some(format!("finalizer {b}")),
                    _ => None,
                }
            };
            if let Some(what) = clash {
                return Err(RegistryError::Claimed {
                    name: wanted.name,
                    what,
                    holder: held.name.clone(),
                    other: other.clone(),
                });
            }
        }
        claims.insert(key.to_owned(), wanted);
        Ok(())
    }

    /// Stops the module loaded from `key`, letting in-flight reconciles finish.
    pub async fn remove(&self, key: &str) {
        let key_lock = self.key_lock(key);
        let _serialized = key_lock.lock().await;
        let removed = self.running.lock().await.remove(key);
        self.claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        if let Some(current) = removed {
            let name = current.controller.meta().name.clone();
            tracing::info!(module = %name, "module removed; stopping its controller");
            drain(current).await;
            self.ctx.metrics.module_unloaded(&name);
            self.ctx.informers.release_unused();
        }
    }

    /// Stops every controller, letting in-flight reconciles finish within `grace`.
    pub async fn stop_all(&self, grace: Duration) {
        let all: Vec<Running> = self.running.lock().await.drain().map(|(_, r)| r).collect();
        for r in &all {
            let _ = r.stop.send(true);
        }
        let tasks = futures::future::join_all(all.into_iter().map(|r| r.task));
        if tokio::time::timeout(grace, tasks).await.is_err() {
            tracing::warn!(
                ?grace,
                "in-flight reconciles did not finish in time; abandoning them"
            );
        }
    }

    /// The running controllers, by source key.
    pub async fn controllers(&self) -> Vec<(String, Arc<Controller>)> {
        self.running
            .lock()
            .await
            .iter()
            .map(|(key, r)| (key.clone(), r.controller.clone()))
            .collect()
    }

    /// The controller running the module from `key`, if one does.
    pub async fn controller(&self, key: &str) -> Option<Arc<Controller>> {
        self.running
            .lock()
            .await
            .get(key)
            .map(|r| r.controller.clone())
    }

    /// The engine modules are loaded with (a staged candidate too).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// True when a module from `key` runs.
    pub async fn is_running(&self, key: &str) -> bool {
        self.running.lock().await.contains_key(key)
    }

    /// True when every running controller's caches are synced.
    pub async fn all_synced(&self) -> bool {
        self.running
            .lock()
            .await
            .values()
            .all(|r| r.controller.is_synced())
    }

    fn key_lock(&self, key: &str) -> Arc<Mutex<()>> {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.to_owned())
            .or_default()
            .clone()
    }

    async fn load(&self, source_name: &str, bytes: Arc<[u8]>) -> Result<Module, RegistryError> {
        let engine = self.engine.clone();
        let name = source_name.to_owned();
        tokio::task::spawn_blocking(move || engine.load(&name, &bytes))
            .await
            .map_err(|_| RegistryError::Task(source_name.to_owned()))?
            .map_err(RegistryError::Load)
    }

    fn start(
        &self,
        module: Module,
        resolved: Resolved,
        settings: ControllerSettings,
        digest: String,
        grant: Grant,
    ) -> Running {
        let meta = module.meta().clone();
        tracing::info!(module = %meta.name, version = %meta.version, primary = %meta.primary, "starting controller");
        let controller = Controller::new(module, resolved, settings, self.ctx.clone());
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(controller.clone().run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
        Running {
            controller,
            digest,
            grant,
            stop,
            task,
        }
    }
}

/// The settings a module runs with under `grant`: its namespaces and limit
/// overrides, and a concurrency no larger than the engine's instance pool.
fn effective_settings(
    settings: &ControllerSettings,
    grant: &Grant,
    meta: &ModuleMeta,
    engine: &Engine,
) -> Result<ControllerSettings, PermissionDenied> {
    let permissions = grant.check(meta)?;
    if *grant == Grant::Declared {
        tracing::warn!(module = %meta.name, "running with exactly the permissions the module declares (--grant-declared): for local development only");
    }
    let mut effective = settings.clone();
    effective.namespaces = permissions.namespaces.clone();
    effective.http = permissions.http.clone();
    effective.limits = permissions.limits.apply_to(settings.limits);
    effective.queue.concurrency = settings.queue.concurrency.min(engine.max_instances());
    Ok(effective)
}

/// Stops a controller and waits (up to [`DRAIN`]) for its in-flight reconciles.
async fn drain(running: Running) {
    let _ = running.stop.send(true);
    if tokio::time::timeout(DRAIN, running.task).await.is_err() {
        tracing::warn!(module = %running.controller.meta().name, "in-flight reconciles did not finish in time; abandoning them");
    }
}
