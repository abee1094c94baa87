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
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use serde_json::Value;

use crate::writes::Writer;

/// The longest requeue handed to kube-runtime, whose delay queue panics
/// on delays past about two years (an `At` scheduled for 2099).
const MAX_REQUEUE: Duration = Duration::from_secs(365 * 24 * 3600);

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Reconciles in flight at once.
    pub concurrency: u16,
    /// The field manager; `native/<module>` when None.
    pub field_manager: Option<String>,
    /// A key's delay after its first failure.
    pub backoff_base: Duration,
    /// The most a key's backoff grows to.
    pub backoff_max: Duration,
    /// Another primary kind for the same logic, under another name.
    pub primary: Option<Primary>,
}

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

/// Runs `R` until the process is stopped.
pub async fn run<R: Reconciler + 'static>(
    client: kube::Client,
    options: Options,
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

    let mut owned = Vec::new();
    let mut controller = Controller::new_with(
        Api::<DynamicObject>::all_with(client.clone(), &primary),
        config.clone(),
        primary.clone(),
    );
    for kind in &info.owns {
        let resource = api_resource(kind);
        let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
        let writer = reflector::store::Writer::new(resource.clone());
        let store = writer.as_reader();
        let types = kube::api::TypeMeta {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
        };
        let stream = reflector::reflector(
            writer,
            watcher(api.clone(), config.clone())
                .default_backoff()
                .modify(move |object| {
                    // List items arrive without apiVersion and kind.
                    if object.types.is_none() {
                        object.types = Some(types.clone());
                    }
                }),
        );
        tokio::spawn(stream.for_each(|_| ready(())));
        controller = controller.owns_with(api, resource.clone(), config.clone());
        owned.push((resource, store));
    }
    for (_, store) in &owned {
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
        failures: Mutex::default(),
        options: options.clone(),
    });
    controller
        .with_config(Config::default().concurrency(options.concurrency))
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
        .get(&key(&object))
        .copied()
        .unwrap_or(0)
        + 1;
    let request = wit::Request {
        object: for_logic(&object).to_string(),
        children: children.iter().map(Value::to_string).collect(),
        settings: None,
        trigger: wit::Trigger::ObjectChanged,
        attempt,
    };
    let response = match bosun_sdk::__private::reconcile::<R>(request, &NativeHost) {
        Ok(response) => response,
        Err(wit::ReconcileError::Retryable(failure)) => {
            return Err(Error::Retryable {
                reason: failure.reason,
                message: failure.message,
            });
        }
        Err(wit::ReconcileError::Permanent(failure)) => {
            tracing::warn!(object = %key(&object), reason = %failure.reason, message = %failure.message, "permanent error");
            ctx.failures
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key(&object));
            return Ok(Action::await_change());
        }
    };
    ctx.writer
        .write(&object, &children, &ctx.owned, &response)
        .await?;
    ctx.failures
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&key(&object));
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

/// The host functions the logic may call, answered natively. The examples
/// read nothing beyond their children, so reads find nothing.
struct NativeHost;

impl bosun_sdk::__private::Host for NativeHost {
    fn log(&self, level: bosun_sdk::LogLevel, message: &str) {
        tracing::debug!(?level, message, "reconciler log");
    }

    fn get_object(
        &self,
        _api_version: &str,
        _kind: &str,
        _namespace: Option<&str>,
        _name: &str,
    ) -> Result<Option<String>, String> {
        Ok(None)
    }

    fn list_objects(
        &self,
        _api_version: &str,
        _kind: &str,
        _namespace: Option<&str>,
        _label_selector: Option<&str>,
    ) -> Result<Vec<String>, String> {
        Ok(Vec::new())
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
