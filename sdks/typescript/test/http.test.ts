// The HTTP client through the native harness's stubs: the same surface and
// error classification as the Rust SDK's (guest-sdk/src/http.rs) and the
// Python one's (sdks/python/tests/test_http.py).

import assert from "node:assert/strict";
import { test } from "node:test";

import { BosunError, HttpError, HttpErrorKind, Metadata, Response, customKind, type Context } from "../src/index.js";
import { HttpRequest, HttpResponse, MAX_QUOTED_BODY, utf8Decode, utf8Encode } from "../src/http.js";
import { HarnessFailure } from "../src/dispatch.js";
import { Harness, HttpStub } from "../src/testing.js";

const ZONES = customKind("dns.example.com", "v1", "Zone");
const API = "https://dns.example:8081";

interface Zone {
  metadata: { name: string };
  spec: { method?: string; path?: string; body?: unknown };
}

class Zoner {
  readonly kind = ZONES;
  metadata() {
    return new Metadata("zoner", "0.1.0").httpOrigin(API);
  }
  reconcile(zone: Zone, ctx: Context) {
    const spec = zone.spec;
    const request = ctx.http().request((spec.method ?? "GET") as "GET", API + (spec.path ?? "/zones/a."));
    if (spec.body !== undefined) request.json(spec.body);
    const answer = request.header("Accept", "application/json").send().errorForStatus();
    return new Response().status({ code: answer.status, answer: answer.json() });
  }
}

const zone = (spec: Zone["spec"] = {}) => ({ apiVersion: "dns.example.com/v1", kind: "Zone", metadata: { name: "a" }, spec });

function rejects(call: () => unknown): BosunError {
  try {
    call();
  } catch (e) {
    assert.ok(e instanceof BosunError, `a BosunError, not ${String(e)}`);
    return e;
  }
  assert.fail("the call succeeded");
}

test("a stubbed answer reaches the reconciler, and the harness records the request", () => {
  const harness = new Harness(Zoner).http(HttpStub.patch(`${API}/zones/a.`).json({ ok: true }));
  const out = harness.reconcile(zone({ method: "PATCH", body: { rrsets: [] } }));
  assert.deepEqual(out.status, { code: 200, answer: { ok: true } });
  const [sent] = harness.requests;
  assert.equal(sent?.method, "PATCH");
  assert.equal(sent?.header("content-type"), "application/json");
  assert.equal(sent?.header("ACCEPT"), "application/json");
  assert.deepEqual(sent?.json(), { rrsets: [] });
});

test("the most specific stub wins, then the first with answers left", () => {
  const harness = new Harness(Zoner)
    .http(HttpStub.origin(API).status(503))
    .http(HttpStub.get(`${API}/zones/a.`).json({ n: 1 }).once())
    .http(HttpStub.get(`${API}/zones/a.`).json({ n: 2 }));
  assert.equal(harness.reconcile(zone()).status.answer.n, 1);
  assert.equal(harness.reconcile(zone()).status.answer.n, 2);
  assert.equal(harness.reconcile(zone()).status.answer.n, 2);
  const other = rejects(() => harness.reconcile(zone({ path: "/other" })));
  assert.equal(other.reason, "HttpStatus");
  assert.ok(!other.permanent, "a 503 is retryable");
});

test("a 4xx is a permanent HttpStatus quoting the body; 408, 429 and 5xx are retryable", () => {
  const error = rejects(() =>
    new Harness(Zoner).http(HttpStub.get(`${API}/zones/a.`).status(422).body("bad\r\ncontent")).reconcile(zone()),
  );
  assert.ok(error instanceof HttpError);
  assert.equal(error.reason, "HttpStatus");
  assert.equal(error.status, 422);
  assert.ok(error.permanent);
  assert.equal(error.detail, `GET ${API}/zones/a. failed: status 422: bad  content`);
  for (const status of [408, 429, 500, 503]) {
    const retried = rejects(() => new Harness(Zoner).http(HttpStub.origin(API).status(status)).reconcile(zone()));
    assert.ok(!retried.permanent, `${status}`);
  }
});

