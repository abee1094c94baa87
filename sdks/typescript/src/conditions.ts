/**
 * Status conditions, handled the way `meta.SetStatusCondition` does in Go.
 *
 * Build a condition with `Context.condition` and put it into your status
 * with {@link set}; the transition time moves only when the condition's
 * status changes. Give the status field the CRD schema {@link SCHEMA}.
 */

import type { Condition } from "./types.js";

/**
 * The CRD schema of a `conditions` list: a list map keyed by `type`, so
 * server-side apply merges conditions one by one.
 */
export const SCHEMA = {
  type: "array",
  "x-kubernetes-list-type": "map",
  "x-kubernetes-list-map-keys": ["type"],
  items: {
    type: "object",
    required: ["type", "status", "lastTransitionTime", "reason", "message"],
    properties: {
      type: { type: "string" },
      status: { type: "string", enum: ["True", "False", "Unknown"] },
      lastTransitionTime: { type: "string", format: "date-time" },
      reason: { type: "string" },
      message: { type: "string" },
      observedGeneration: { type: "integer", format: "int64" },
    },
  },
} as const;

/**
 * Sets `condition` in `conditions`, replacing the one of the same type. When
 * one of that type exists with the same status its `lastTransitionTime` is
 * kept; reason, message and observedGeneration are updated. Returns true
 * when anything changed.
 */
export function set(conditions: Condition[], condition: Condition): boolean {
  const existing = find(conditions, condition.type);
  if (existing === undefined) {
    conditions.push(condition);
    return true;
  }
  let changed = false;
  if (existing.status !== condition.status) {
    existing.status = condition.status;
    existing.lastTransitionTime = condition.lastTransitionTime;
    changed = true;
  }
  if (existing.reason !== condition.reason) {
    existing.reason = condition.reason;
    changed = true;
  }
  if (existing.message !== condition.message) {
    existing.message = condition.message;
    changed = true;
  }
  if (existing.observedGeneration !== condition.observedGeneration) {
    if (condition.observedGeneration === undefined) delete existing.observedGeneration;
    else existing.observedGeneration = condition.observedGeneration;
    changed = true;
  }
  return changed;
}

/** The condition of type `type`, if present. */
export function find(conditions: Condition[], type: string): Condition | undefined {
  return conditions.find((c) => c.type === type);
}

/** Removes the condition of type `type`; true when one was removed. */
export function remove(conditions: Condition[], type: string): boolean {
  const at = conditions.findIndex((c) => c.type === type);
  if (at < 0) return false;
  conditions.splice(at, 1);
  return true;
}

/** True when the condition of type `type` is present with status `True`. */
export function isTrue(conditions: Condition[], type: string): boolean {
  return find(conditions, type)?.status === "True";
}
