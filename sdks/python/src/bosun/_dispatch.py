"""One reconcile through JSON on both sides: the request as the host sends
it in, the answer as the host takes it back. The component's exports and
the native harness both go through here, so tests cross the same boundary
the host does."""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ._host import Host
from ._kinds import Kind, Scope
from .context import Context, Trigger
from .errors import Error, permanent, retryable
from .metadata import Metadata
from .response import Event, Finalized, Response

# Frames kept from an uncaught exception's traceback: the innermost ones
# say where it happened, and the host cuts long messages anyway.
TRACEBACK_FRAMES = 8


class HarnessFailure(AssertionError):
    """A test's own failure raised inside a reconciler by the native harness
    (an HTTP request no stub answers): it must fail the test, not become
    the retryable error an ordinary exception becomes."""


class Reconciler:
    """The logic of one controller. Subclass it, set ``kind`` to the primary
    kind, and define ``metadata`` and ``reconcile`` (and ``finalize`` when
    the module declares a finalizer)::

        class Cnat(bosun.Reconciler):
            kind = AT

            def metadata(self) -> bosun.Metadata:
                return bosun.Metadata("cnat", "0.1.0").owns(bosun.kinds.Pod)

            def reconcile(self, at, ctx):
                return bosun.Response().status({"phase": "PENDING"})

    A fresh instance serves each call: keep nothing on ``self`` between calls
    (the host runs every call in a fresh sandbox anyway).
    """

    kind: ClassVar[Kind]

    def metadata(self) -> Metadata:
        raise NotImplementedError("a reconciler defines metadata()")

    def reconcile(self, obj: dict[str, Any], ctx: Context) -> Response:
        raise NotImplementedError("a reconciler defines reconcile()")

    def finalize(self, obj: dict[str, Any], ctx: Context) -> Finalized:
        """Cleans up for ``obj``, which is being deleted. Reports done at once
        unless overridden."""
        return Finalized.done()


@dataclass
class WireRequest:
    """``bosun:reconciler/types.request``."""

    object: str
    children: list[str] = field(default_factory=list)
    settings: str | None = None
    trigger: Trigger = Trigger.MANUAL
    attempt: int = 1


@dataclass
class WireResponse:
    """``bosun:reconciler/types.response``."""

    children: list[str]
    status: str | None
    requeue_after_ms: int | None
    events: list[Event]


@dataclass
class WireFinalizeResponse:
    """``bosun:reconciler/types.finalize-response``."""

    done: bool
    requeue_after_ms: int | None
    events: list[Event]


@dataclass
class WireModuleInfo:
    """``bosun:reconciler/types.module-info``."""

    name: str
    version: str
    primary: Kind
    owns: list[Kind]
    reads: list[Kind]
    finalizer: str | None
    http_origins: list[str]


def metadata(reconciler: type[Reconciler]) -> WireModuleInfo:
    """The module's metadata, with the primary kind taken from ``reconciler.kind``."""
    primary = getattr(reconciler, "kind", None)
    if not isinstance(primary, Kind):
        raise TypeError(f"{reconciler.__name__}.kind must be a bosun Kind, got {primary!r}")
    declared = reconciler().metadata()
    if not isinstance(declared, Metadata):
        raise TypeError(f"{reconciler.__name__}.metadata() must return a bosun Metadata")
    return WireModuleInfo(
        name=declared.name,
        version=declared.version,
        primary=primary,
        owns=list(declared.owned),
        reads=list(declared.read),
        finalizer=declared.finalizer_name,
        http_origins=list(declared.http_origins),
    )


def reconcile(reconciler: type[Reconciler], request: WireRequest, host: Host) -> WireResponse:
    """Runs ``reconcile``; raises :class:`Error` for every failure, an
    uncaught exception included."""
    try:
        obj, ctx = _decode(reconciler, request, host)
        response = reconciler().reconcile(obj, ctx)
        if not isinstance(response, Response):
            raise retryable(
                "InvalidResponse",
                f"{reconciler.__name__}.reconcile returned {type(response).__name__}, not a bosun Response",
            )
        if response.error is not None:
            raise response.error
        return WireResponse(
            children=list(response.children),
            status=response.status_json,
            requeue_after_ms=response.requeue_after_ms,
            events=list(response.events),
        )
    except (Error, HarnessFailure):
        raise
    except BaseException as e:  # noqa: BLE001 - whatever escapes must not trap the component
        raise uncaught(e) from None


def finalize(reconciler: type[Reconciler], request: WireRequest, host: Host) -> WireFinalizeResponse:
    """Runs ``finalize``; raises :class:`Error` for every failure."""
    try:
        obj, ctx = _decode(reconciler, request, host)
        answer = reconciler().finalize(obj, ctx)
        if not isinstance(answer, Finalized):
            raise retryable(
                "InvalidResponse",
                f"{reconciler.__name__}.finalize returned {type(answer).__name__}, not a bosun Finalized",
            )
        return WireFinalizeResponse(
            done=answer.is_done,
            requeue_after_ms=answer.requeue_after_ms,
            events=list(answer.events),
        )
    except (Error, HarnessFailure):
        raise
    except BaseException as e:  # noqa: BLE001
        raise uncaught(e) from None


def uncaught(e: BaseException) -> Error:
    """A retryable error carrying an exception's message and traceback."""
    frames = traceback.format_exception(type(e), e, e.__traceback__, limit=-TRACEBACK_FRAMES)
    return retryable("UncaughtException", f"{type(e).__name__}: {e}\n{''.join(frames).rstrip()}")


def _decode(
    reconciler: type[Reconciler], request: WireRequest, host: Host
) -> tuple[dict[str, Any], Context]:
    try:
        obj = json.loads(request.object)
    except ValueError as e:
        # The API server validated the object against its schema, so an
        # object that is not JSON cannot be fixed by retrying.
        raise permanent("InvalidObject", f"the {reconciler.kind.kind} is not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise permanent("InvalidObject", f"the {reconciler.kind.kind} is not a JSON object")
    meta = obj.get("metadata") or {}
    generation = meta.get("generation")
    ctx = Context(
        children=request.children,
        settings=request.settings,
        trigger=request.trigger,
        attempt=request.attempt,
        namespace=meta.get("namespace") if reconciler.kind.scope is Scope.NAMESPACED else None,
        generation=generation if isinstance(generation, int) else None,
        host=host,
    )
    return obj, ctx
