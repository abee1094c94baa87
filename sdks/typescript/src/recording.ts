/**
 * A bosun recording (`bosun reconcile --record`, `bosun record get`) as a
 * test fixture, as the Rust SDK's `Harness::from_recording`: see
 * `Harness.fromRecording` in `@bosun/sdk/testing`.
 *
 * The format is the host's `bosun.dev/recording/v1`
 * (`host/src/recorder/format.rs`); only what the harness can stand in for
 * is read: the clock, the request (children, settings, trigger, attempt),
 * the objects the reads returned and each HTTP exchange (a stub answering
 * once, in order). Random bytes are not replayed natively.
 */

import { closeSync, fstatSync, openSync, readSync } from "node:fs";

import type { Trigger } from "./context.js";
import { HttpErrorKind, isMethod } from "./http.js";
import { HttpStub } from "./stubs.js";
import type { KubeObject } from "./types.js";

/** The format this SDK reads. */
export const FORMAT_V1 = "bosun.dev/recording/v1";

/** The largest recording read, as `bosun reconcile --replay`'s cap. */
export const MAX_RECORDING_BYTES = 64 << 20;

const TRIGGERS: readonly Trigger[] = [
  "object-changed",
  "child-changed",
  "read-changed",
  "requeue",
  "retry",
  "resync",
  "module-changed",
  "manual",
];

const TIMEOUTS = ["DnsTimeout", "ConnectionTimeout", "ConnectionReadTimeout", "HttpResponseTimeout"];

/** Why a recording cannot be loaded: malformed, too large, another format version, or a call the harness cannot make. */
export class RecordingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RecordingError";
  }
}

/** What a recording hands the harness. */
export interface Loaded {
  object: KubeObject;
  now: string | undefined;
  children: string[];
  settings: string | undefined;
  trigger: Trigger;
  attempt: number;
  objects: KubeObject[];
  stubs: HttpStub[];
}

type Json = Record<string, unknown>;

/**
 * The recording in `source`: a path, the JSON text (a string starting with
 * `{`) or bytes, or an already parsed object.
 */
export function load(source: string | Uint8Array | object): Loaded {
  let recording: unknown;
  if (typeof source === "string" || source instanceof Uint8Array) {
    let text: string;
    if (typeof source === "string" && !source.trimStart().startsWith("{")) {
      text = readCapped(source);
    } else {
      const size = typeof source === "string" ? Buffer.byteLength(source) : source.byteLength;
      if (size > MAX_RECORDING_BYTES) {
        throw new RecordingError(`the recording is ${size} bytes; a recording is at most ${MAX_RECORDING_BYTES} bytes`);
      }
      text = typeof source === "string" ? source : new TextDecoder().decode(source);
    }
    try {
      recording = JSON.parse(text);
    } catch (e) {
      throw new RecordingError(`not a bosun recording: ${(e as Error).message}`);
    }
  } else {
    recording = source;
  }
  if (!isObject(recording)) throw new RecordingError("not a bosun recording: it is not a JSON object");
  const format = recording.format;
  if (format === undefined) throw new RecordingError('not a bosun recording: it has no "format"');
  if (format !== FORMAT_V1) {
    throw new RecordingError(
      `recording format ${JSON.stringify(format)} is not one this SDK reads (it reads ${JSON.stringify(FORMAT_V1)})`,
    );
  }
  return fill(recording);
}

function readCapped(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new RecordingError(`cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    const tooLarge = () =>
      new RecordingError(`the recording ${path} is larger than ${MAX_RECORDING_BYTES} bytes, a recording's cap`);
    if (fstatSync(fd).size > MAX_RECORDING_BYTES) throw tooLarge();
    const chunks: Buffer[] = [];
    let length = 0;
    for (;;) {
      const chunk = Buffer.alloc(1 << 16);
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      length += n;
      if (length > MAX_RECORDING_BYTES) throw tooLarge();
    }
    return Buffer.concat(chunks, length).toString("utf8");
  } catch (e) {
    if (e instanceof RecordingError) throw e;
    throw new RecordingError(`cannot read ${path}: ${(e as Error).message}`);
  } finally {
    closeSync(fd);
  }
}

