//! The `wasi:http` send hook: every request a guest hands over is checked,
//! given its credentials, and sent over a connection to an address the
//! host checked itself — or refused at once.
//!
//! The order matters. The origin check and the request budget run before
//! anything leaves the host; the name is resolved once and the connection
//! made to the very address that was checked, so a second lookup cannot
//! land elsewhere (DNS rebinding). Credentials are added here, after the
//! guest let go of the request, so it can never read them back. Nothing
//! here follows redirects: a 3xx goes back to the guest as it came.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant as StdInstant};
use tracing::Instrument as _;

use http::header::{HeaderName, HeaderValue};
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::Outbound;
use super::budget::{CallBudget, Direction, Metered};
use super::credentials::Holder;
use super::policy::{Refusal, check_address};
use super::pool::{Connection, Key, Returning};
use crate::grants::{CaBundle, HttpGrant};
use crate::origin::Scheme;
use crate::recorder::Recorder;
use crate::recorder::http::ExchangeTap;

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

/// One call's HTTP hooks: the module's access (none when it has no HTTP
/// grant) and the call's budget.
pub struct GuestHttp {
    outbound: Option<Arc<Outbound>>,
    budget: Arc<CallBudget>,
    object: Arc<str>,
    recorder: Option<Arc<Recorder>>,
}

impl GuestHttp {
    /// Hooks for one call about `object` under `outbound`, whose requests
    /// must end by `timeout` from now.
    pub fn new(outbound: Option<Arc<Outbound>>, object: Arc<str>, timeout: Duration) -> Self {
        let limits = outbound.as_ref().map(|o| o.limits).unwrap_or_default();
        GuestHttp {
            outbound,
            budget: CallBudget::new(limits, timeout),
            object,
            recorder: None,
        }
    }

    /// The same hooks, keeping every exchange in `recorder` (the request as
    /// the guest made it, before credentials are added).
    pub fn recording(mut self, recorder: Arc<Recorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }
}

impl WasiHttpHooks for GuestHttp {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        // The request runs on a task of its own: the span, made here below
        // the guest call's, carries the trace there, and to the server.
        let span = tracing::debug_span!("http_request", method = %request.method(), uri = %request.uri(), status = tracing::field::Empty);
        // Recorded as the guest sent it: the host's traceparent is not the
        // guest's doing, and differs on every run.
        let tap = self
            .recorder
            .as_ref()
            .and_then(|recorder| ExchangeTap::start(recorder, &mut request));
        span.in_scope(|| crate::telemetry::trace::inject_trace_context(request.headers_mut()));
        let object = self.object.clone();
        let Some(outbound) = self.outbound.clone() else {
            tracing::warn!(object = %object, uri = %request.uri(), "guest HTTP request refused: this module may reach no origin here{}", "");
            return refused(tap);
        };
        match admit(&outbound, &self.budget, &request) {
            Ok(admitted) => Box::new(
                send(
                    outbound,
                    admitted,
                    self.budget.clone(),
                    object,
                    request,
                    options,
                    tap,
                )
                .instrument(span),
            ),
            Err(refusal) => {
                outbound.refused(&object, &request, refusal);
                refused(tap)
            }
        }
    }
}

fn refused(tap: Option<ExchangeTap>) -> SendFuture {
    if let Some(tap) = tap {
        tap.error(&Error::HttpRequestDenied);
    }
    Box::new(async { Err(Error::HttpRequestDenied) })
}

/// What the checks before sending established.
struct Admitted {
    scheme: Scheme,
    host: String,
    port: u16,
    grant: HttpGrant,
}

