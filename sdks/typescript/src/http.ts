/**
 * A blocking HTTP client for reconcilers, over `wasi:http/outgoing-handler`.
 *
 * The Rust SDK's client (`guest-sdk/src/http.rs`) in TypeScript, with the
 * same error classification:
 *
 *     const zone = ctx
 *       .http()
 *       .get("https://dns.example:8081/api/v1/servers/localhost/zones/example.org.")
 *       .header("Accept", "application/json")
 *       .send()             // refused, timed out, connection failed: an HttpError
 *       .errorForStatus()   // 4xx and 5xx: an HttpError too
 *       .json<Zone>();
 *
 * An {@link HttpError} is a {@link BosunError}: left uncaught it fails the
 * reconcile, classified — a 4xx (but 408 and 429) and a request that cannot
 * be made as written are permanent, everything else retryable, a refusal
 * included (the operator may yet grant the origin).
 *
 * Nothing is reachable unless granted: a module declares its origins with
 * `Metadata.httpOrigin`, the operator grants them, and the host checks every
 * request and adds the credentials the grant binds to an origin. The client
 * follows no redirects. Natively, through `Harness` from `@bosun/sdk/testing`,
 * no request reaches the network: the harness answers from stubs.
 *
 * Synchronous, like the rest of the reconciler API: the component runs on
 * QuickJS's non-async runtime, which has no fetch and no event loop.
 */

import { BosunError } from "./errors.js";
import type { Host } from "./host.js";

/** How much of an error body {@link HttpResponse.errorForStatus} quotes, in bytes. */
export const MAX_QUOTED_BODY = 512;

/** An HTTP method. */
export type Method = "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS";

const METHODS: readonly Method[] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/**
 * What kind of failure an {@link HttpError} is; the value is the reason the
 * error carries when it fails the reconcile.
 */
export enum HttpErrorKind {
  /** The host refused the request: origin or address not granted, or a budget spent. */
  Refused = "HttpRefused",
  /** No answer in time (connect, first byte, between bytes, or the call's deadline). */
  Timeout = "HttpTimeout",
  /** The connection failed: DNS, refused, reset, TLS. */
  Connection = "HttpConnection",
  /** The server answered 4xx or 5xx ({@link HttpResponse.errorForStatus}). */
  Status = "HttpStatus",
  /** The request could not be made as written (URL, header). */
  InvalidRequest = "HttpInvalidRequest",
  /** The response body could not be read or parsed. */
  Body = "HttpBody",
  /** Another protocol failure. */
  Protocol = "HttpProtocol",
}

const WHAT: Record<HttpErrorKind, string> = {
  [HttpErrorKind.Refused]: "refused by the host",
  [HttpErrorKind.Timeout]: "timed out",
  [HttpErrorKind.Connection]: "connection failed",
  [HttpErrorKind.Status]: "failed",
  [HttpErrorKind.InvalidRequest]: "cannot be sent",
  [HttpErrorKind.Body]: "answered badly",
  [HttpErrorKind.Protocol]: "failed",
};

/**
 * Why a request failed; names the method and URL. A {@link BosunError}
 * whose reason is the kind's (`HttpRefused`, `HttpStatus`, …) and which is
 * permanent for a 4xx other than 408 and 429 and for a request that cannot
 * be made as written.
 */
export class HttpError extends BosunError {
  constructor(
    readonly kind: HttpErrorKind,
    readonly method: Method,
    readonly url: string,
    /** What went wrong, without the method and URL. */
    readonly description: string,
    /** The status, for {@link HttpErrorKind.Status}. */
    readonly status?: number,
  ) {
    const permanent =
      kind === HttpErrorKind.InvalidRequest ||
      (kind === HttpErrorKind.Status &&
        status !== undefined &&
        status >= 400 &&
        status < 500 &&
        status !== 408 &&
        status !== 429);
    super(kind, `${method} ${url} ${WHAT[kind]}: ${description}`, permanent);
    this.name = "HttpError";
  }
}

/** A URL split the way `wasi:http` takes it. */
export interface UrlParts {
  https: boolean;
  /** `host[:port]`. */
  authority: string;
  /** The path and query, `/` at least; the fragment is dropped. */
  pathWithQuery: string;
  /** `scheme://host[:port]`, the origin the grant is checked against. */
  origin: string;
}

const TOKEN = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;

