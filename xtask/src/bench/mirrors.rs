//! What the newer scenarios share: Mirrors (`examples/mirror`) and the
//! ConfigMaps they read, created in bulk by a fast client, and a watch that
//! notes when each object first showed what a scenario waits for.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bosun_testenv::TestEnv;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::controllers::Controller;

/// Creates in flight at once, as in the burst scenario.
pub const CONCURRENT_CREATES: usize = 32;

/// The `Mirror` resource.
pub fn mirror_resource() -> ApiResource {
    ApiResource {
        group: "examples.bosun.dev".into(),
        version: "v1alpha1".into(),
        api_version: "examples.bosun.dev/v1alpha1".into(),
        kind: "Mirror".into(),
        plural: "mirrors".into(),
    }
}

/// A Mirror of the ConfigMap `source`, optionally naming the ConfigMaps
/// `selector` picks too.
pub fn mirror(
    namespace: &str,
    name: &str,
    source: &str,
    selector: Option<&str>,
) -> Result<DynamicObject> {
    let mut spec = json!({"configMapName": source});
    if let Some(selector) = selector {
        spec["selector"] = json!(selector);
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "examples.bosun.dev/v1alpha1",
        "kind": "Mirror",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }))?)
}

/// A ConfigMap with `data` and `labels`.
pub fn config_map(
    namespace: &str,
    name: &str,
    data: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
) -> Result<ConfigMap> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": data,
    }))?)
}

/// Whether the controller has written the Mirror's status for its current
/// generation (both sides set `observedGeneration`).
pub fn is_synced(object: &DynamicObject) -> bool {
    object
        .data
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64)
        .is_some_and(|g| Some(g) == object.metadata.generation)
}

