/**
 * Run a reconciler natively, under `node --test`, through the same JSON
 * boundary the host uses.
 *
 * The {@link Harness} plays the host: it serializes the object, the observed
 * children and the settings as JSON exactly as the host hands them over,
 * answers reads from objects you give it (enforcing the host's access rules:
 * declared kinds only, the primary's namespace only), fixes the clock, and
 * collects logs. What comes back is what the host would receive from the
 * component:
 *
 *     const outcome = new Harness(Cnat).now("2026-12-01T10:00:00Z").reconcile(at);
 *     assert.equal(outcome.status.phase, "RUNNING");
 *
 * A failed reconcile throws `BosunError`, an uncaught exception in the
 * reconciler included (as the retryable error the host would get).
 */

import type { Trigger } from "./context.js";
import * as dispatch from "./dispatch.js";
import { HostError, type Host, type LogLevel } from "./host.js";
import type { HttpRequest, HttpResponse } from "./http.js";
import type { Kind } from "./kind.js";
import { load } from "./recording.js";
import { parse, SelectorError } from "./selector.js";
import { answer, HttpStub } from "./stubs.js";
import type { KubeObject } from "./types.js";

export { HttpStub } from "./stubs.js";
export { RecordingError } from "./recording.js";

/** A stand-in for the bosun host that runs a reconciler natively. Builder methods return the harness. */
export class Harness {
  private clock = Date.now();
  private readonly observed: string[] = [];
  private readonly objects: KubeObject[] = [];
  private rawSettings: string | undefined = undefined;
  private why: Trigger = "manual";
  private attempt = 1;
  private readonly stubs: HttpStub[] = [];
  private readonly stubUses: number[] = [];
  private readonly sent: HttpRequest[] = [];

  constructor(private readonly reconciler: dispatch.ReconcilerClass) {}

  /**
   * A harness holding what a bosun recording (`bosun reconcile --record`,
   * `bosun record get`) holds — its clock, settings, children, trigger,
   * the objects its reads returned and its HTTP answers as stubs answering
   * once, in order — and the recorded object, to pass to `reconcile` or
   * `finalize`:
   *
   *     const [harness, at] = Harness.fromRecording<At>("test/at.recording.json", Cnat);
   *     const outcome = harness.reconcile(at);
   *
   * `recording` is a path, the JSON text or bytes, or the parsed object.
   * Throws `RecordingError` for one that is not a `bosun.dev/recording/v1`
   * recording of a reconcile or finalize, is malformed, or is over 64 MiB.
   */
  static fromRecording<T extends KubeObject = KubeObject>(
    recording: string | Uint8Array | object,
    reconciler: dispatch.ReconcilerClass,
  ): [Harness, T] {
    const loaded = load(recording);
    const harness = new Harness(reconciler);
    if (loaded.now !== undefined) harness.now(loaded.now);
    harness.observed.push(...loaded.children);
    harness.rawSettings = loaded.settings;
    harness.trigger(loaded.trigger, loaded.attempt);
    harness.objects.push(...loaded.objects);
    for (const stub of loaded.stubs) harness.http(stub);
    return [harness, loaded.object as T];
  }

  /** Fixes the clock the reconciler sees: a Date or an RFC 3339 text with a zone. */
  now(now: string | Date): this {
    const when = typeof now === "string" ? new Date(now) : now;
    if (typeof now === "string" && !/(Z|[+-]\d{2}:\d{2})$/.test(now)) {
      throw new Error(`Harness.now(${JSON.stringify(now)}) needs a time zone; the host's clock is UTC`);
    }
    if (Number.isNaN(when.getTime())) throw new Error(`Harness.now: ${String(now)} is not a time`);
    this.clock = when.getTime();
    return this;
  }

  /** Adds an observed child, as if the host had seen it owned by the object; `kind` fills in apiVersion and kind. */
  child(child: object, kind?: Kind): this {
    this.observed.push(JSON.stringify(withKind(child, kind)));
    return this;
  }

  /** Adds an object to the cache that `Context.get` and `Context.list` read. */
  object(obj: object, kind?: Kind): this {
    this.objects.push(JSON.parse(JSON.stringify(withKind(obj, kind))) as KubeObject);
    return this;
  }

  /** Sets the module's settings (any JSON value). */
  settings(settings: unknown): this {
    this.rawSettings = JSON.stringify(settings);
    return this;
  }

  /** Sets the settings text as the operator wrote it, JSON or not. */
  rawSettingsText(text: string): this {
    this.rawSettings = text;
    return this;
  }

  /** Sets the trigger and attempt number the reconciler sees. */
  trigger(trigger: Trigger, attempt = 1): this {
    this.why = trigger;
    this.attempt = attempt;
    return this;
  }

  /**
   * Answers matching HTTP requests with `stub`. When several match, the
   * most specific wins (method and path over path over origin), then the
   * one added first that has answers left, so a sequence reads in order. A
   * request to an origin the module did not declare is refused as the host
   * refuses it; one no stub matches fails the test.
   */
  http(stub: HttpStub): this {
    this.stubs.push(stub);
    this.stubUses.push(0);
    return this;
  }

  /** Every HTTP request the reconciler sent through this harness, in order (refused ones included). */
  get requests(): HttpRequest[] {
    return [...this.sent];
  }

  /**
   * The metadata the component would export. Throws for a declaration the
   * host refuses to load (a module that owns its own primary kind): better a
   * failing test than a module that never runs.
   */
  metadata(): dispatch.WireModuleInfo {
    const info = dispatch.metadata(this.reconciler);
    for (const own of info.owns) {
      if (own.group === info.primary.group && own.kind === info.primary.kind) {
        throw new Error(
          `module ${info.name} owns its own primary kind ${own.kind}: the host refuses to load it; own another kind`,
        );
      }
    }
    return info;
  }

