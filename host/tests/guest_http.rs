//! Outbound HTTP from a real guest (misbehave's `http` mode) through the
//! real engine and send hook, against real servers on loopback started
//! here: what is refused, what is cut, and what reaches the server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bosun::engine::bindings::{Request, Trigger};
use bosun::engine::{CallContext, Engine, EngineConfig, Limits, Module};
use bosun::grants::{CaBundle, HttpCredentials, HttpGrant, KeyRef};
use bosun::http::credentials::{Holder, KeySource};
use bosun::http::{Environment, HttpLimits, Origin, Outbound};
use serde_json::{Value, json};

static ENGINE: LazyLock<Engine> =
    LazyLock::new(|| Engine::new(EngineConfig::default()).expect("engine"));

/// A loopback server answering each connection with `respond`, recording
/// the request heads it read. Stops with the process.
struct Server {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(respond: fn(&mut TcpStream)) -> Server {
        Server::serve(move |mut stream, heads| {
            if record_head(&mut stream, heads) {
                respond(&mut stream);
            }
        })
    }

    /// Accepts connections on loopback, each handed to `handle` on a thread
    /// of its own with the log of request heads.
    fn serve(handle: impl Fn(TcpStream, &Mutex<Vec<String>>) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        let handle = Arc::new(handle);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (seen, handle) = (seen.clone(), handle.clone());
                thread::spawn(move || handle(stream, &seen));
            }
        });
        Server { addr, heads }
    }

    /// A server answering every request with a redirect to what the
    /// returned location holds at the time.
    fn redirecting() -> (Server, Arc<Mutex<String>>) {
        let location = Arc::new(Mutex::new(String::new()));
        let to = location.clone();
        let server = Server::serve(move |mut stream, heads| {
            if record_head(&mut stream, heads) {
                let location = to.lock().unwrap().clone();
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n"
                    )
                    .as_bytes(),
                );
            }
        });
        (server, location)
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// The next request head on `stream` (a byte at a time, so nothing of the
/// next request is read), or None when the client closed it.
fn read_head(stream: &mut impl Read) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(head)
}

/// Reads the next request head on `stream` into `heads`; false when the
/// client closed it first.
fn record_head(stream: &mut impl Read, heads: &Mutex<Vec<String>>) -> bool {
    let Some(head) = read_head(stream) else {
        return false;
    };
    heads
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&head).into_owned());
    true
}

fn ok(stream: &mut impl Write) {
    let _ =
        stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello");
}

fn endless(stream: &mut TcpStream) {
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
    let chunk = [b'x'; 65536];
    loop {
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(&chunk);
        frame.extend_from_slice(b"\r\n");
        if stream.write_all(&frame).is_err() {
            return;
        }
    }
}

