//! The host functions a reconciler calls, behind a trait so that the native
//! test harness can stand in for the real host.

use jiff::Timestamp;

use crate::LogLevel;
use crate::http::{HttpError, Request, Response};

/// The host, as seen from a guest.
pub trait Host {
    /// Writes a log line.
    fn log(&self, level: LogLevel, message: &str);
    /// Reads one object from the host's cache, as JSON.
    fn get_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<String>, String>;
    /// Lists objects from the host's cache, as JSON.
    fn list_objects(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<String>, String>;
    /// The current time.
    fn now(&self) -> Timestamp;
    /// Sends an HTTP request (already checked by the SDK) and reads the
    /// whole response.
    fn http(&self, request: &Request) -> Result<Response, HttpError>;
}

/// The real host, through the component's imports.
pub struct WasmHost;

impl Host for WasmHost {
    fn log(&self, level: LogLevel, message: &str) {
        crate::bindings::bosun::reconciler::host::log(level, message);
    }

    fn get_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<String>, String> {
        crate::bindings::bosun::reconciler::host::get_object(api_version, kind, namespace, name)
    }

    fn list_objects(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<String>, String> {
        crate::bindings::bosun::reconciler::host::list_objects(
            api_version,
            kind,
            namespace,
            label_selector,
        )
    }

    fn now(&self) -> Timestamp {
        // The WASI wall clock, which the host controls (`bosun reconcile --now`).
        Timestamp::now()
    }

    /// Inside a component `RequestBuilder::send` calls wasi:http itself;
    /// natively the component's imports do not exist, and tests go through
    /// the harness, which answers from stubs and never reaches the network.
    fn http(&self, request: &Request) -> Result<Response, HttpError> {
        Err(request.error(
            crate::http::HttpErrorKind::Refused,
            "outside a component there is no network; test through bosun_sdk::testing::Harness",
        ))
    }
}
