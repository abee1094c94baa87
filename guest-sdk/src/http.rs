//! A blocking HTTP client for reconcilers, over `wasi:http/outgoing-handler`.
//!
//! ```no_run
//! # use bosun_sdk::prelude::*;
//! # fn reconcile(ctx: &Context) -> Result<(), Error> {
//! #[derive(serde::Deserialize)]
//! struct Zone { name: String }
//!
//! let zone: Zone = ctx
//!     .http()
//!     .get("https://dns.example:8081/api/v1/servers/localhost/zones/example.org.")
//!     .header("Accept", "application/json")
//!     .send()?            // refused, timed out, connection failed: an error
//!     .error_for_status()? // 4xx and 5xx: an error too
//!     .json()?;
//! # let _ = zone.name; Ok(()) }
//! ```
//!
//! Nothing is reachable unless the operator granted it: a module declares
//! the origins it calls with [`Metadata::http_origin`](crate::Metadata), the
//! operator grants them, and the host checks every request (scheme, host,
//! port and resolved address), bounds its time by the call's deadline, and
//! adds the credentials the grant binds to the origin. A refused request is
//! an [`HttpError`] of kind [`HttpErrorKind::Refused`] at once.
//!
//! The client follows no redirects: a 3xx is handed back as it came (the
//! host would refuse an ungranted target anyway). Natively — in `cargo test`
//! through [`testing::Harness`](crate::testing::Harness) — no request ever
//! reaches the network: the harness answers from the stubs the test gave it.
//!
//! Why a thin layer over the `wasip2` bindings rather than a client crate:
//! the bindings are the Bytecode Alliance's own (the crate the Rust
//! standard library uses for WASI 0.2), generated from the same WIT the
//! host links, and cost only the calls made; the reconciler API is
//! synchronous, so an async runtime (`wstd`) would add code for nothing, and
//! the blocking alternatives (`waki`) bring their own wit-bindgen and
//! follow redirects. The whole client is a few hundred lines and adds about
//! 15 KB to a component.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::host::Host;

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
    /// `OPTIONS`
    Options,
}

impl Method {
    /// The method's name, upper case.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The client, from [`Context::http`](crate::Context::http).
#[derive(Clone, Copy)]
pub struct Client<'a> {
    host: &'a dyn Host,
}

impl<'a> Client<'a> {
    pub(crate) fn new(host: &'a dyn Host) -> Self {
        Client { host }
    }

    /// A request with `method` to `url` (`http://` or `https://`).
    pub fn request(&self, method: Method, url: impl Into<String>) -> RequestBuilder<'a> {
        RequestBuilder {
            host: self.host,
            request: Request {
                method,
                url: url.into(),
                headers: Vec::new(),
                body: Vec::new(),
                timeout: None,
            },
        }
    }

    /// A `GET` request.
    pub fn get(&self, url: impl Into<String>) -> RequestBuilder<'a> {
        self.request(Method::Get, url)
    }

    /// A `POST` request.
    pub fn post(&self, url: impl Into<String>) -> RequestBuilder<'a> {
        self.request(Method::Post, url)
    }

    /// A `PUT` request.
    pub fn put(&self, url: impl Into<String>) -> RequestBuilder<'a> {
        self.request(Method::Put, url)
    }

    /// A `PATCH` request.
    pub fn patch(&self, url: impl Into<String>) -> RequestBuilder<'a> {
        self.request(Method::Patch, url)
    }

    /// A `DELETE` request.
    pub fn delete(&self, url: impl Into<String>) -> RequestBuilder<'a> {
        self.request(Method::Delete, url)
    }
}

/// A request being built; [`send`](RequestBuilder::send) makes it.
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder<'a> {
    host: &'a dyn Host,
    request: Request,
}

impl RequestBuilder<'_> {
    /// Adds a header (appended: a name may repeat).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.request.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.request.body = body.into();
        self
    }

    /// Sets the body to `value` as JSON, with `Content-Type: application/json`.
    ///
    /// # Panics
    /// When `value`'s `Serialize` implementation fails, which derived
    /// implementations of plain data never do.
    pub fn json(mut self, value: &impl Serialize) -> Self {
        self.request.body = serde_json::to_vec(value).expect("a request body serializes to JSON");
        if !self.request.has_header("content-type") {
            self.request
                .headers
                .push(("Content-Type".into(), "application/json".into()));
        }
        self
    }

    /// Bounds the time to connect, to the first byte of the response and
    /// between bytes. The host bounds each request by what remains of the
    /// call's deadline in any case, whichever is shorter.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.request.timeout = Some(timeout);
        self
    }

    /// Sends the request and reads the whole response.
    ///
    /// Any status is a response; use [`Response::error_for_status`] to turn
    /// 4xx and 5xx into errors.
    pub fn send(self) -> Result<Response, HttpError> {
        self.request.check()?;
        // Inside a component the request goes straight to wasi:http, not
        // through the `Host` vtable: a module that never sends then links
        // none of it, and its component imports no wasi:http at all.
        #[cfg(target_arch = "wasm32")]
        {
            let _ = self.host;
            wasi::send(&self.request)
        }
        #[cfg(not(target_arch = "wasm32"))]
        self.host.http(&self.request)
    }
}