fn slowloris(stream: &mut TcpStream) {
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n");
    for _ in 0..600 {
        if stream.write_all(b"x").is_err() {
            return;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A key source holding one value the test can change, as a rotated Secret.
#[derive(Default)]
struct Keys(Mutex<Vec<u8>>);

impl KeySource for Keys {
    fn read(
        &self,
        holder: Holder,
        key: &KeyRef,
    ) -> futures::future::BoxFuture<'static, Result<Vec<u8>, String>> {
        let value = if holder == Holder::Secret && key.name == "api" {
            Ok(self.0.lock().unwrap().clone())
        } else {
            Err(format!("no key {}", key.name))
        };
        Box::pin(async move { value })
    }
}

fn grant(origin: &str) -> HttpGrant {
    HttpGrant {
        origin: Origin::parse(origin).unwrap(),
        credentials: None,
        ca_bundle: None,
        methods: Vec::new(),
    }
}

/// misbehave declaring `declared`, granted `granted`, GETting `url`;
/// what it wrote to its status, and how long the call took.
fn get(
    declared: &[&str],
    granted: Vec<HttpGrant>,
    env: Environment,
    url: &str,
    follow: bool,
    timeout: Duration,
) -> (Value, Duration) {
    let module = misbehave_reaching(declared);
    let outbound = Outbound::new(
        module.meta(),
        &granted,
        HttpLimits {
            response_bytes: 1 << 20,
            ..HttpLimits::default()
        },
        env,
    );
    call(&module, &outbound, url, follow, timeout)
}

fn misbehave_reaching(declared: &[&str]) -> Module {
    let path = bosun_testenv::guests::misbehave_reaching(declared).expect("guest builds");
    ENGINE.load_file(&path).expect("loads")
}

/// One reconcile of `module` under `outbound`, GETting `url`; what it
/// wrote to its status, and how long the call took.
fn call(
    module: &Module,
    outbound: &Arc<Outbound>,
    url: &str,
    follow: bool,
    timeout: Duration,
) -> (Value, Duration) {
    let ctx = CallContext {
        limits: Limits {
            timeout,
            ..Limits::default()
        },
        http: Some(outbound.clone()),
        ..CallContext::default()
    };
    let object = json!({
        "apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave",
        "metadata": {"name": "caller", "namespace": "default", "uid": "u-1", "generation": 1},
        "spec": {"mode": "http", "url": url, "follow": follow}
    });
    let request = Request {
        object: object.to_string(),
        children: vec![],
        settings: None,
        trigger: Trigger::Manual,
        attempt: 1,
    };
    let started = Instant::now();
    let response = module
        .reconcile(&request, &ctx)
        .expect("the call completes")
        .expect("the guest answers");
    let status: Value =
        serde_json::from_str(response.status.as_deref().expect("a status")).unwrap();
    (status["http"].clone(), started.elapsed())
}

#[test]
fn a_method_the_grant_does_not_list_is_refused_before_anything_is_sent() {
    let server = Server::start(ok);
    let origin = server.origin();
    let mut post_only = grant(&origin);
    post_only.methods = vec!["POST".into()];
    let (refused, _) = get(
        &[&origin],
        vec![post_only],
        Environment::default(),
        &format!("{origin}/zone"),
        false,
        Duration::from_secs(5),
    );
    assert_eq!(refused["error"], "HttpRequestDenied", "{refused}");
    assert!(server.requests().is_empty(), "the GET was sent");
    // The default set has GET, and never TRACE or CONNECT.
    let default = grant(&origin);
    assert!(default.allows("GET") && default.allows("DELETE"));
    assert!(!default.allows("TRACE") && !default.allows("CONNECT"));
}

#[test]
fn a_granted_origin_is_reached_and_an_ungranted_one_refused_at_once() {
    let server = Server::start(ok);
    let origin = server.origin();
    let (reached, _) = get(
        &[&origin],
        vec![grant(&origin)],
        Environment::default(),
        &format!("{origin}/zone"),
        false,
        Duration::from_secs(5),
    );
    assert_eq!(reached["status"], 200, "{reached}");
    assert_eq!(reached["body"], "hello");
    assert!(server.requests()[0].starts_with("GET /zone HTTP/1.1"));

    let other = Server::start(ok);
    // Declared but not granted.
    let (refused, took) = get(
        &[&origin, &other.origin()],
        vec![grant(&origin)],
        Environment::default(),
        &format!("{}/", other.origin()),
        false,
        Duration::from_secs(5),
    );
    assert_eq!(refused["error"], "HttpRequestDenied", "{refused}");
    assert!(
        took < Duration::from_secs(2),
        "refused at once, took {took:?}"
    );
    assert!(
        other.requests().is_empty(),
        "nothing reached the ungranted server"
    );
    // The cloud metadata address, named by no origin.
    let (metadata, _) = get(
        &[&origin],
        vec![grant(&origin)],
        Environment::default(),
        "http://169.254.169.254/latest/meta-data/",
        false,
        Duration::from_secs(5),
    );
    assert_eq!(metadata["error"], "HttpRequestDenied", "{metadata}");
}

#[test]
fn the_api_server_address_is_refused_even_through_a_granted_name() {
    let api = Server::start(ok);
    let origin = format!("http://localhost:{}", api.addr.port());
    let env = Environment {
        api_server: vec![api.addr.ip()].into(),
        ..Environment::default()
    };
    let (refused, _) = get(
        &[&origin],
        vec![grant(&origin)],
        env,
        &format!("{origin}/api"),
        false,
        Duration::from_secs(5),
    );
    assert_eq!(refused["error"], "HttpRequestDenied", "{refused}");
    assert!(api.requests().is_empty());
}

#[test]
fn redirects_are_not_followed_by_the_host_and_the_guests_own_follow_is_checked() {
    let target = Server::start(ok);
    let (redirector, location) = Server::redirecting();
    *location.lock().unwrap() = format!("{}/secret", target.origin());
    let origin = redirector.origin();
    let (outcome, _) = get(
        &[&origin],
        vec![grant(&origin)],
        Environment::default(),
        &format!("{origin}/start"),
        true,
        Duration::from_secs(5),
    );
    assert_eq!(outcome["status"], 302, "{outcome}");
    assert_eq!(outcome["follow"]["error"], "HttpRequestDenied", "{outcome}");
    assert!(
        target.requests().is_empty(),
        "the redirect target was never reached"
    );
}

#[test]
fn an_endless_body_is_cut_at_the_response_budget() {
    let server = Server::start(endless);
    let origin = server.origin();
    let (outcome, took) = get(
        &[&origin],
        vec![grant(&origin)],
        Environment::default(),
        &format!("{origin}/"),
        false,
        Duration::from_secs(5),
    );
    // The cut reaches the guest as a stream error worded by wasi:http's
    // `HttpResponseBodySize` ("HTTP response body size exceeds limit").
    let error = outcome["error"].as_str().unwrap_or("");
    assert!(
        error.contains("HttpResponseBodySize") || error.contains("response body size exceeds"),
        "{outcome}"
    );
    assert!(outcome["bytes"].as_u64().unwrap() <= 1 << 20, "{outcome}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn a_slowloris_server_is_cut_within_the_call_deadline() {
    let server = Server::start(slowloris);
    let origin = server.origin();
    let (outcome, took) = get(
        &[&origin],
        vec![grant(&origin)],
        Environment::default(),
        &format!("{origin}/"),
        false,
        Duration::from_secs(1),
    );
    assert!(outcome["error"].is_string(), "{outcome}");
    assert!(
        took < Duration::from_millis(1500),
        "cut within the 1 s deadline, took {took:?}"
    );
}

#[test]
fn credentials_reach_the_server_never_the_guest_and_rotation_takes_effect() {
    let server = Server::start(ok);
    let origin = server.origin();
    let keys = Arc::new(Keys(Mutex::new(b"first-secret\n".to_vec())));
    let env = Environment {
        keys: Some(keys.clone()),
        ..Environment::default()
    };
    let mut with_key = grant(&origin);
    with_key.credentials = Some(HttpCredentials {
        header: "X-API-Key".into(),
        prefix: Some("Key ".into()),
        secret_ref: KeyRef {
            namespace: "bosun-system".into(),
            name: "api".into(),
            key: "key".into(),
        },
    });
    let (outcome, _) = get(
        &[&origin],
        vec![with_key.clone()],
        env.clone(),
        &format!("{origin}/"),
        false,
        Duration::from_secs(5),
    );
    assert_eq!(outcome["status"], 200, "{outcome}");
    assert!(!outcome.to_string().contains("first-secret"), "{outcome}");
    assert!(
        server.requests()[0]
            .to_ascii_lowercase()
            .contains("x-api-key: key first-secret\r\n"),
        "{:?}",
        server.requests()
    );

    // Rotated: the next request carries the new value, with no reload.
    *keys.0.lock().unwrap() = b"second-secret".to_vec();
    let (_, _) = get(
        &[&origin],
        vec![with_key],
        env,
        &format!("{origin}/"),
        false,
        Duration::from_secs(5),
    );
    assert!(
        server.requests()[1]
            .to_ascii_lowercase()
            .contains("x-api-key: key second-secret\r\n"),
        "{:?}",
        server.requests()
    );
}

/// A loopback server that keeps each connection open for as long as the
/// client does (HTTP/1.1 keep-alive), answering every request `200 hello`
/// (or, with `close_after_each`, closing the connection after each answer
/// without saying so); counts connections and requests.
struct KeepAlive {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl KeepAlive {
    fn start(close_after_each: bool) -> KeepAlive {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (opened, served) = (connections.clone(), requests.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                opened.fetch_add(1, Ordering::SeqCst);
                let served = served.clone();
                thread::spawn(move || {
                    while read_head(&mut stream).is_some() {
                        served.fetch_add(1, Ordering::SeqCst);
                        if stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
                            .is_err()
                            || close_after_each
                        {
                            return;
                        }
                    }
                });
            }
        });
        KeepAlive {
            addr,
            connections,
            requests,
        }
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn counts(&self) -> (usize, usize) {
        (
            self.connections.load(Ordering::SeqCst),
            self.requests.load(Ordering::SeqCst),
        )
    }
}

#[test]
fn a_modules_calls_reuse_its_connections_and_no_other_module_shares_them() {
    let server = KeepAlive::start(false);
    let origin = server.origin();
    let url = format!("{origin}/zone");
    let module = misbehave_reaching(&[&origin]);
    let outbound = || {
        Outbound::new(
            module.meta(),
            &[grant(&origin)],
            HttpLimits::default(),
            Environment::default(),
        )
    };
    let first = outbound();
    for _ in 0..3 {
        let (answer, _) = call(&module, &first, &url, false, Duration::from_secs(5));
        assert_eq!(answer["status"], 200, "{answer}");
        assert_eq!(answer["body"], "hello", "{answer}");
    }
    assert_eq!(
        server.counts(),
        (1, 3),
        "three calls, one connection (connections, requests)"
    );
    assert_eq!(first.idle_connections(), 1);

    // Another module, or this one reloaded under a new grant, has a pool of
    // its own.
    let second = outbound();
    let (answer, _) = call(&module, &second, &url, false, Duration::from_secs(5));
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(server.counts(), (2, 4));
}

#[test]
fn a_connection_the_server_closed_is_not_reused() {
    let server = KeepAlive::start(true);
    let origin = server.origin();
    let url = format!("{origin}/zone");
    let module = misbehave_reaching(&[&origin]);
    let outbound = Outbound::new(
        module.meta(),
        &[grant(&origin)],
        HttpLimits::default(),
        Environment::default(),
    );
    for _ in 0..3 {
        let (answer, _) = call(&module, &outbound, &url, false, Duration::from_secs(5));
        assert_eq!(answer["status"], 200, "{answer}");
        // The next reconcile comes later than the server's close.
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(server.counts(), (3, 3));
}

#[test]
fn an_answer_a_server_sends_ahead_is_never_read_as_the_next_calls() {
    // Each connection's first request is answered twice: `hello`, then at
    // once an unasked-for `evil`, as if to answer the next call's request
    // before it is sent. Later requests get `hello` alone.
    let connections = Arc::new(AtomicUsize::new(0));
    let opened = connections.clone();
    let server = Server::serve(move |mut stream, heads| {
        opened.fetch_add(1, Ordering::SeqCst);
        let mut first = true;
        while record_head(&mut stream, heads) {
            let mut answer = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello".to_vec();
            if first {
                answer.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nevil");
                first = false;
            }
            if stream.write_all(&answer).is_err() {
                return;
            }
        }
    });
    let origin = server.origin();
    let module = misbehave_reaching(&[&origin]);
    let outbound = Outbound::new(
        module.meta(),
        &[grant(&origin)],
        HttpLimits::default(),
        Environment::default(),
    );
    for _ in 0..2 {
        let (answer, _) = call(
            &module,
            &outbound,
            &format!("{origin}/zone"),
            false,
            Duration::from_secs(5),
        );
        assert_eq!(answer["body"], "hello", "{answer}");
        thread::sleep(Duration::from_millis(100));
    }
    // The connection that carried bytes nobody asked for was closed, not
    // pooled: the second call had to open its own.
    assert_eq!(connections.load(Ordering::SeqCst), 2);
    assert_eq!(server.requests().len(), 2);
}

/// The line of `rendered` for `series` whose labels hold every one of
/// `labels`; its value.
fn series_value(rendered: &str, series: &str, labels: &[&str]) -> Option<f64> {
    rendered
        .lines()
        .filter(|line| line.starts_with(&format!("{series}{{")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

#[test]
fn the_request_budget_holds_and_every_request_and_refusal_is_counted() {
    // A server that sends the caller back to itself: the guest's own
    // follow is a second request, over a budget of one.
    let (server, location) = Server::redirecting();
    let origin = server.origin();
    *location.lock().unwrap() = format!("{origin}/again");
    let metrics = bosun::telemetry::Metrics::new();
    let module = misbehave_reaching(&[&origin]);
    let outbound = Outbound::new(
        module.meta(),
        &[grant(&origin)],
        HttpLimits {
            requests: 1,
            ..HttpLimits::default()
        },
        Environment {
            metrics: Some(metrics.clone()),
            ..Environment::default()
        },
    );
    let (outcome, took) = call(
        &module,
        &outbound,
        &format!("{origin}/first"),
        true,
        Duration::from_secs(5),
    );
    assert_eq!(outcome["status"], 302, "{outcome}");
    assert_eq!(outcome["follow"]["error"], "HttpRequestDenied", "{outcome}");
    assert!(
        took < Duration::from_secs(2),
        "refused at once, took {took:?}"
    );
    assert_eq!(server.requests().len(), 1, "{:?}", server.requests());

    // The budget is per call: the next call may send one again.
    let (again, _) = call(
        &module,
        &outbound,
        &format!("{origin}/first"),
        false,
        Duration::from_secs(5),
    );
    assert_eq!(again["status"], 302, "{again}");
    assert_eq!(server.requests().len(), 2);

    let rendered = metrics.render();
    let module_label = "module=\"misbehave\"";
    let origin_label = format!("origin=\"{origin}\"");
    assert_eq!(
        series_value(
            &rendered,
            "bosun_guest_http_requests_total",
            &[module_label, &origin_label, "code=\"302\""]
        ),
        Some(2.0),
        "{rendered}"
    );
    assert_eq!(
        series_value(
            &rendered,
            "bosun_guest_http_request_duration_seconds_count",
            &[module_label, &origin_label]
        ),
        Some(2.0),
        "{rendered}"
    );
    assert_eq!(
        series_value(
            &rendered,
            "bosun_guest_http_refused_total",
            &[module_label, "reason=\"request_budget\""]
        ),
        Some(1.0),
        "{rendered}"
    );
}

/// A TLS server on loopback whose certificate, for `localhost`, is signed
/// by a CA of its own; answers `hello` and records the request heads.
/// Returns the server and the CA's PEM.
fn tls_server() -> (Server, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap(),
    );
    let server = Server::serve(move |stream, heads| {
        let connection = rustls::ServerConnection::new(config.clone()).unwrap();
        let mut tls = rustls::StreamOwned::new(connection, stream);
        // A client that refuses the certificate ends here.
        if record_head(&mut tls, heads) {
            ok(&mut tls);
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (server, ca_cert.pem())
}

/// A key source holding one CA bundle, in ConfigMap `bosun-system/ca`.
struct Bundle(String);

impl KeySource for Bundle {
    fn read(
        &self,
        holder: Holder,
        key: &KeyRef,
    ) -> futures::future::BoxFuture<'static, Result<Vec<u8>, String>> {
        let value = if holder == Holder::ConfigMap && key.name == "ca" {
            Ok(self.0.clone().into_bytes())
        } else {
            Err(format!("no key {}", key.name))
        };
        Box::pin(async move { value })
    }
}

#[test]
fn https_is_verified_against_the_system_roots_and_the_grants_ca_bundle() {
    let (server, ca) = tls_server();
    let origin = format!("https://localhost:{}", server.addr.port());
    let env = Environment {
        keys: Some(Arc::new(Bundle(ca))),
        ..Environment::default()
    };

    // The system's roots alone do not know the server's CA: refused in the
    // handshake, before any request is sent.
    let (untrusted, _) = get(
        &[&origin],
        vec![grant(&origin)],
        env.clone(),
        &format!("{origin}/zone"),
        false,
        Duration::from_secs(5),
    );
    assert!(
        untrusted["error"].as_str().unwrap_or("").contains("Tls"),
        "{untrusted}"
    );
    assert!(server.requests().is_empty(), "{:?}", server.requests());

    // The grant's CA bundle (a ConfigMap key, read by the host) trusts it.
    let with_bundle = HttpGrant {
        ca_bundle: Some(CaBundle::ConfigMapRef(KeyRef {
            namespace: "bosun-system".into(),
            name: "ca".into(),
            key: "ca.crt".into(),
        })),
        ..grant(&origin)
    };
    let (trusted, _) = get(
        &[&origin],
        vec![with_bundle],
        env,
        &format!("{origin}/zone"),
        false,
        Duration::from_secs(5),
    );
    assert_eq!(trusted["status"], 200, "{trusted}");
    assert_eq!(trusted["body"], "hello");
    assert!(server.requests()[0].starts_with("GET /zone HTTP/1.1"));
}