fn admit(
    outbound: &Outbound,
    budget: &CallBudget,
    request: &http::Request<WasiBody>,
) -> Result<Admitted, Refusal> {
    let uri = request.uri();
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        _ => return Err(Refusal::Malformed),
    };
    let authority = uri.authority().ok_or(Refusal::Malformed)?;
    if authority.as_str().contains('@') {
        return Err(Refusal::Malformed);
    }
    let host = authority.host().to_owned();
    let port = authority.port_u16().unwrap_or(scheme.default_port());
    let (_, grant) = outbound.policy.admit(scheme, &host, port)?;
    if !grant.allows(request.method().as_str()) {
        return Err(Refusal::Method);
    }
    if !outbound.leads() {
        return Err(Refusal::NotLeader);
    }
    if !budget.take_request() {
        return Err(Refusal::RequestBudget);
    }
    Ok(Admitted {
        scheme,
        host,
        port,
        grant: grant.clone(),
    })
}

async fn send(
    outbound: Arc<Outbound>,
    admitted: Admitted,
    budget: Arc<CallBudget>,
    object: Arc<str>,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    tap: Option<ExchangeTap>,
) -> Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
> {
    let started = StdInstant::now();
    let origin = admitted.grant.origin.to_string();
    let method = request.method().clone();
    // What a refusal reports: the request itself goes to the wire.
    let mut head = http::Request::new(());
    *head.method_mut() = method.clone();
    *head.uri_mut() = request.uri().clone();
    // Leadership lost while the request is under way cuts it: the
    // connection is dropped, the guest told it was denied.
    let result = tokio::select! {
        result = exchange(&outbound, &admitted, &budget, &mut request, options, tap.as_ref()) => result,
        () = outbound.lost_leadership() => Err(Failure::Refused(Refusal::NotLeader)),
    };
    let code = match &result {
        Ok((response, _)) => response.status().as_u16().to_string(),
        Err(Failure::Refused(refusal)) => {
            outbound.refused(&object, &head, *refusal);
            if let Some(tap) = &tap {
                tap.error(&Error::HttpRequestDenied);
            }
            return Err(Error::HttpRequestDenied);
        }
        Err(Failure::Error(error)) => error_name(error).to_owned(),
    };
    tracing::Span::current().record("status", code.as_str());
    tracing::debug!(module = %outbound.module, object = %object, %method, origin = %origin, status = %code, "guest HTTP request");
    if let Some(metrics) = &outbound.env.metrics {
        metrics.guest_http_request(&outbound.module, &origin, &code, started.elapsed());
    }
    let result = result.map_err(|failure| match failure {
        Failure::Error(error) => error,
        Failure::Refused(_) => Error::HttpRequestDenied,
    });
    match (tap, result) {
        (Some(tap), Ok((response, io))) => Ok((tap.response(response), io)),
        (Some(tap), Err(error)) => {
            tap.error(&error);
            Err(error)
        }
        (None, result) => result,
    }
}

enum Failure {
    Refused(Refusal),
    Error(Error),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Error(error)
    }
}

