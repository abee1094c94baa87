//! Run a reconciler natively, in `cargo test`, through the same JSON
//! boundary the host uses.
//!
//! The [`Harness`] plays the host: it serializes the object, the observed
//! children and the settings exactly as the host does, answers reads from
//! objects you give it (enforcing the same access rules as the host), fixes
//! the clock, and collects logs. What comes back is what the host would
//! receive from the component.
//!
//! ```
//! # use bosun_sdk::prelude::*;
//! # use k8s_openapi::api::core::v1::ConfigMap;
//! # struct Noop;
//! # impl Reconciler for Noop {
//! #     type Object = ConfigMap;
//! #     fn metadata() -> Metadata { Metadata::new("noop", "0.1.0") }
//! #     fn reconcile(_: &ConfigMap, ctx: &Context) -> Result<Response, Error> {
//! #         Ok(Response::new().requeue_after(std::time::Duration::from_secs(ctx.now().as_second() as u64 % 60 + 1)))
//! #     }
//! # }
//! use bosun_sdk::testing::Harness;
//!
//! let outcome = Harness::<Noop>::new()
//!     .now("2026-01-01T00:00:30Z")
//!     .reconcile(&ConfigMap::default())
//!     .unwrap();
//! assert_eq!(outcome.requeue_after(), Some(std::time::Duration::from_secs(31)));
//! ```

use std::cell::RefCell;
use std::marker::PhantomData;
use std::time::Duration;

use jiff::Timestamp;
use kube::core::SelectorExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::bindings::bosun::reconciler::types as wit;
use crate::context::is_kind;
use crate::host::Host;
use crate::{Error, Event, LogLevel, Reconciler, Trigger};

/// A stand-in for the bosun host that runs a [`Reconciler`] natively.
pub struct Harness<R> {
    now: Timestamp,
    children: Vec<String>,
    objects: Vec<Value>,
    settings: Option<String>,
    trigger: Trigger,
    attempt: u32,
    reconciler: PhantomData<R>,
}

impl<R: Reconciler> Default for Harness<R> {
    fn default() -> Self {
        Harness::new()
    }
}

impl<R: Reconciler> Harness<R> {
    /// A harness with no children, no settings, the real clock, and
    /// trigger [`Trigger::Manual`].
    pub fn new() -> Self {
        Harness {
            now: Timestamp::now(),
            children: Vec::new(),
            objects: Vec::new(),
            settings: None,
            trigger: Trigger::Manual,
            attempt: 1,
            reconciler: PhantomData,
        }
    }

    /// Fixes the clock the reconciler sees, as an RFC 3339 timestamp.
    ///
    /// # Panics
    /// When `now` is not a valid timestamp (this is a test helper).
    pub fn now(mut self, now: &str) -> Self {
        self.now = now
            .parse()
            .unwrap_or_else(|e| panic!("Harness::now({now:?}) is not an RFC 3339 time: {e}"));
        self
    }

    /// Fixes the clock the reconciler sees.
    pub fn at(mut self, now: Timestamp) -> Self {
        self.now = now;
        self
    }

    /// Adds an observed child, as if the host had seen it owned by the object.
    pub fn child(mut self, child: impl Serialize) -> Self {
        self.children.push(to_json(&child));
        self
    }

    /// Adds an object to the cache that [`Context::get`](crate::Context::get)
    /// and [`Context::list`](crate::Context::list) read from.
    pub fn object(mut self, object: impl Serialize) -> Self {
        self.objects
            .push(serde_json::to_value(object).expect("test object serializes"));
        self
    }

    /// Sets the module's settings.
    pub fn settings(mut self, settings: impl Serialize) -> Self {
        self.settings = Some(to_json(&settings));
        self
    }

    /// Sets the trigger and attempt number the reconciler sees.
    pub fn trigger(mut self, trigger: Trigger, attempt: u32) -> Self {
        self.trigger = trigger;
        self.attempt = attempt;
        self
    }

