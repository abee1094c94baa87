use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::bindings::bosun::reconciler::types as wit;
use crate::host::Host;
use crate::metadata::{KnownScope, Scope};
use crate::{Error, LogLevel};

/// Why the host is running a reconcile. A hint for logging and backoff: a
/// reconciler must reach the same answer whatever the trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The primary object was created or changed.
    ObjectChanged,
    /// One of its children was created, changed or deleted.
    ChildChanged,
    /// Something the reconciler read through [`Context::get`] or
    /// [`Context::list`] in its last reconcile was created, changed or
    /// deleted: a `get` that found nothing counts (the object's creation
    /// triggers), and a `list` covers objects entering and leaving its
    /// selection. New in `bosun:reconciler@0.2.0`.
    ReadChanged,
    /// A requeue the reconciler asked for came due.
    Requeue,
    /// A retry after a retryable error.
    Retry,
    /// The periodic resync.
    Resync,
    /// A new version of the module or its settings was loaded.
    ModuleChanged,
    /// A one-off run, such as `bosun reconcile` on the command line.
    Manual,
}

impl Trigger {
    pub(crate) fn from_wit(trigger: wit::Trigger) -> Self {
        match trigger {
            wit::Trigger::ObjectChanged => Trigger::ObjectChanged,
            wit::Trigger::ChildChanged => Trigger::ChildChanged,
            wit::Trigger::ReadChanged => Trigger::ReadChanged,
            wit::Trigger::Requeue => Trigger::Requeue,
            wit::Trigger::Retry => Trigger::Retry,
            wit::Trigger::Resync => Trigger::Resync,
            wit::Trigger::ModuleChanged => Trigger::ModuleChanged,
            wit::Trigger::Manual => Trigger::Manual,
        }
    }

    pub(crate) fn into_wit(self) -> wit::Trigger {
        match self {
            Trigger::ObjectChanged => wit::Trigger::ObjectChanged,
            Trigger::ChildChanged => wit::Trigger::ChildChanged,
            Trigger::ReadChanged => wit::Trigger::ReadChanged,
            Trigger::Requeue => wit::Trigger::Requeue,
            Trigger::Retry => wit::Trigger::Retry,
            Trigger::Resync => wit::Trigger::Resync,
            Trigger::ModuleChanged => wit::Trigger::ModuleChanged,
            Trigger::Manual => wit::Trigger::Manual,
        }
    }
}

/// What the host observed about the object being reconciled, and the way
/// to ask it for more.
pub struct Context<'a> {
    children: Vec<Value>,
    settings: Option<&'a str>,
    trigger: Trigger,
    attempt: u32,
    namespace: Option<String>,
    generation: Option<i64>,
    host: &'a dyn Host,
}

impl<'a> Context<'a> {
    pub(crate) fn new(
        request: &'a wit::Request,
        namespace: Option<String>,
        generation: Option<i64>,
        host: &'a dyn Host,
    ) -> Result<Self, Error> {
        let children = request
            .children
            .iter()
            .map(|child| serde_json::from_str(child))
            .collect::<Result<Vec<Value>, _>>()
            .map_err(|e| {
                Error::retryable(
                    "InvalidChild",
                    format!("an observed child is not JSON: {e}"),
                )
            })?;
        Ok(Context {
            children,
            settings: request.settings.as_deref(),
            trigger: Trigger::from_wit(request.trigger),
            attempt: request.attempt,
            namespace,
            generation,
            host,
        })
    }

