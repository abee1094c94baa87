"""The HTTP client through the harness: stubs, recording, refusal, and the
Rust SDK's error classification."""

from __future__ import annotations

import pytest

import bosun
from bosun import kinds
from bosun.http import HttpError, HttpErrorKind, Method, Request
from bosun.testing import Harness, HttpStub

ZONE = "https://dns.example:8081/api/v1/servers/localhost/zones/example.org."


class Dns(bosun.Reconciler):
    """Reads a zone, patches it when the record is missing, reports what it saw."""

    kind = kinds.ConfigMap

    def metadata(self):
        return bosun.Metadata("dns", "0.1.0").http_origin("https://dns.example:8081")

    def reconcile(self, cm, ctx):
        url = cm.get("data", {}).get("url", ZONE)
        zone = ctx.http().get(url).header("Accept", "application/json").send().error_for_status().json()
        if not zone.get("rrsets"):
            ctx.http().patch(url).json({"rrsets": [{"name": "www"}]}).timeout(2).send().error_for_status()
            zone = ctx.http().get(url).send().error_for_status().json()
        return bosun.Response().status({"records": len(zone["rrsets"])})


def cm(url: str = ZONE) -> dict:
    return {"metadata": {"name": "c", "namespace": "ns"}, "data": {"url": url}}


def test_a_sequence_of_answers_reads_in_order_and_every_request_is_recorded():
    outcome = (
        Harness(Dns)
        .http(HttpStub.get(ZONE).json({"rrsets": []}).once())
        .http(HttpStub.get(ZONE).json({"rrsets": [{"name": "www"}]}))
        .http(HttpStub.patch(ZONE).status(204))
        .reconcile(cm())
    )
    assert outcome.status == {"records": 1}
    sent = outcome.http_requests
    assert [r.method for r in sent] == [Method.GET, Method.PATCH, Method.GET]
    assert sent[0].header("accept") == "application/json"
    assert sent[1].json() == {"rrsets": [{"name": "www"}]}
    assert sent[1].header("Content-Type") == "application/json"
    assert sent[1].timeout is not None and sent[1].timeout.total_seconds() == 2


@pytest.mark.parametrize(
    "status,permanent", [(404, True), (422, True), (408, False), (429, False), (500, False), (503, False)]
)
def test_a_status_error_is_classified_like_the_rust_sdk(status, permanent):
    with pytest.raises(HttpError) as caught:
        Harness(Dns).http(HttpStub.origin("https://dns.example:8081").status(status).body("nope\n")).reconcile(cm())
    error = caught.value
    assert isinstance(error, bosun.Error)
    assert error.is_permanent is permanent
    assert error.reason == "HttpStatus"
    assert error.status == status
    assert error.message == f"GET {ZONE} failed: status {status}: nope"


@pytest.mark.parametrize(
    "stub,reason",
    [
        (lambda s: s.refused(), "HttpRefused"),
        (lambda s: s.timeout(), "HttpTimeout"),
        (lambda s: s.connection_refused(), "HttpConnection"),
    ],
)
def test_transport_failures_are_retryable(stub, reason):
    with pytest.raises(bosun.Error) as caught:
        Harness(Dns).http(stub(HttpStub.origin("https://dns.example:8081"))).reconcile(cm())
    assert caught.value.reason == reason
    assert not caught.value.is_permanent


def test_an_undeclared_origin_is_refused_as_the_host_refuses_it():
    with pytest.raises(HttpError) as caught:
        Harness(Dns).http(HttpStub.origin("https://other.example")).reconcile(cm("https://other.example/x"))
    assert caught.value.kind is HttpErrorKind.REFUSED
    assert "not an origin this module declared" in caught.value.message


def test_a_body_that_is_not_json_is_a_retryable_body_error():
    with pytest.raises(HttpError) as caught:
        Harness(Dns).http(HttpStub.get(ZONE).body("<html>")).reconcile(cm())
    assert caught.value.reason == "HttpBody"
    assert not caught.value.is_permanent


def test_a_request_no_stub_answers_fails_the_test_not_the_reconcile():
    with pytest.raises(AssertionError, match="no HttpStub matches it") as caught:
        Harness(Dns).http(HttpStub.post(ZONE)).reconcile(cm())
    assert not isinstance(caught.value, bosun.Error)


@pytest.mark.parametrize(
    "url",
    ["ftp://dns.example/x", "https://", "https://user:pw@dns.example/", "https://dns.example/a b",
     "https://dns.example?x=1"],
)
def test_a_url_that_cannot_be_sent_is_a_permanent_invalid_request(url):
    with pytest.raises(HttpError) as caught:
        Request(Method.GET, url).check()
    assert caught.value.kind is HttpErrorKind.INVALID_REQUEST
    assert caught.value.is_permanent


def test_headers_are_checked_before_sending():
    for name, value in [("bad name", "x"), ("X-Ok", "a\r\nb")]:
        with pytest.raises(HttpError):
            Request(Method.GET, ZONE, headers=[(name, value)]).check()


def test_url_parts_split_the_way_wasi_http_takes_them():
    parts = Request(Method.GET, "https://dns.example:8081/a/b?c=d#frag").url_parts()
    assert (parts.https, parts.authority, parts.path_with_query) == (True, "dns.example:8081", "/a/b?c=d")
    assert parts.origin == "https://dns.example:8081"
    assert Request(Method.GET, "http://h").url_parts().path_with_query == "/"


@pytest.mark.parametrize(
    "declared,origin,covers",
    [
        ("https://dns.example:8081", "https://dns.example:8081", True),
        ("https://dns.example", "https://dns.example:443", True),
        ("https://dns.example", "http://dns.example", False),
        ("https://*.example.com", "https://a.example.com", True),
        ("https://*.example.com", "https://example.com", False),
        ("https://*.example.com", "https://a.example.com:8443", False),
    ],
)
def test_origin_coverage_matches_the_host(declared, origin, covers):
    from bosun._stubs import origin_covers

    assert origin_covers(declared, origin) is covers


def test_declared_origins_reach_the_metadata():
    assert Harness(Dns).metadata().http_origins == ["https://dns.example:8081"]


def test_wasi_error_codes_are_classified_like_the_rust_sdk():
    from bosun._wasi_http import classify

    def code(case, value=None):
        cls = type(f"ErrorCode_{case}", (), {})
        obj = cls()
        if value is not None:
            obj.value = value
        return obj

    assert classify(code("HttpRequestDenied")) == (HttpErrorKind.REFUSED, "the origin is not granted to this module")
    assert classify(code("ConnectionRefused"))[0] is HttpErrorKind.CONNECTION
    assert classify(code("HttpResponseTimeout"))[0] is HttpErrorKind.TIMEOUT
    assert classify(code("HttpRequestUriInvalid"))[0] is HttpErrorKind.INVALID_REQUEST
    assert classify(code("HttpResponseBodySize", 10))[0] is HttpErrorKind.REFUSED
    assert classify(code("InternalError", "boom")) == (HttpErrorKind.PROTOCOL, "InternalError: boom")
