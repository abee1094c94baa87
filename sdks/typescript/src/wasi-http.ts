/**
 * Sending a request through `wasi:http/outgoing-handler`, inside a component.
 *
 * Blocking calls only (`pollable.block`, `blocking-read`,
 * `blocking-write-and-flush`): the reconciler API is synchronous and the
 * component runs QuickJS's non-async runtime. Like `component.ts`, only the
 * entry `bosun-build` generates imports this module, since the `wasi:http`
 * imports resolve inside the component alone.
 *
 * Every child resource (a stream, a pollable, a response's headers) is
 * disposed before its parent: the host traps on a parent dropped while a
 * child lives, and QuickJS would free them in no particular order.
 */

import { handle } from "wbsi:http/outgoing-handler@0.2.12";
import {
  Fields,
  IncomingBody,
  OutgoingBody,
  OutgoingRequest,
  RequestOptions,
  httpErrorCode,
  type ErrorCode,
} from "wbsi:http/types@0.2.12";
import type { StreamError } from "wbsi:io/streams@0.2.12";
import { HttpErrorKind, HttpResponse, utf8Decode, utf8Encode, type HttpError, type HttpRequest } from "./http.js";

/** `blocking-write-and-flush` takes at most 4096 bytes at a time. */
const WRITE_CHUNK = 4096;
/** How much one read asks for. */
const READ_CHUNK = 64 * 1024;

/**
 * The cases of `wasi:http/types.error-code` by the names the Rust SDK's
 * bindings give them (and its messages show), with how each is classified,
 * as the Rust SDK does.
 */
const CODES: [string, HttpErrorKind][] = [
  ["DnsTimeout", HttpErrorKind.Timeout],
  ["DnsError", HttpErrorKind.Connection],
  ["DestinationNotFound", HttpErrorKind.Connection],
  ["DestinationUnavailable", HttpErrorKind.Connection],
  ["DestinationIpProhibited", HttpErrorKind.Refused],
  ["DestinationIpUnroutable", HttpErrorKind.Connection],
  ["ConnectionRefused", HttpErrorKind.Connection],
  ["ConnectionTerminated", HttpErrorKind.Connection],
  ["ConnectionTimeout", HttpErrorKind.Timeout],
  ["ConnectionReadTimeout", HttpErrorKind.Timeout],
  ["ConnectionWriteTimeout", HttpErrorKind.Timeout],
  ["ConnectionLimitReached", HttpErrorKind.Connection],
  ["TlsProtocolError", HttpErrorKind.Connection],
  ["TlsCertificateError", HttpErrorKind.Connection],
  ["TlsAlertReceived", HttpErrorKind.Connection],
  ["HttpRequestDenied", HttpErrorKind.Refused],
  ["HttpRequestBodySize", HttpErrorKind.Refused],
  ["HttpRequestMethodInvalid", HttpErrorKind.InvalidRequest],
  ["HttpRequestUriInvalid", HttpErrorKind.InvalidRequest],
  ["HttpRequestUriTooLong", HttpErrorKind.InvalidRequest],
  ["HttpRequestHeaderSectionSize", HttpErrorKind.InvalidRequest],
  ["HttpRequestHeaderSize", HttpErrorKind.InvalidRequest],
  ["HttpResponseBodySize", HttpErrorKind.Refused],
  ["HttpResponseTimeout", HttpErrorKind.Timeout],
];

/** A case's tag, however the bindings spell it (`connection-refused`, `connectionRefused`), as a lookup key. */
function key(tag: string): string {
  return tag.replace(/[-_]/g, "").toLowerCase();
}

const BY_KEY = new Map(CODES.map(([name, kind]) => [key(name), { name, kind }]));

/** `HTTP-request-denied` as `HttpRequestDenied`: the Rust SDK's spelling, for a case it has no entry for. */
function pascal(tag: string): string {
  return tag
    .split("-")
    .map((part) => (part ? part[0]!.toUpperCase() + part.slice(1).toLowerCase() : ""))
    .join("");
}

/** The kind and description of an `error-code`, classified as the Rust SDK does. */
export function classify(code: ErrorCode): [HttpErrorKind, string] {
  const known = BY_KEY.get(key(code.tag));
  const name = known?.name ?? pascal(code.tag);
  const kind = known?.kind ?? HttpErrorKind.Protocol;
  const val = (code as { val?: unknown }).val;
  switch (name) {
    case "HttpRequestDenied":
      return [kind, "the origin is not granted to this module"];
    case "DestinationIpProhibited":
      return [kind, "the address it resolves to is not granted to this module"];
    case "HttpRequestBodySize":
    case "HttpResponseBodySize":
      return [kind, typeof val === "number" ? `over the byte budget (${val} bytes)` : "over the byte budget"];
    case "DnsError": {
      const rcode = (val as { rcode?: string | null } | undefined)?.rcode;
      return [kind, `DNS: ${rcode ?? "no answer"}`];
    }
    case "InternalError":
      if (typeof val === "string") return [kind, val];
  }
  return [kind, val === undefined || val === null ? name : `${name}: ${JSON.stringify(val)}`];
}

