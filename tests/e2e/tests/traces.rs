//! OpenTelemetry traces (`bosun run --otlp-endpoint`), received by a real
//! Jaeger: a reconcile is one trace — its wait in the queue, the guest
//! call, the guest's reads and HTTP request, the writes — the server the
//! guest calls joins that trace through `traceparent`, and the metrics'
//! latency buckets carry exemplars naming such traces.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use kube::api::PostParams;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A loopback server answering every request 200 `ok`, reporting each
/// request's `traceparent` header (empty when it had none).
async fn recording_server() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(n) if n > 0 => head.extend_from_slice(&buffer[..n]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let traceparent = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("traceparent")
                            .then(|| value.trim().to_owned())
                    })
                    .unwrap_or_default();
                let _ = tx.send(traceparent);
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (origin, rx)
}

/// A span of a Jaeger trace: its name, id, parent's id, start (µs) and tags.
#[derive(Debug)]
struct Span {
    name: String,
    id: String,
    parent: Option<String>,
    start: i64,
    tags: HashMap<String, String>,
}

fn spans_of(trace: &Value) -> Vec<Span> {
    trace["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|span| Span {
            name: span["operationName"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            id: span["spanID"].as_str().unwrap_or_default().to_owned(),
            parent: span["references"]
                .as_array()
                .and_then(|refs| refs.iter().find(|r| r["refType"] == "CHILD_OF"))
                .and_then(|r| r["spanID"].as_str())
                .map(str::to_owned),
            start: span["startTime"].as_i64().unwrap_or_default(),
            tags: span["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|tag| {
                    let value = match &tag["value"] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (tag["key"].as_str().unwrap_or_default().to_owned(), value)
                })
                .collect(),
        })
        .collect()
}

#[tokio::test]
async fn a_reconcile_is_one_trace_from_the_queue_to_the_writes_and_its_http_server_joins_it() {
    let Some(_) = bosun_testenv::tools::for_test("jaeger", bosun_testenv::jaeger::INSTALL)
        .unwrap_or_else(|e| panic!("{e}"))
    else {
        return;
    };
    let jaeger = bosun_testenv::jaeger::Jaeger::start()
        .unwrap_or_else(|e| panic!("jaeger failed to start: {e}"));
    let cluster = Cluster::start().await;
    let (origin, mut traceparents) = recording_server().await;
    let module = bosun_testenv::guests::misbehave_reaching(&[&origin]).expect("the variant");
    let module = module.display().to_string();
    let endpoint = jaeger.otlp_endpoint();
    let host = Host::start(&cluster, &[&module], &["--otlp-endpoint", &endpoint]).await;

    // A reconcile that calls out, and one that reads.
    let mut caller = misbehave("caller", "http");
    caller.data["spec"]["url"] = json!(format!("{origin}/ping"));
    let misbehaves = cluster.misbehaves();
    misbehaves
        .create(&PostParams::default(), &caller)
        .await
        .unwrap();
    misbehaves
        .create(&PostParams::default(), &misbehave("reader", "read-around"))
        .await
        .unwrap();
    let traceparent = tokio::time::timeout(LONG, traceparents.recv())
        .await
        .expect("the guest's request arrives")
        .expect("a request");
    // W3C: version-traceid-parentid-flags, sampled.
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert!(
        parts.len() == 4 && parts[0] == "00" && parts[1].len() == 32 && parts[3] == "01",
        "the server got traceparent {traceparent:?}"
    );
    let (trace_id, parent_id) = (parts[1].to_owned(), parts[2].to_owned());

    let trace = eventually("Jaeger holds the caller's trace, written", LONG, || async {
        let traces = jaeger.traces("bosun").ok()?;
        let trace = traces["data"]
            .as_array()?
            .iter()
            .find(|t| t["traceID"] == trace_id.as_str())?
            .clone();
        // Spans arrive in batches: wait for the status write too.
        spans_of(&trace)
            .iter()
            .any(|s| {
                s.name == "write" && s.tags.get("verb").map(String::as_str) == Some("apply status")
            })
            .then_some(trace)
    })
    .await;
    let spans = spans_of(&trace);
    let named = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} span in {spans:#?}"))
    };
    let reconcile = named("reconcile");
    assert_eq!(reconcile.parent, None, "the reconcile is the trace's root");
    assert_eq!(reconcile.tags["module"], "misbehave");
    assert_eq!(reconcile.tags["object"], "e2e/caller");
    let queued = named("queue_wait");
    let call = named("guest_call");
    let request = named("http_request");
    let write = spans
        .iter()
        .find(|s| s.name == "write" && s.tags["verb"] == "apply status")
        .unwrap();
    for child in [queued, call] {
        assert_eq!(
            child.parent.as_deref(),
            Some(reconcile.id.as_str()),
            "{child:?}"
        );
    }
    assert_eq!(
        request.parent.as_deref(),
        Some(call.id.as_str()),
        "{request:?}"
    );
    assert_eq!(
        request.id, parent_id,
        "the server's traceparent names the request's span"
    );
    assert_eq!(request.tags["status"], "200");
    assert_eq!(write.tags["result"], "ok");
    assert!(
        queued.start <= call.start && call.start <= request.start && request.start <= write.start,
        "in order: {spans:#?}"
    );

    // The reader's trace carries its reads.
    eventually("Jaeger holds the reader's reads", LONG, || async {
        let traces = jaeger.traces("bosun").ok()?;
        traces["data"].as_array()?.iter().find_map(|trace| {
            let spans = spans_of(trace);
            let reader = spans.iter().any(|s| {
                s.name == "reconcile"
                    && s.tags.get("object").map(String::as_str) == Some("e2e/reader")
            });
            let reads: Vec<&str> = spans
                .iter()
                .filter(|s| s.name == "read")
                .filter_map(|s| s.tags.get("verb").map(String::as_str))
                .collect();
            (reader && reads.contains(&"list") && reads.contains(&"get")).then_some(())
        })
    })
    .await;

    // The latency histograms link their buckets to traces: OpenMetrics
    // exemplars naming a trace Jaeger holds.
    let (_, metrics) = host.get("/metrics").await.unwrap();
    let mut linked = Vec::new();
    for (histogram, series) in [
        (
            "controller_runtime_reconcile_time_seconds_bucket{",
            "controller=\"misbehave\"",
        ),
        (
            "bosun_guest_call_duration_seconds_bucket{",
            "module=\"misbehave\"",
        ),
        (
            "bosun_guest_http_request_duration_seconds_bucket{",
            "module=\"misbehave\"",
        ),
    ] {
        let exemplars: Vec<String> = metrics
            .lines()
            .filter(|line| line.starts_with(histogram) && line.contains(series))
            .filter_map(|line| {
                let (_, exemplar) = line.split_once(" # {trace_id=\"")?;
                Some(exemplar.split('"').next()?.to_owned())
            })
            .collect();
        assert!(
            !exemplars.is_empty(),
            "no exemplar on {histogram}{series}:\n{metrics}"
        );
        linked.extend(exemplars);
    }
    eventually(
        "Jaeger holds every trace an exemplar names",
        LONG,
        || async {
            let traces = jaeger.traces("bosun").ok()?;
            let held: Vec<&str> = traces["data"]
                .as_array()?
                .iter()
                .filter_map(|t| t["traceID"].as_str())
                .collect();
            linked
                .iter()
                .all(|id| held.contains(&id.as_str()))
                .then_some(())
        },
    )
    .await;
}

const LONG: Duration = Duration::from_secs(60);
