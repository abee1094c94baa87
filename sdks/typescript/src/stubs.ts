/** Canned HTTP answers for the native harness, as the Rust and Python SDKs' `HttpStub`. */

import { HarnessFailure } from "./dispatch.js";
import {
  HttpErrorKind,
  HttpRequest,
  HttpResponse,
  isMethod,
  utf8Encode,
  type Method,
  type UrlParts,
} from "./http.js";

/**
 * Answers matching requests in `Harness`. A stub matches by origin,
 * optionally by path (the query too when the stub's URL has one) and by
 * method:
 *
 *     HttpStub.origin("https://dns.example:8081")            // anything there: 200
 *     HttpStub.get(zoneUrl).json({ rrsets: [] }).once()      // one GET, then the next stub
 *     HttpStub.patch(zoneUrl).status(422).json({ error: "bad content" })
 *     HttpStub.origin("https://dns.example:8081").timeout()  // or .refused(), .connectionRefused()
 */
export class HttpStub {
  private answerStatus = 200;
  private readonly answerHeaders: [string, string][] = [];
  private answerBody: Uint8Array = new Uint8Array(0);
  private failure: [HttpErrorKind, string] | undefined = undefined;
  /** How many requests it answers at most; undefined for any number. */
  limit: number | undefined = undefined;

  private constructor(
    readonly method: Method | undefined,
    readonly originUrl: string,
    readonly path: string | undefined,
  ) {}

  /** Every request to `origin` (`scheme://host[:port]`), whatever its method and path. */
  static origin(origin: string): HttpStub {
    const [originPart, path] = split(origin);
    if (path !== undefined) throw new Error(`HttpStub.origin(${JSON.stringify(origin)}) takes an origin without a path`);
    return new HttpStub(undefined, originPart, undefined);
  }

  /** Requests with `method` to `url`. */
  static new(method: Method, url: string): HttpStub {
    if (!isMethod(method)) throw new TypeError(`${String(method)} is not an HTTP method`);
    const [originPart, path] = split(url);
    return new HttpStub(method, originPart, path ?? "/");
  }

  static get(url: string): HttpStub {
    return HttpStub.new("GET", url);
  }

  static post(url: string): HttpStub {
    return HttpStub.new("POST", url);
  }

  static put(url: string): HttpStub {
    return HttpStub.new("PUT", url);
  }

  static patch(url: string): HttpStub {
    return HttpStub.new("PATCH", url);
  }

  static delete(url: string): HttpStub {
    return HttpStub.new("DELETE", url);
  }

  /** Answers at most `times` requests; then the next matching stub answers. */
  times(times: number): this {
    this.limit = times;
    return this;
  }

  once(): this {
    return this.times(1);
  }

  status(status: number): this {
    this.answerStatus = status;
    this.failure = undefined;
    return this;
  }

  header(name: string, value: string): this {
    this.answerHeaders.push([name, value]);
    return this;
  }

  body(body: Uint8Array | string): this {
    this.answerBody = typeof body === "string" ? utf8Encode(body) : body;
    return this;
  }

  /** Answers with `value` as JSON (and `Content-Type: application/json`). */
  json(value: unknown): this {
    return this.header("Content-Type", "application/json").body(JSON.stringify(value));
  }

  /** Fails as the host does when the origin is not granted. */
  refused(): this {
    return this.fail(HttpErrorKind.Refused, "the origin is not granted to this module");
  }

  timeout(): this {
    return this.fail(HttpErrorKind.Timeout, "HttpResponseTimeout");
  }

  connectionRefused(): this {
    return this.fail(HttpErrorKind.Connection, "ConnectionRefused");
  }

  fail(kind: HttpErrorKind, message: string): this {
    this.failure = [kind, message];
    return this;
  }