/// A request as sent: what the [`Harness`](crate::testing::Harness) records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The URL as given.
    pub url: String,
    /// The headers, in the order they were added.
    pub headers: Vec<(String, String)>,
    /// The body; empty when none was set.
    pub body: Vec<u8>,
    /// The timeout the guest asked for.
    pub timeout: Option<Duration>,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The URL split into its parts, or why it cannot be sent.
    pub fn url_parts(&self) -> Result<UrlParts<'_>, HttpError> {
        UrlParts::parse(&self.url).map_err(|reason| HttpError {
            kind: HttpErrorKind::InvalidRequest,
            method: self.method,
            url: self.url.clone(),
            message: reason,
        })
    }

    fn check(&self) -> Result<(), HttpError> {
        self.url_parts()?;
        for (name, value) in &self.headers {
            let bad_name = name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if bad_name {
                return Err(self.invalid(format!("header name {name:?} is not a token")));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(self.invalid(format!("header {name} holds a line break or NUL")));
            }
        }
        Ok(())
    }

    fn invalid(&self, message: String) -> HttpError {
        HttpError {
            kind: HttpErrorKind::InvalidRequest,
            method: self.method,
            url: self.url.clone(),
            message,
        }
    }

    /// An error of `kind` about this request.
    pub fn error(&self, kind: HttpErrorKind, message: impl Into<String>) -> HttpError {
        HttpError {
            kind,
            method: self.method,
            url: self.url.clone(),
            message: message.into(),
        }
    }
}

/// A URL split the way `wasi:http` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlParts<'u> {
    /// `https` or `http`.
    pub https: bool,
    /// `host[:port]`.
    pub authority: &'u str,
    /// The path and query, `/` at least; the fragment is dropped.
    pub path_with_query: &'u str,
}

impl<'u> UrlParts<'u> {
    fn parse(url: &'u str) -> Result<Self, String> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err("only http:// and https:// URLs can be requested".into());
        };
        if url
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b >= 0x80)
        {
            return Err(
                "the URL holds spaces, control or non-ASCII characters; percent-encode them".into(),
            );
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.is_empty() {
            return Err("the URL names no host".into());
        }
        if authority.contains('@') {
            // Credentials come from the grant, bound to the origin by the host.
            return Err("credentials in a URL are not sent; the operator binds them to the origin in the grant".into());
        }
        let path_with_query = if path.is_empty() { "/" } else { path };
        if path_with_query.starts_with('?') {
            return Err("the URL's query needs a path before it (`/?…`)".into());
        }
        Ok(UrlParts {
            https,
            authority,
            path_with_query,
        })
    }

    /// `scheme://host[:port]`, the origin the grant is checked against.
    pub fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.authority)
    }
}

/// A response, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    method: Method,
    url: String,
}

