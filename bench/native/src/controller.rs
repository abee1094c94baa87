//! The controller: kube-runtime's `Controller` over the primary kind, a
//! reflector per owned kind for the observed children, and the example's
//! reconcile logic called natively.
//!
//! Kept to what a team writing a kube-rs controller by hand would do, with
//! the host's defaults where the host has one (concurrency 4; per-key
//! backoff 5 ms doubling to 1000 s, reset on success). Stable kube-runtime
//! has no way to feed the Controller an existing reflector, so the owned
//! kinds are watched twice: by `owns_with` (metadata only, the triggers)
//! and by a reflector (the objects the logic reads), as kube-rs users do.
//!
//! The kinds a module declares it reads get a reflector each too, and the
//! logic's `get`/`list` are answered from it ([`NativeHost`]). What
//! reconciles a primary when one of them changes is a hand-written mapper
//! ([`Mapper`], passed to `Controller::watches_with`), as a kube-rs user
//! writes one per read kind: without one, a change of a read object
//! reconciles nothing (cnat and webapp read nothing).

use std::collections::HashMap;
use std::future::ready;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bosun_sdk::Reconciler;
use bosun_sdk::bindings::bosun::reconciler::types as wit;
use futures::StreamExt;
use jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::controller::{Action, Config};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use serde_json::Value;

use crate::metrics::Reconciles;
use crate::writes::Writer;

/// The longest requeue handed to kube-runtime, whose delay queue panics
/// on delays past about two years (an `At` scheduled for 2099).
const MAX_REQUEUE: Duration = Duration::from_secs(365 * 24 * 3600);

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Reconciles in flight at once; 0 is kube-runtime's default
    /// (`Config::default()`: unbounded).
    pub concurrency: u16,
    /// The field manager; `native/<module>` when None.
    pub field_manager: Option<String>,
    /// A key's delay after its first failure.
    pub backoff_base: Duration,
    /// The most a key's backoff grows to.
    pub backoff_max: Duration,
    /// Another primary kind for the same logic, under another name.
    pub primary: Option<Primary>,
    /// The one namespace watched (`Api::namespaced`); every namespace when None.
    pub namespace: Option<String>,
    /// Reconciles counted, for `--metrics-addr`.
    pub reconciles: Arc<Reconciles>,
}

/// A hand-written mapper for the read kinds: given the Controller's own
/// store of primaries, the primary kind, the read kind and an object of
/// that kind that changed, the primaries to reconcile.
pub type Mapper = fn(
    &Store<DynamicObject>,
    &ApiResource,
    &ApiResource,
    &DynamicObject,
) -> Vec<ObjectRef<DynamicObject>>;

/// A primary kind the logic runs under in place of the one it declares
/// (its objects must deserialize as the logic's own kind).
#[derive(Debug, Clone)]
pub struct Primary {
    /// The kind.
    pub resource: ApiResource,
    /// The controller's name, in place of the module's.
    pub name: String,
}

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The logic asked to be retried.
    #[error("retryable: {reason}: {message}")]
    Retryable { reason: String, message: String },
    /// A write failed.
    #[error("{0}")]
    Write(#[from] crate::writes::WriteError),
}

/// What every reconcile shares.
struct Context {
    writer: Writer,
    owned: Vec<(ApiResource, Store<DynamicObject>)>,
    host: NativeHost,
    failures: Mutex<HashMap<String, u32>>,
    options: Options,
}

/// The `ApiResource` of a kind the module declared.
fn api_resource(kind: &wit::ApiKind) -> ApiResource {
    let api_version = if kind.group.is_empty() {
        kind.version.clone()
    } else {
        format!("{}/{}", kind.group, kind.version)
    };
    ApiResource {
        group: kind.group.clone(),
        version: kind.version.clone(),
        api_version,
        kind: kind.kind.clone(),
        plural: kind.plural.clone(),
    }
}

