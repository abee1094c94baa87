// A recording of cnat-typescript's component as a test fixture: the harness
// loaded from it reaches the outcome the component reached.
//
// test/at.recording.json was written by `bosun reconcile --record` (its
// random bytes dropped: cnat uses none natively); the host's test
// typescript_cnat_recorded_by_bosun_is_a_node_test_fixture_that_agrees
// (host/tests/typescript_guest.rs) records the component afresh and points
// BOSUN_RECORDING at that file.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { Harness } from "@bosun/sdk/testing";

import { Cnat, type At } from "../src/app.js";

// Compiled into dist/test/, the fixture stays in test/.
const RECORDING =
  process.env.BOSUN_RECORDING || fileURLToPath(new URL("../../test/at.recording.json", import.meta.url));

test("the harness loaded from a recording reaches the recorded outcome", () => {
  const [harness, at] = Harness.fromRecording<At>(RECORDING, Cnat);
  const outcome = harness.reconcile(at);
  const recorded = JSON.parse(readFileSync(RECORDING, "utf8")).outcome.response;
  assert.deepEqual(outcome.status, recorded.status);
  assert.deepEqual(outcome.childrenJson, recorded.children);
  assert.equal(outcome.requeueAfterMs ?? null, recorded.requeueAfterMs);
  assert.deepEqual(
    outcome.events.map((e) => ({
      type: e.eventType === "normal" ? "Normal" : "Warning",
      reason: e.reason,
      note: e.note,
      action: e.action,
    })),
    recorded.events,
  );
});