impl Response {
    /// A response to `request` (for hosts and test stubs).
    pub fn new(
        request: &Request,
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Self {
        Response {
            status,
            headers,
            body,
            method: request.method,
            url: request.url.clone(),
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header, as received.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body.
    pub fn bytes(&self) -> &[u8] {
        &self.body
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; a body that does not parse is an error of
    /// kind [`HttpErrorKind::Body`].
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| HttpError {
            kind: HttpErrorKind::Body,
            method: self.method,
            url: self.url.clone(),
            message: format!("the {} response is not the JSON expected: {e}", self.status),
        })
    }

    /// The response itself for 1xx, 2xx and 3xx; an error of kind
    /// [`HttpErrorKind::Status`] for 4xx and 5xx, quoting the start of the
    /// body (servers usually say there what was wrong).
    pub fn error_for_status(self) -> Result<Self, HttpError> {
        if self.status < 400 {
            return Ok(self);
        }
        let text = self.text();
        let mut quoted = text.trim().replace(['\r', '\n'], " ");
        if quoted.len() > MAX_QUOTED_BODY {
            let mut cut = MAX_QUOTED_BODY;
            while !quoted.is_char_boundary(cut) {
                cut -= 1;
            }
            quoted.truncate(cut);
            quoted.push('…');
        }
        let message = if quoted.is_empty() {
            format!("status {}", self.status)
        } else {
            format!("status {}: {quoted}", self.status)
        };
        Err(HttpError {
            kind: HttpErrorKind::Status(self.status),
            method: self.method,
            url: self.url,
            message,
        })
    }
}

/// How much of an error body [`Response::error_for_status`] quotes.
const MAX_QUOTED_BODY: usize = 512;

/// What kind of failure an [`HttpError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpErrorKind {
    /// The host refused the request: its origin or address is not granted
    /// to this module, or a budget (requests, bytes) is spent.
    Refused,
    /// No answer in time (connect, first byte, between bytes, or the
    /// call's deadline).
    Timeout,
    /// The connection failed: DNS, refused, reset, TLS.
    Connection,
    /// The server answered 4xx or 5xx ([`Response::error_for_status`]).
    Status(u16),
    /// The request could not be made as written (URL, header).
    InvalidRequest,
    /// The response body could not be read or parsed.
    Body,
    /// Another protocol failure.
    Protocol,
}

/// Why a request failed. Names the method and URL.
///
/// It converts into the SDK's [`Error`] with `?`, classified: a 4xx status
/// (but 408 and 429) and an invalid request are permanent — the object or
/// the settings must change — and everything else is retryable, a refusal
/// included, since the operator may yet grant the origin. Reasons are
/// `HttpRefused`, `HttpTimeout`, `HttpConnection`, `HttpStatus`,
/// `HttpInvalidRequest`, `HttpBody` and `HttpProtocol`.
///
/// It deliberately does not implement `std::error::Error`: the SDK's
/// `Error` converts from every `std::error::Error` as a plain retryable
/// failure, and that blanket conversion would lose the classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    kind: HttpErrorKind,
    method: Method,
    url: String,
    message: String,
}

impl HttpError {
    /// What kind of failure it is.
    pub fn kind(&self) -> HttpErrorKind {
        self.kind
    }

    /// The status, for [`HttpErrorKind::Status`].
    pub fn status(&self) -> Option<u16> {
        match self.kind {
            HttpErrorKind::Status(status) => Some(status),
            _ => None,
        }
    }

    /// The URL of the failed request.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What went wrong, without the method and URL.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when retrying cannot help until something else changes: a 4xx
    /// other than 408 (timeout) and 429 (too many requests), or a request
    /// that cannot be made as written.
    pub fn is_permanent(&self) -> bool {
        match self.kind {
            HttpErrorKind::Status(status) => {
                (400..500).contains(&status) && status != 408 && status != 429
            }
            HttpErrorKind::InvalidRequest => true,
            _ => false,
        }
    }

    /// The CamelCase reason used when it becomes an [`Error`].
    pub fn reason(&self) -> &'static str {
        match self.kind {
            HttpErrorKind::Refused => "HttpRefused",
            HttpErrorKind::Timeout => "HttpTimeout",
            HttpErrorKind::Connection => "HttpConnection",
            HttpErrorKind::Status(_) => "HttpStatus",
            HttpErrorKind::InvalidRequest => "HttpInvalidRequest",
            HttpErrorKind::Body => "HttpBody",
            HttpErrorKind::Protocol => "HttpProtocol",
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            HttpErrorKind::Refused => "refused by the host",
            HttpErrorKind::Timeout => "timed out",
            HttpErrorKind::Connection => "connection failed",
            HttpErrorKind::Status(_) => "failed",
            HttpErrorKind::InvalidRequest => "cannot be sent",
            HttpErrorKind::Body => "answered badly",
            HttpErrorKind::Protocol => "failed",
        };
        write!(f, "{} {} {what}: {}", self.method, self.url, self.message)
    }
}

impl From<HttpError> for Error {
    fn from(error: HttpError) -> Self {
        let reason = error.reason();
        if error.is_permanent() {
            Error::permanent(reason, error.to_string())
        } else {
            Error::retryable(reason, error.to_string())
        }
    }
}

/// Sending through `wasi:http/outgoing-handler`, inside a component.
#[cfg(target_arch = "wasm32")]
pub(crate) mod wasi {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{
        self as t, ErrorCode, Fields, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
    };
    use wasip2::io::streams::StreamError;

    use super::{HttpError, HttpErrorKind, Method, Request, Response};

