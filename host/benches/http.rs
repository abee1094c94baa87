//! What one outbound HTTP request costs a guest: a GET through
//! `wasi:http/outgoing-handler` and the host's send hook (policy check,
//! pooled connection, metered body), beside the same GET from a native
//! client as a kube-rs controller would make it (reqwest, pooled), both to
//! one keep-alive server on loopback, for bodies of 1 KB and 64 KB.
//!
//! The guest side is a whole reconcile of misbehave's `http` mode (the GET,
//! its body read to the end, the outcome written to the status) less a
//! reconcile of the same module that makes no request: what is left is the
//! request as the guest pays for it.
//!
//! `cargo bench -p bosun --bench http` prints the medians and the ratio;
//! `cargo test --benches` runs each side once.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use bosun::engine::bindings::{Request, Trigger};
use bosun::engine::{CallContext, Engine, EngineConfig, Limits, Module};
use bosun::grants::HttpGrant;
use bosun::http::{Environment, HttpLimits, Origin, Outbound};
use serde_json::{Value, json};

const BODIES: [usize; 2] = [1024, 64 * 1024];

/// A keep-alive server on loopback answering every request with `body`
/// bytes; returns its origin.
fn serve(body: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {body}\r\n\r\n"
    )
    .into_bytes();
    answer.extend(std::iter::repeat_n(b'x', body));
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_nodelay(true);
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                let mut head = Vec::new();
                loop {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                    // Requests here are GETs without a body: one per head.
                    while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                        head.drain(..end + 4);
                        if stream.write_all(&answer).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    origin
}

fn request(spec: Value) -> Request {
    let object = json!({
        "apiVersion": "tests.bosun.dev/v1", "kind": "Misbehave",
        "metadata": {"name": "bench", "namespace": "default", "uid": "u-1", "generation": 1},
        "spec": spec
    });
    Request {
        object: object.to_string(),
        children: vec![],
        settings: None,
        trigger: Trigger::Manual,
        attempt: 1,
    }
}

fn guest_call(module: &Module, ctx: &CallContext, request: &Request, expect_http: bool) {
    let response = module
        .reconcile(request, ctx)
        .expect("the call completes")
        .expect("misbehave answers");
    if expect_http {
        let status: Value = serde_json::from_str(response.status.as_deref().unwrap()).unwrap();
        assert_eq!(status["http"]["status"], 200, "{status}");
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let measuring = std::env::args().any(|arg| arg == "--bench");
    let (rounds, batch) = if measuring { (21, 100) } else { (1, 1) };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let native = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("a reqwest client");

    println!("\none GET, guest (through wasi:http and the send hook) vs native (reqwest), median:");
    println!(
        "{:>6} {:>12} {:>12} {:>8} {:>14}",
        "body", "native", "guest", "ratio", "whole call"
    );
    for body in BODIES {
        let origin = serve(body);
        let url = format!("{origin}/api/v1/servers/localhost/zones/example.org.");
        let path = bosun_testenv::guests::misbehave_reaching(&[&origin])
            .expect("the misbehave component builds");
        let module = engine.load_file(&path).expect("misbehave loads");
        let ctx = CallContext {
            limits: Limits {
                timeout: Duration::from_secs(10),
                ..Limits::default()
            },
            http: Some(Outbound::new(
                module.meta(),
                &[HttpGrant {
                    origin: Origin::parse(&origin).unwrap(),
                    credentials: None,
                    ca_bundle: None,
                    methods: Vec::new(),
                }],
                HttpLimits::default(),
                Environment::default(),
            )),
            ..CallContext::default()
        };
        let fetching = request(json!({"mode": "http", "url": url}));
        let idle = request(json!({"mode": "status"}));

        let native_get = || {
            runtime.block_on(async {
                let response = native.get(&url).send().await.expect("native GET");
                assert_eq!(response.status(), 200);
                let bytes = response.bytes().await.expect("native body");
                assert_eq!(bytes.len(), body);
            });
        };
        // Warm both sides: connections open, code paged in.
        for _ in 0..10 {
            native_get();
            guest_call(&module, &ctx, &fetching, true);
        }
        let native_time = common::median_per_call(rounds, batch, native_get);
        let with_request = common::median_per_call(rounds, batch, || {
            guest_call(&module, &ctx, &fetching, true);
        });
        let without = common::median_per_call(rounds, batch, || {
            guest_call(&module, &ctx, &idle, false);
        });
        let guest_time = with_request.saturating_sub(without);
        println!(
            "{:>5}K {:>10.1}µs {:>10.1}µs {:>7.2}x {:>12.1}µs",
            body / 1024,
            micros(native_time),
            micros(guest_time),
            guest_time.as_secs_f64() / native_time.as_secs_f64(),
            micros(with_request),
        );
    }
}
