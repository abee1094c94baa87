"""The host functions a reconciler calls, behind one interface so that the
native test harness can stand in for the real host."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .http import Request, Response


class LogLevel(enum.Enum):
    """The severity of a log line."""

    TRACE = "trace"
    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


class HostError(Exception):
    """The host refused a read; the text is the host's reason."""


class Host(Protocol):
    """The host, as seen from a guest."""

    def log(self, level: LogLevel, message: str) -> None: ...

    def get_object(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> str | None: ...

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None, label_selector: str | None
    ) -> list[str]: ...

    def now(self) -> datetime: ...

    def http(self, request: "Request") -> "Response":
        """Sends a checked request and reads the whole response; raises
        :class:`bosun.http.HttpError`."""
        ...
