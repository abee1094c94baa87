"""A blocking HTTP client for reconcilers, over ``wasi:http/outgoing-handler``.

The Rust SDK's client (``guest-sdk/src/http.rs``) in Python, with the same
error classification::

    zone = (
        ctx.http()
        .get("https://dns.example:8081/api/v1/servers/localhost/zones/example.org.")
        .header("Accept", "application/json")
        .send()               # refused, timed out, connection failed: an HttpError
        .error_for_status()   # 4xx and 5xx: an HttpError too
        .json()
    )

An :class:`HttpError` is a :class:`bosun.Error`: left uncaught it fails the
reconcile, classified — a 4xx (but 408 and 429) and a request that cannot
be made as written are permanent, everything else retryable, a refusal
included (the operator may yet grant the origin).

Nothing is reachable unless granted: a module declares its origins with
``Metadata.http_origin``, the operator grants them, and the host checks
every request and adds the credentials the grant binds to an origin. The
client follows no redirects. Natively, through ``bosun.testing.Harness``,
no request reaches the network: the harness answers from stubs.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .errors import Error

if TYPE_CHECKING:
    from ._host import Host

# How much of an error body `Response.error_for_status` quotes.
MAX_QUOTED_BODY = 512

_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")


class Method(enum.Enum):
    """An HTTP method."""

    GET = "GET"
    HEAD = "HEAD"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    OPTIONS = "OPTIONS"


class HttpErrorKind(enum.Enum):
    """What kind of failure an :class:`HttpError` is."""

    REFUSED = "HttpRefused"
    """The host refused the request: origin or address not granted, or a budget spent."""
    TIMEOUT = "HttpTimeout"
    """No answer in time (connect, first byte, between bytes, or the call's deadline)."""
    CONNECTION = "HttpConnection"
    """The connection failed: DNS, refused, reset, TLS."""
    STATUS = "HttpStatus"
    """The server answered 4xx or 5xx (``Response.error_for_status``)."""
    INVALID_REQUEST = "HttpInvalidRequest"
    """The request could not be made as written (URL, header)."""
    BODY = "HttpBody"
    """The response body could not be read or parsed."""
    PROTOCOL = "HttpProtocol"
    """Another protocol failure."""


_WHAT = {
    HttpErrorKind.REFUSED: "refused by the host",
    HttpErrorKind.TIMEOUT: "timed out",
    HttpErrorKind.CONNECTION: "connection failed",
    HttpErrorKind.STATUS: "failed",
    HttpErrorKind.INVALID_REQUEST: "cannot be sent",
    HttpErrorKind.BODY: "answered badly",
    HttpErrorKind.PROTOCOL: "failed",
}


class HttpError(Error):
    """Why a request failed; names the method and URL. A :class:`bosun.Error`
    whose reason is the kind's (``HttpRefused``, ``HttpStatus``, …)."""

    def __init__(
        self,
        kind: HttpErrorKind,
        method: Method,
        url: str,
        message: str,
        status: int | None = None,
    ) -> None:
        permanent = kind is HttpErrorKind.INVALID_REQUEST or (
            kind is HttpErrorKind.STATUS
            and status is not None
            and 400 <= status < 500
            and status not in (408, 429)
        )
        super().__init__(
            kind.value, f"{method.value} {url} {_WHAT[kind]}: {message}", permanent=permanent
        )
        self.kind = kind
        self.method = method
        self.url = url
        self.detail = message
        self.status = status


@dataclass(frozen=True)
class UrlParts:
    """A URL split the way ``wasi:http`` takes it."""

    https: bool
    authority: str
    path_with_query: str

    @property
    def origin(self) -> str:
        """``scheme://host[:port]``, the origin the grant is checked against."""
        return f"{'https' if self.https else 'http'}://{self.authority}"


@dataclass
class Request:
    """A request as sent: what the harness records."""

    method: Method
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    timeout: timedelta | None = None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive)."""
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def url_parts(self) -> UrlParts:
        """The URL split into its parts; raises :class:`HttpError` when it cannot be sent."""
        url = self.url
        if url.startswith("https://"):
            https, rest = True, url[len("https://"):]
        elif url.startswith("http://"):
            https, rest = False, url[len("http://"):]
        else:
            raise self.error(HttpErrorKind.INVALID_REQUEST, "only http:// and https:// URLs can be requested")
        if any(c.isspace() or ord(c) < 0x20 or ord(c) >= 0x7F for c in url):
            raise self.error(
                HttpErrorKind.INVALID_REQUEST,
                "the URL holds spaces, control or non-ASCII characters; percent-encode them",
            )
        rest = rest.split("#", 1)[0]
        end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
        authority, path = rest[:end], rest[end:]
        if not authority:
            raise self.error(HttpErrorKind.INVALID_REQUEST, "the URL names no host")
        if "@" in authority:
            # Credentials come from the grant, bound to the origin by the host.
            raise self.error(
                HttpErrorKind.INVALID_REQUEST,
                "credentials in a URL are not sent; the operator binds them to the origin in the grant",
            )
        path = path or "/"
        if path.startswith("?"):
            raise self.error(HttpErrorKind.INVALID_REQUEST, "the URL's query needs a path before it (`/?…`)")
        return UrlParts(https, authority, path)

    def check(self) -> None:
        """Raises :class:`HttpError` for a request that cannot be sent as written."""
        self.url_parts()
        for name, value in self.headers:
            if not _TOKEN.fullmatch(name):
                raise self.error(HttpErrorKind.INVALID_REQUEST, f"header name {name!r} is not a token")
            if any(c in value for c in "\r\n\0"):
                raise self.error(HttpErrorKind.INVALID_REQUEST, f"header {name} holds a line break or NUL")

    def error(self, kind: HttpErrorKind, message: str, status: int | None = None) -> HttpError:
        """An error of ``kind`` about this request."""
        return HttpError(kind, self.method, self.url, message, status)


class Response:
    """A response, read whole."""

    def __init__(
        self, request: Request, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self._request = request

    @property
    def is_success(self) -> bool:
        """True for 2xx."""
        return 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive)."""
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)

    def text(self) -> str:
        """The body as text (invalid UTF-8 replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON; a body that does not parse is an
        :class:`HttpError` of kind ``BODY``."""
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise self._request.error(
                HttpErrorKind.BODY, f"the {self.status} response is not the JSON expected: {e}"
            ) from None

    def error_for_status(self) -> "Response":
        """The response itself below 400; an :class:`HttpError` of kind
        ``STATUS`` for 4xx and 5xx, quoting the start of the body."""
        if self.status < 400:
            return self
        quoted = self.text().strip().replace("\r", " ").replace("\n", " ")
        if len(quoted.encode()) > MAX_QUOTED_BODY:
            quoted = quoted.encode()[:MAX_QUOTED_BODY].decode("utf-8", errors="ignore") + "…"
        message = f"status {self.status}: {quoted}" if quoted else f"status {self.status}"
        raise self._request.error(HttpErrorKind.STATUS, message, self.status)


