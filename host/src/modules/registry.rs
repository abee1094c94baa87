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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::controller::{Controller, ControllerContext, ControllerSettings};
use crate::engine::{CompileSource, Engine, LoadError, Module};

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
    /// Only the settings changed; nothing was compiled.
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

/// Why an upsert changed nothing. The running version, if any, stays.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The bytes did not load.
    #[error(transparent)]
    Load(#[from] LoadError),
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
    /// Loading could not run.
    #[error("loading {0} failed: its task panicked")]
    Task(String),
}

struct Running {
    controller: Arc<Controller>,
    digest: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The modules a host runs, by source key.
pub struct Registry {
    engine: Arc<Engine>,
    ctx: ControllerContext,
    running: Mutex<HashMap<String, Running>>,
}

impl Registry {
    /// An empty registry starting controllers with `ctx`.
    pub fn new(engine: Arc<Engine>, ctx: ControllerContext) -> Self {
        Registry {
            engine,
            ctx,
            running: Mutex::default(),
        }
    }

    /// Brings `key` to these bytes and settings; see the module docs for the
    /// rules. `source_name` says where the bytes came from, for errors.
    pub async fn upsert(
        &self,
        key: &str,
        source_name: &str,
        bytes: Arc<[u8]>,
        settings: ControllerSettings,
    ) -> Result<Loaded, RegistryError> {
        let digest = hex::encode(Sha256::digest(&bytes));
        // One change at a time: the checks below must see a settled set.
        let mut running = self.running.lock().await;
        if let Some(current) = running.get(key)
            && current.digest == digest
        {
            let module = current.controller.module();
            let meta = module.meta();
            let unchanged = current.controller.settings() == settings;
            if !unchanged {
                // Same name and kinds by construction: this cannot fail.
                let _ = current.controller.swap(None, settings);
                tracing::info!(module = %meta.name, "settings changed; reconciling every object again");
            }
            return Ok(Loaded {
                change: if unchanged {
                    Change::Unchanged
                } else {
                    Change::SettingsChanged
                },
                name: meta.name.clone(),
                version: meta.version.clone(),
                digest,
                load_time: Duration::ZERO,
                from_cache: true,
            });
        }

        let module = self.load(source_name, bytes).await?;
        let meta = module.meta().clone();
        if let Some((other, _)) = running
            .iter()
            .find(|(other, r)| other.as_str() != key && r.controller.meta().name == meta.name)
        {
            return Err(RegistryError::DuplicateName {
                name: meta.name,
                source_name: source_name.to_owned(),
                other: other.clone(),
            });
        }
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

        let change = match running.remove(key) {
            None => Change::Started,
            Some(current) => match current
                .controller
                .swap(Some(module.clone()), settings.clone())
            {
                Ok(()) => {
                    tracing::info!(module = %meta.name, version = %meta.version, digest = %digest, "new version swapped in; reconciling every object again");
                    running.insert(
                        key.to_owned(),
                        Running {
                            digest: digest.clone(),
                            ..current
                        },
                    );
                    return Ok(loaded(Change::Swapped));
                }
                Err(reason) => {
                    tracing::info!(%reason, "replacing the controller");
                    let old_name = current.controller.meta().name.clone();
                    drain(current).await;
                    if old_name != meta.name {
                        self.ctx.metrics.module_unloaded(&old_name);
                    }
                    Change::Restarted
                }
            },
        };
        let result = loaded(change);
        running.insert(key.to_owned(), self.start(module, settings, digest));
        if change == Change::Restarted {
            self.ctx.informers.release_unused();
        }
        Ok(result)
    }

    /// Stops the module loaded from `key`, letting in-flight reconciles finish.
    pub async fn remove(&self, key: &str) {
        let removed = self.running.lock().await.remove(key);
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

    /// True when every running controller's caches are synced.
    pub async fn all_synced(&self) -> bool {
        self.running
            .lock()
            .await
            .values()
            .all(|r| r.controller.is_synced())
    }

    async fn load(&self, source_name: &str, bytes: Arc<[u8]>) -> Result<Module, RegistryError> {
        let engine = self.engine.clone();
        let name = source_name.to_owned();
        tokio::task::spawn_blocking(move || engine.load(&name, &bytes))
            .await
            .map_err(|_| RegistryError::Task(source_name.to_owned()))?
            .map_err(RegistryError::Load)
    }

    fn start(&self, module: Module, settings: ControllerSettings, digest: String) -> Running {
        let meta = module.meta().clone();
        tracing::info!(module = %meta.name, version = %meta.version, primary = %meta.primary, "starting controller");
        let controller = Controller::new(module, settings, self.ctx.clone());
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(controller.clone().run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
        Running {
            controller,
            digest,
            stop,
            task,
        }
    }
}

/// Stops a controller and waits (up to [`DRAIN`]) for its in-flight reconciles.
async fn drain(running: Running) {
    let _ = running.stop.send(true);
    if tokio::time::timeout(DRAIN, running.task).await.is_err() {
        tracing::warn!(module = %running.controller.meta().name, "in-flight reconciles did not finish in time; abandoning them");
    }
}
