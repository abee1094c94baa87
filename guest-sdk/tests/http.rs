//! The HTTP client through the harness: stubs answer, requests are
//! recorded, and anything unforeseen fails the test.

use bosun_sdk::http::HttpErrorKind;
use bosun_sdk::prelude::*;
use bosun_sdk::testing::{Harness, HttpStub};
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::json;

/// Reads `data.url` with GET, then PATCHes `data.url` with the answer's
/// `count` plus one; its status says what it saw.
struct Counter;

impl Reconciler for Counter {
    type Object = ConfigMap;

    fn metadata() -> Metadata {
        Metadata::new("counter", "0.1.0").http_origin("https://api.example:8443")
    }

    fn reconcile(object: &ConfigMap, ctx: &Context) -> Result<Response, Error> {
        let url = object
            .data
            .as_ref()
            .and_then(|d| d.get("url"))
            .cloned()
            .unwrap_or_default();
        let current: serde_json::Value = ctx
            .http()
            .get(&url)
            .header("Accept", "application/json")
            .send()?
            .error_for_status()?
            .json()?;
        let count = current["count"].as_i64().unwrap_or(0) + 1;
        ctx.http()
            .patch(&url)
            .json(&json!({"count": count}))
            .send()?
            .error_for_status()?;
        Ok(Response::new().status(json!({"count": count})))
    }

    fn finalize(object: &ConfigMap, ctx: &Context) -> Result<Finalized, Error> {
        let url = object
            .data
            .as_ref()
            .and_then(|d| d.get("url"))
            .cloned()
            .unwrap_or_default();
        ctx.http().delete(&url).send()?.error_for_status()?;
        Ok(Finalized::done())
    }
}

const URL: &str = "https://api.example:8443/counters/a?view=full";

fn object() -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some("a".into()),
            namespace: Some("ns".into()),
            ..ObjectMeta::default()
        },
        data: Some([("url".to_owned(), URL.to_owned())].into()),
        ..ConfigMap::default()
    }
}

#[test]
fn stubs_answer_and_every_request_is_recorded() {
    let outcome = Harness::<Counter>::new()
        .http(HttpStub::get("https://api.example:8443/counters/a").json(&json!({"count": 41})))
        .http(HttpStub::patch("https://api.example:8443/counters/a").status(204))
        .reconcile(&object())
        .unwrap();
    assert_eq!(outcome.status::<serde_json::Value>().unwrap()["count"], 42);
    let requests = outcome.http_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method.as_str(), "GET");
    assert_eq!(requests[0].url, URL);
    assert_eq!(requests[0].header("accept"), Some("application/json"));
    assert_eq!(requests[1].method.as_str(), "PATCH");
    assert_eq!(requests[1].header("content-type"), Some("application/json"));
    assert_eq!(
        requests[1].json::<serde_json::Value>().unwrap(),
        json!({"count": 42})
    );
}

#[test]
fn the_most_specific_stub_wins_and_the_query_counts_only_when_given() {
    let outcome = Harness::<Counter>::new()
        .http(HttpStub::origin("https://api.example:8443").status(204))
        .http(HttpStub::get("https://api.example:8443/counters/a?view=short").status(500))
        .http(
            HttpStub::get("https://api.example:8443/counters/a?view=full")
                .json(&json!({"count": 1})),
        )
        .reconcile(&object())
        .unwrap();
    assert_eq!(outcome.status::<serde_json::Value>().unwrap()["count"], 2);
}

#[test]
fn limited_stubs_answer_in_sequence() {
    let harness = Harness::<Counter>::new()
        .http(HttpStub::get(URL).json(&json!({"count": 1})).once())
        .http(HttpStub::get(URL).json(&json!({"count": 10})))
        .http(HttpStub::patch(URL).status(204));
    let first = harness.reconcile(&object()).unwrap();
    assert_eq!(first.status::<serde_json::Value>().unwrap()["count"], 2);
    // Each reconcile starts the stubs afresh.
    let again = harness.reconcile(&object()).unwrap();
    assert_eq!(again.status::<serde_json::Value>().unwrap()["count"], 2);
}

