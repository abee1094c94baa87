"""Canned HTTP answers for the native harness, as the Rust SDK's ``HttpStub``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ._dispatch import HarnessFailure
from .http import HttpError, HttpErrorKind, Method, Request, Response, UrlParts


@dataclass
class HttpStub:
    """Answers matching requests in :class:`bosun.testing.Harness`.

    A stub matches by origin, optionally by path (the query too when the
    stub's URL has one) and by method::

        HttpStub.origin("https://dns.example:8081")             # anything there: 200
        HttpStub.get(zone_url).json({"rrsets": []}).once()      # one GET, then the next stub
        HttpStub.patch(zone_url).status(422).json({"error": "bad content"})
        HttpStub.origin("https://dns.example:8081").timeout()   # or .refused(), .connection_refused()
    """

    method: Method | None
    origin_url: str
    path: str | None
    answer_status: int = 200
    answer_headers: list[tuple[str, str]] = field(default_factory=list)
    answer_body: bytes = b""
    failure: tuple[HttpErrorKind, str] | None = None
    limit: int | None = None

    @classmethod
    def origin(cls, origin: str) -> "HttpStub":
        """Every request to ``origin`` (``scheme://host[:port]``), whatever its method and path."""
        origin_part, path = _split(origin)
        if path is not None:
            raise ValueError(f"HttpStub.origin({origin!r}) takes an origin without a path")
        return cls(None, origin_part, None)

    @classmethod
    def new(cls, method: Method, url: str) -> "HttpStub":
        """Requests with ``method`` to ``url``."""
        origin_part, path = _split(url)
        return cls(method, origin_part, path or "/")

    @classmethod
    def get(cls, url: str) -> "HttpStub":
        return cls.new(Method.GET, url)

    @classmethod
    def post(cls, url: str) -> "HttpStub":
        return cls.new(Method.POST, url)

    @classmethod
    def put(cls, url: str) -> "HttpStub":
        return cls.new(Method.PUT, url)

    @classmethod
    def patch(cls, url: str) -> "HttpStub":
        return cls.new(Method.PATCH, url)

    @classmethod
    def delete(cls, url: str) -> "HttpStub":
        return cls.new(Method.DELETE, url)

    def times(self, times: int) -> "HttpStub":
        """Answers at most ``times`` requests; then the next matching stub answers."""
        self.limit = times
        return self

    def once(self) -> "HttpStub":
        return self.times(1)

    def status(self, status: int) -> "HttpStub":
        self.answer_status, self.failure = status, None
        return self

    def header(self, name: str, value: str) -> "HttpStub":
        self.answer_headers.append((name, value))
        return self

    def body(self, body: bytes | str) -> "HttpStub":
        self.answer_body = body.encode() if isinstance(body, str) else bytes(body)
        return self

    def json(self, value: Any) -> "HttpStub":
        """Answers with ``value`` as JSON (and ``Content-Type: application/json``)."""
        return self.header("Content-Type", "application/json").body(json.dumps(value))

    def refused(self) -> "HttpStub":
        """Fails as the host does when the origin is not granted."""
        return self.fail(HttpErrorKind.REFUSED, "the origin is not granted to this module")

    def timeout(self) -> "HttpStub":
        return self.fail(HttpErrorKind.TIMEOUT, "HttpResponseTimeout")

    def connection_refused(self) -> "HttpStub":
        return self.fail(HttpErrorKind.CONNECTION, "ConnectionRefused")

    def fail(self, kind: HttpErrorKind, message: str) -> "HttpStub":
        self.failure = (kind, message)
        return self

    def matches(self, method: Method, parts: UrlParts) -> bool:
        if self.method is not None and self.method is not method:
            return False
        if self.origin_url != parts.origin.lower():
            return False
        if self.path is None:
            return True
        if "?" in self.path:
            return self.path == parts.path_with_query
        return self.path == parts.path_with_query.split("?", 1)[0]

    def specificity(self) -> int:
        return (self.method is not None) * 2 + (self.path is not None)

    def answer(self, request: Request) -> Response:
        if self.failure is not None:
            raise request.error(*self.failure)
        return Response(request, self.answer_status, list(self.answer_headers), self.answer_body)

    def __str__(self) -> str:
        method = self.method.value if self.method else "any method"
        return f"{method} {self.origin_url}{self.path or '/*'}"


def answer(
    stubs: list[HttpStub], used: list[int], origins: list[str], request: Request
) -> Response:
    """What the harness's host answers ``request`` with; records use in ``used``."""
    parts = request.url_parts()
    if not any(origin_covers(declared, parts.origin) for declared in origins):
        raise request.error(
            HttpErrorKind.REFUSED,
            f"{parts.origin} is not an origin this module declared (Metadata.http_origin); "
            "the host refuses it",
        )
    candidates = [
        (stub.specificity(), -index, index)
        for index, stub in enumerate(stubs)
        if stub.matches(request.method, parts) and (stub.limit is None or used[index] < stub.limit)
    ]
    if not candidates:
        known = "".join(f"\n    {s}" for s in stubs) or " none"
        raise HarnessFailure(
            f"unexpected HTTP request {request.method.value} {request.url}: "
            f"no HttpStub matches it; stubs given:{known}"
        )
    index = max(candidates)[2]
    used[index] += 1
    return stubs[index].answer(request)


def origin_covers(declared: str, origin: str) -> bool:
    """Whether the declared origin (``scheme://host[:port]``, or
    ``scheme://*.domain[:port]`` for its subdomains) covers ``origin``."""

    def split(text: str) -> tuple[str, str, int] | None:
        scheme, sep, rest = text.partition("://")
        if not sep:
            return None
        scheme = scheme.lower()
        default = {"http": 80, "https": 443}.get(scheme)
        if default is None:
            return None
        rest = rest.rstrip("/").lower()
        host, colon, port = rest.rpartition(":")
        if colon and (not host.endswith("]") or rest.startswith("[")) and port.isdigit():
            return scheme, host, int(port)
        return scheme, rest, default

    d, o = split(declared), split(origin)
    if d is None or o is None or d[0] != o[0] or d[2] != o[2]:
        return False
    if d[1].startswith("*."):
        domain = d[1][1:]
        return o[1].endswith(domain) and len(o[1]) > len(domain)
    return d[1] == o[1]


def _split(url: str) -> tuple[str, str | None]:
    parts = Request(Method.GET, url).url_parts()
    has_path = "/" in url.split("://", 1)[-1] or "?" in url.split("://", 1)[-1]
    return parts.origin.lower(), parts.path_with_query if has_path else None


__all__ = ["HttpStub", "HttpError"]
