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
//!
//! HTTP never reaches the network natively: the harness answers each
//! request from the [`HttpStub`]s the test gave it, records it for
//! [`Outcome::http_requests`], and panics on a request no stub matches, so
//! a reconciler cannot call anything the test did not foresee. A request
//! to an origin the module did not declare
//! ([`Metadata::http_origin`](crate::Metadata::http_origin)) is refused, as
//! the host refuses it.

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
use crate::http::{self, HttpError, HttpErrorKind, Method};
use crate::{Error, Event, LogLevel, Reconciler, Trigger};

mod recording;
pub use recording::{MAX_RECORDING_BYTES, RecordingError};

/// A stand-in for the bosun host that runs a [`Reconciler`] natively.
pub struct Harness<R> {
    now: Timestamp,
    children: Vec<String>,
    objects: Vec<Value>,
    settings: Option<String>,
    trigger: Trigger,
    attempt: u32,
    stubs: Vec<HttpStub>,
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
            stubs: Vec::new(),
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

    /// Answers matching HTTP requests with `stub`. When several stubs
    /// match a request, the most specific wins (method and path over path
    /// over origin), then the one added first that has answers left (see
    /// [`HttpStub::times`]), so a sequence reads in order. A request no
    /// stub matches panics, naming it.
    pub fn http(mut self, stub: HttpStub) -> Self {
        self.stubs.push(stub);
        self
    }

    /// The metadata the component would export.
    ///
    /// # Panics
    /// When the declaration is one the host refuses to load: a module that
    /// owns its own primary kind (its children would be the objects it
    /// reconciles). Better a failing test than a module that never runs.
    pub fn metadata(&self) -> wit::ModuleInfo {
        let info = crate::__private::metadata::<R>();
        if let Some(own) = info
            .owns
            .iter()
            .find(|k| k.group == info.primary.group && k.kind == info.primary.kind)
        {
            panic!(
                "module {} owns its own primary kind {}: the host refuses to load it; own another kind",
                info.name, own.kind
            );
        }
        info
    }

    /// Runs `reconcile` on `object`.
    pub fn reconcile(&self, object: &R::Object) -> Result<Outcome, Error> {
        let host = self.host(object);
        let response = crate::__private::reconcile::<R>(self.request(object), &host)
            .map_err(Error::from_wit)?;
        Ok(Outcome {
            response,
            logs: host.logs.into_inner(),
            http_requests: host.requests.into_inner(),
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
            http_requests: host.requests.into_inner(),
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
            origins: info.http_origins.clone(),
            now: self.now,
            objects: &self.objects,
            readable,
            namespace,
            logs: RefCell::new(Vec::new()),
            stubs: &self.stubs,
            stub_uses: RefCell::new(Vec::new()),
            requests: RefCell::new(Vec::new()),
        }
    }
}

use kube::Resource as _;

/// What a reconcile returned, with typed accessors.
#[derive(Debug)]
pub struct Outcome {
    response: wit::Response,
    logs: Vec<(LogLevel, String)>,
    http_requests: Vec<http::Request>,
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

    /// The HTTP requests the reconciler made, in order.
    pub fn http_requests(&self) -> &[http::Request] {
        &self.http_requests
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
    /// The HTTP requests the reconciler made, in order.
    pub http_requests: Vec<http::Request>,
}

struct TestHost<'a> {
    origins: Vec<String>,
    now: Timestamp,
    objects: &'a [Value],
    readable: Vec<(String, String)>,
    namespace: Option<String>,
    logs: RefCell<Vec<(LogLevel, String)>>,
    stubs: &'a [HttpStub],
    stub_uses: RefCell<Vec<usize>>,
    requests: RefCell<Vec<http::Request>>,
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
        // The host's own bounds, so a test meets the refusal the host gives.
        let selector = bosun_selector::parse_within(
            label_selector.unwrap_or_default(),
            bosun_selector::Bounds::default(),
        )
        .map_err(|e| e.to_string())?;
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

