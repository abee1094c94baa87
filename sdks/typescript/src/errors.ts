/** Why a reconcile did not succeed. */

/**
 * A failed reconcile: throw it from `reconcile` or `finalize`.
 *
 * Make one with {@link retryable} (the host tries again with exponential
 * backoff) or {@link permanent} (surfaced as a condition and a warning event,
 * not retried until the object changes). Anything else thrown out of a
 * reconciler becomes a retryable error carrying its message and stack,
 * never a trap.
 */
export class BosunError extends Error {
  constructor(
    readonly reason: string,
    readonly detail: string,
    readonly permanent: boolean,
  ) {
    super(`${permanent ? "permanent" : "retryable"} error ${reason}: ${detail}`);
    this.name = "BosunError";
  }
}

/** A passing failure, worth retrying: a dependency not ready yet, a read that failed. */
export function retryable(reason: string, message: string): BosunError {
  return new BosunError(reason, message, false);
}

/**
 * The object cannot be reconciled as it is (an invalid spec, say): retrying
 * would not help; the user has to change the object.
 */
export function permanent(reason: string, message: string): BosunError {
  return new BosunError(reason, message, true);
}