function fill(recording: Json): Loaded {
  const call = recording.call ?? "reconcile";
  if (call !== "reconcile" && call !== "finalize") {
    throw new RecordingError(`the recording's call ${JSON.stringify(call)} is neither reconcile nor finalize`);
  }
  const request = recording.request;
  if (!isObject(request)) throw new RecordingError("the recording's request is missing");
  if (typeof request.object !== "string") throw new RecordingError("the recording's object is missing");
  const object = parse(request.object, "the recorded object");
  if (!isObject(object)) throw new RecordingError("the recorded object is not a JSON object");

  let now: string | undefined;
  if (recording.now !== undefined && recording.now !== null) {
    // The host writes up to nanoseconds; a Date holds milliseconds.
    now = typeof recording.now === "string" ? recording.now.replace(/(\.\d{3})\d+/, "$1") : "";
    if (!/^\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:\d{2})$/.test(now) || Number.isNaN(new Date(now).getTime())) {
      throw new RecordingError(`the recording's now ${JSON.stringify(recording.now)} is not a time`);
    }
  }
  const children = list(request, "children").map((child) => {
    if (typeof child !== "string") throw new RecordingError("a recorded child is not JSON text");
    return child;
  });
  const settings = request.settings ?? undefined;
  if (settings !== undefined && typeof settings !== "string") {
    throw new RecordingError("the recorded settings are not JSON text");
  }
  const trigger = request.trigger ?? "manual";
  if (!TRIGGERS.includes(trigger as Trigger)) {
    throw new RecordingError(`the recording's trigger ${JSON.stringify(trigger)} is unknown`);
  }
  const attempt = request.attempt ?? 1;
  if (typeof attempt !== "number" || !Number.isInteger(attempt) || attempt < 0) {
    throw new RecordingError(`the recording's attempt ${JSON.stringify(attempt)} is not a count`);
  }

  const objects: KubeObject[] = [];
  const seenTexts = new Set<string>();
  for (const read of list(recording, "reads")) {
    for (const text of readObjects(read)) {
      const seen = parse(text, "a recorded read answer");
      if (!isObject(seen)) throw new RecordingError("a recorded read answer is not an object");
      const key = JSON.stringify(seen);
      if (!seenTexts.has(key)) {
        seenTexts.add(key);
        objects.push(seen as KubeObject);
      }
    }
  }
  const stubs = list(recording, "http").map(stub);
  return {
    object: object as KubeObject,
    now,
    children,
    settings,
    trigger: trigger as Trigger,
    attempt,
    objects,
    stubs,
  };
}

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function list(holder: Json, name: string): unknown[] {
  const value = holder[name];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new RecordingError(`the recording's "${name}" is not a list`);
  return value;
}

function parse(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new RecordingError(`${what} is not JSON: ${(e as Error).message}`);
  }
}

function readObjects(read: unknown): string[] {
  if (!isObject(read)) throw new RecordingError("a recorded read is not an object");
  const answer = read.answer ?? {};
  if (!isObject(answer)) throw new RecordingError("a recorded read's answer is not an object");
  const texts: string[] = [];
  if (typeof answer.found === "string") texts.push(answer.found);
  if (Array.isArray(answer.items)) texts.push(...answer.items.filter((i): i is string => typeof i === "string"));
  return texts;
}

function stub(exchange: unknown): HttpStub {
  if (!isObject(exchange) || !isObject(exchange.request)) {
    throw new RecordingError("a recorded HTTP exchange has no request");
  }
  const request = exchange.request;
  const method = request.method ?? "GET";
  if (typeof method !== "string" || !isMethod(method)) {
    throw new RecordingError(`a recorded HTTP method ${JSON.stringify(method)} is unknown`);
  }
  if (typeof request.url !== "string") throw new RecordingError("a recorded HTTP request has no url");
  let made: HttpStub;
  try {
    made = HttpStub.new(method, request.url).once();
  } catch (e) {
    throw new RecordingError(`a recorded HTTP url ${JSON.stringify(request.url)}: ${(e as Error).message}`);
  }
  const response = exchange.response;
  if (response === undefined || response === null) {
    const error = typeof exchange.error === "string" ? exchange.error : "";
    if (error === "HttpRequestDenied") return made.refused();
    if (TIMEOUTS.includes(error)) return made.timeout();
    if (error.startsWith("Connection") || error.startsWith("Tls")) return made.fail(HttpErrorKind.Connection, error);
    return made.fail(HttpErrorKind.Protocol, error);
  }
  if (!isObject(response)) throw new RecordingError("a recorded HTTP response is not an object");
  const status = response.status;
  if (typeof status !== "number" || !Number.isInteger(status) || status < 0 || status > 0xffff) {
    throw new RecordingError("a recorded HTTP response has no status");
  }
  made.status(status);
  for (const header of list(response, "headers")) {
    if (Array.isArray(header) && header.length === 2 && header.every((h) => typeof h === "string")) {
      made.header(header[0] as string, header[1] as string);
    }
  }
  const body = response.body ?? {};
  if (!isObject(body)) throw new RecordingError("a recorded HTTP body is not an object");
  if (typeof body.text === "string") {
    made.body(body.text);
  } else if (typeof body.base64 === "string") {
    if (body.base64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(body.base64)) {
      throw new RecordingError("a recorded body is not valid base64");
    }
    made.body(new Uint8Array(Buffer.from(body.base64, "base64")));
  }
  return made;
}