    fn http(&self, request: &http::Request) -> Result<http::Response, HttpError> {
        self.requests.borrow_mut().push(request.clone());
        let parts = request.url_parts()?;
        let origin = parts.origin();
        if !self
            .origins
            .iter()
            .any(|declared| origin_covers(declared, &origin))
        {
            return Err(request.error(
                HttpErrorKind::Refused,
                format!(
                    "{origin} is not an origin this module declared (Metadata::http_origin); \
                     the host refuses it"
                ),
            ));
        }
        let mut used = self.stub_uses.borrow_mut();
        used.resize(self.stubs.len(), 0);
        let (index, stub) = self
            .stubs
            .iter()
            .enumerate()
            .filter(|(index, stub)| {
                stub.matches(request.method, &parts)
                    && stub.times.is_none_or(|times| used[*index] < times)
            })
            .max_by_key(|(index, stub)| (stub.specificity(), std::cmp::Reverse(*index)))
            .unwrap_or_else(|| {
                let known = self
                    .stubs
                    .iter()
                    .map(|s| format!("\n    {s}"))
                    .collect::<String>();
                panic!(
                    "unexpected HTTP request {} {}: no HttpStub matches it; stubs given:{}",
                    request.method,
                    request.url,
                    if known.is_empty() {
                        " none".to_owned()
                    } else {
                        known
                    }
                )
            });
        used[index] += 1;
        match &stub.answer {
            Answer::Response {
                status,
                headers,
                body,
            } => Ok(http::Response::new(
                request,
                *status,
                headers.clone(),
                body.clone(),
            )),
            Answer::Fail(kind, message) => Err(request.error(*kind, message.clone())),
        }
    }
}

/// A canned answer to HTTP requests, for [`Harness::http`].
///
/// A stub matches by origin (`scheme://host[:port]`), optionally by path
/// (the query too, when the stub's URL has one) and by method:
///
/// ```
/// use bosun_sdk::testing::HttpStub;
///
/// // Any request to the origin: 200, no body.
/// HttpStub::origin("https://dns.example:8081");
/// // GET of one path, answered with JSON.
/// HttpStub::get("https://dns.example:8081/api/v1/servers/localhost/zones/example.org.")
///     .json(&serde_json::json!({"name": "example.org.", "rrsets": []}));
/// // PATCH refused by the server.
/// HttpStub::patch("https://dns.example:8081/api/v1/servers/localhost/zones/example.org.")
///     .status(422)
///     .json(&serde_json::json!({"error": "bad content"}));
/// // As if the host refused the request, or it timed out.
/// HttpStub::origin("https://dns.example:8081").refused();
/// HttpStub::origin("https://dns.example:8081").timeout();
/// ```
#[derive(Debug, Clone)]
pub struct HttpStub {
    method: Option<Method>,
    origin: String,
    path: Option<String>,
    answer: Answer,
    times: Option<usize>,
}

#[derive(Debug, Clone)]
enum Answer {
    Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    Fail(HttpErrorKind, String),
}

impl HttpStub {
    /// Every request to `origin` (`scheme://host[:port]`), whatever its
    /// method and path.
    ///
    /// # Panics
    /// When `origin` is not an http(s) origin.
    pub fn origin(origin: &str) -> Self {
        let (origin, path) = split_stub_url(origin);
        assert!(
            path.is_none(),
            "HttpStub::origin({origin:?}) takes an origin without a path; use HttpStub::get etc. for a path"
        );
        HttpStub {
            method: None,
            origin,
            path: None,
            answer: Answer::Response {
                status: 200,
                headers: Vec::new(),
                body: Vec::new(),
            },
            times: None,
        }
    }

    /// Requests with `method` to `url` (origin and path; the query is
    /// compared only when `url` has one).
    ///
    /// # Panics
    /// When `url` is not an http(s) URL.
    pub fn new(method: Method, url: &str) -> Self {
        let (origin, path) = split_stub_url(url);
        HttpStub {
            method: Some(method),
            path: Some(path.unwrap_or_else(|| "/".to_owned())),
            ..HttpStub::origin(&origin)
        }
    }

    /// `GET url`.
    pub fn get(url: &str) -> Self {
        HttpStub::new(Method::Get, url)
    }

    /// `POST url`.
    pub fn post(url: &str) -> Self {
        HttpStub::new(Method::Post, url)
    }

    /// `PUT url`.
    pub fn put(url: &str) -> Self {
        HttpStub::new(Method::Put, url)
    }

    /// `PATCH url`.
    pub fn patch(url: &str) -> Self {
        HttpStub::new(Method::Patch, url)
    }

    /// `DELETE url`.
    pub fn delete(url: &str) -> Self {
        HttpStub::new(Method::Delete, url)
    }

