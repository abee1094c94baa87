"""The component's side of the contract: the ``bosun:reconciler`` exports
and imports, through the bindings componentize-py generates from
``bosun/wit/`` while it builds the component.

The SDK's world (``bosun/wit/world.wit``) is bosun's ``reconciler`` plus
``wasi:http/outgoing-handler``, so bosun's ``types`` interface comes out as
``bosun_reconciler_types`` beside ``wasi_http_types``.

The bindings (package ``wit_world``) exist only inside that build, so they
are imported when a call comes in, never at import time: the same app
module imports natively, in pytest, where the harness plays the host.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from . import _dispatch, _wasi_http
from ._host import HostError, LogLevel
from ._kinds import Kind, Scope
from .context import Trigger
from .errors import Error
from .response import Event, EventType


def export(reconciler: type[_dispatch.Reconciler]) -> type:
    """The class componentize-py exports as the ``reconciler`` world.

    Assign it to ``WitWorld`` in the module you componentize::

        WitWorld = bosun.export(Cnat)
    """
    # Fail at build time (componentize imports the app module) rather than
    # at the host's load: metadata that cannot be produced is the author's bug.
    _dispatch.metadata(reconciler)
    _preload_bindings()

    class WitWorld:
        def metadata(self) -> Any:
            return _module_info(_dispatch.metadata(reconciler))

        def reconcile(self, request: Any) -> Any:
            from wit_world.imports import bosun_reconciler_types as wit

            try:
                answer = _dispatch.reconcile(reconciler, _request(request), WasmHost())
            except Error as e:
                raise _err(e) from None
            return wit.Response(
                children=answer.children,
                status=answer.status,
                requeue_after_ms=answer.requeue_after_ms,
                events=[_event(e) for e in answer.events],
            )

        def finalize(self, request: Any) -> Any:
            from wit_world.imports import bosun_reconciler_types as wit

            try:
                answer = _dispatch.finalize(reconciler, _request(request), WasmHost())
            except Error as e:
                raise _err(e) from None
            return wit.FinalizeResponse(
                done=answer.done,
                requeue_after_ms=answer.requeue_after_ms,
                events=[_event(e) for e in answer.events],
            )

    WitWorld.__qualname__ = f"WitWorld[{reconciler.__name__}]"
    return WitWorld


def _preload_bindings() -> None:
    """Imports the bindings while componentize-py builds the component:
    it bundles only the modules imported then, and a module first imported
    during a call is missing. Natively there are none, and nothing to do."""
    import importlib

    for name in (
        "componentize_py_types",
        "wit_world.imports.bosun_reconciler_types",
        "wit_world.imports.host",
        "wit_world.imports.outgoing_handler",
        "wit_world.imports.streams",
        "wit_world.imports.wasi_http_types",
    ):
        try:
            importlib.import_module(name)
        except ImportError:
            return


class WasmHost:
    """The real host, through the component's imports."""

    def log(self, level: LogLevel, message: str) -> None:
        from wit_world.imports import host

        host.log(getattr(host.LogLevel, level.name), message)

    def get_object(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> str | None:
        from componentize_py_types import Err
        from wit_world.imports import host

        try:
            return host.get_object(api_version, kind, namespace, name)
        except Err as e:
            raise HostError(str(e.value)) from None

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None, label_selector: str | None
    ) -> list[str]:
        from componentize_py_types import Err
        from wit_world.imports import host

        try:
            return host.list_objects(api_version, kind, namespace, label_selector)
        except Err as e:
            raise HostError(str(e.value)) from None

    def now(self) -> datetime:
        # The WASI wall clock, which the host controls (`bosun reconcile --now`).
        return datetime.fromtimestamp(time.time(), tz=timezone.utc)

    def http(self, request: Any) -> Any:
        return _wasi_http.send(request)


def _request(request: Any) -> _dispatch.WireRequest:
    return _dispatch.WireRequest(
        object=request.object,
        children=list(request.children),
        settings=request.settings,
        trigger=Trigger[request.trigger.name],
        attempt=request.attempt,
    )


def _kind(kind: Kind) -> Any:
    from wit_world.imports import bosun_reconciler_types as wit

    return wit.ApiKind(
        group=kind.group,
        version=kind.version,
        kind=kind.kind,
        plural=kind.plural,
        scope=wit.Scope.NAMESPACED if kind.scope is Scope.NAMESPACED else wit.Scope.CLUSTER,
    )


def _module_info(info: _dispatch.WireModuleInfo) -> Any:
    from wit_world.imports import bosun_reconciler_types as wit

    return wit.ModuleInfo(
        name=info.name,
        version=info.version,
        primary=_kind(info.primary),
        owns=[_kind(k) for k in info.owns],
        reads=[_kind(k) for k in info.reads],
        finalizer=info.finalizer,
        http_origins=list(info.http_origins),
    )


def _event(event: Event) -> Any:
    from wit_world.imports import bosun_reconciler_types as wit

    return wit.Event(
        event_type=wit.EventType.NORMAL if event.event_type is EventType.NORMAL else wit.EventType.WARNING,
        reason=event.reason,
        note=event.note,
        action=event.action_name,
    )


def _err(error: Error) -> Exception:
    from componentize_py_types import Err
    from wit_world.imports import bosun_reconciler_types as wit

    failure = wit.Failure(reason=error.reason, message=error.message)
    variant = wit.ReconcileError_Permanent if error.is_permanent else wit.ReconcileError_Retryable
    return Err(variant(failure))
