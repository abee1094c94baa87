"""Run a reconciler natively, in pytest, through the same JSON boundary the host uses.

The :class:`Harness` plays the host: it serializes the object, the observed
children and the settings as JSON exactly as the host hands them over,
answers reads from objects you give it (enforcing the host's access rules:
declared kinds only, the primary's namespace only), fixes the clock, and
collects logs. What comes back is what the host would receive from the
component::

    from bosun.testing import Harness

    outcome = Harness(Cnat).now("2026-12-01T10:00:00Z").reconcile(at)
    assert outcome.status["phase"] == "RUNNING"
    assert outcome.children(kinds.Pod)[0]["metadata"]["name"] == "example-at-pod"

A failed reconcile raises :class:`bosun.Error`, an uncaught exception in
the reconciler included (as the retryable error the host would get).

HTTP never reaches the network natively: the harness answers each request
from the :class:`HttpStub` objects the test gave it, records it in
``Outcome.http_requests``, refuses origins the module did not declare (as
the host does), and fails the test on a request no stub matches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from . import _dispatch, _recording, _selector, _stubs
from ._recording import RecordingError
from ._stubs import HttpStub
from ._host import HostError, LogLevel
from ._kinds import Kind, Scope
from .context import Trigger
from .http import Request
from .response import Event

__all__ = ["Harness", "Outcome", "FinalizeOutcome", "HttpStub", "RecordingError"]


class Harness:
    """A stand-in for the bosun host that runs a reconciler natively.

    Builder methods return the harness, so a test chains them.
    """

    def __init__(self, reconciler: type[_dispatch.Reconciler]) -> None:
        self._reconciler = reconciler
        self._now = datetime.now(timezone.utc)
        self._children: list[str] = []
        self._objects: list[dict[str, Any]] = []
        self._settings: str | None = None
        self._trigger = Trigger.MANUAL
        self._attempt = 1
        self._stubs: list[HttpStub] = []

    @classmethod
    def from_recording(
        cls, recording: Any, reconciler: type[_dispatch.Reconciler]
    ) -> tuple["Harness", dict[str, Any]]:
        """A harness holding what a bosun recording (``bosun reconcile --record``,
        ``bosun record get``) holds — its clock, settings, children, trigger,
        the objects its reads returned and its HTTP answers as stubs answering
        once, in order — and the recorded object, to pass to :meth:`reconcile`
        or :meth:`finalize`::

            harness, at = Harness.from_recording("at.json", Cnat)
            outcome = harness.reconcile(at)

        ``recording`` is a path, the JSON text (or bytes) or the parsed dict.
        Raises :class:`RecordingError` for a file that is not a
        ``bosun.dev/recording/v1`` recording of a reconcile or finalize, is
        malformed, or is larger than 64 MiB.
        """
        parsed = _recording.load(recording)
        harness = cls(reconciler)
        obj = _recording.fill(harness, parsed)
        return harness, obj

    def now(self, now: str | datetime) -> "Harness":
        """Fixes the clock the reconciler sees: a ``datetime`` or an RFC 3339 text."""
        if isinstance(now, str):
            now = datetime.fromisoformat(now.replace("Z", "+00:00"))
        if now.tzinfo is None:
            raise ValueError(f"Harness.now({now!r}) needs a time zone; the host's clock is UTC")
        self._now = now.astimezone(timezone.utc)
        return self

    def child(self, child: dict[str, Any], kind: Kind | None = None) -> "Harness":
        """Adds an observed child, as if the host had seen it owned by the
        object; ``kind`` fills in its apiVersion and kind when missing."""
        self._children.append(json.dumps(_with_kind(child, kind)))
        return self

    def object(self, obj: dict[str, Any], kind: Kind | None = None) -> "Harness":
        """Adds an object to the cache that ``Context.get`` and ``Context.list`` read."""
        self._objects.append(json.loads(json.dumps(_with_kind(obj, kind))))
        return self

    def settings(self, settings: Any) -> "Harness":
        """Sets the module's settings (any JSON value)."""
        self._settings = json.dumps(settings)
        return self

    def raw_settings(self, text: str) -> "Harness":
        """Sets the settings text as the operator wrote it, JSON or not."""
        self._settings = text
        return self

    def trigger(self, trigger: Trigger, attempt: int = 1) -> "Harness":
        """Sets the trigger and attempt number the reconciler sees."""
        self._trigger, self._attempt = trigger, attempt
        return self

    def http(self, stub: HttpStub) -> "Harness":
        """Answers matching HTTP requests with ``stub``. When several match,
        the most specific wins (method and path over path over origin), then
        the one added first that has answers left, so a sequence reads in order."""
        self._stubs.append(stub)
        return self

    def metadata(self) -> _dispatch.WireModuleInfo:
        """The metadata the component would export.

        Raises ``AssertionError`` for a declaration the host refuses to load:
        a module that owns its own primary kind. Better a failing test than
        a module that never runs.
        """
        info = _dispatch.metadata(self._reconciler)
        for own in info.owns:
            if (own.group, own.kind) == (info.primary.group, info.primary.kind):
                raise AssertionError(
                    f"module {info.name} owns its own primary kind {own.kind}: "
                    "the host refuses to load it; own another kind"
                )
        return info

    def reconcile(self, obj: dict[str, Any]) -> "Outcome":
        """Runs ``reconcile`` on ``obj``; raises :class:`bosun.Error` on failure."""
        host = self._host(obj)
        answer = _dispatch.reconcile(self._reconciler, self._request(obj), host)
        return Outcome(answer, host.logs, host.requests)

    def finalize(self, obj: dict[str, Any]) -> "FinalizeOutcome":
        """Runs ``finalize`` on ``obj``; raises :class:`bosun.Error` on failure."""
        host = self._host(obj)
        answer = _dispatch.finalize(self._reconciler, self._request(obj), host)
        return FinalizeOutcome(
            done=answer.done,
            requeue_after=_delay(answer.requeue_after_ms),
            events=answer.events,
            logs=host.logs,
            http_requests=host.requests,
        )

    def _request(self, obj: dict[str, Any]) -> _dispatch.WireRequest:
        return _dispatch.WireRequest(
            object=json.dumps(obj),
            children=list(self._children),
            settings=self._settings,
            trigger=self._trigger,
            attempt=self._attempt,
        )

    def _host(self, obj: dict[str, Any]) -> "_TestHost":
        info = self.metadata()
        readable = {(k.api_version, k.kind) for k in [info.primary, *info.owns, *info.reads]}
        namespace = None
        if info.primary.scope is Scope.NAMESPACED:
            namespace = (obj.get("metadata") or {}).get("namespace") or ""
        return _TestHost(
            self._now, self._objects, readable, namespace, self._stubs, list(info.http_origins)
        )