    /// The metadata the component would export.
    pub fn metadata(&self) -> wit::ModuleInfo {
        crate::__private::metadata::<R>()
    }

    /// Runs `reconcile` on `object`.
    pub fn reconcile(&self, object: &R::Object) -> Result<Outcome, Error> {
        let host = self.host(object);
        let response = crate::__private::reconcile::<R>(self.request(object), &host)
            .map_err(Error::from_wit)?;
        Ok(Outcome {
            response,
            logs: host.logs.into_inner(),
        })
    }

    /// Runs `finalize` on `object`.
    pub fn finalize(&self, object: &R::Object) -> Result<FinalizeOutcome, Error> {
        let host = self.host(object);
        let response = crate::__private::finalize::<R>(self.request(object), &host)
            .map_err(Error::from_wit)?;
        Ok(FinalizeOutcome {
            done: response.done,
            requeue_after: response.requeue_after_ms.map(Duration::from_millis),
            events: response.events.into_iter().map(Event::from_wit).collect(),
            logs: host.logs.into_inner(),
        })
    }

    fn request(&self, object: &R::Object) -> wit::Request {
        wit::Request {
            object: to_json(object),
            children: self.children.clone(),
            settings: self.settings.clone(),
            trigger: self.trigger.into_wit(),
            attempt: self.attempt,
        }
    }

    fn host(&self, object: &R::Object) -> TestHost<'_> {
        let info = self.metadata();
        let readable = std::iter::once(&info.primary)
            .chain(&info.owns)
            .chain(&info.reads)
            .map(|k| (api_version(&k.group, &k.version), k.kind.clone()))
            .collect();
        let namespace = match info.primary.scope {
            wit::Scope::Namespaced => Some(object.meta().namespace.clone().unwrap_or_default()),
            wit::Scope::Cluster => None,
        };
        TestHost {
            now: self.now,
            objects: &self.objects,
            readable,
            namespace,
            logs: RefCell::new(Vec::new()),
        }
    }
}

use kube::Resource as _;

/// What a reconcile returned, with typed accessors.
#[derive(Debug)]
pub struct Outcome {
    response: wit::Response,
    logs: Vec<(LogLevel, String)>,
}

impl Outcome {
    /// The desired children of kind `K`.
    ///
    /// # Panics
    /// When a child of that kind does not parse as `K`.
    pub fn children<K>(&self) -> Vec<K>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        let (api_version, kind) = (K::api_version(&()), K::kind(&()));
        self.children_json()
            .into_iter()
            .filter(|child| is_kind(child, &api_version, &kind))
            .map(|child| {
                serde_json::from_value(child)
                    .unwrap_or_else(|e| panic!("desired {kind} does not parse: {e}"))
            })
            .collect()
    }

    /// The desired child of kind `K` called `name`.
    pub fn child<K>(&self, name: &str) -> Option<K>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        self.children::<K>()
            .into_iter()
            .find(|child| child.meta().name.as_deref() == Some(name))
    }

    /// Every desired child, as JSON.
    pub fn children_json(&self) -> Vec<Value> {
        self.response
            .children
            .iter()
            .map(|child| serde_json::from_str(child).expect("the SDK emits valid JSON"))
            .collect()
    }

    /// The desired status, parsed as `S`; `None` when the reconciler set none.
    ///
    /// # Panics
    /// When the status does not parse as `S`.
    pub fn status<S: DeserializeOwned>(&self) -> Option<S> {
        self.response.status.as_deref().map(|status| {
            serde_json::from_str(status)
                .unwrap_or_else(|e| panic!("desired status does not parse: {e}"))
        })
    }

    /// The requested requeue delay.
    pub fn requeue_after(&self) -> Option<Duration> {
        self.response.requeue_after_ms.map(Duration::from_millis)
    }

    /// The events to record.
    pub fn events(&self) -> Vec<Event> {
        self.response
            .events
            .iter()
            .cloned()
            .map(Event::from_wit)
            .collect()
    }

    /// The lines the reconciler logged.
    pub fn logs(&self) -> &[(LogLevel, String)] {
        &self.logs
    }
}