/// `resource` in `namespace`, or in every namespace.
fn scoped(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

/// A reflector of `resource`'s objects (in `namespace`, or all), running
/// on a task of its own.
fn reflect(
    api: Api<DynamicObject>,
    resource: &ApiResource,
    config: watcher::Config,
) -> Store<DynamicObject> {
    let writer = reflector::store::Writer::new(resource.clone());
    let store = writer.as_reader();
    let types = kube::api::TypeMeta {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
    };
    let stream = reflector::reflector(
        writer,
        watcher(api, config)
            .default_backoff()
            .modify(move |object| {
                // List items arrive without apiVersion and kind.
                if object.types.is_none() {
                    object.types = Some(types.clone());
                }
            }),
    );
    tokio::spawn(stream.for_each(|_| ready(())));
    store
}

/// Runs `R` until the process is stopped; `mapper`, when given, maps a
/// change of an object of any kind `R` reads to the primaries to reconcile.
pub async fn run<R: Reconciler + 'static>(
    client: kube::Client,
    options: Options,
    mapper: Option<Mapper>,
) -> anyhow::Result<()> {
    let info = bosun_sdk::__private::metadata::<R>();
    let (primary, name) = match &options.primary {
        Some(other) => (other.resource.clone(), other.name.clone()),
        None => (api_resource(&info.primary), info.name.clone()),
    };
    let field_manager = options
        .field_manager
        .clone()
        .unwrap_or_else(|| format!("native/{name}"));
    let config = watcher::Config::default();
    let namespace = options.namespace.as_deref();

    let mut owned = Vec::new();
    let mut controller = Controller::new_with(
        scoped(&client, &primary, namespace),
        config.clone(),
        primary.clone(),
    );
    for kind in &info.owns {
        let resource = api_resource(kind);
        let api = scoped(&client, &resource, namespace);
        let store = reflect(api.clone(), &resource, config.clone());
        controller = controller.owns_with(api, resource.clone(), config.clone());
        owned.push((resource, store));
    }
    // The kinds the logic reads: a reflector to answer its reads from, and
    // (with a mapper) a second watch whose events the mapper turns into
    // the primaries to reconcile.
    let primaries = controller.store();
    let mut reads = Vec::new();
    for kind in &info.reads {
        let resource = api_resource(kind);
        let api = scoped(&client, &resource, namespace);
        let store = reflect(api.clone(), &resource, config.clone());
        if let Some(mapper) = mapper {
            let (primaries, primary, read) = (primaries.clone(), primary.clone(), resource.clone());
            controller = controller.watches_with(api, resource.clone(), config.clone(), {
                move |object| mapper(&primaries, &primary, &read, &object)
            });
        }
        reads.push((resource, store));
    }
    for (_, store) in owned.iter().chain(&reads) {
        store.wait_until_ready().await?;
    }

    let context = Arc::new(Context {
        writer: Writer::new(
            client.clone(),
            primary.clone(),
            field_manager,
            Recorder::new(client, Reporter::from(format!("native-{name}"))),
        ),
        owned,
        host: NativeHost { reads },
        failures: Mutex::default(),
        options: options.clone(),
    });
    // 0: kube-runtime's own default, no limit, as a kube-rs user who never
    // sets one runs.
    let config = match options.concurrency {
        0 => Config::default(),
        n => Config::default().concurrency(n),
    };
    controller
        .with_config(config)
        .run(reconcile::<R>, error_policy, context)
        .for_each(|result| {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile failed");
            }
            ready(())
        })
        .await;
    Ok(())
}