async fn exchange(
    outbound: &Outbound,
    admitted: &Admitted,
    budget: &Arc<CallBudget>,
    request: &mut http::Request<WasiBody>,
    options: Option<RequestOptions>,
    tap: Option<&ExchangeTap>,
) -> Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Failure,
> {
    let connect_timeout = budget.bound(options.and_then(|o| o.connect_timeout));
    let first_byte = budget.bound(options.and_then(|o| o.first_byte_timeout));
    let between = options.and_then(|o| o.between_bytes_timeout);

    // Credentials first: a request whose header cannot be filled is not sent
    // without it.
    if let Some(credentials) = &admitted.grant.credentials {
        let keys = outbound
            .env
            .keys
            .as_ref()
            .ok_or(Failure::Refused(Refusal::Credentials))?;
        let secret = keys
            .read(Holder::Secret, &credentials.secret_ref)
            .await
            .map_err(|reason| {
                tracing::warn!(module = %outbound.module, origin = %admitted.grant.origin, %reason, "credentials for a guest HTTP request are unavailable");
                Failure::Refused(Refusal::Credentials)
            })?;
        let name = HeaderName::try_from(credentials.header.as_str())
            .map_err(|_| Failure::Refused(Refusal::Credentials))?;
        // The recorder scrubs the value from whatever it keeps.
        if let Some(tap) = tap {
            tap.secret(trim_newline(&secret));
        }
        let mut value = credentials.prefix.clone().unwrap_or_default().into_bytes();
        value.extend_from_slice(trim_newline(&secret));
        let mut value =
            HeaderValue::from_bytes(&value).map_err(|_| Failure::Refused(Refusal::Credentials))?;
        value.set_sensitive(true);
        request.headers_mut().insert(name, value);
    }

    let (mut parts, body) = std::mem::replace(
        request,
        http::Request::new(
            http_body_util::Empty::new()
                .map_err(|e| match e {})
                .boxed_unsync(),
        ),
    )
    .into_parts();
    parts.uri = http::Uri::builder()
        .path_and_query(parts.uri.path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    let body = Metered::new(body, budget.clone(), Direction::Request, None);
    let mut wire = http::Request::from_parts(parts, body);

    let key = Key {
        scheme: admitted.scheme,
        host: admitted.host.to_ascii_lowercase(),
        port: admitted.port,
    };
    let respond = |response: http::Response<hyper::body::Incoming>, connection: Connection| {
        let response = response.map(|incoming| {
            let incoming = Returning::new(incoming, outbound.pool.clone(), key.clone(), connection);
            Metered::new(incoming, budget.clone(), Direction::Response, between).boxed_unsync()
        });
        // The connection is driven by its own task, owned by the pool or the
        // response body: nothing is left for the guest's store to drive.
        let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
        (response, io)
    };

    if let Some(mut connection) = outbound.pool.take(&key).await {
        match tokio::time::timeout(first_byte, connection.sender.try_send_request(wire)).await {
            Err(_) => return Err(Error::ConnectionReadTimeout.into()),
            Ok(Ok(response)) => return Ok(respond(response, connection)),
            Ok(Err(mut failed)) => match failed.take_message() {
                // The server closed it before the request went out: a fresh
                // connection below.
                Some(unsent) => wire = unsent,
                None => return Err(Error::from(failed.into_error()).into()),
            },
        }
    }
    let mut connection = connect(outbound, admitted, connect_timeout).await?;
    let response = tokio::time::timeout(first_byte, connection.sender.send_request(wire))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)?
        .map_err(Error::from)?;
    Ok(respond(response, connection))
}

/// A new connection to an address of the admitted host that passes the
/// address check, with TLS when the scheme asks for it.
async fn connect(
    outbound: &Outbound,
    admitted: &Admitted,
    connect_timeout: Duration,
) -> Result<Connection, Failure> {
    let addresses = resolve(&admitted.host, admitted.port, connect_timeout).await?;
    let mut refusal = None;
    let mut stream = None;
    let deadline = tokio::time::Instant::now() + connect_timeout;
    for address in addresses {
        if let Err(why) = check_address(
            address.ip(),
            &admitted.grant.origin,
            &outbound.env.api_server,
        ) {
            refusal.get_or_insert(why);
            continue;
        }
        match tokio::time::timeout_at(deadline, TcpStream::connect(address)).await {
            Ok(Ok(connected)) => {
                stream = Some(connected);
                break;
            }
            Ok(Err(_)) => continue,
            Err(_) => return Err(Error::ConnectionTimeout.into()),
        }
    }
    let Some(stream) = stream else {
        return Err(match refusal {
            Some(why) => Failure::Refused(why),
            None => Failure::Error(Error::ConnectionRefused),
        });
    };
    let _ = stream.set_nodelay(true);

    let io: Box<dyn Stream> = match admitted.scheme {
        Scheme::Http => Box::new(stream),
        Scheme::Https => {
            let config = tls_config(outbound, &admitted.grant).await?;
            let name = server_name(&admitted.host)?;
            let tls = tokio_rustls::TlsConnector::from(config);
            let stream = tokio::time::timeout_at(deadline, tls.connect(name, stream))
                .await
                .map_err(|_| Error::ConnectionTimeout)?
                .map_err(|_| Error::TlsCertificateError)?;
            Box::new(stream)
        }
    };
    let (sender, conn) = tokio::time::timeout_at(
        deadline,
        hyper::client::conn::http1::Builder::new()
            .handshake::<_, Metered<WasiBody>>(TokioIo::new(io)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)?
    .map_err(Error::from)?;
    // Driven on a task of its own, which lives as long as the connection:
    // with the response body while it is read, then in the pool.
    let driver = wasmtime_wasi::runtime::spawn(async move {
        if let Err(error) = conn.await {
            tracing::debug!(%error, "guest HTTP connection ended");
        }
    });
    Ok(Connection::new(sender, driver))
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Stream for T {}

/// The addresses `host` stands for: the literal itself, or one lookup.
async fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, Failure> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Err(_) => Err(Error::DnsTimeout.into()),
        Ok(Err(_)) => Err(Failure::Refused(Refusal::Unresolved)),
        Ok(Ok(addresses)) => Ok(addresses.collect()),
    }
}

fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, Error> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(rustls::pki_types::ServerName::from(ip));
    }
    rustls::pki_types::ServerName::try_from(bare.to_owned())
        .map_err(|_| Error::HttpRequestUriInvalid)
}

/// The system's trust roots, loaded once.
fn system_roots() -> Arc<rustls::RootCertStore> {
    static ROOTS: OnceLock<Arc<rustls::RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!("no system trust roots found; guest HTTPS requests verify only against CA bundles in their grants");
            }
            Arc::new(roots)
        })
        .clone()
}

fn client_config(roots: rustls::RootCertStore) -> Result<Arc<rustls::ClientConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| Error::ConfigurationError)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS settings for a granted origin: the system's roots, plus the
/// grant's CA bundle when it names one.
async fn tls_config(
    outbound: &Outbound,
    grant: &HttpGrant,
) -> Result<Arc<rustls::ClientConfig>, Failure> {
    static SYSTEM: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let Some(bundle) = &grant.ca_bundle else {
        if let Some(config) = SYSTEM.get() {
            return Ok(config.clone());
        }
        let config = client_config((*system_roots()).clone())?;
        return Ok(SYSTEM.get_or_init(|| config).clone());
    };
    let (holder, key) = match bundle {
        CaBundle::ConfigMapRef(key) => (Holder::ConfigMap, key),
        CaBundle::SecretRef(key) => (Holder::Secret, key),
    };
    let keys = outbound
        .env
        .keys
        .as_ref()
        .ok_or(Failure::Refused(Refusal::Credentials))?;
    let pem = keys.read(holder, key).await.map_err(|reason| {
        tracing::warn!(module = %outbound.module, origin = %grant.origin, %reason, "the CA bundle for a guest HTTP request is unavailable");
        Failure::Error(Error::TlsCertificateError)
    })?;
    let mut roots = (*system_roots()).clone();
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok);
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        tracing::warn!(module = %outbound.module, origin = %grant.origin, "the CA bundle holds no usable certificate");
    }
    Ok(client_config(roots)?)
}

fn trim_newline(value: &[u8]) -> &[u8] {
    let end = value
        .iter()
        .rposition(|b| !matches!(b, b'\n' | b'\r'))
        .map_or(0, |i| i + 1);
    &value[..end]
}

/// A short name for how a request failed, for the `code` label.
fn error_name(error: &Error) -> &'static str {
    match error {
        Error::ConnectionTimeout => "connect_timeout",
        Error::ConnectionReadTimeout | Error::HttpResponseTimeout => "timeout",
        Error::ConnectionRefused | Error::Connect(_) => "connection_refused",
        Error::TlsCertificateError | Error::Tls(_) | Error::TlsProtocolError => "tls_error",
        Error::DnsTimeout => "dns_timeout",
        _ => "error",
    }
}