#[test]
fn statuses_and_failures_become_classified_errors() {
    let rejected = Harness::<Counter>::new()
        .http(HttpStub::get(URL).json(&json!({"count": 1})))
        .http(
            HttpStub::patch(URL)
                .status(422)
                .json(&json!({"error": "count too high"})),
        )
        .reconcile(&object())
        .unwrap_err();
    assert!(rejected.is_permanent(), "{rejected}");
    assert_eq!(rejected.reason(), "HttpStatus");
    assert!(rejected.message().contains("count too high"), "{rejected}");

    let unavailable = Harness::<Counter>::new()
        .http(HttpStub::origin("https://api.example:8443").status(503))
        .reconcile(&object())
        .unwrap_err();
    assert!(!unavailable.is_permanent());

    for (stub, reason) in [
        (
            HttpStub::origin("https://api.example:8443").refused(),
            "HttpRefused",
        ),
        (
            HttpStub::origin("https://api.example:8443").timeout(),
            "HttpTimeout",
        ),
        (
            HttpStub::origin("https://api.example:8443").connection_refused(),
            "HttpConnection",
        ),
        (
            HttpStub::origin("https://api.example:8443").fail(HttpErrorKind::Protocol, "garbled"),
            "HttpProtocol",
        ),
    ] {
        let error = Harness::<Counter>::new()
            .http(stub)
            .reconcile(&object())
            .unwrap_err();
        assert_eq!(error.reason(), reason);
        assert!(!error.is_permanent(), "{error}");
        assert!(error.message().contains(URL), "{error}");
    }
}

#[test]
fn finalize_can_call_out_too() {
    let outcome = Harness::<Counter>::new()
        .http(HttpStub::delete(URL).status(204))
        .finalize(&object())
        .unwrap();
    assert!(outcome.done);
    assert_eq!(outcome.http_requests.len(), 1);
    assert_eq!(outcome.http_requests[0].method.as_str(), "DELETE");
}

#[test]
#[should_panic(
    expected = "unexpected HTTP request GET https://api.example:8443/counters/a?view=full"
)]
fn an_unforeseen_request_fails_the_test() {
    let _ = Harness::<Counter>::new()
        .http(HttpStub::origin("https://other.example"))
        .reconcile(&object());
}

#[test]
#[should_panic(expected = "unexpected HTTP request")]
fn another_port_is_another_origin() {
    let _ = Harness::<Counter>::new()
        .http(HttpStub::origin("https://api.example"))
        .reconcile(&object());
}

/// Like `Counter`, but declares only subdomains of `example`.
struct Undeclared;

impl Reconciler for Undeclared {
    type Object = ConfigMap;

    fn metadata() -> Metadata {
        Metadata::new("undeclared", "0.1.0").http_origin("https://*.example:8443")
    }

    fn reconcile(object: &ConfigMap, ctx: &Context) -> Result<Response, Error> {
        let url = object
            .data
            .as_ref()
            .and_then(|d| d.get("url"))
            .cloned()
            .unwrap_or_default();
        ctx.http().get(url).send()?;
        Ok(Response::new())
    }
}

#[test]
fn undeclared_origins_are_refused_as_the_host_refuses_them() {
    let with_url = |url: &str| {
        let mut object = object();
        object.data = Some([("url".to_owned(), url.to_owned())].into());
        object
    };
    let harness = Harness::<Undeclared>::new().http(HttpStub::origin("https://api.example:8443"));
    // A subdomain of the wildcard: answered.
    harness
        .reconcile(&with_url("https://api.example:8443/x"))
        .unwrap();
    // The bare domain, another port, another scheme: refused before any stub.
    for url in [
        "https://example:8443/x",
        "https://api.example/x",
        "http://api.example:8443/x",
    ] {
        let error = harness.reconcile(&with_url(url)).unwrap_err();
        assert_eq!(error.reason(), "HttpRefused", "{url}");
        assert!(
            error
                .message()
                .contains("not an origin this module declared"),
            "{error}"
        );
    }
}
