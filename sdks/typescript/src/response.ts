/** What a reconciler returns: the desired state, events, when to look again. */

import { BosunError, retryable } from "./errors.js";
import { Kind } from "./kind.js";

/** The type of a Kubernetes Event. */
export type EventType = "normal" | "warning";

/**
 * The largest requeue sent: the WIT's field is a u64, but componentize-qjs
 * lowers a u64 from a JS number and refuses a bigint, so the delay stays a
 * number that holds whole milliseconds exactly (over 285,000 years).
 */
const MAX_DELAY_MS = Number.MAX_SAFE_INTEGER;

/** A Kubernetes Event the host records against the reconciled object. */
export class Event {
  constructor(
    readonly eventType: EventType,
    readonly reason: string,
    readonly note: string,
    public actionName: string = "Reconcile",
  ) {}

  /** A `Normal` event, e.g. `Event.normal("PodCreated", "created pod x")`. */
  static normal(reason: string, note: string): Event {
    return new Event("normal", reason, note);
  }

  /** A `Warning` event. */
  static warning(reason: string, note: string): Event {
    return new Event("warning", reason, note);
  }

  /** Sets the action (what was done, CamelCase; `Reconcile` unless set). */
  action(action: string): this {
    this.actionName = action;
    return this;
  }
}

/**
 * The desired state for one object, built with chained calls.
 *
 * Return every child you want on every call; the host prunes the children it
 * observed that you no longer return:
 *
 *     return new Response().status({ phase: "RUNNING" }).child(pod, kinds.Pod);
 */
export class Response {
  readonly children: string[] = [];
  statusJson: string | undefined = undefined;
  requeueAfterMs: number | undefined = undefined;
  readonly events: Event[] = [];
  // Encoding failures surface when the response is returned (as in the Rust
  // SDK), so that building it stays a chain of calls.
  error: BosunError | undefined = undefined;

  /**
   * Adds a desired child. With `kind`, its `apiVersion` and `kind` are filled
   * in when missing. The host sets the namespace and the controller
   * ownerReference; set only what you want to own.
   */
  child(child: object, kind?: Kind): this {
    const value: Record<string, unknown> = { ...child };
    if (kind !== undefined) {
      value.apiVersion ??= kind.apiVersion;
      value.kind ??= kind.kind;
    }
    if (!value.apiVersion || !value.kind) {
      this.fail("a desired child has no apiVersion or kind; pass its Kind to Response.child");
      return this;
    }
    try {
      this.children.push(encode(value));
    } catch (e) {
      this.fail(`a desired ${String(value.kind)} does not encode as JSON: ${messageOf(e)}`);
    }
    return this;
  }

  /** Sets the desired status. The host writes it to the status subresource. */
  status(status: object): this {
    try {
      this.statusJson = encode(status);
    } catch (e) {
      this.fail(`the status does not encode as JSON: ${messageOf(e)}`);
    }
    return this;
  }

  /** Reconcile again after `ms` milliseconds even if nothing changes. */
  requeueAfter(ms: number): this {
    this.requeueAfterMs = delayMs(ms);
    return this;
  }

  /** Records an event against the object. */
  event(event: Event): this {
    this.events.push(event);
    return this;
  }

  private fail(message: string): void {
    this.error ??= retryable("SerializationFailed", message);
  }
}

/** The answer to `finalize`: {@link Finalized.done} or {@link Finalized.pending}. */
export class Finalized {
  readonly events: Event[] = [];

  private constructor(
    readonly isDone: boolean,
    readonly requeueAfterMs: number | undefined,
  ) {}

  /** Cleanup is complete: the host removes the finalizer. */
  static done(): Finalized {
    return new Finalized(true, undefined);
  }

  /** Cleanup is under way: call `finalize` again after `ms` milliseconds. */
  static pending(ms: number): Finalized {
    return new Finalized(false, delayMs(ms));
  }

  /** Records an event against the object. */
  event(event: Event): this {
    this.events.push(event);
    return this;
  }
}

/**
 * Whole milliseconds, rounded up, so a requeue never comes due before the
 * time asked for; negative and NaN delays are zero.
 */
export function delayMs(ms: number): number {
  if (Number.isNaN(ms) || ms <= 0) return 0;
  return Math.min(Math.ceil(ms), MAX_DELAY_MS);
}

function encode(value: unknown): string {
  // JSON.stringify writes NaN and Infinity as null silently; the host would
  // apply a null the author never meant, so refuse them here.
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === "number" && !Number.isFinite(v)) {
      throw new TypeError(`${v} is not JSON`);
    }
    if (typeof v === "bigint") {
      throw new TypeError(`the bigint ${v} is not JSON`);
    }
    return v;
  });
}

export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
