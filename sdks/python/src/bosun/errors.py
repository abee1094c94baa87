"""Why a reconcile did not succeed."""

from __future__ import annotations


class Error(Exception):
    """A failed reconcile: raise it from ``reconcile`` or ``finalize``.

    Make one with :func:`retryable` (the host tries again with exponential
    backoff) or :func:`permanent` (surfaced as a condition and a warning
    event, not retried until the object changes). Any other exception that
    escapes a reconciler becomes a retryable error carrying its message and
    traceback, never a trap.
    """

    def __init__(self, reason: str, message: str, *, permanent: bool) -> None:
        super().__init__(f"{'permanent' if permanent else 'retryable'} error {reason}: {message}")
        self.reason = reason
        self.message = message
        self.is_permanent = permanent

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Error) and (
            (self.reason, self.message, self.is_permanent)
            == (other.reason, other.message, other.is_permanent)
        )

    def __hash__(self) -> int:
        return hash((self.reason, self.message, self.is_permanent))


def retryable(reason: str, message: str) -> Error:
    """A passing failure, worth retrying: a dependency not ready yet, a read that failed."""
    return Error(reason, message, permanent=False)


def permanent(reason: str, message: str) -> Error:
    """The object cannot be reconciled as it is (an invalid spec, say):
    retrying would not help; the user has to change the object."""
    return Error(reason, message, permanent=True)