test("refusals, timeouts and failed connections are retryable, each with its reason", () => {
  const cases: [HttpStub, string, string][] = [
    [HttpStub.origin(API).refused(), "HttpRefused", "refused by the host"],
    [HttpStub.origin(API).timeout(), "HttpTimeout", "timed out"],
    [HttpStub.origin(API).connectionRefused(), "HttpConnection", "connection failed: ConnectionRefused"],
  ];
  for (const [stub, reason, words] of cases) {
    const error = rejects(() => new Harness(Zoner).http(stub).reconcile(zone()));
    assert.equal(error.reason, reason);
    assert.ok(!error.permanent, reason);
    assert.ok(error.detail.includes(words), error.detail);
  }
});

test("an origin the module did not declare is refused as the host refuses it", () => {
  class Stray extends Zoner {
    metadata() {
      return new Metadata("stray", "0.1.0");
    }
  }
  const error = rejects(() => new Harness(Stray).http(HttpStub.origin(API)).reconcile(zone()));
  assert.equal(error.reason, "HttpRefused");
  assert.match(error.detail, /not an origin this module declared \(Metadata\.httpOrigin\)/);
  assert.deepEqual(new Harness(Zoner).metadata().httpOrigins, [API]);
});

test("a request no stub matches fails the test, not the reconcile", () => {
  assert.throws(
    () => new Harness(Zoner).http(HttpStub.post(`${API}/zones/a.`)).reconcile(zone()),
    (e: unknown) => e instanceof HarnessFailure && /unexpected HTTP request GET .*stubs given:\n {4}POST/.test(e.message),
  );
});

test("a body that is not the JSON expected is a retryable HttpBody", () => {
  const error = rejects(() => new Harness(Zoner).http(HttpStub.origin(API).body("<html>")).reconcile(zone()));
  assert.equal(error.reason, "HttpBody");
  assert.ok(!error.permanent);
});

test("requests that cannot be sent are permanent HttpInvalidRequest, before anything goes out", () => {
  for (const url of ["ftp://h/", "https:///path", "http://user:pw@h/", "http://h/a b", "http://h/\r\nX: y", "dns.example/path", "http://h?x"]) {
    assert.throws(
      () => new HttpRequest("GET", url).check(),
      (e: unknown) => e instanceof HttpError && e.kind === HttpErrorKind.InvalidRequest && e.permanent,
      url,
    );
  }
  const injected = new HttpRequest("GET", "http://h/");
  injected.headers.push(["X-Evil", "a\r\nHost: other"]);
  assert.throws(() => injected.check(), HttpError);
  const badName = new HttpRequest("GET", "http://h/");
  badName.headers.push(["Bad Name", "v"]);
  assert.throws(() => badName.check(), HttpError);
  const parts = new HttpRequest("GET", "https://dns.example:8081/api/v1/zones/a.?x=1#frag").urlParts();
  assert.deepEqual(parts, {
    https: true,
    authority: "dns.example:8081",
    pathWithQuery: "/api/v1/zones/a.?x=1",
    origin: "https://dns.example:8081",
  });
});

test("long error bodies are cut at a character boundary", () => {
  const request = new HttpRequest("GET", "http://h/x");
  const response = new HttpResponse(request, 500, [], utf8Encode("é".repeat(2000)));
  assert.throws(
    () => response.errorForStatus(),
    (e: unknown) => e instanceof HttpError && e.description.length < MAX_QUOTED_BODY + 32 && e.description.endsWith("é…"),
  );
});

test("UTF-8 round-trips, and invalid bytes become U+FFFD", () => {
  const text = "zone é ✓ 🌍";
  assert.equal(utf8Decode(utf8Encode(text)), text);
  assert.deepEqual(utf8Encode(text), new Uint8Array(Buffer.from(text, "utf8")));
  assert.equal(utf8Decode(Uint8Array.from([0x61, 0xff, 0x62, 0xe2, 0x82])), "a\ufffdb\ufffd");
});
