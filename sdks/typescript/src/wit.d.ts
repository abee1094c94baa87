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

// The slice of `wasi:http@0.2.12` and `wasi:io@0.2.12` the client uses
// (src/wasi-http.ts), as componentize-qjs binds it: resources as classes,
// a `result`'s error thrown, `option` as a value or undefined, a nested
// `result` or a variant as `{ tag, val }`, a u64 as a number.
declare module "wbsi:io/streams@0.2.12" {
  export class IoError {
    toDebugString(): string;
    [Symbol.dispose](): void;
  }
  export type StreamError = { tag: "last-operation-failed"; val: IoError } | { tag: "closed" };
  export class InputStream {
    blockingRead(len: number): Uint8Array;
    [Symbol.dispose](): void;
  }
  export class OutputStream {
    blockingWriteAndFlush(contents: Uint8Array): void;
    [Symbol.dispose](): void;
  }
}

declare module "wbsi:http/types@0.2.12" {
  import type { InputStream, IoError, OutputStream } from "wbsi:io/streams@0.2.12";
  export type ErrorCode = { tag: string; val?: unknown };
  export function httpErrorCode(err: IoError): ErrorCode | undefined;
  export class Fields {
    static fromList(entries: [string, Uint8Array][]): Fields;
    entries(): [string, Uint8Array][];
    [Symbol.dispose](): void;
  }
  export class OutgoingRequest {
    constructor(headers: Fields);
    setMethod(method: { tag: string; val?: string }): void;
    setScheme(scheme: { tag: string; val?: string } | undefined): void;
    setAuthority(authority: string | undefined): void;
    setPathWithQuery(path: string | undefined): void;
    body(): OutgoingBody;
    [Symbol.dispose](): void;
  }
  export class RequestOptions {
    constructor();
    setConnectTimeout(nanos: number | undefined): void;
    setFirstByteTimeout(nanos: number | undefined): void;
    setBetweenBytesTimeout(nanos: number | undefined): void;
    [Symbol.dispose](): void;
  }
  export class OutgoingBody {
    write(): OutputStream;
    static finish(body: OutgoingBody, trailers: Fields | undefined): void;
    [Symbol.dispose](): void;
  }
  export class FutureTrailers {
    [Symbol.dispose](): void;
  }
  export class IncomingBody {
    stream(): InputStream;
    static finish(body: IncomingBody): FutureTrailers;
    [Symbol.dispose](): void;
  }
  export class IncomingResponse {
    status(): number;
    headers(): Fields;
    consume(): IncomingBody;
    [Symbol.dispose](): void;
  }
  export class Pollable {
    block(): void;
    [Symbol.dispose](): void;
  }
  export class FutureIncomingResponse {
    subscribe(): Pollable;
    get():
      | { tag: "ok"; val: { tag: "ok"; val: IncomingResponse } | { tag: "err"; val: ErrorCode } }
      | { tag: "err"; val: undefined }
      | undefined;
    [Symbol.dispose](): void;
  }
}

declare module "wbsi:http/outgoing-handler@0.2.12" {
  import type { FutureIncomingResponse, OutgoingRequest, RequestOptions } from "wbsi:http/types@0.2.12";
  export function handle(request: OutgoingRequest, options: RequestOptions | undefined): FutureIncomingResponse;
}