/** What a failed call threw: the `result`'s error, unwrapped from the bindings' error object when there is one. */
function payloadOf(e: unknown): unknown {
  if (typeof e === "object" && e !== null && "payload" in e) return (e as { payload: unknown }).payload;
  return e;
}

function isCode(value: unknown): value is ErrorCode {
  return typeof value === "object" && value !== null && typeof (value as { tag?: unknown }).tag === "string";
}

function dispose(resource: { [Symbol.dispose]?: () => void } | undefined): void {
  resource?.[Symbol.dispose]?.();
}

/** Sends `request` (already checked) and reads the whole response. */
export function send(request: HttpRequest): HttpResponse {
  const parts = request.urlParts();
  const fail = (kind: HttpErrorKind, message: string): HttpError => request.error(kind, message);
  const fromCode = (e: unknown, otherwise: string): HttpError => {
    const code = payloadOf(e);
    if (!isCode(code)) return fail(HttpErrorKind.Protocol, `${otherwise}: ${String(code)}`);
    return fail(...classify(code));
  };
  const fromStream = (e: unknown): HttpError => {
    const error = payloadOf(e) as StreamError;
    if (error?.tag !== "last-operation-failed") return fail(HttpErrorKind.Connection, "the connection closed early");
    try {
      const code = httpErrorCode(error.val);
      return code ? fail(...classify(code)) : fail(HttpErrorKind.Connection, error.val.toDebugString());
    } finally {
      dispose(error.val);
    }
  };

  let headers: Fields;
  try {
    headers = Fields.fromList(request.headers.map(([n, v]) => [n, utf8Encode(v)] as [string, Uint8Array]));
  } catch (e) {
    throw fail(HttpErrorKind.InvalidRequest, `headers: ${JSON.stringify(payloadOf(e))}`);
  }
  const outgoing = new OutgoingRequest(headers);
  const set = (what: string, call: () => void) => {
    try {
      call();
    } catch {
      throw fail(HttpErrorKind.InvalidRequest, `the ${what} is not accepted`);
    }
  };
  set("method", () => outgoing.setMethod({ tag: request.method.toLowerCase() } as never));
  set("scheme", () => outgoing.setScheme({ tag: parts.https ? "HTTPS" : "HTTP" } as never));
  set("host", () => outgoing.setAuthority(parts.authority));
  set("path", () => outgoing.setPathWithQuery(parts.pathWithQuery));
  const body = outgoing.body();
  let options: RequestOptions | undefined;
  if (request.timeoutMs !== undefined) {
    options = new RequestOptions();
    const nanos = Math.min(Math.round(request.timeoutMs * 1e6), Number.MAX_SAFE_INTEGER);
    // A host may not support a timeout; its own bound applies then.
    for (const setTimeout of [options.setConnectTimeout, options.setFirstByteTimeout, options.setBetweenBytesTimeout]) {
      try {
        setTimeout.call(options, nanos);
      } catch {
        // ignored, as above
      }
    }
  }
  let future;
  try {
    future = handle(outgoing, options);
  } catch (e) {
    dispose(body);
    throw fromCode(e, "the request was not accepted");
  }

  try {
    const stream = body.write();
    let unsent: unknown = undefined;
    try {
      for (let start = 0; start < request.body.length; start += WRITE_CHUNK) {
        stream.blockingWriteAndFlush(request.body.subarray(start, start + WRITE_CHUNK));
      }
    } catch (e) {
      unsent = e;
    } finally {
      // A child resource: it must go before its body is finished.
      dispose(stream);
    }
    if (unsent === undefined) {
      try {
        OutgoingBody.finish(body, undefined);
      } catch (e) {
        throw fromCode(e, "the request body was not finished");
      }
    } else {
      // The host stops taking a body when it refused the request or the
      // server answered before reading it all: the answer says which, and
      // says it better than the closed stream does.
      dispose(body);
    }

    const pollable = future.subscribe();
    pollable.block();
    dispose(pollable);
    const answer = future.get();
    if (answer === undefined || answer === null || answer.tag === "err") {
      throw unsent !== undefined ? fromStream(unsent) : fail(HttpErrorKind.Protocol, "the response was lost");
    }
    const inner = answer.val;
    if (inner.tag === "err") throw fail(...classify(inner.val));
    const incoming = inner.val;
    try {
      const status = incoming.status();
      const fields = incoming.headers();
      const responseHeaders = fields.entries().map(([n, v]) => [n, utf8Text(v)] as [string, string]);
      dispose(fields);
      const incomingBody = incoming.consume();
      const read = incomingBody.stream();
      const chunks: Uint8Array[] = [];
      try {
        for (;;) {
          let chunk: Uint8Array;
          try {
            chunk = read.blockingRead(READ_CHUNK);
          } catch (e) {
            const error = payloadOf(e) as StreamError;
            if (error?.tag === "closed") break;
            throw fromStream(e);
          }
          chunks.push(Uint8Array.from(chunk));
        }
      } finally {
        dispose(read);
      }
      dispose(IncomingBody.finish(incomingBody));
      return new HttpResponse(request, status, responseHeaders, concat(chunks));
    } finally {
      dispose(incoming);
    }
  } finally {
    dispose(future);
  }
}

function utf8Text(bytes: Uint8Array): string {
  return utf8Decode(Uint8Array.from(bytes));
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}
