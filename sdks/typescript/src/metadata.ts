/** What a module declares about itself. */

import { Kind } from "./kind.js";

/**
 * A module's name and version, the kinds it owns and reads, and its
 * finalizer.
 *
 * The primary kind is the reconciler's `kind` property, as the Rust SDK
 * takes it from `Reconciler::Object`. The host enforces the declaration: a
 * child of an undeclared kind, or a read of one, is an error. Chain the
 * builder methods:
 *
 *     new Metadata("cnat", "0.1.0").owns(kinds.Pod).reads(kinds.ConfigMap)
 */
export class Metadata {
  readonly owned: Kind[] = [];
  readonly read: Kind[] = [];
  finalizerName: string | undefined = undefined;
  readonly httpOrigins: string[] = [];

  constructor(
    readonly name: string,
    readonly version: string,
  ) {}

  /** Declares that the module creates children of `kind`. */
  owns(kind: Kind): this {
    this.owned.push(checked(kind));
    return this;
  }

  /** Declares that the module reads `kind` through `Context.get`/`Context.list`. */
  reads(kind: Kind): this {
    this.read.push(checked(kind));
    return this;
  }

  /**
   * Asks the host to hold `finalizer` on every primary object and to call
   * the reconciler's `finalize` before it goes.
   */
  finalizer(finalizer: string): this {
    this.finalizerName = finalizer;
    return this;
  }

  /**
   * Declares an origin the module sends HTTP requests to through
   * `Context.http()`: `scheme://host[:port]` (`http` or `https`; a leading
   * `*.` covers subdomains only). Call once per origin. The operator must
   * grant each; the host refuses requests anywhere else and adds the
   * credentials the grant binds to an origin itself.
   */
  httpOrigin(origin: string): this {
    this.httpOrigins.push(origin);
    return this;
  }
}

function checked(kind: unknown): Kind {
  // Plain JavaScript callers can pass anything; a string here would only
  // fail at load time inside the host, far from the mistake.
  if (!(kind instanceof Kind)) {
    throw new TypeError(`expected a bosun Kind (from kinds or customKind), got ${String(kind)}`);
  }
  return kind;
}
