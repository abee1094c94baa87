// cnat's behaviour, natively, through the SDK's harness: the same cases as
// examples/cnat/tests/phases.rs and examples/cnat-python/tests/test_phases.py.

import assert from "node:assert/strict";
import { test } from "node:test";

import { BosunError, kinds } from "@bosun/sdk";
import { Harness, type Outcome } from "@bosun/sdk/testing";

import { PHASE_DONE, PHASE_PENDING, PHASE_RUNNING, Cnat, pod, type At } from "../src/app.js";

function at(schedule: string, phase?: string): At {
  const obj: At = {
    apiVersion: "cnat.programming-kubernetes.info/v1alpha1",
    kind: "At",
    metadata: {
      name: "example-at",
      namespace: "default",
      uid: "8c6a1c9e-0000-4000-8000-000000000001",
      generation: 1,
    },
    spec: { schedule, command: "echo YAY" },
  };
  if (phase !== undefined) obj.status = { phase };
  return obj;
}

function phase(outcome: Outcome): string {
  assert.notEqual(outcome.status, undefined, "cnat always sets a status");
  return outcome.status.phase;
}

function rejects(call: () => unknown): BosunError {
  try {
    call();
  } catch (e) {
    assert.ok(e instanceof BosunError, `a BosunError, not ${String(e)}`);
    return e;
  }
  assert.fail("the reconcile succeeded");
}

test("waits for the schedule and requeues for the remaining time", () => {
  const outcome = new Harness(Cnat).now("2026-12-01T09:59:00Z").reconcile(at("2026-12-01T10:00:00Z"));
  assert.equal(phase(outcome), PHASE_PENDING);
  assert.equal(outcome.requeueAfterMs, 60_000);
  assert.deepEqual(outcome.children(kinds.Pod), []);
});

test("rounds a part of a millisecond up", () => {
  // A Date holds whole milliseconds; the SDK's rounding is what the
  // requeue of 0.5 ms exercises.
  const outcome = new Harness(Cnat).now("2026-12-01T09:59:59.999Z").reconcile(at("2026-12-01T10:00:00Z"));
  assert.equal(outcome.requeueAfterMs, 1, "never requeued before the schedule");
});

test("starts the pod when due", () => {
  const outcome = new Harness(Cnat).now("2026-12-01T10:00:01Z").reconcile(at("2026-12-01T10:00:00Z", PHASE_PENDING));
  assert.equal(phase(outcome), PHASE_RUNNING);
  assert.equal(outcome.requeueAfterMs, undefined);
  const pods = outcome.children(kinds.Pod);
  assert.equal(pods.length, 1);
  const [started] = pods;
  assert.equal(started?.metadata?.name, "example-at-pod");
  assert.equal(started?.metadata?.labels?.app, "example-at");
  assert.deepEqual(started?.spec, {
    containers: [{ name: "busybox", image: "busybox", command: ["echo", "YAY"] }],
    restartPolicy: "OnFailure",
  });
  const [event] = outcome.events;
  assert.equal(event?.reason, "Started");
  assert.equal(event?.action, "Scheduling");
  assert.equal(event?.note, 'created pod example-at-pod to run "echo YAY"');
  assert.ok(outcome.logs.some(([, line]) => line.includes("schedule 2026-12-01T10:00:00Z reached")));
});

test("stays running while the pod runs and is done when it finishes", () => {
  const running = at("2026-12-01T10:00:00Z", PHASE_RUNNING);
  const observed = { ...pod(running), status: { phase: "Running" } };
  let outcome = new Harness(Cnat).child(observed, kinds.Pod).reconcile(running);
  assert.equal(phase(outcome), PHASE_RUNNING);
  assert.equal(outcome.children(kinds.Pod).length, 1, "the pod stays desired");
  assert.deepEqual(outcome.events, []);

  for (const finished of ["Succeeded", "Failed"]) {
    observed.status.phase = finished;
    outcome = new Harness(Cnat).child(observed, kinds.Pod).reconcile(running);
    assert.equal(phase(outcome), PHASE_DONE, `pod ${finished}`);
    assert.equal(outcome.children(kinds.Pod).length, 1, "the finished pod is kept, not pruned");
    assert.equal(outcome.events[0]?.reason, "Done");
  }
});

test("done keeps the pod as it was applied, not as observed", () => {
  const done = at("2026-12-01T10:00:00Z", PHASE_DONE);
  const applied = { apiVersion: "v1", kind: "Pod", ...pod(done) };
  const observed = structuredClone(applied) as typeof applied & { status?: object };
  (observed.spec as Record<string, unknown>).dnsPolicy = "ClusterFirst";
  observed.status = { phase: "Succeeded" };
  const outcome = new Harness(Cnat).child(observed).reconcile(done);
  assert.equal(phase(outcome), PHASE_DONE);
  assert.deepEqual(outcome.children(kinds.Pod), [applied]);
});

test("done is final", () => {
  const outcome = new Harness(Cnat).reconcile(at("2026-12-01T10:00:00Z", PHASE_DONE));
  assert.equal(phase(outcome), PHASE_DONE);
  assert.deepEqual(outcome.children(kinds.Pod), [], "no new pod once done");
});

test("a bad schedule is a permanent error", () => {
  let error = rejects(() => new Harness(Cnat).reconcile(at("next tuesday")));
  assert.ok(error.permanent);
  assert.equal(error.reason, "InvalidSchedule");
  assert.ok(error.detail.includes('"next tuesday"'), error.detail);
  // The book's layout has no offset: anything else is rejected too.
  error = rejects(() => new Harness(Cnat).reconcile(at("2026-12-01T10:00:00+02:00")));
  assert.ok(error.permanent);
});

test("a date that does not exist is a permanent error", () => {
  const error = rejects(() => new Harness(Cnat).reconcile(at("2026-02-30T10:00:00Z")));
  assert.ok(error.permanent);
  assert.equal(error.reason, "InvalidSchedule");
});

test("declares pods as its only owned kind", () => {
  const info = new Harness(Cnat).metadata();
  assert.equal(info.name, "cnat");
  assert.equal(info.primary.group, "cnat.programming-kubernetes.info");
  assert.equal(info.primary.kind, "At");
  assert.equal(info.primary.plural, "ats");
  assert.deepEqual(
    info.owns.map((k) => k.kind),
    ["Pod"],
  );
  assert.equal(info.finalizer, undefined);
});

test("a spec without a command is a retryable error carrying the TypeError and its stack", () => {
  const broken = at("2026-12-01T10:00:00Z") as unknown as { spec: Record<string, unknown> };
  delete broken.spec.command;
  const error = rejects(() => new Harness(Cnat).now("2026-12-01T10:00:01Z").reconcile(broken));
  assert.ok(!error.permanent);
  assert.equal(error.reason, "UncaughtException");
  assert.match(error.detail, /^TypeError: /);
  assert.match(error.detail, /\n\s*at /, "the stack's frames");
});
