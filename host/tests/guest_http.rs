//! Outbound HTTP from a real guest (misbehave's `http` mode) through the
//! real engine and send hook, against real servers on loopback started
//! here: what is refused, what is cut, and what reaches the server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, LazyLock, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bosun::engine::bindings::{Request, Trigger};
use bosun::engine::{CallContext, Engine, EngineConfig, Limits, Module};
use bosun::grants::{HttpCredentials, HttpGrant, KeyRef};
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
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let seen = seen.clone();
                thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match stream.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head).into_owned());
                    respond(&mut stream);
                });
            }
        });
        Server { addr, heads }
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

fn ok(stream: &mut TcpStream) {
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
    let path = bosun_testenv::guests::misbehave_reaching(declared).expect("guest builds");
    let module: Module = ENGINE.load_file(&path).expect("loads");
    let limits = Limits {
        timeout,
        ..Limits::default()
    };
    let ctx = CallContext {
        limits,
        http: Some(Outbound::new(
            module.meta(),
            &granted,
            HttpLimits {
                response_bytes: 1 << 20,
                ..HttpLimits::default()
            },
            env,
        )),
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
    static LOCATION: Mutex<String> = Mutex::new(String::new());
    *LOCATION.lock().unwrap() = format!("{}/secret", target.origin());
    let redirector = Server::start(|stream| {
        let location = LOCATION.lock().unwrap().clone();
        let _ = stream.write_all(
            format!("HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n")
                .as_bytes(),
        );
    });
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
