"""Write Kubernetes reconcilers for the bosun host as WebAssembly components, in Python.

A reconciler is a function from one object (and what the host observed
about it) to the state you want: children to apply, a status to write,
events to record, when to look again. The host owns every connection to
the API server, applies what you return after checking it, and runs each
call in a fresh sandbox. This package mirrors the Rust SDK (`bosun-sdk`)::

    import bosun
    from bosun import kinds

    class Mirror(bosun.Reconciler):
        kind = kinds.ConfigMap

        def metadata(self):
            return bosun.Metadata("mirror", "0.1.0").owns(kinds.Secret)

        def reconcile(self, source, ctx):
            copy = {"metadata": {"name": source["metadata"]["name"] + "-copy"},
                    "stringData": source.get("data", {})}
            return bosun.Response().child(copy, kinds.Secret)

    WitWorld = bosun.export(Mirror)

Build the component with ``python -m bosun build app -o app.wasm``; test the
logic natively with :class:`bosun.testing.Harness`.
"""

from . import conditions, http, kinds, types
from ._component import export
from ._dispatch import Reconciler
from ._host import LogLevel
from ._kinds import Kind, Scope, custom_kind, plural_of
from .context import Context, Trigger, rfc3339
from .errors import Error, permanent, retryable
from .metadata import Metadata
from .response import Event, EventType, Finalized, Response

__all__ = [
    "Context",
    "Error",
    "Event",
    "EventType",
    "Finalized",
    "Kind",
    "LogLevel",
    "Metadata",
    "Reconciler",
    "Response",
    "Scope",
    "Trigger",
    "conditions",
    "http",
    "custom_kind",
    "export",
    "kinds",
    "permanent",
    "plural_of",
    "retryable",
    "rfc3339",
    "types",
    "wit_dir",
]


def wit_dir() -> str:
    """The directory holding the WIT this SDK targets (``bosun:reconciler@0.2.0``)."""
    from pathlib import Path

    return str(Path(__file__).parent / "wit")
