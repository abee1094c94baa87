"""What a reconciler returns: the desired state, events, when to look again."""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping

from ._kinds import Kind
from .errors import Error, retryable


class EventType(enum.Enum):
    """The type of a Kubernetes Event."""

    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass
class Event:
    """A Kubernetes Event the host records against the reconciled object."""

    event_type: EventType
    reason: str
    note: str
    action_name: str = "Reconcile"

    @classmethod
    def normal(cls, reason: str, note: str) -> "Event":
        """A ``Normal`` event, e.g. ``Event.normal("PodCreated", "created pod x")``."""
        return cls(EventType.NORMAL, reason, note)

    @classmethod
    def warning(cls, reason: str, note: str) -> "Event":
        """A ``Warning`` event."""
        return cls(EventType.WARNING, reason, note)

    def action(self, action: str) -> "Event":
        """Sets the action (what was done, CamelCase; ``Reconcile`` unless set)."""
        self.action_name = action
        return self


Delay = timedelta | float | int
"""A delay: a ``timedelta`` or a number of seconds."""


class Response:
    """The desired state for one object, built with chained calls.

    Return every child you want on every call; the host prunes the children
    it observed that you no longer return::

        return Response().status({"phase": "RUNNING"}).child(pod, kinds.Pod)
    """

    def __init__(self) -> None:
        self.children: list[str] = []
        self.status_json: str | None = None
        self.requeue_after_ms: int | None = None
        self.events: list[Event] = []
        # Encoding failures surface when the response is returned (as in the
        # Rust SDK), so that building it stays a chain of calls.
        self.error: Error | None = None

    def child(self, child: Mapping[str, Any], kind: Kind | None = None) -> "Response":
        """Adds a desired child. With ``kind``, its ``apiVersion`` and ``kind``
        are filled in when missing. The host sets the namespace and the
        controller ownerReference; set only what you want to own."""
        value = dict(child)
        if kind is not None:
            value.setdefault("apiVersion", kind.api_version)
            value.setdefault("kind", kind.kind)
        if not value.get("apiVersion") or not value.get("kind"):
            self._fail("a desired child has no apiVersion or kind; pass its Kind to Response.child")
            return self
        try:
            self.children.append(_encode(value))
        except (TypeError, ValueError) as e:
            self._fail(f"a desired {value['kind']} does not encode as JSON: {e}")
        return self

    def status(self, status: Mapping[str, Any]) -> "Response":
        """Sets the desired status. The host writes it to the status
        subresource and sets ``observedGeneration``."""
        try:
            self.status_json = _encode(status)
        except (TypeError, ValueError) as e:
            self._fail(f"the status does not encode as JSON: {e}")
        return self

    def requeue_after(self, delay: Delay) -> "Response":
        """Reconcile again after ``delay`` even if nothing changes."""
        self.requeue_after_ms = delay_ms(delay)
        return self

    def event(self, event: Event) -> "Response":
        """Records an event against the object."""
        self.events.append(event)
        return self

    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = retryable("SerializationFailed", message)


class Finalized:
    """The answer to ``finalize``: :meth:`done` or :meth:`pending`."""

    def __init__(self, done: bool, requeue_after_ms: int | None = None) -> None:
        self.is_done = done
        self.requeue_after_ms = requeue_after_ms
        self.events: list[Event] = []

    @classmethod
    def done(cls) -> "Finalized":
        """Cleanup is complete: the host removes the finalizer."""
        return cls(True)

    @classmethod
    def pending(cls, delay: Delay) -> "Finalized":
        """Cleanup is under way: call ``finalize`` again after ``delay``."""
        return cls(False, delay_ms(delay))

    def event(self, event: Event) -> "Finalized":
        """Records an event against the object."""
        self.events.append(event)
        return self


def delay_ms(delay: Delay) -> int:
    """Whole milliseconds, rounded up, so a requeue never comes due before
    the time asked for; negative delays are zero."""
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    if math.isnan(seconds) or seconds <= 0:
        return 0
    if math.isinf(seconds):
        return 2**64 - 1
    if isinstance(delay, timedelta):
        # Exact integer arithmetic: a float of microseconds can round up a
        # delay that is a whole number of milliseconds.
        micros = (delay.days * 86_400 + delay.seconds) * 1_000_000 + delay.microseconds
        return min(-(-micros // 1000), 2**64 - 1)
    return min(math.ceil(seconds * 1000), 2**64 - 1)


def _encode(value: Any) -> str:
    # allow_nan=False: NaN is not JSON, and the host would refuse the whole response.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