    /// `blocking-write-and-flush` takes at most 4096 bytes at a time.
    const WRITE_CHUNK: usize = 4096;
    /// How much one read asks for.
    const READ_CHUNK: u64 = 64 * 1024;

    pub(crate) fn send(request: &Request) -> Result<Response, HttpError> {
        let parts = request.url_parts()?;
        let entries: Vec<(String, Vec<u8>)> = request
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.as_bytes().to_vec()))
            .collect();
        let headers = Fields::from_list(&entries)
            .map_err(|e| request.error(HttpErrorKind::InvalidRequest, format!("headers: {e:?}")))?;
        let outgoing = OutgoingRequest::new(headers);
        let invalid = |what: &str| {
            request.error(
                HttpErrorKind::InvalidRequest,
                format!("the {what} is not accepted"),
            )
        };
        outgoing
            .set_method(&method(request.method))
            .map_err(|()| invalid("method"))?;
        outgoing
            .set_scheme(Some(if parts.https {
                &Scheme::Https
            } else {
                &Scheme::Http
            }))
            .map_err(|()| invalid("scheme"))?;
        outgoing
            .set_authority(Some(parts.authority))
            .map_err(|()| invalid("host"))?;
        outgoing
            .set_path_with_query(Some(parts.path_with_query))
            .map_err(|()| invalid("path"))?;
        let body = outgoing.body().map_err(|()| {
            request.error(HttpErrorKind::Protocol, "the request body was taken twice")
        })?;
        let options = request.timeout.map(|timeout| {
            let options = RequestOptions::new();
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            // A host may not support a timeout; its own bound applies then.
            let _ = options.set_connect_timeout(Some(nanos));
            let _ = options.set_first_byte_timeout(Some(nanos));
            let _ = options.set_between_bytes_timeout(Some(nanos));
            options
        });
        let future = outgoing_handler::handle(outgoing, options).map_err(|e| error(request, &e))?;

        {
            let stream = body.write().map_err(|()| {
                request.error(
                    HttpErrorKind::Protocol,
                    "the request body cannot be written",
                )
            })?;
            for chunk in request.body.chunks(WRITE_CHUNK) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| stream_error(request, e))?;
            }
        }
        OutgoingBody::finish(body, None).map_err(|e| error(request, &e))?;

        future.subscribe().block();
        let incoming = match future.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(e))) => return Err(error(request, &e)),
            Some(Err(())) | None => {
                return Err(request.error(HttpErrorKind::Protocol, "the response was lost"));
            }
        };
        let status = incoming.status();
        let headers = incoming
            .headers()
            .entries()
            .into_iter()
            .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let body = incoming.consume().map_err(|()| {
            request.error(HttpErrorKind::Protocol, "the response body was taken twice")
        })?;
        let mut bytes = Vec::new();
        {
            let stream = body.stream().map_err(|()| {
                request.error(HttpErrorKind::Protocol, "the response body cannot be read")
            })?;
            loop {
                match stream.blocking_read(READ_CHUNK) {
                    Ok(chunk) => bytes.extend_from_slice(&chunk),
                    Err(StreamError::Closed) => break,
                    Err(e) => return Err(stream_error(request, e)),
                }
            }
        }
        drop(t::IncomingBody::finish(body));
        Ok(Response::new(request, status, headers, bytes))
    }

    fn method(method: Method) -> t::Method {
        match method {
            Method::Get => t::Method::Get,
            Method::Head => t::Method::Head,
            Method::Post => t::Method::Post,
            Method::Put => t::Method::Put,
            Method::Patch => t::Method::Patch,
            Method::Delete => t::Method::Delete,
            Method::Options => t::Method::Options,
        }
    }

    fn stream_error(request: &Request, e: StreamError) -> HttpError {
        match e {
            StreamError::Closed => {
                request.error(HttpErrorKind::Connection, "the connection closed early")
            }
            StreamError::LastOperationFailed(io) => match t::http_error_code(&io) {
                Some(code) => error(request, &code),
                None => request.error(HttpErrorKind::Connection, io.to_debug_string()),
            },
        }
    }

    fn error(request: &Request, code: &ErrorCode) -> HttpError {
        use ErrorCode as E;
        let kind = match code {
            E::HttpRequestDenied | E::DestinationIpProhibited => HttpErrorKind::Refused,
            E::DnsTimeout
            | E::ConnectionTimeout
            | E::ConnectionReadTimeout
            | E::ConnectionWriteTimeout
            | E::HttpResponseTimeout => HttpErrorKind::Timeout,
            E::DnsError(_)
            | E::DestinationNotFound
            | E::DestinationUnavailable
            | E::DestinationIpUnroutable
            | E::ConnectionRefused
            | E::ConnectionTerminated
            | E::ConnectionLimitReached
            | E::TlsProtocolError
            | E::TlsCertificateError
            | E::TlsAlertReceived(_) => HttpErrorKind::Connection,
            E::HttpRequestMethodInvalid
            | E::HttpRequestUriInvalid
            | E::HttpRequestUriTooLong
            | E::HttpRequestHeaderSectionSize(_)
            | E::HttpRequestHeaderSize(_) => HttpErrorKind::InvalidRequest,
            E::HttpResponseBodySize(_) | E::HttpRequestBodySize(_) => HttpErrorKind::Refused,
            _ => HttpErrorKind::Protocol,
        };
        request.error(kind, describe(code))
    }

    fn describe(code: &ErrorCode) -> String {
        use ErrorCode as E;
        match code {
            E::HttpRequestDenied => "the origin is not granted to this module".into(),
            E::DestinationIpProhibited => {
                "the address it resolves to is not granted to this module".into()
            }
            E::HttpResponseBodySize(limit) | E::HttpRequestBodySize(limit) => match limit {
                Some(limit) => format!("over the byte budget ({limit} bytes)"),
                None => "over the byte budget".into(),
            },
            E::DnsError(payload) => {
                format!("DNS: {}", payload.rcode.as_deref().unwrap_or("no answer"))
            }
            E::InternalError(Some(message)) => message.clone(),
            other => format!("{other:?}")
                .trim_start_matches("ErrorCode::")
                .to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str) -> Request {
        Request {
            method: Method::Get,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        }
    }

    #[test]
    fn urls_split_into_origin_and_path() {
        let r = request("https://dns.example:8081/api/v1/zones/a.?x=1#frag");
        let parts = r.url_parts().unwrap();
        assert!(parts.https);
        assert_eq!(parts.authority, "dns.example:8081");
        assert_eq!(parts.path_with_query, "/api/v1/zones/a.?x=1");
        assert_eq!(parts.origin(), "https://dns.example:8081");
        assert_eq!(
            request("http://h").url_parts().unwrap().path_with_query,
            "/"
        );
    }

    #[test]
    fn urls_that_cannot_be_sent_are_invalid_requests() {
        for url in [
            "ftp://h/",
            "https:///path",
            "http://user:pw@h/",
            "http://h/a b",
            "http://h/\r\nX: y",
            "dns.example/path",
        ] {
            let e = request(url).url_parts().unwrap_err();
            assert_eq!(e.kind(), HttpErrorKind::InvalidRequest, "{url}");
            assert!(e.is_permanent());
        }
    }

    #[test]
    fn header_injection_is_refused_before_sending() {
        let mut r = request("http://h/");
        r.headers.push(("X-Evil".into(), "a\r\nHost: other".into()));
        assert_eq!(r.check().unwrap_err().kind(), HttpErrorKind::InvalidRequest);
        let mut r = request("http://h/");
        r.headers.push(("Bad Name".into(), "v".into()));
        assert_eq!(r.check().unwrap_err().kind(), HttpErrorKind::InvalidRequest);
    }

    #[test]
    fn statuses_classify_into_permanent_and_retryable_errors() {
        let r = request("http://h/x");
        let status = |code: u16| {
            Response::new(&r, code, Vec::new(), b"{\"error\": \"nope\"}".to_vec())
                .error_for_status()
                .map(|_| ())
        };
        assert!(status(200).is_ok());
        assert!(status(304).is_ok());
        let e = status(422).unwrap_err();
        assert_eq!(e.status(), Some(422));
        assert!(e.to_string().contains("nope"), "{e}");
        let as_error = Error::from(e);
        assert!(as_error.is_permanent());
        assert_eq!(as_error.reason(), "HttpStatus");
        for code in [408, 429, 500, 503] {
            assert!(
                !Error::from(status(code).unwrap_err()).is_permanent(),
                "{code}"
            );
        }
        let refused = r.error(HttpErrorKind::Refused, "not granted");
        let as_error = Error::from(refused);
        assert!(!as_error.is_permanent());
        assert_eq!(as_error.reason(), "HttpRefused");
        assert!(
            as_error
                .message()
                .contains("GET http://h/x refused by the host")
        );
    }

    #[test]
    fn long_error_bodies_are_cut() {
        let r = request("http://h/x");
        let e = Response::new(&r, 500, Vec::new(), "é".repeat(2000).into_bytes())
            .error_for_status()
            .unwrap_err();
        assert!(e.message().len() < MAX_QUOTED_BODY + 32);
    }
}