@dataclass
class Outcome:
    """What a reconcile returned, decoded from the JSON the host would receive."""

    _answer: _dispatch.WireResponse
    logs: list[tuple[LogLevel, str]]
    http_requests: list[Request]
    """The HTTP requests the reconciler made, in order."""

    @property
    def children_json(self) -> list[dict[str, Any]]:
        """Every desired child."""
        return [json.loads(c) for c in self._answer.children]

    def children(self, kind: Kind) -> list[dict[str, Any]]:
        """The desired children of ``kind``."""
        return [c for c in self.children_json if kind.is_kind_of(c)]

    def child(self, kind: Kind, name: str) -> dict[str, Any] | None:
        """The desired child of ``kind`` called ``name``."""
        return next(
            (c for c in self.children(kind) if (c.get("metadata") or {}).get("name") == name),
            None,
        )

    @property
    def status(self) -> Any:
        """The desired status; None when the reconciler set none."""
        return None if self._answer.status is None else json.loads(self._answer.status)

    @property
    def requeue_after(self) -> timedelta | None:
        """The requested requeue delay."""
        return _delay(self._answer.requeue_after_ms)

    @property
    def requeue_after_ms(self) -> int | None:
        """The requested requeue delay as the host receives it."""
        return self._answer.requeue_after_ms

    @property
    def events(self) -> list[Event]:
        """The events to record."""
        return list(self._answer.events)


@dataclass
class FinalizeOutcome:
    """What a finalize returned."""

    done: bool
    requeue_after: timedelta | None
    events: list[Event]
    logs: list[tuple[LogLevel, str]] = field(default_factory=list)
    http_requests: list[Request] = field(default_factory=list)


class _TestHost:
    def __init__(
        self,
        now: datetime,
        objects: list[dict[str, Any]],
        readable: set[tuple[str, str]],
        namespace: str | None,
        stubs: list[HttpStub],
        origins: list[str],
    ) -> None:
        self._now = now
        self._objects = objects
        self._readable = readable
        self._namespace = namespace
        self._stubs = stubs
        self._stub_uses = [0] * len(stubs)
        self._origins = origins
        self.logs: list[tuple[LogLevel, str]] = []
        self.requests: list[Request] = []

    def http(self, request: Request):  # type: ignore[no-untyped-def]
        self.requests.append(request)
        return _stubs.answer(self._stubs, self._stub_uses, self._origins, request)

    def log(self, level: LogLevel, message: str) -> None:
        self.logs.append((level, message))

    def now(self) -> datetime:
        return self._now

    def get_object(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> str | None:
        self._check_access(api_version, kind, namespace)
        for o in self._visible(api_version, kind, namespace):
            if (o.get("metadata") or {}).get("name") == name:
                return json.dumps(o)
        return None

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None, label_selector: str | None
    ) -> list[str]:
        self._check_access(api_version, kind, namespace)
        try:
            selector = _selector.parse(label_selector or "")
        except _selector.SelectorError as e:
            raise HostError(str(e)) from None
        return [
            json.dumps(o)
            for o in self._visible(api_version, kind, namespace)
            if selector.matches((o.get("metadata") or {}).get("labels") or {})
        ]

    def _check_access(self, api_version: str, kind: str, namespace: str | None) -> None:
        # The host's rules: declared kinds only, and the primary's namespace
        # only when the primary is namespaced.
        if (api_version, kind) not in self._readable:
            raise HostError(
                f"{kind}.{api_version} is not a declared kind of this module; add it with Metadata.reads"
            )
        if self._namespace is not None and namespace is not None and namespace != self._namespace:
            raise HostError(
                f"namespace {namespace!r} is outside this object's namespace {self._namespace!r}"
            )

    def _visible(self, api_version: str, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        namespace = namespace if namespace is not None else self._namespace
        return [
            o
            for o in self._objects
            if o.get("apiVersion") == api_version
            and o.get("kind") == kind
            and (namespace is None or (o.get("metadata") or {}).get("namespace", "") == namespace)
        ]


def _with_kind(obj: dict[str, Any], kind: Kind | None) -> dict[str, Any]:
    if kind is None:
        return obj
    return {"apiVersion": kind.api_version, "kind": kind.kind, **obj}


def _delay(ms: int | None) -> timedelta | None:
    return None if ms is None else timedelta(milliseconds=ms)
