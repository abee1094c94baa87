"""What the host observed about the object being reconciled, and the way to ask for more."""

from __future__ import annotations

import enum
import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ._host import Host, HostError, LogLevel
from ._kinds import Kind, Scope
from .errors import Error, permanent, retryable
from .types import Condition

if TYPE_CHECKING:
    from .http import Client


class Trigger(enum.Enum):
    """Why the host runs a reconcile. A hint for logging and backoff: a
    reconciler must reach the same answer whatever the trigger."""

    OBJECT_CHANGED = "object-changed"
    CHILD_CHANGED = "child-changed"
    READ_CHANGED = "read-changed"
    REQUEUE = "requeue"
    RETRY = "retry"
    RESYNC = "resync"
    MODULE_CHANGED = "module-changed"
    MANUAL = "manual"


class Context:
    """The observed children, the settings, reads from the host's cache, the
    clock and the log, for one reconcile."""

    def __init__(
        self,
        *,
        children: list[str],
        settings: str | None,
        trigger: Trigger,
        attempt: int,
        namespace: str | None,
        generation: int | None,
        host: Host,
    ) -> None:
        try:
            self._children: list[dict[str, Any]] = [json.loads(c) for c in children]
        except ValueError as e:
            raise retryable("InvalidChild", f"an observed child is not JSON: {e}") from None
        self._settings = settings
        self.trigger = trigger
        self.attempt = attempt
        self._namespace = namespace
        self._generation = generation
        self._host = host

    def children(self, kind: Kind) -> list[dict[str, Any]]:
        """The observed children of ``kind``: objects the host saw with a
        controller ownerReference to this object."""
        return [c for c in self._children if kind.is_kind_of(c)]

    def child(self, kind: Kind, name: str) -> dict[str, Any] | None:
        """The observed child of ``kind`` called ``name``, if there is one."""
        return next(
            (c for c in self.children(kind) if (c.get("metadata") or {}).get("name") == name),
            None,
        )

    def settings(self) -> Any:
        """The module's settings, parsed from JSON; None when the operator gave none.

        Settings that do not parse are a permanent error: retrying cannot fix
        them, and a settings change reconciles every object again.
        """
        if self._settings is None:
            return None
        try:
            return json.loads(self._settings)
        except ValueError as e:
            raise permanent("InvalidSettings", f"module settings: {e}") from None

    def now(self) -> datetime:
        """The current time (UTC), from the host. Use this rather than reading
        a clock yourself so that tests and ``bosun reconcile --now`` fix it."""
        return self._host.now()

    def condition(self, type_: str, status: bool, reason: str, message: str) -> Condition:
        """A condition stamped with the current time and the object's
        generation, ready for :func:`bosun.conditions.set`."""
        condition: Condition = {
            "type": type_,
            "status": "True" if status else "False",
            "reason": reason,
            "message": message,
            "lastTransitionTime": rfc3339(self.now()),
        }
        if self._generation is not None:
            condition["observedGeneration"] = self._generation
        return condition

    def get(self, kind: Kind, name: str) -> dict[str, Any] | None:
        """Reads the object of ``kind`` called ``name`` from the host's cache:
        in this object's namespace for a namespaced kind. ``kind`` must be
        the primary kind, an owned kind or a declared read kind."""
        try:
            found = self._host.get_object(kind.api_version, kind.kind, self._namespace_for(kind), name)
        except HostError as e:
            raise retryable("ReadFailed", str(e)) from None
        if found is None:
            return None
        try:
            return json.loads(found)
        except ValueError as e:
            raise retryable("ReadFailed", f"{kind.kind} {name}: {e}") from None

    def list(self, kind: Kind, label_selector: str | None = None) -> list[dict[str, Any]]:
        """Lists objects of ``kind`` from the host's cache (in this object's
        namespace for a namespaced kind), filtered by a label selector in
        Kubernetes syntax such as ``app=web,tier in (a,b),!legacy``."""
        try:
            found = self._host.list_objects(
                kind.api_version, kind.kind, self._namespace_for(kind), label_selector
            )
        except HostError as e:
            raise retryable("ReadFailed", str(e)) from None
        try:
            return [json.loads(o) for o in found]
        except ValueError as e:
            raise retryable("ReadFailed", f"{kind.kind}: {e}") from None

    def http(self) -> "Client":
        """The HTTP client: requests to the origins the module declared with
        ``Metadata.http_origin`` and the operator granted."""
        from .http import Client

        return Client(self._host)

    def log(self, level: LogLevel, message: str) -> None:
        """Writes a line to the host's log, tagged with the module and object."""
        self._host.log(level, message)

    def info(self, message: str) -> None:
        self.log(LogLevel.INFO, message)

    def warn(self, message: str) -> None:
        self.log(LogLevel.WARN, message)

    def debug(self, message: str) -> None:
        self.log(LogLevel.DEBUG, message)

    def _namespace_for(self, kind: Kind) -> str | None:
        return self._namespace if kind.scope is Scope.NAMESPACED else None


def rfc3339(when: datetime) -> str:
    """``when`` as Kubernetes writes a ``metav1.Time``: UTC, whole seconds."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["Context", "Trigger", "Error", "rfc3339"]