    /// The observed children of kind `K`: objects the host saw with a
    /// controller ownerReference to this object.
    pub fn children<K>(&self) -> Result<Vec<K>, Error>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        let api_version = K::api_version(&());
        let kind = K::kind(&());
        self.children
            .iter()
            .filter(|child| is_kind(child, &api_version, &kind))
            .map(|child| {
                K::deserialize(child).map_err(|e| {
                    Error::retryable(
                        "InvalidChild",
                        format!("observed {kind} does not parse: {e}"),
                    )
                })
            })
            .collect()
    }

    /// The observed child of kind `K` called `name`, if there is one.
    pub fn child<K>(&self, name: &str) -> Result<Option<K>, Error>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        Ok(self
            .children::<K>()?
            .into_iter()
            .find(|child| child.meta().name.as_deref() == Some(name)))
    }

    /// The module's settings, parsed as `T`; `None` when the operator gave none.
    ///
    /// Settings that do not parse are a permanent error: retrying cannot fix
    /// them, and a settings change reconciles every object again.
    pub fn settings<T: DeserializeOwned>(&self) -> Result<Option<T>, Error> {
        self.settings
            .map(|raw| {
                serde_json::from_str(raw).map_err(|e| {
                    Error::permanent("InvalidSettings", format!("module settings: {e}"))
                })
            })
            .transpose()
    }

    /// The current time, from the host. Use this rather than the system
    /// clock so that tests (and `bosun reconcile --now`) can fix it.
    pub fn now(&self) -> Timestamp {
        self.host.now()
    }

    /// Why this reconcile runs.
    pub fn trigger(&self) -> Trigger {
        self.trigger
    }

    /// 1 on the first attempt; counts up while retryable errors repeat.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// A condition stamped with the current time and the object's
    /// generation, ready for [`conditions::set`](crate::conditions::set).
    pub fn condition(
        &self,
        type_: impl Into<String>,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Condition {
        Condition {
            type_: type_.into(),
            status: if status { "True" } else { "False" }.to_owned(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: Time(self.now()),
            observed_generation: self.generation,
        }
    }

    /// Reads the object of kind `K` called `name` from the host's cache: in
    /// this object's namespace for a namespaced kind. `K` must be the
    /// primary kind, an owned kind or a declared read kind.
    pub fn get<K>(&self, name: &str) -> Result<Option<K>, Error>
    where
        K: kube::Resource<DynamicType = (), Scope: KnownScope> + DeserializeOwned,
    {
        let namespace = self.namespace_for::<K>();
        let found = self
            .host
            .get_object(&K::api_version(&()), &K::kind(&()), namespace, name)
            .map_err(|e| Error::retryable("ReadFailed", e))?;
        found
            .map(|json| {
                serde_json::from_str(&json).map_err(|e| {
                    Error::retryable("ReadFailed", format!("{} {name}: {e}", K::kind(&())))
                })
            })
            .transpose()
    }

    /// Lists objects of kind `K` from the host's cache (in this object's
    /// namespace for a namespaced kind), filtered by a label selector in
    /// Kubernetes syntax such as `app=web,tier in (a,b),!legacy`.
    pub fn list<K>(&self, label_selector: Option<&str>) -> Result<Vec<K>, Error>
    where
        K: kube::Resource<DynamicType = (), Scope: KnownScope> + DeserializeOwned,
    {
        let namespace = self.namespace_for::<K>();
        self.host
            .list_objects(
                &K::api_version(&()),
                &K::kind(&()),
                namespace,
                label_selector,
            )
            .map_err(|e| Error::retryable("ReadFailed", e))?
            .iter()
            .map(|json| {
                serde_json::from_str(json)
                    .map_err(|e| Error::retryable("ReadFailed", format!("{}: {e}", K::kind(&()))))
            })
            .collect()
    }

    /// The HTTP client: requests to the origins the module declared with
    /// [`Metadata::http_origin`](crate::Metadata) and the operator granted.
    /// Usable in `reconcile` and `finalize` alike.
    pub fn http(&self) -> crate::http::Client<'a> {
        crate::http::Client::new(self.host)
    }

    /// Writes a line to the host's log, tagged with the module and object.
    pub fn log(&self, level: LogLevel, message: &str) {
        self.host.log(level, message);
    }

    /// [`Context::log`] at info level.
    pub fn info(&self, message: &str) {
        self.log(LogLevel::Info, message);
    }

    /// [`Context::log`] at warn level.
    pub fn warn(&self, message: &str) {
        self.log(LogLevel::Warn, message);
    }

    /// [`Context::log`] at debug level.
    pub fn debug(&self, message: &str) {
        self.log(LogLevel::Debug, message);
    }

    fn namespace_for<K>(&self) -> Option<&str>
    where
        K: kube::Resource<Scope: KnownScope>,
    {
        match <K::Scope as KnownScope>::SCOPE {
            Scope::Namespaced => self.namespace.as_deref(),
            Scope::Cluster => None,
        }
    }
}

pub(crate) fn is_kind(object: &Value, api_version: &str, kind: &str) -> bool {
    object.get("apiVersion").and_then(Value::as_str) == Some(api_version)
        && object.get("kind").and_then(Value::as_str) == Some(kind)
}