  matches(method: Method, parts: UrlParts): boolean {
    if (this.method !== undefined && this.method !== method) return false;
    if (this.originUrl !== parts.origin.toLowerCase()) return false;
    if (this.path === undefined) return true;
    if (this.path.includes("?")) return this.path === parts.pathWithQuery;
    return this.path === parts.pathWithQuery.split("?", 1)[0];
  }

  /** Method and path over path over origin alone. */
  specificity(): number {
    return (this.method !== undefined ? 2 : 0) + (this.path !== undefined ? 1 : 0);
  }

  answer(request: HttpRequest): HttpResponse {
    if (this.failure !== undefined) throw request.error(...this.failure);
    return new HttpResponse(request, this.answerStatus, [...this.answerHeaders], this.answerBody);
  }

  toString(): string {
    return `${this.method ?? "any method"} ${this.originUrl}${this.path ?? "/*"}`;
  }
}

/**
 * What the harness's host answers `request` with, as the host would: a
 * refusal for an origin the module did not declare, else the best stub
 * with answers left. Records each stub's use in `used`. A request no stub
 * matches fails the test (a HarnessFailure, not a reconcile error).
 */
export function answer(stubs: HttpStub[], used: number[], origins: string[], request: HttpRequest): HttpResponse {
  const parts = request.urlParts();
  if (!origins.some((declared) => originCovers(declared, parts.origin))) {
    throw request.error(
      HttpErrorKind.Refused,
      `${parts.origin} is not an origin this module declared (Metadata.httpOrigin); the host refuses it`,
    );
  }
  let best: number | undefined;
  stubs.forEach((stub, index) => {
    const left = stub.limit === undefined || (used[index] ?? 0) < stub.limit;
    if (!left || !stub.matches(request.method, parts)) return;
    // The most specific wins; among equals, the one added first.
    if (best === undefined || stub.specificity() > stubs[best]!.specificity()) best = index;
  });
  if (best === undefined) {
    const known = stubs.map((s) => `\n    ${s.toString()}`).join("") || " none";
    throw new HarnessFailure(
      `unexpected HTTP request ${request.method} ${request.url}: no HttpStub matches it; stubs given:${known}`,
    );
  }
  used[best] = (used[best] ?? 0) + 1;
  return stubs[best]!.answer(request);
}

/**
 * Whether the declared origin (`scheme://host[:port]`, or
 * `scheme://*.domain[:port]` for its subdomains) covers `origin`.
 */
export function originCovers(declared: string, origin: string): boolean {
  const d = splitOrigin(declared);
  const o = splitOrigin(origin);
  if (d === undefined || o === undefined || d.scheme !== o.scheme || d.port !== o.port) return false;
  if (d.host.startsWith("*.")) {
    const domain = d.host.slice(1);
    return o.host.endsWith(domain) && o.host.length > domain.length;
  }
  return d.host === o.host;
}

function splitOrigin(text: string): { scheme: string; host: string; port: number } | undefined {
  const at = text.indexOf("://");
  if (at < 0) return undefined;
  const scheme = text.slice(0, at).toLowerCase();
  const defaultPort = scheme === "http" ? 80 : scheme === "https" ? 443 : undefined;
  if (defaultPort === undefined) return undefined;
  const rest = text.slice(at + 3).replace(/\/+$/, "").toLowerCase();
  const colon = rest.lastIndexOf(":");
  if (colon >= 0) {
    const host = rest.slice(0, colon);
    const port = rest.slice(colon + 1);
    // `[::1]` alone has colons but no port.
    if ((!host.endsWith("]") || rest.startsWith("[")) && /^\d+$/.test(port)) {
      return { scheme, host, port: Number(port) };
    }
  }
  return { scheme, host: rest, port: defaultPort };
}

function split(url: string): [string, string | undefined] {
  const parts = new HttpRequest("GET", url).urlParts();
  const after = url.slice(url.indexOf("://") + 3);
  const hasPath = after.includes("/") || after.includes("?");
  return [parts.origin.toLowerCase(), hasPath ? parts.pathWithQuery : undefined];
}
