// The SDK through its native harness: the same JSON boundary as the host
// (mirrors sdks/python/tests/test_harness.py and test_parts.py).

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { BosunError, Metadata, Response, conditions, customKind, kinds, pluralOf, type Context } from "../src/index.js";
import { delayMs } from "../src/response.js";
import { Harness } from "../src/testing.js";

const WIDGET = customKind("example.com", "v1", "Widget");

function widget(spec: Record<string, unknown> = {}, namespace = "shop") {
  return { apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w", namespace, generation: 3 }, spec };
}

class Reader {
  readonly kind = WIDGET;
  metadata() {
    return new Metadata("reader", "1.0.0").owns(kinds.ConfigMap).reads(kinds.Secret);
  }
  reconcile(obj: ReturnType<typeof widget>, ctx: Context) {
    const spec = obj.spec as { get?: { kind: string; name: string }; list?: { kind: string; selector?: string } };
    const found: Record<string, unknown> = {};
    const kind = (name: string) => (kinds as unknown as Record<string, typeof kinds.Pod>)[name]!;
    if (spec.get) found.got = ctx.get(kind(spec.get.kind), spec.get.name)?.metadata?.name ?? null;
    if (spec.list) found.listed = ctx.list(kind(spec.list.kind), spec.list.selector).map((o) => o.metadata?.name).sort();
    found.children = ctx.children(kinds.ConfigMap).map((c) => c.metadata?.name);
    found.settings = ctx.settings() ?? null;
    found.trigger = ctx.trigger;
    found.attempt = ctx.attempt;
    found.condition = ctx.condition("Ready", true, "Fine", "all good");
    return new Response().status(found);
  }
}

function rejects(call: () => unknown): BosunError {
  try {
    call();
  } catch (e) {
    assert.ok(e instanceof BosunError, `a BosunError, not ${String(e)}`);
    return e;
  }
  assert.fail("the call succeeded");
}

const secret = (name: string, namespace = "shop", labels?: Record<string, string>) => ({
  metadata: { name, namespace, ...(labels ? { labels } : {}) },
});

test("reads answer from the harness cache in the object's namespace", () => {
  const harness = new Harness(Reader)
    .object(secret("a"), kinds.Secret)
    .object(secret("a", "elsewhere"), kinds.Secret)
    .object(secret("b", "shop", { tier: "web" }), kinds.Secret);
  assert.equal(harness.reconcile(widget({ get: { kind: "Secret", name: "a" } })).status.got, "a");
  assert.equal(harness.reconcile(widget({ get: { kind: "Secret", name: "missing" } })).status.got, null);
  assert.deepEqual(harness.reconcile(widget({ list: { kind: "Secret" } })).status.listed, ["a", "b"]);
  assert.deepEqual(harness.reconcile(widget({ list: { kind: "Secret", selector: "tier in (web,api)" } })).status.listed, ["b"]);
  assert.deepEqual(harness.reconcile(widget({ list: { kind: "Secret", selector: "!tier" } })).status.listed, ["a"]);
});

test("a read of an undeclared kind is a retryable read failure", () => {
  const error = rejects(() => new Harness(Reader).reconcile(widget({ get: { kind: "Pod", name: "x" } })));
  assert.equal(error.reason, "ReadFailed");
  assert.ok(!error.permanent);
  assert.match(error.detail, /Pod\.v1 is not a declared kind/);
});

test("a selector that does not parse is a retryable read failure", () => {
  const error = rejects(() => new Harness(Reader).reconcile(widget({ list: { kind: "Secret", selector: "a in (b" } })));
  assert.equal(error.reason, "ReadFailed");
});

test("children, settings, trigger, attempt and conditions reach the reconciler", () => {
  const out = new Harness(Reader)
    .now("2026-12-01T10:00:00.250Z")
    .child({ metadata: { name: "cm" } }, kinds.ConfigMap)
    .child({ metadata: { name: "s" } }, kinds.Secret)
    .settings({ replicas: 2 })
    .trigger("retry", 3)
    .reconcile(widget());
  assert.deepEqual(out.status.children, ["cm"]);
  assert.deepEqual(out.status.settings, { replicas: 2 });
  assert.equal(out.status.trigger, "retry");
  assert.equal(out.status.attempt, 3);
  assert.deepEqual(out.status.condition, {
    type: "Ready",
    status: "True",
    reason: "Fine",
    message: "all good",
    lastTransitionTime: "2026-12-01T10:00:00Z",
    observedGeneration: 3,
  });
});

test("settings that are not JSON are a permanent error", () => {
  const error = rejects(() => new Harness(Reader).rawSettingsText("{nope").reconcile(widget()));
  assert.ok(error.permanent);
  assert.equal(error.reason, "InvalidSettings");
});

class Thrower {
  readonly kind = WIDGET;
  metadata() {
    return new Metadata("thrower", "1.0.0");
  }
  reconcile(obj: { spec: { what: string } }): Response {
    if (obj.spec.what === "string") throw "just a string";
    if (obj.spec.what === "nan") return new Response().status({ ratio: NaN });
    if (obj.spec.what === "wrong") return { not: "a response" } as unknown as Response;
    return (undefined as unknown as { boom(): Response }).boom();
  }
}

test("an uncaught exception is a retryable error with its message and stack", () => {
  const error = rejects(() => new Harness(Thrower).reconcile(widget({ what: "error" })));
  assert.ok(!error.permanent);
  assert.equal(error.reason, "UncaughtException");
  assert.match(error.detail, /^TypeError: Cannot read properties of undefined/);
  assert.match(error.detail, /at Thrower\.reconcile/);
});

test("a thrown non-Error is a retryable error too", () => {
  const error = rejects(() => new Harness(Thrower).reconcile(widget({ what: "string" })));
  assert.equal(error.reason, "UncaughtException");
  assert.equal(error.detail, "thrown: just a string");
});

test("NaN in a status is refused, not written as null", () => {
  const error = rejects(() => new Harness(Thrower).reconcile(widget({ what: "nan" })));
  assert.equal(error.reason, "SerializationFailed");
});

test("returning something else than a Response is a retryable error", () => {
  const error = rejects(() => new Harness(Thrower).reconcile(widget({ what: "wrong" })));
  assert.equal(error.reason, "InvalidResponse");
  assert.match(error.detail, /returned Object, not a bosun Response/);
});

test("an object that is not JSON-shaped is a permanent error", () => {
  const error = rejects(() => new Harness(Reader).reconcile([] as unknown as object));
  assert.ok(error.permanent);
  assert.equal(error.reason, "InvalidObject");
});

test("a module that owns its own primary kind fails its test", () => {
  class Selfish extends Reader {
    override metadata() {
      return new Metadata("selfish", "1.0.0").owns(WIDGET);
    }
  }
  assert.throws(() => new Harness(Selfish).metadata(), /owns its own primary kind Widget/);
});

test("finalize is done at once unless the reconciler defines it", () => {
  const out = new Harness(Reader).finalize(widget());
  assert.equal(out.done, true);
  assert.equal(out.requeueAfterMs, undefined);
});

test("delays round up to whole milliseconds and never go negative", () => {
  assert.equal(delayMs(0.5), 1);
  assert.equal(delayMs(1000), 1000);
  assert.equal(delayMs(-5), 0);
  assert.equal(delayMs(NaN), 0);
  assert.equal(delayMs(Infinity), Number.MAX_SAFE_INTEGER);
});

test("plurals follow kube-derive", () => {
  assert.equal(pluralOf("At"), "ats");
  assert.equal(pluralOf("Policy"), "policies");
  assert.equal(pluralOf("Gateway"), "gateways");
  assert.equal(pluralOf("Ingress"), "ingresses");
  assert.equal(pluralOf("Endpoints"), "endpoints");
});

test("conditions keep the transition time while the status holds", () => {
  const list = [
    { type: "Ready", status: "True" as const, reason: "A", message: "a", lastTransitionTime: "2026-01-01T00:00:00Z" },
  ];
  assert.ok(conditions.set(list, { ...list[0]!, reason: "B", lastTransitionTime: "2026-02-01T00:00:00Z" }));
  assert.equal(list[0]!.lastTransitionTime, "2026-01-01T00:00:00Z");
  assert.equal(list[0]!.reason, "B");
  assert.ok(conditions.set(list, { ...list[0]!, status: "False", lastTransitionTime: "2026-03-01T00:00:00Z" }));
  assert.equal(list[0]!.lastTransitionTime, "2026-03-01T00:00:00Z");
  assert.ok(!conditions.isTrue(list, "Ready"));
  assert.ok(conditions.remove(list, "Ready"));
  assert.deepEqual(list, []);
});

// The package ships the repository's published world (wit/http) as it is,
// so a TypeScript guest's bindings are every language's; its deps carry
// wit/reconciler.wit itself.
test("the shipped WIT is the repository's published world, byte for byte", { skip: !canRead("../../wit/http/world.wit") }, () => {
  assert.deepEqual(witFiles("wit"), witFiles("../../wit/http"), "sdks/typescript/wit differs from wit/http; copy wit/http over it");
  assert.equal(
    readFileSync("wit/deps/bosun-reconciler/reconciler.wit", "utf8"),
    readFileSync("../../wit/reconciler.wit", "utf8"),
  );
});

function witFiles(root: string, under = ""): Record<string, string> {
  const found: Record<string, string> = {};
  for (const entry of readdirSync(join(root, under), { withFileTypes: true })) {
    const path = join(under, entry.name);
    if (entry.isDirectory()) Object.assign(found, witFiles(root, path));
    else if (entry.name.endsWith(".wit")) found[path] = readFileSync(join(root, path), "utf8");
  }
  return found;
}

function canRead(path: string): boolean {
  try {
    readFileSync(path);
    return true;
  } catch {
    return false;
  }
}