  /** Runs `reconcile` on `obj`; throws `BosunError` on failure. */
  reconcile(obj: object): Outcome {
    const host = this.host(obj);
    return new Outcome(dispatch.reconcile(this.reconciler, this.request(obj), host), host.logs);
  }

  /** Runs `finalize` on `obj`; throws `BosunError` on failure. */
  finalize(obj: object): FinalizeOutcome {
    const host = this.host(obj);
    const answer = dispatch.finalize(this.reconciler, this.request(obj), host);
    return {
      done: answer.done,
      requeueAfterMs: answer.requeueAfterMs,
      events: answer.events,
      logs: host.logs,
    };
  }

  private request(obj: object): dispatch.WireRequest {
    return {
      object: JSON.stringify(obj),
      children: [...this.observed],
      settings: this.rawSettings,
      trigger: this.why,
      attempt: this.attempt,
    };
  }

  private host(obj: object): TestHost {
    const info = this.metadata();
    const readable = new Set(
      [info.primary, ...info.owns, ...info.reads].map((k) => `${k.group ? `${k.group}/` : ""}${k.version} ${k.kind}`),
    );
    const namespace =
      info.primary.scope === "namespaced" ? ((obj as KubeObject).metadata?.namespace ?? "") : undefined;
    const http = (request: HttpRequest): HttpResponse => {
      this.sent.push(request);
      return answer(this.stubs, this.stubUses, info.httpOrigins, request);
    };
    return new TestHost(this.clock, this.objects, readable, namespace, http);
  }
}

/** What a reconcile returned, decoded from the JSON the host would receive. */
export class Outcome {
  constructor(
    private readonly answer: dispatch.WireResponse,
    /** The log lines, in order. */
    readonly logs: [LogLevel, string][],
  ) {}

  /** Every desired child. */
  get childrenJson(): KubeObject[] {
    return this.answer.children.map((c) => JSON.parse(c) as KubeObject);
  }

  /** The desired children of `kind`. */
  children<T extends KubeObject = KubeObject>(kind: Kind): T[] {
    return this.childrenJson.filter((c) => kind.isKindOf(c)) as T[];
  }

  /** The desired child of `kind` called `name`. */
  child<T extends KubeObject = KubeObject>(kind: Kind, name: string): T | undefined {
    return this.children<T>(kind).find((c) => c.metadata?.name === name);
  }

  /** The desired status; undefined when the reconciler set none. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  get status(): any {
    return this.answer.status === undefined ? undefined : JSON.parse(this.answer.status);
  }

  /** The requested requeue delay in milliseconds, as the host receives it. */
  get requeueAfterMs(): number | undefined {
    return this.answer.requeueAfterMs;
  }

  /** The events to record, as the host receives them. */
  get events(): dispatch.WireEvent[] {
    return [...this.answer.events];
  }
}

/** What a finalize returned. */
export interface FinalizeOutcome {
  done: boolean;
  requeueAfterMs: number | undefined;
  events: dispatch.WireEvent[];
  logs: [LogLevel, string][];
}

class TestHost implements Host {
  readonly logs: [LogLevel, string][] = [];

  constructor(
    private readonly clock: number,
    private readonly objects: KubeObject[],
    private readonly readable: Set<string>,
    private readonly namespace: string | undefined,
    readonly http: (request: HttpRequest) => HttpResponse,
  ) {}

  log(level: LogLevel, message: string): void {
    this.logs.push([level, message]);
  }

  now(): number {
    return this.clock;
  }

  getObject(apiVersion: string, kind: string, namespace: string | undefined, name: string): string | undefined {
    this.checkAccess(apiVersion, kind, namespace);
    const found = this.visible(apiVersion, kind, namespace).find((o) => o.metadata?.name === name);
    return found === undefined ? undefined : JSON.stringify(found);
  }

  listObjects(apiVersion: string, kind: string, namespace: string | undefined, selector: string | undefined): string[] {
    this.checkAccess(apiVersion, kind, namespace);
    let matches: (labels: Record<string, string>) => boolean;
    try {
      matches = parse(selector ?? "");
    } catch (e) {
      if (e instanceof SelectorError) throw new HostError(e.message);
      throw e;
    }
    return this.visible(apiVersion, kind, namespace)
      .filter((o) => matches(o.metadata?.labels ?? {}))
      .map((o) => JSON.stringify(o));
  }

  private checkAccess(apiVersion: string, kind: string, namespace: string | undefined): void {
    // The host's rules: declared kinds only, and the primary's namespace
    // only when the primary is namespaced.
    if (!this.readable.has(`${apiVersion} ${kind}`)) {
      throw new HostError(`${kind}.${apiVersion} is not a declared kind of this module; add it with Metadata.reads`);
    }
    if (this.namespace !== undefined && namespace !== undefined && namespace !== this.namespace) {
      throw new HostError(
        `namespace ${JSON.stringify(namespace)} is outside this object's namespace ${JSON.stringify(this.namespace)}`,
      );
    }
  }

  private visible(apiVersion: string, kind: string, namespace: string | undefined): KubeObject[] {
    const ns = namespace ?? this.namespace;
    return this.objects.filter(
      (o) =>
        o.apiVersion === apiVersion && o.kind === kind && (ns === undefined || (o.metadata?.namespace ?? "") === ns),
    );
  }
}

function withKind(obj: object, kind: Kind | undefined): object {
  return kind === undefined ? obj : { apiVersion: kind.apiVersion, kind: kind.kind, ...obj };
}