/// `value` of the Mirror's mirrored data key `key`, if any.
pub fn mirrored(object: &DynamicObject, key: &str) -> Option<String> {
    object
        .data
        .pointer(&format!("/status/data/{key}"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Creates every object of `objects` through `create`, 32 in flight.
pub async fn create_all<T, F, Fut>(objects: Vec<T>, create: F) -> Result<Vec<Instant>>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    futures::stream::iter(objects)
        .map(|object| {
            let done = create(object);
            async move {
                done.await?;
                anyhow::Ok(Instant::now())
            }
        })
        .buffer_unordered(CONCURRENT_CREATES)
        .try_collect()
        .await
}

/// Creates `config_maps` in their namespaces, 32 in flight.
pub async fn create_config_maps(client: &kube::Client, config_maps: Vec<ConfigMap>) -> Result<()> {
    create_all(config_maps, |cm| {
        let api: Api<ConfigMap> = Api::namespaced(
            client.clone(),
            cm.metadata.namespace.as_deref().unwrap_or("default"),
        );
        async move {
            api.create(&PostParams::default(), &cm)
                .await
                .context("creating a ConfigMap")?;
            Ok(())
        }
    })
    .await
    .map(drop)
}

/// Creates `mirrors`, 32 in flight.
pub async fn create_mirrors(client: &kube::Client, mirrors: Vec<DynamicObject>) -> Result<()> {
    create_all(mirrors, |m| {
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            m.metadata.namespace.as_deref().unwrap_or("default"),
            &mirror_resource(),
        );
        async move {
            api.create(&PostParams::default(), &m)
                .await
                .context("creating a Mirror")?;
            Ok(())
        }
    })
    .await
    .map(drop)
}

/// A control plane of its own with the Mirror CRD and `namespaces`.
pub async fn control_plane(namespaces: &[&str]) -> Result<(TestEnv, kube::Client)> {
    let env = TestEnv::start()
        .await
        .map_err(|e| anyhow::anyhow!("the control plane did not start: {e}"))?;
    env.install_crds([bosun_testenv::guests::workspace_root().join("examples/mirror/crd.yaml")])
        .await
        .map_err(|e| anyhow::anyhow!("installing the Mirror CRD: {e}"))?;
    let client = env.client();
    for name in namespaces {
        let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating the namespace {name}"))?;
    }
    Ok((env, client))
}

/// The kubeconfig of `env`.
pub fn kubeconfig(env: &TestEnv) -> Result<&Path> {
    env.kubeconfig_path()
        .context("the control plane has no kubeconfig")
}

/// What a scenario looks for in an object: the marks it shows now (e.g.
/// `synced`, `v=3`).
pub type MarkFn = fn(&DynamicObject) -> Vec<String>;

#[derive(Default)]
struct MarkState {
    /// When each (name, mark) was first seen.
    first: HashMap<(String, String), Instant>,
    /// The names seen with each mark.
    names: HashMap<String, HashSet<String>>,
}

/// A watch over a kind that notes when each object first showed each of
/// the marks `mark` finds in it.
pub struct Marks {
    state: Arc<Mutex<MarkState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Marks {
    /// Starts watching `resource` in `namespace` and waits for the watch's
    /// initial list.
    pub async fn start(
        client: &kube::Client,
        resource: &ApiResource,
        namespace: &str,
        mark: MarkFn,
    ) -> Result<Marks> {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
        let state: Arc<Mutex<MarkState>> = Arc::default();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                let mut ready = Some(ready_tx);
                let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()));
                while let Ok(Some(event)) = stream.try_next().await {
                    let now = Instant::now();
                    match event {
                        watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                            let marks = mark(&o);
                            if marks.is_empty() {
                                continue;
                            }
                            let name = o.metadata.name.unwrap_or_default();
                            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
                            for m in marks {
                                state
                                    .names
                                    .entry(m.clone())
                                    .or_default()
                                    .insert(name.clone());
                                state.first.entry((name.clone(), m)).or_insert(now);
                            }
                        }
                        watcher::Event::InitDone => {
                            if let Some(tx) = ready.take() {
                                let _ = tx.send(());
                            }
                        }
                        _ => {}
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(60), ready_rx)
            .await
            .context("the benchmark's own watch did not start")??;
        Ok(Marks { state, task })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MarkState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When `name` first showed `mark`.
    pub fn at(&self, name: &str, mark: &str) -> Option<Instant> {
        self.state()
            .first
            .get(&(name.to_owned(), mark.to_owned()))
            .copied()
    }

    /// How many objects have shown `mark`.
    pub fn count(&self, mark: &str) -> usize {
        self.state().names.get(mark).map_or(0, HashSet::len)
    }

    /// The latest first sighting of `mark` over every object that showed it.
    pub fn last(&self, mark: &str) -> Option<Instant> {
        let state = self.state();
        state
            .names
            .get(mark)?
            .iter()
            .filter_map(|name| state.first.get(&(name.clone(), mark.to_owned())))
            .max()
            .copied()
    }

    /// Waits until `name` shows `mark`; returns when it first did.
    pub async fn wait_for(
        &self,
        name: &str,
        mark: &str,
        timeout: Duration,
        controller: &mut Controller,
    ) -> Result<Instant> {
        let started = Instant::now();
        loop {
            if let Some(at) = self.at(name, mark) {
                return Ok(at);
            }
            if started.elapsed() > timeout {
                controller.check_alive()?;
                bail!("{name} did not show {mark} within {timeout:?}");
            }
            controller.check_alive()?;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Waits until `count` objects show `mark`.
    pub async fn wait_count(
        &self,
        mark: &str,
        count: usize,
        timeout: Duration,
        controller: &mut Controller,
    ) -> Result<()> {
        let started = Instant::now();
        loop {
            let seen = self.count(mark);
            if seen >= count {
                return Ok(());
            }
            controller.check_alive()?;
            if started.elapsed() > timeout {
                bail!("{seen} of {count} objects showed {mark} within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Marks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs `f` once more when it fails (a control plane that did not start on
/// a busy machine, a controller that died), printing the first failure.
pub async fn retried<T, F, Fut>(what: &str, f: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    match f().await {
        Ok(value) => Ok(value),
        Err(error) => {
            eprintln!("bench:   failed, trying once more: {error:#}");
            f().await.with_context(|| what.to_owned())
        }
    }
}
