// The `bosun:reconciler/host` import, as jco binds it inside the component
// (a `result`'s error is thrown). Hand-written: `jco guest-types` cannot read
// WIT from disk (see the notes in README.md).
declare module "bosun:reconciler/host@0.2.0" {
  export function log(level: "trace" | "debug" | "info" | "warn" | "error", message: string): void;
  export function getObject(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    name: string,
  ): string | undefined;
  export function listObjects(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    labelSelector: string | undefined,
  ): string[];
}