fn key(object: &DynamicObject) -> String {
    format!(
        "{}/{}",
        object.metadata.namespace.as_deref().unwrap_or_default(),
        object.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `object` as the logic is handed it: without `managedFields`.
fn for_logic(object: &DynamicObject) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    value
}

async fn reconcile<R: Reconciler>(
    object: Arc<DynamicObject>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let result = reconcile_once::<R>(&object, &ctx).await;
    ctx.options.reconciles.count(result.is_ok());
    result
}

async fn reconcile_once<R: Reconciler>(
    object: &DynamicObject,
    ctx: &Context,
) -> Result<Action, Error> {
    if object.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let uid = object.metadata.uid.clone().unwrap_or_default();
    let children: Vec<Value> = ctx
        .owned
        .iter()
        .flat_map(|(_, store)| {
            store.state_filter(|child| {
                child.metadata.namespace == object.metadata.namespace
                    && child
                        .metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.controller == Some(true) && o.uid == uid)
            })
        })
        .map(|child| for_logic(&child))
        .collect();
    let attempt = ctx
        .failures
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key(object))
        .copied()
        .unwrap_or(0)
        + 1;
    let request = wit::Request {
        object: for_logic(object).to_string(),
        children: children.iter().map(Value::to_string).collect(),
        settings: None,
        trigger: wit::Trigger::ObjectChanged,
        attempt,
    };
    let response = match bosun_sdk::__private::reconcile::<R>(request, &ctx.host) {
        Ok(response) => response,
        Err(wit::ReconcileError::Retryable(failure)) => {
            return Err(Error::Retryable {
                reason: failure.reason,
                message: failure.message,
            });
        }
        Err(wit::ReconcileError::Permanent(failure)) => {
            tracing::warn!(object = %key(object), reason = %failure.reason, message = %failure.message, "permanent error");
            ctx.failures
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key(object));
            return Ok(Action::await_change());
        }
    };
    ctx.writer
        .write(object, &children, &ctx.owned, &response)
        .await?;
    ctx.failures
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&key(object));
    Ok(match response.requeue_after_ms {
        // kube-runtime's delay queue panics past about two years.
        Some(ms) => Action::requeue(Duration::from_millis(ms).min(MAX_REQUEUE)),
        None => Action::await_change(),
    })
}

/// Per-key exponential backoff, as the host's queue.
fn error_policy(object: Arc<DynamicObject>, error: &Error, ctx: Arc<Context>) -> Action {
    let mut failures = ctx.failures.lock().unwrap_or_else(PoisonError::into_inner);
    let count = failures.entry(key(&object)).or_insert(0);
    let delay = ctx
        .options
        .backoff_base
        .saturating_mul(2u32.saturating_pow(*count))
        .min(ctx.options.backoff_max);
    *count += 1;
    tracing::info!(object = %key(&object), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// The host functions the logic may call, answered natively: reads from
/// the reflectors of the kinds the module declares it reads (the host
/// answers from its informers' caches the same way); a kind not declared
/// is refused, as the host refuses it.
struct NativeHost {
    reads: Vec<(ApiResource, Store<DynamicObject>)>,
}

impl NativeHost {
    fn store(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<&(ApiResource, Store<DynamicObject>), String> {
        self.reads
            .iter()
            .find(|(r, _)| r.api_version == api_version && r.kind == kind)
            .ok_or_else(|| format!("{kind}.{api_version} is not a declared read kind"))
    }
}

impl bosun_sdk::__private::Host for NativeHost {
    fn log(&self, level: bosun_sdk::LogLevel, message: &str) {
        tracing::debug!(?level, message, "reconciler log");
    }

    fn get_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<String>, String> {
        let (resource, store) = self.store(api_version, kind)?;
        let mut reference = ObjectRef::new_with(name, resource.clone());
        if let Some(namespace) = namespace {
            reference = reference.within(namespace);
        }
        Ok(store.get(&reference).map(|o| for_logic(&o).to_string()))
    }

    fn list_objects(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<String>, String> {
        let (_, store) = self.store(api_version, kind)?;
        let selector = label_selector
            .filter(|s| !s.trim().is_empty())
            .map(bosun_selector::parse)
            .transpose()
            .map_err(|e| e.to_string())?;
        use kube::core::SelectorExt as _;
        Ok(store
            .state()
            .iter()
            .filter(|o| namespace.is_none() || o.metadata.namespace.as_deref() == namespace)
            .filter(|o| {
                selector.as_ref().is_none_or(|s| {
                    s.matches(o.metadata.labels.as_ref().unwrap_or(&Default::default()))
                })
            })
            .map(|o| for_logic(o).to_string())
            .collect())
    }

    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    // cnat and webapp make no HTTP requests; a request here is a bug.
    fn http(
        &self,
        request: &bosun_sdk::http::Request,
    ) -> Result<bosun_sdk::http::Response, bosun_sdk::http::HttpError> {
        Err(request.error(
            bosun_sdk::http::HttpErrorKind::Refused,
            "the native baseline makes no HTTP requests",
        ))
    }
}
