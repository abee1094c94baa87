// A bosun recording as a test fixture: Harness.fromRecording loads the
// clock, request, read answers and HTTP answers of a bosun.dev/recording/v1
// file (test/fixtures/zone.recording.json, written by hand in the host's
// format; the same file as sdks/python/tests/fixtures') and the harness
// reaches the recorded outcome.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { BosunError, Finalized, Metadata, Response, kinds, type Context } from "../src/index.js";
import { HarnessFailure } from "../src/dispatch.js";
import { Harness, RecordingError } from "../src/testing.js";

// Compiled into dist/test/, the fixture stays in test/fixtures.
const FIXTURE = fileURLToPath(new URL("../../test/fixtures/zone.recording.json", import.meta.url));
const ZONE = "https://dns.example:8081/api/v1/servers/localhost/zones/example.org.";

/** Uses every input a recording holds: reads, HTTP, settings, children, trigger, attempt and the clock. */
class Zone {
  readonly kind = kinds.ConfigMap;
  metadata() {
    return new Metadata("zone", "0.1.0").owns(kinds.Secret).reads(kinds.Secret).httpOrigin("https://dns.example:8081")
      .finalizer("zone.example.com/records");
  }
  finalize(_cm: unknown, ctx: Context) {
    // Done once the zone has no records left.
    const zone = ctx.http().get(ZONE).send().errorForStatus().json() as { rrsets: unknown[] };
    return zone.rrsets.length === 0 ? Finalized.done() : Finalized.pending(5000);
  }
  reconcile(_cm: unknown, ctx: Context) {
    const target = ctx.get(kinds.Secret, "www-target");
    const labelled = ctx.list(kinds.Secret, "app=www");
    let zone = ctx.http().get(ZONE).header("Accept", "application/json").send().errorForStatus().json() as {
      rrsets: unknown[];
    };
    if (zone.rrsets.length === 0) {
      ctx.http().patch(ZONE).json({ rrsets: [{ name: "www" }] }).send().errorForStatus();
      zone = ctx.http().get(ZONE).send().errorForStatus().json() as { rrsets: unknown[] };
    }
    return new Response().status({
      records: zone.rrsets.length,
      target: target?.metadata?.name ?? null,
      labelled: labelled.length,
      ttl: ctx.settings<{ ttl: number }>()?.ttl,
      children: ctx.children(kinds.ConfigMap).length,
      trigger: ctx.trigger,
      attempt: ctx.attempt,
      now: Math.floor(ctx.now().getTime() / 1000),
    });
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const fixture = (): any => JSON.parse(readFileSync(FIXTURE, "utf8"));

test("a recording loads as a fixture and the harness reaches its outcome", () => {
  const [harness, cm] = Harness.fromRecording(FIXTURE, Zone);
  assert.equal(cm.metadata?.name, "www");
  const outcome = harness.reconcile(cm);
  const recorded = fixture().outcome.response;
  assert.deepEqual(outcome.status, recorded.status);
  assert.deepEqual(outcome.childrenJson, recorded.children);
  assert.equal(outcome.requeueAfterMs ?? null, recorded.requeueAfterMs);
  assert.deepEqual(
    harness.requests.map((r) => [r.method, r.url]),
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    fixture().http.map((e: any) => [e.request.method, e.request.url]),
  );
});

test("a recorded finalize loads and finalize replays it", () => {
  const recording = fixture();
  recording.call = "finalize";
  recording.http = recording.http.slice(2); // the zone, with one record
  const [harness, cm] = Harness.fromRecording(recording, Zone);
  const outcome = harness.finalize(cm);
  assert.equal(outcome.done, false);
  assert.equal(outcome.requeueAfterMs, 5000);
});

test("a recording loads from text, bytes, a path or a parsed object", () => {
  const text = readFileSync(FIXTURE, "utf8");
  for (const source of [text, new TextEncoder().encode(text), FIXTURE, JSON.parse(text) as object]) {
    const [harness, cm] = Harness.fromRecording(source, Zone);
    assert.equal(harness.reconcile(cm).status.records, 1);
  }
});

test("each recorded HTTP answer is used once, in order", () => {
  const recording = fixture();
  recording.http = recording.http.slice(0, 1); // the PATCH was never recorded
  const [harness, cm] = Harness.fromRecording(recording, Zone);
  assert.throws(() => harness.reconcile(cm), (e) => e instanceof HarnessFailure && /unexpected HTTP request PATCH/.test(e.message));
});

test("a recorded HTTP failure replays as the same kind of error", () => {
  const recording = fixture();
  recording.http = [{ ...recording.http[0], response: null, error: "ConnectionRefused" }];
  const [harness, cm] = Harness.fromRecording(recording, Zone);
  assert.throws(() => harness.reconcile(cm), (e) => e instanceof BosunError && e.reason === "HttpConnection");
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const broken: [(r: any) => void, string][] = [
  [(r) => (r.format = "bosun.dev/recording/v2"), "is not one this SDK reads"],
  [(r) => delete r.format, 'has no "format"'],
  [(r) => (r.call = "shadow"), "neither reconcile nor finalize"],
  [(r) => delete r.request, "request is missing"],
  [(r) => (r.request.object = "{not json"), "the recorded object is not JSON"],
  [(r) => (r.request.trigger = "someday"), 'trigger "someday" is unknown'],
  [(r) => (r.now = "yesterday"), "the recording's now"],
  [(r) => (r.now = 12), "the recording's now 12 is not a time"],
  [(r) => (r.reads[0].answer.found = "[1"), "read answer is not JSON"],
  [(r) => (r.http[0].request.method = "BREW"), 'method "BREW" is unknown'],
  [(r) => delete r.http[0].response.status, "has no status"],
  [(r) => (r.http[2].response.body = { base64: "**" }), "not valid base64"],
  [(r) => (r.http = {}), '"http" is not a list'],
];

test("a malformed or mismatched recording is a clear error", () => {
  for (const [change, message] of broken) {
    const recording = fixture();
    change(recording);
    assert.throws(
      () => Harness.fromRecording(JSON.stringify(recording), Zone),
      (e) => e instanceof RecordingError && e.message.includes(message),
      message,
    );
  }
});

test("what is not a recording is a clear error", () => {
  const dir = mkdtempSync(join(tmpdir(), "bosun-recording-"));
  assert.throws(() => Harness.fromRecording("{", Zone), (e) => e instanceof RecordingError && /not a bosun recording/.test(e.message));
  assert.throws(() => Harness.fromRecording(new TextEncoder().encode("[1]"), Zone), /not a JSON object/);
  assert.throws(() => Harness.fromRecording(join(dir, "absent.json"), Zone), (e) => e instanceof RecordingError && /cannot read/.test(e.message));
});

test("a recording file larger than the cap is refused", () => {
  const big = join(mkdtempSync(join(tmpdir(), "bosun-recording-")), "big.json");
  writeFileSync(big, "");
  truncateSync(big, (64 << 20) + 1);
  assert.throws(() => Harness.fromRecording(big, Zone), (e) => e instanceof RecordingError && /larger than 67108864 bytes/.test(e.message));
});