class RequestBuilder:
    """A request being built; :meth:`send` makes it."""

    def __init__(self, host: "Host", method: Method, url: str) -> None:
        self._host = host
        self.request = Request(method, url)

    def header(self, name: str, value: str) -> "RequestBuilder":
        """Adds a header (appended: a name may repeat)."""
        self.request.headers.append((name, value))
        return self

    def body(self, body: bytes | str) -> "RequestBuilder":
        """Sets the body."""
        self.request.body = body.encode() if isinstance(body, str) else bytes(body)
        return self

    def json(self, value: Any) -> "RequestBuilder":
        """Sets the body to ``value`` as JSON, with ``Content-Type: application/json``."""
        self.request.body = json.dumps(value, separators=(",", ":")).encode()
        if self.request.header("content-type") is None:
            self.request.headers.append(("Content-Type", "application/json"))
        return self

    def timeout(self, timeout: timedelta | float) -> "RequestBuilder":
        """Bounds the time to connect, to the first byte and between bytes
        (the host bounds each request by the call's deadline anyway)."""
        self.request.timeout = timeout if isinstance(timeout, timedelta) else timedelta(seconds=timeout)
        return self

    def send(self) -> Response:
        """Sends the request and reads the whole response. Any status is a
        response; :meth:`Response.error_for_status` turns 4xx and 5xx into errors."""
        self.request.check()
        return self._host.http(self.request)


class Client:
    """Requests to the origins the module declared and the operator granted."""

    def __init__(self, host: "Host") -> None:
        self._host = host

    def request(self, method: Method, url: str) -> RequestBuilder:
        return RequestBuilder(self._host, method, url)

    def get(self, url: str) -> RequestBuilder:
        return self.request(Method.GET, url)

    def post(self, url: str) -> RequestBuilder:
        return self.request(Method.POST, url)

    def put(self, url: str) -> RequestBuilder:
        return self.request(Method.PUT, url)

    def patch(self, url: str) -> RequestBuilder:
        return self.request(Method.PATCH, url)

    def delete(self, url: str) -> RequestBuilder:
        return self.request(Method.DELETE, url)
