"""Status conditions, handled the way ``meta.SetStatusCondition`` does in Go.

Build a condition with ``Context.condition`` and put it into your status
with :func:`set`; the transition time moves only when the condition's status
changes. Give the status field the CRD schema :data:`SCHEMA`, so the API
server (and the host, which adds its own ``Reconciled`` condition after a
failure) knows the conditions' shape.
"""

from __future__ import annotations

from typing import Any

from .types import Condition

SCHEMA: dict[str, Any] = {
    "type": "array",
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
    "items": {
        "type": "object",
        "required": ["type", "status", "lastTransitionTime", "reason", "message"],
        "properties": {
            "type": {"type": "string"},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "observedGeneration": {"type": "integer", "format": "int64"},
        },
    },
}
"""The CRD schema of a ``conditions`` list: a list map keyed by ``type``, so
server-side apply merges conditions one by one."""


def set(conditions: list[Condition], condition: Condition) -> bool:  # noqa: A001 - mirrors conditions::set
    """Sets ``condition`` in ``conditions``, replacing the one of the same type.

    When one of that type exists with the same status its
    ``lastTransitionTime`` is kept; reason, message and observedGeneration
    are updated. Returns True when anything changed.
    """
    existing = find(conditions, condition["type"])
    if existing is None:
        conditions.append(condition)
        return True
    changed = False
    if existing.get("status") != condition["status"]:
        existing["status"] = condition["status"]
        existing["lastTransitionTime"] = condition["lastTransitionTime"]
        changed = True
    for field in ("reason", "message", "observedGeneration"):
        if existing.get(field) != condition.get(field):
            if field in condition:
                existing[field] = condition[field]  # type: ignore[literal-required]
            else:
                existing.pop(field, None)  # type: ignore[misc]
            changed = True
    return changed


def find(conditions: list[Condition], type_: str) -> Condition | None:
    """The condition of type ``type_``, if present."""
    return next((c for c in conditions if c.get("type") == type_), None)


def remove(conditions: list[Condition], type_: str) -> bool:
    """Removes the condition of type ``type_``; True when one was removed."""
    before = len(conditions)
    conditions[:] = [c for c in conditions if c.get("type") != type_]
    return len(conditions) != before


def is_true(conditions: list[Condition], type_: str) -> bool:
    """True when the condition of type ``type_`` is present with status ``True``."""
    found = find(conditions, type_)
    return found is not None and found.get("status") == "True"