    /// Answers at most `times` requests; after that the next matching stub
    /// answers (a state change: the record absent, then present).
    pub fn times(mut self, times: usize) -> Self {
        self.times = Some(times);
        self
    }

    /// Answers one request only: [`times(1)`](Self::times).
    pub fn once(self) -> Self {
        self.times(1)
    }

    /// Answers with `status` (200 unless set).
    pub fn status(mut self, status: u16) -> Self {
        if let Answer::Response { status: s, .. } = &mut self.answer {
            *s = status;
        } else {
            self.answer = Answer::Response {
                status,
                headers: Vec::new(),
                body: Vec::new(),
            };
        }
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Answer::Response { headers, .. } = &mut self.answer {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    /// Answers with `body`.
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        if let Answer::Response { body, .. } = &mut self.answer {
            *body = bytes.into();
        }
        self
    }

    /// Answers with `value` as JSON (and `Content-Type: application/json`).
    pub fn json(self, value: &impl Serialize) -> Self {
        self.header("Content-Type", "application/json")
            .body(serde_json::to_vec(value).expect("a stub body serializes to JSON"))
    }

    /// Fails the request as the host does when the origin is not granted.
    pub fn refused(self) -> Self {
        self.fail(
            HttpErrorKind::Refused,
            "the origin is not granted to this module",
        )
    }

    /// Fails the request as the host does when no answer comes in time.
    pub fn timeout(self) -> Self {
        self.fail(HttpErrorKind::Timeout, "HttpResponseTimeout")
    }

    /// Fails the request as a server that is down does.
    pub fn connection_refused(self) -> Self {
        self.fail(HttpErrorKind::Connection, "ConnectionRefused")
    }

    /// Fails the request with an error of `kind`.
    pub fn fail(mut self, kind: HttpErrorKind, message: &str) -> Self {
        self.answer = Answer::Fail(kind, message.to_owned());
        self
    }

    fn matches(&self, method: Method, parts: &http::UrlParts<'_>) -> bool {
        if self.method.is_some_and(|m| m != method)
            || !self.origin.eq_ignore_ascii_case(&parts.origin())
        {
            return false;
        }
        match &self.path {
            None => true,
            Some(path) if path.contains('?') => *path == parts.path_with_query,
            Some(path) => path == parts.path_with_query.split('?').next().unwrap_or_default(),
        }
    }

    fn specificity(&self) -> u8 {
        u8::from(self.method.is_some()) * 2 + u8::from(self.path.is_some())
    }
}

impl std::fmt::Display for HttpStub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.method {
            Some(method) => write!(f, "{method} ")?,
            None => f.write_str("any method ")?,
        }
        write!(f, "{}{}", self.origin, self.path.as_deref().unwrap_or("/*"))
    }
}

/// Whether the declared origin `declared` (`scheme://host[:port]`, or
/// `scheme://*.domain[:port]` for its subdomains) covers `origin`, with
/// the scheme's port where none is written.
fn origin_covers(declared: &str, origin: &str) -> bool {
    fn split(origin: &str) -> Option<(String, String, u16)> {
        let (scheme, rest) = origin.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let rest = rest.trim_end_matches('/').to_ascii_lowercase();
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || rest.starts_with('[') => {
                (host.to_owned(), port.parse().ok()?)
            }
            _ => (rest.clone(), default),
        };
        Some((scheme, host, port))
    }
    let (Some(d), Some(o)) = (split(declared), split(origin)) else {
        return false;
    };
    if d.0 != o.0 || d.2 != o.2 {
        return false;
    }
    match d.1.strip_prefix("*.") {
        Some(domain) => {
            o.1.strip_suffix(domain)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'))
        }
        None => d.1 == o.1,
    }
}

/// `scheme://authority` and the path (with its query), of a stub's URL.
fn split_stub_url(url: &str) -> (String, Option<String>) {
    let request = http::Request {
        method: Method::Get,
        url: url.to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
        timeout: None,
    };
    let parts = request
        .url_parts()
        .unwrap_or_else(|e| panic!("stub URL {url:?}: {e}"));
    let has_path = url
        .split_once("://")
        .is_some_and(|(_, rest)| rest.contains(['/', '?']));
    (
        parts.origin().to_ascii_lowercase(),
        has_path.then(|| parts.path_with_query.to_owned()),
    )
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
