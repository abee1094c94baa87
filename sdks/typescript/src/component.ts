/**
 * The component's side of the contract: the `bosun:reconciler` exports and
 * imports, in the shapes jco's bindings use (enums as strings, options as
 * undefined, a u64 as a number — componentize-qjs refuses a bigint — and
 * a `result`'s error thrown as its variant).
 *
 * Only the entry `bosun-build` generates imports this module: the import of
 * `bosun:reconciler/host` resolves inside the component alone, so the app
 * module itself stays importable natively, under `node --test`.
 */

import { getObject, listObjects, log } from "bosun:reconciler/host@0.2.0";
import * as dispatch from "./dispatch.js";
import { BosunError } from "./errors.js";
import { HostError, type Host } from "./host.js";
import { send } from "./wasi-http.js";

/** The real host, through the component's imports. */
const wasmHost: Host = {
  log,
  getObject(apiVersion, kind, namespace, name) {
    return hostCall(() => getObject(apiVersion, kind, namespace, name));
  },
  listObjects(apiVersion, kind, namespace, labelSelector) {
    return hostCall(() => listObjects(apiVersion, kind, namespace, labelSelector));
  },
  // The WASI wall clock, which the host controls (`bosun reconcile --now`).
  now: () => Date.now(),
  // Straight to wasi:http: the host links it for every module and checks
  // each request against the module's grant.
  http: send,
};

/** The three exports of the `reconciler` world for `reconciler`. */
export function component(reconciler: dispatch.ReconcilerClass) {
  return {
    metadata: () => dispatch.metadata(reconciler),
    reconcile: (request: dispatch.WireRequest) => asVariant(() => dispatch.reconcile(reconciler, request, wasmHost)),
    finalize: (request: dispatch.WireRequest) => asVariant(() => dispatch.finalize(reconciler, request, wasmHost)),
  };
}

/**
 * jco turns a thrown value into the `result`'s error, and a thrown value
 * that is not a `reconcile-error` variant traps the component: only the
 * variant may leave.
 */
function asVariant<T>(call: () => T): T {
  try {
    return call();
  } catch (e) {
    const error = e instanceof BosunError ? e : dispatch.uncaught(e);
    throw {
      tag: error.permanent ? "permanent" : "retryable",
      val: { reason: error.reason, message: error.detail },
    };
  }
}

function hostCall<T>(call: () => T): T {
  try {
    return call();
  } catch (e) {
    // jco throws a `result`'s error as a ComponentError whose payload is the
    // host's text.
    const payload = (e as { payload?: unknown }).payload;
    throw new HostError(typeof payload === "string" ? payload : e instanceof Error ? e.message : String(e));
  }
}