/** A request as sent: what the harness records and stubs see. */
export class HttpRequest {
  /** The headers, in the order they were added. */
  readonly headers: [string, string][] = [];
  /** The body; empty when none was set. */
  body: Uint8Array = new Uint8Array(0);
  /** The timeout the guest asked for, in milliseconds. */
  timeoutMs: number | undefined = undefined;

  constructor(
    readonly method: Method,
    readonly url: string,
  ) {}

  /** The first value of header `name` (case-insensitive). */
  header(name: string): string | undefined {
    const lower = name.toLowerCase();
    return this.headers.find(([n]) => n.toLowerCase() === lower)?.[1];
  }

  /** The body as text. */
  text(): string {
    return utf8Decode(this.body);
  }

  /** The body parsed as JSON. */
  json<T = unknown>(): T {
    return JSON.parse(this.text()) as T;
  }

  /** The URL split into its parts; throws {@link HttpError} when it cannot be sent. */
  urlParts(): UrlParts {
    const url = this.url;
    let https: boolean;
    let rest: string;
    if (url.startsWith("https://")) {
      [https, rest] = [true, url.slice("https://".length)];
    } else if (url.startsWith("http://")) {
      [https, rest] = [false, url.slice("http://".length)];
    } else {
      throw this.error(HttpErrorKind.InvalidRequest, "only http:// and https:// URLs can be requested");
    }
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u0020\u007f-\uffff]/.test(url)) {
      throw this.error(
        HttpErrorKind.InvalidRequest,
        "the URL holds spaces, control or non-ASCII characters; percent-encode them",
      );
    }
    rest = rest.split("#", 1)[0] ?? "";
    const found = rest.search(/[/?]/);
    const end = found < 0 ? rest.length : found;
    const authority = rest.slice(0, end);
    const path = rest.slice(end) || "/";
    if (authority === "") throw this.error(HttpErrorKind.InvalidRequest, "the URL names no host");
    if (authority.includes("@")) {
      // Credentials come from the grant, bound to the origin by the host.
      throw this.error(
        HttpErrorKind.InvalidRequest,
        "credentials in a URL are not sent; the operator binds them to the origin in the grant",
      );
    }
    if (path.startsWith("?")) {
      throw this.error(HttpErrorKind.InvalidRequest, "the URL's query needs a path before it (`/?…`)");
    }
    return { https, authority, pathWithQuery: path, origin: `${https ? "https" : "http"}://${authority}` };
  }

  /** Throws {@link HttpError} for a request that cannot be sent as written. */
  check(): void {
    this.urlParts();
    for (const [name, value] of this.headers) {
      if (!TOKEN.test(name)) {
        throw this.error(HttpErrorKind.InvalidRequest, `header name ${JSON.stringify(name)} is not a token`);
      }
      if (/[\r\n\0]/.test(value)) {
        throw this.error(HttpErrorKind.InvalidRequest, `header ${name} holds a line break or NUL`);
      }
    }
  }

  /** An error of `kind` about this request. */
  error(kind: HttpErrorKind, message: string, status?: number): HttpError {
    return new HttpError(kind, this.method, this.url, message, status);
  }
}

/** A response, read whole. */
export class HttpResponse {
  constructor(
    private readonly request: HttpRequest,
    /** The status code. */
    readonly status: number,
    /** Every header, as received. */
    readonly headers: [string, string][],
    /** The body. */
    readonly body: Uint8Array,
  ) {}

