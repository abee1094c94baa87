/** What the host observed about the object being reconciled, and the way to ask for more. */

import { permanent, retryable } from "./errors.js";
import { HostError, type Host, type LogLevel } from "./host.js";
import { Client } from "./http.js";
import type { Kind } from "./kind.js";
import { messageOf } from "./response.js";
import type { Condition, KubeObject } from "./types.js";

/**
 * Why the host runs a reconcile (the WIT enum's cases). A hint for logging
 * and backoff: a reconciler must reach the same answer whatever the trigger.
 */
export type Trigger =
  | "object-changed"
  | "child-changed"
  | "read-changed"
  | "requeue"
  | "retry"
  | "resync"
  | "module-changed"
  | "manual";

/** What a Context is made from; the dispatcher fills it in. */
export interface ContextParts {
  children: string[];
  settings: string | undefined;
  trigger: Trigger;
  attempt: number;
  namespace: string | undefined;
  generation: number | undefined;
  host: Host;
}

/**
 * The observed children, the settings, reads from the host's cache, the
 * clock and the log, for one reconcile.
 */
export class Context {
  readonly trigger: Trigger;
  readonly attempt: number;
  private readonly observed: KubeObject[];
  private readonly rawSettings: string | undefined;
  private readonly namespace: string | undefined;
  private readonly generation: number | undefined;
  private readonly host: Host;

  constructor(parts: ContextParts) {
    try {
      this.observed = parts.children.map((c) => JSON.parse(c) as KubeObject);
    } catch (e) {
      throw retryable("InvalidChild", `an observed child is not JSON: ${messageOf(e)}`);
    }
    this.rawSettings = parts.settings;
    this.trigger = parts.trigger;
    this.attempt = parts.attempt;
    this.namespace = parts.namespace;
    this.generation = parts.generation;
    this.host = parts.host;
  }

  /** The observed children of `kind`: objects the host saw with a controller ownerReference to this object. */
  children<T extends KubeObject = KubeObject>(kind: Kind): T[] {
    return this.observed.filter((c) => kind.isKindOf(c)) as T[];
  }

  /** The observed child of `kind` called `name`, if there is one. */
  child<T extends KubeObject = KubeObject>(kind: Kind, name: string): T | undefined {
    return this.children<T>(kind).find((c) => c.metadata?.name === name);
  }

  /**
   * The module's settings, parsed from JSON; undefined when the operator gave
   * none. Settings that do not parse are a permanent error: retrying cannot
   * fix them, and a settings change reconciles every object again.
   */
  settings<T = unknown>(): T | undefined {
    if (this.rawSettings === undefined) return undefined;
    try {
      return JSON.parse(this.rawSettings) as T;
    } catch (e) {
      throw permanent("InvalidSettings", `module settings: ${messageOf(e)}`);
    }
  }

  /**
   * The current time, from the host. Use this rather than `Date.now()` so
   * that tests and `bosun reconcile --now` fix it.
   */
  now(): Date {
    return new Date(this.host.now());
  }

  /** A condition stamped with the current time and the object's generation, ready for `conditions.set`. */
  condition(type: string, status: boolean, reason: string, message: string): Condition {
    const condition: Condition = {
      type,
      status: status ? "True" : "False",
      reason,
      message,
      lastTransitionTime: rfc3339(this.now()),
    };
    if (this.generation !== undefined) condition.observedGeneration = this.generation;
    return condition;
  }

  /**
   * Reads the object of `kind` called `name` from the host's cache: in this
   * object's namespace for a namespaced kind. `kind` must be the primary
   * kind, an owned kind or a declared read kind.
   */
  get<T extends KubeObject = KubeObject>(kind: Kind, name: string): T | undefined {
    const found = this.read(() => this.host.getObject(kind.apiVersion, kind.kind, this.namespaceFor(kind), name));
    if (found === undefined) return undefined;
    try {
      return JSON.parse(found) as T;
    } catch (e) {
      throw retryable("ReadFailed", `${kind.kind} ${name}: ${messageOf(e)}`);
    }
  }

  /**
   * Lists objects of `kind` from the host's cache (in this object's namespace
   * for a namespaced kind), filtered by a label selector in Kubernetes syntax
   * such as `app=web,tier in (a,b),!legacy`.
   */
  list<T extends KubeObject = KubeObject>(kind: Kind, labelSelector?: string): T[] {
    const found = this.read(() =>
      this.host.listObjects(kind.apiVersion, kind.kind, this.namespaceFor(kind), labelSelector),
    );
    try {
      return found.map((o) => JSON.parse(o) as T);
    } catch (e) {
      throw retryable("ReadFailed", `${kind.kind}: ${messageOf(e)}`);
    }
  }

  /**
   * The HTTP client, for requests to the origins the module declared with
   * `Metadata.httpOrigin` and the operator granted.
   */
  http(): Client {
    return new Client(this.host);
  }

  /** Writes a line to the host's log, tagged with the module and object. */
  log(level: LogLevel, message: string): void {
    this.host.log(level, message);
  }

  info(message: string): void {
    this.log("info", message);
  }

  warn(message: string): void {
    this.log("warn", message);
  }

  debug(message: string): void {
    this.log("debug", message);
  }

  private read<T>(call: () => T): T {
    try {
      return call();
    } catch (e) {
      if (e instanceof HostError) throw retryable("ReadFailed", e.message);
      throw e;
    }
  }

  private namespaceFor(kind: Kind): string | undefined {
    return kind.scope === "namespaced" ? this.namespace : undefined;
  }
}

/** `when` as Kubernetes writes a `metav1.Time`: UTC, whole seconds. */
export function rfc3339(when: Date): string {
  return when.toISOString().replace(/\.\d+Z$/, "Z");
}
