/**
 * Write Kubernetes reconcilers for the bosun host as WebAssembly components,
 * in TypeScript. Mirrors the Rust SDK (`bosun-sdk`) and the Python one:
 *
 *     import { Metadata, Response, kinds, type Context, type Reconciler } from "@bosun/sdk";
 *
 *     export default class Mirror implements Reconciler {
 *       kind = kinds.ConfigMap;
 *       metadata() { return new Metadata("mirror", "0.1.0").owns(kinds.Secret); }
 *       reconcile(source, ctx: Context) {
 *         return new Response().child({ metadata: { name: `${source.metadata.name}-copy` } }, kinds.Secret);
 *       }
 *     }
 *
 * Build the component with `bosun-build dist/app.js -o app.wasm` (the
 * module's default export is the reconciler); test the logic natively with
 * `Harness` from `@bosun/sdk/testing`.
 */

export * as conditions from "./conditions.js";
export { Context, rfc3339, type Trigger } from "./context.js";
export type { Reconciler, ReconcilerClass } from "./dispatch.js";
export { BosunError, permanent, retryable } from "./errors.js";
export type { LogLevel } from "./host.js";
export * as http from "./http.js";
export { HttpError, HttpErrorKind, type HttpRequest, type HttpResponse } from "./http.js";
export { Kind, customKind, pluralOf, type Scope } from "./kind.js";
export * as kinds from "./kinds.js";
export { Metadata } from "./metadata.js";
export { Event, Finalized, Response, type EventType } from "./response.js";
export type * from "./types.js";