  /** True for 2xx. */
  get isSuccess(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  /** The first value of header `name` (case-insensitive). */
  header(name: string): string | undefined {
    const lower = name.toLowerCase();
    return this.headers.find(([n]) => n.toLowerCase() === lower)?.[1];
  }

  /** The body as text (invalid UTF-8 replaced). */
  text(): string {
    return utf8Decode(this.body);
  }

  /** The body parsed as JSON; a body that does not parse is an {@link HttpError} of kind `Body`. */
  json<T = unknown>(): T {
    try {
      return JSON.parse(this.text()) as T;
    } catch (e) {
      throw this.request.error(
        HttpErrorKind.Body,
        `the ${this.status} response is not the JSON expected: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
  }

  /**
   * The response itself below 400; an {@link HttpError} of kind `Status` for
   * 4xx and 5xx, quoting the start of the body (servers usually say there
   * what was wrong).
   */
  errorForStatus(): this {
    if (this.status < 400) return this;
    let quoted = this.text().trim().replace(/[\r\n]/g, " ");
    const bytes = utf8Encode(quoted);
    if (bytes.length > MAX_QUOTED_BODY) {
      // Cut at a character boundary: back off over UTF-8 continuation bytes.
      let cut = MAX_QUOTED_BODY;
      while (cut > 0 && ((bytes[cut] ?? 0) & 0xc0) === 0x80) cut--;
      quoted = `${utf8Decode(bytes.subarray(0, cut))}…`;
    }
    const message = quoted ? `status ${this.status}: ${quoted}` : `status ${this.status}`;
    throw this.request.error(HttpErrorKind.Status, message, this.status);
  }
}

/** A request being built; {@link send} makes it. */
export class RequestBuilder {
  /** The request so far. */
  readonly request: HttpRequest;

  constructor(
    private readonly host: Host,
    method: Method,
    url: string,
  ) {
    this.request = new HttpRequest(method, url);
  }

  /** Adds a header (appended: a name may repeat). */
  header(name: string, value: string): this {
    this.request.headers.push([name, value]);
    return this;
  }

  /** Sets the body: bytes, or text sent as UTF-8. */
  body(body: Uint8Array | string): this {
    this.request.body = typeof body === "string" ? utf8Encode(body) : body;
    return this;
  }

  /** Sets the body to `value` as JSON, with `Content-Type: application/json`. */
  json(value: unknown): this {
    this.request.body = utf8Encode(JSON.stringify(value));
    if (this.request.header("content-type") === undefined) {
      this.request.headers.push(["Content-Type", "application/json"]);
    }
    return this;
  }

  /**
   * Bounds the time to connect, to the first byte and between bytes, in
   * milliseconds (the host bounds each request by the call's deadline anyway).
   */
  timeout(ms: number): this {
    if (!(ms >= 0) || !Number.isFinite(ms)) throw new RangeError(`timeout(${ms}): not a number of milliseconds`);
    this.request.timeoutMs = ms;
    return this;
  }

  /**
   * Sends the request and reads the whole response. Any status is a
   * response; {@link HttpResponse.errorForStatus} turns 4xx and 5xx into errors.
   */
  send(): HttpResponse {
    this.request.check();
    return this.host.http(this.request);
  }
}

/** Requests to the origins the module declared and the operator granted; from `Context.http()`. */
export class Client {
  constructor(private readonly host: Host) {}

  /** A request with `method` to `url` (`http://` or `https://`). */
  request(method: Method, url: string): RequestBuilder {
    if (!METHODS.includes(method)) throw new TypeError(`${String(method)} is not an HTTP method (${METHODS.join(", ")})`);
    return new RequestBuilder(this.host, method, url);
  }

  get(url: string): RequestBuilder {
    return this.request("GET", url);
  }

  post(url: string): RequestBuilder {
    return this.request("POST", url);
  }

  put(url: string): RequestBuilder {
    return this.request("PUT", url);
  }

  patch(url: string): RequestBuilder {
    return this.request("PATCH", url);
  }

  delete(url: string): RequestBuilder {
    return this.request("DELETE", url);
  }
}

/** True for one of the methods the client sends. */
export function isMethod(method: unknown): method is Method {
  return METHODS.includes(method as Method);
}

// UTF-8 by hand: QuickJS, which runs the component, has no TextEncoder or
// TextDecoder, and the SDK must behave the same natively and inside.

/** `text` as UTF-8 (a lone surrogate becomes U+FFFD, as TextEncoder does). */
export function utf8Encode(text: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i++;
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 0x3f), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
  }
  return Uint8Array.from(out);
}

/** `bytes` decoded as UTF-8, each invalid sequence replaced by U+FFFD. */
export function utf8Decode(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i]!;
    let need = 0;
    let c = 0;
    let min = 0;
    if (b < 0x80) {
      out += String.fromCharCode(b);
      i++;
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) [need, c, min] = [1, b & 0x1f, 0x80];
    else if (b >= 0xe0 && b <= 0xef) [need, c, min] = [2, b & 0x0f, 0x800];
    else if (b >= 0xf0 && b <= 0xf4) [need, c, min] = [3, b & 0x07, 0x10000];
    else {
      out += "\ufffd";
      i++;
      continue;
    }
    let j = 1;
    for (; j <= need; j++) {
      const next = bytes[i + j];
      if (next === undefined || (next & 0xc0) !== 0x80) break;
      c = (c << 6) | (next & 0x3f);
    }
    if (j <= need || c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
      out += "\ufffd";
      i += Math.max(1, j);
      continue;
    }
    out += String.fromCodePoint(c);
    i += need + 1;
  }
  return out;
}
