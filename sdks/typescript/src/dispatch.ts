/**
 * One reconcile through JSON on both sides: the request as the host sends it
 * in, the answer as the host takes it back. The component's exports and the
 * native harness both go through here, so tests cross the same boundary the
 * host does.
 */

import { Context, type Trigger } from "./context.js";
import { BosunError, permanent, retryable } from "./errors.js";
import type { Host } from "./host.js";
import { Kind } from "./kind.js";
import { Metadata } from "./metadata.js";
import { Event, Finalized, Response } from "./response.js";
import type { KubeObject } from "./types.js";

/** Stack lines kept from an uncaught exception: the innermost say where it happened, and the host cuts long messages anyway. */
const STACK_LINES = 8;

/**
 * The logic of one controller. Write a class with `kind` set to the primary
 * kind, and `metadata` and `reconcile` (and `finalize` when the module
 * declares a finalizer):
 *
 *     class Cnat implements Reconciler<At> {
 *       kind = AT;
 *       metadata() { return new Metadata("cnat", "0.1.0").owns(kinds.Pod); }
 *       reconcile(at: At, ctx: Context) { return new Response().status({ phase: "PENDING" }); }
 *     }
 *
 * A fresh instance serves each call: keep nothing on `this` between calls
 * (the host runs every call in a fresh sandbox anyway).
 */
export interface Reconciler<T extends KubeObject = KubeObject> {
  readonly kind: Kind;
  metadata(): Metadata;
  reconcile(obj: T, ctx: Context): Response;
  /** Cleans up for `obj`, which is being deleted. Done at once when absent. */
  finalize?(obj: T, ctx: Context): Finalized;
}

/** A reconciler class, instantiated once per call. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ReconcilerClass = new () => Reconciler<any>;

/** `bosun:reconciler/types.request`, as jco hands it over. */
export interface WireRequest {
  object: string;
  children: string[];
  settings: string | undefined;
  trigger: Trigger;
  attempt: number;
}

/** `bosun:reconciler/types.event`. */
export interface WireEvent {
  eventType: "normal" | "warning";
  reason: string;
  note: string;
  action: string;
}

/** `bosun:reconciler/types.response`. */
export interface WireResponse {
  children: string[];
  status: string | undefined;
  requeueAfterMs: number | undefined;
  events: WireEvent[];
}

/** `bosun:reconciler/types.finalize-response`. */
export interface WireFinalizeResponse {
  done: boolean;
  requeueAfterMs: number | undefined;
  events: WireEvent[];
}

/** `bosun:reconciler/types.api-kind`. */
export interface WireKind {
  group: string;
  version: string;
  kind: string;
  plural: string;
  scope: "namespaced" | "cluster";
}

/** `bosun:reconciler/types.module-info`. */
export interface WireModuleInfo {
  name: string;
  version: string;
  primary: WireKind;
  owns: WireKind[];
  reads: WireKind[];
  finalizer: string | undefined;
  httpOrigins: string[];
}

/** The module's metadata, with the primary kind taken from the reconciler's `kind`. */
export function metadata(reconciler: ReconcilerClass): WireModuleInfo {
  const instance = new reconciler();
  if (!(instance.kind instanceof Kind)) {
    throw new TypeError(`${reconciler.name}.kind must be a bosun Kind, got ${String(instance.kind)}`);
  }
  const declared = instance.metadata();
  if (!(declared instanceof Metadata)) {
    throw new TypeError(`${reconciler.name}.metadata() must return a bosun Metadata`);
  }
  return {
    name: declared.name,
    version: declared.version,
    primary: wireKind(instance.kind),
    owns: declared.owned.map(wireKind),
    reads: declared.read.map(wireKind),
    finalizer: declared.finalizerName,
    httpOrigins: [...declared.httpOrigins],
  };
}

/** Runs `reconcile`; throws {@link BosunError} for every failure, an uncaught exception included. */
export function reconcile(reconciler: ReconcilerClass, request: WireRequest, host: Host): WireResponse {
  return guarded(() => {
    const instance = new reconciler();
    const [obj, ctx] = decode(instance.kind, request, host);
    const response: unknown = instance.reconcile(obj, ctx);
    if (!(response instanceof Response)) {
      throw retryable("InvalidResponse", `${reconciler.name}.reconcile returned ${describe(response)}, not a bosun Response`);
    }
    if (response.error !== undefined) throw response.error;
    return {
      children: [...response.children],
      status: response.statusJson,
      requeueAfterMs: response.requeueAfterMs,
      events: response.events.map(wireEvent),
    };
  });
}

/** Runs `finalize`; throws {@link BosunError} for every failure. */
export function finalize(reconciler: ReconcilerClass, request: WireRequest, host: Host): WireFinalizeResponse {
  return guarded(() => {
    const instance = new reconciler();
    const [obj, ctx] = decode(instance.kind, request, host);
    const answer: unknown = instance.finalize ? instance.finalize(obj, ctx) : Finalized.done();
    if (!(answer instanceof Finalized)) {
      throw retryable("InvalidResponse", `${reconciler.name}.finalize returned ${describe(answer)}, not a bosun Finalized`);
    }
    return { done: answer.isDone, requeueAfterMs: answer.requeueAfterMs, events: answer.events.map(wireEvent) };
  });
}

/** A retryable error carrying a thrown value's message and the innermost lines of its stack. */
export function uncaught(e: unknown): BosunError {
  if (!(e instanceof Error)) {
    return retryable("UncaughtException", `thrown: ${safeString(e)}`);
  }
  // QuickJS's stack holds only the frames; V8's starts with "Name: message".
  const frames = (e.stack ?? "")
    .split("\n")
    .filter((line) => /^\s*at /.test(line))
    .slice(0, STACK_LINES)
    .map((line) => line.trimEnd());
  const head = `${e.name}: ${e.message}`;
  return retryable("UncaughtException", frames.length ? `${head}\n${frames.join("\n")}` : head);
}

function guarded<T>(call: () => T): T {
  try {
    return call();
  } catch (e) {
    if (e instanceof BosunError || e instanceof HarnessFailure) throw e;
    throw uncaught(e);
  }
}

/**
 * A test's own failure raised inside a reconciler by the native harness: it
 * must fail the test, not become the retryable error an ordinary exception
 * becomes.
 */
export class HarnessFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HarnessFailure";
  }
}

function decode(kind: Kind, request: WireRequest, host: Host): [KubeObject, Context] {
  let obj: unknown;
  try {
    obj = JSON.parse(request.object);
  } catch (e) {
    // The API server validated the object against its schema, so an object
    // that is not JSON cannot be fixed by retrying.
    throw permanent("InvalidObject", `the ${kind.kind} is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
    throw permanent("InvalidObject", `the ${kind.kind} is not a JSON object`);
  }
  const object = obj as KubeObject;
  const generation = object.metadata?.generation;
  const ctx = new Context({
    children: request.children,
    settings: request.settings,
    trigger: request.trigger,
    attempt: request.attempt,
    namespace: kind.scope === "namespaced" ? object.metadata?.namespace : undefined,
    generation: Number.isInteger(generation) ? generation : undefined,
    host,
  });
  return [object, ctx];
}

function wireKind(kind: Kind): WireKind {
  return { group: kind.group, version: kind.version, kind: kind.kind, plural: kind.plural, scope: kind.scope };
}

function wireEvent(event: Event): WireEvent {
  return { eventType: event.eventType, reason: event.reason, note: event.note, action: event.actionName };
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") return value.constructor?.name ?? "an object";
  return typeof value;
}

function safeString(value: unknown): string {
  try {
    return typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