/// What a finalize returned.
#[derive(Debug)]
pub struct FinalizeOutcome {
    /// Cleanup is complete.
    pub done: bool,
    /// When not done, the requested delay before the next call.
    pub requeue_after: Option<Duration>,
    /// The events to record.
    pub events: Vec<Event>,
    /// The lines the reconciler logged.
    pub logs: Vec<(LogLevel, String)>,
}

struct TestHost<'a> {
    now: Timestamp,
    objects: &'a [Value],
    readable: Vec<(String, String)>,
    namespace: Option<String>,
    logs: RefCell<Vec<(LogLevel, String)>>,
}

impl TestHost<'_> {
    /// The same rules the host applies: declared kinds only, and the
    /// primary's namespace only when the primary is namespaced.
    fn check_access(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<(), String> {
        if !self
            .readable
            .iter()
            .any(|(v, k)| v == api_version && k == kind)
        {
            return Err(format!(
                "{kind}.{api_version} is not a declared kind of this module; add it with Metadata::reads"
            ));
        }
        if let (Some(own), Some(asked)) = (&self.namespace, namespace)
            && own != asked
        {
            return Err(format!(
                "namespace {asked:?} is outside this object's namespace {own:?}"
            ));
        }
        Ok(())
    }

    fn visible<'v>(
        &'v self,
        api_version: &'v str,
        kind: &'v str,
        namespace: Option<&'v str>,
    ) -> impl Iterator<Item = &'v Value> + 'v {
        let namespace = namespace.or(self.namespace.as_deref());
        self.objects.iter().filter(move |o| {
            is_kind(o, api_version, kind)
                && namespace.is_none_or(|ns| {
                    o.pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        == ns
                })
        })
    }
}

impl Host for TestHost<'_> {
    fn log(&self, level: LogLevel, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }

    fn get_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<String>, String> {
        self.check_access(api_version, kind, namespace)?;
        Ok(self
            .visible(api_version, kind, namespace)
            .find(|o| o.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
            .map(Value::to_string))
    }

    fn list_objects(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<String>, String> {
        self.check_access(api_version, kind, namespace)?;
        let selector =
            bosun_selector::parse(label_selector.unwrap_or_default()).map_err(|e| e.to_string())?;
        Ok(self
            .visible(api_version, kind, namespace)
            .filter(|o| {
                let labels = o
                    .pointer("/metadata/labels")
                    .cloned()
                    .and_then(|l| serde_json::from_value(l).ok())
                    .unwrap_or_default();
                selector.matches(&labels)
            })
            .map(Value::to_string)
            .collect())
    }

    fn now(&self) -> Timestamp {
        self.now
    }
}

fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("test input serializes to JSON")
}

/// Asserts that the CRD YAML committed at `path` is the one generated from
/// the Rust type `K`, so the file users `kubectl apply` never drifts from the
/// code. With `BOSUN_UPDATE_CRDS` set in the environment it rewrites the file
/// first: run `BOSUN_UPDATE_CRDS=1 cargo test` after changing the type.
///
/// ```ignore
/// #[test]
/// fn crd_yaml_is_up_to_date() {
///     bosun_sdk::testing::assert_crd_up_to_date::<At>(concat!(env!("CARGO_MANIFEST_DIR"), "/crd.yaml"));
/// }
/// ```
///
/// # Panics
/// When the file differs from the generated CRD (or cannot be written).
#[cfg(not(target_arch = "wasm32"))]
pub fn assert_crd_up_to_date<K: kube::CustomResourceExt>(path: impl AsRef<std::path::Path>) {
    let path = path.as_ref();
    let generated = serde_yaml::to_string(&K::crd()).expect("a CRD serializes to YAML");
    if std::env::var_os("BOSUN_UPDATE_CRDS").is_some() {
        std::fs::write(path, &generated)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: run `BOSUN_UPDATE_CRDS=1 cargo test` to regenerate it from the Rust type",
        path.display()
    );
}
