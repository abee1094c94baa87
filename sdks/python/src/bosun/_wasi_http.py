"""Sending a request through ``wasi:http/outgoing-handler``, inside a component.

Blocking calls only (``pollable.block``, ``blocking-read``,
``blocking-write-and-flush``): the reconciler API is synchronous, and
componentize-py's asyncio ``poll_loop`` cannot be used beside bosun's WIT
(both packages have an interface ``types``). The bindings exist only inside
the component build, so they are imported when a request is sent.
"""

from __future__ import annotations

from typing import Any

from .http import HttpError, HttpErrorKind, Method, Request, Response

# `blocking-write-and-flush` takes at most 4096 bytes at a time.
WRITE_CHUNK = 4096
# How much one read asks for.
READ_CHUNK = 64 * 1024

# How each wasi:http error code is classified, as the Rust SDK does.
_KINDS = {
    "HttpRequestDenied": HttpErrorKind.REFUSED,
    "DestinationIpProhibited": HttpErrorKind.REFUSED,
    "HttpResponseBodySize": HttpErrorKind.REFUSED,
    "HttpRequestBodySize": HttpErrorKind.REFUSED,
    "DnsTimeout": HttpErrorKind.TIMEOUT,
    "ConnectionTimeout": HttpErrorKind.TIMEOUT,
    "ConnectionReadTimeout": HttpErrorKind.TIMEOUT,
    "ConnectionWriteTimeout": HttpErrorKind.TIMEOUT,
    "HttpResponseTimeout": HttpErrorKind.TIMEOUT,
    "DnsError": HttpErrorKind.CONNECTION,
    "DestinationNotFound": HttpErrorKind.CONNECTION,
    "DestinationUnavailable": HttpErrorKind.CONNECTION,
    "DestinationIpUnroutable": HttpErrorKind.CONNECTION,
    "ConnectionRefused": HttpErrorKind.CONNECTION,
    "ConnectionTerminated": HttpErrorKind.CONNECTION,
    "ConnectionLimitReached": HttpErrorKind.CONNECTION,
    "TlsProtocolError": HttpErrorKind.CONNECTION,
    "TlsCertificateError": HttpErrorKind.CONNECTION,
    "TlsAlertReceived": HttpErrorKind.CONNECTION,
    "HttpRequestMethodInvalid": HttpErrorKind.INVALID_REQUEST,
    "HttpRequestUriInvalid": HttpErrorKind.INVALID_REQUEST,
    "HttpRequestUriTooLong": HttpErrorKind.INVALID_REQUEST,
    "HttpRequestHeaderSectionSize": HttpErrorKind.INVALID_REQUEST,
    "HttpRequestHeaderSize": HttpErrorKind.INVALID_REQUEST,
}


def classify(code: Any) -> tuple[HttpErrorKind, str]:
    """The kind and a description of a ``wasi:http`` ``error-code`` value
    (a class named ``ErrorCode_<Case>`` in componentize-py's bindings)."""
    case = type(code).__name__.removeprefix("ErrorCode_")
    kind = _KINDS.get(case, HttpErrorKind.PROTOCOL)
    if case == "HttpRequestDenied":
        return kind, "the origin is not granted to this module"
    value = getattr(code, "value", None)
    return kind, case if value is None else f"{case}: {value}"


def send(request: Request) -> Response:
    from componentize_py_types import Err
    from wit_world.imports import outgoing_handler, streams
    from wit_world.imports import wasi_http_types as t

    parts = request.url_parts()

    def fail(kind: HttpErrorKind, message: str) -> HttpError:
        return request.error(kind, message)

    def from_code(code: Any) -> HttpError:
        kind, message = classify(code)
        return fail(kind, message)

    def from_stream(e: Any) -> HttpError:
        if isinstance(e, streams.StreamError_Closed):
            return fail(HttpErrorKind.CONNECTION, "the connection closed early")
        code = t.http_error_code(e.value)
        if code is None:
            return fail(HttpErrorKind.CONNECTION, e.value.to_debug_string())
        return from_code(code)

    try:
        headers = t.Fields.from_list([(n, v.encode()) for n, v in request.headers])
    except Err as e:
        raise fail(HttpErrorKind.INVALID_REQUEST, f"headers: {e.value}") from None
    outgoing = t.OutgoingRequest(headers)
    methods = {
        Method.GET: t.Method_Get(),
        Method.HEAD: t.Method_Head(),
        Method.POST: t.Method_Post(),
        Method.PUT: t.Method_Put(),
        Method.PATCH: t.Method_Patch(),
        Method.DELETE: t.Method_Delete(),
        Method.OPTIONS: t.Method_Options(),
    }
    for what, setter, value in (
        ("method", outgoing.set_method, methods[request.method]),
        ("scheme", outgoing.set_scheme, t.Scheme_Https() if parts.https else t.Scheme_Http()),
        ("host", outgoing.set_authority, parts.authority),
        ("path", outgoing.set_path_with_query, parts.path_with_query),
    ):
        try:
            setter(value)
        except Err:
            raise fail(HttpErrorKind.INVALID_REQUEST, f"the {what} is not accepted") from None
    body = outgoing.body()
    options = None
    if request.timeout is not None:
        options = t.RequestOptions()
        nanos = int(request.timeout.total_seconds() * 1e9)
        # A host may not support a timeout; its own bound applies then.
        for setter in (
            options.set_connect_timeout,
            options.set_first_byte_timeout,
            options.set_between_bytes_timeout,
        ):
            try:
                setter(nanos)
            except Err:
                pass
    try:
        future = outgoing_handler.handle(outgoing, options)
    except Err as e:
        raise from_code(e.value) from None

    stream = body.write()
    try:
        for start in range(0, len(request.body), WRITE_CHUNK):
            stream.blocking_write_and_flush(request.body[start : start + WRITE_CHUNK])
    except Err as e:
        raise from_stream(e.value) from None
    finally:
        # A child resource: it must go before its body is finished.
        stream.__exit__(None, None, None)
    try:
        t.OutgoingBody.finish(body, None)
    except Err as e:
        raise from_code(e.value) from None

    pollable = future.subscribe()
    pollable.block()
    pollable.__exit__(None, None, None)
    answer = future.get()
    if answer is None or isinstance(answer, Err):
        raise fail(HttpErrorKind.PROTOCOL, "the response was lost")
    inner = answer.value
    if isinstance(inner, Err):
        raise from_code(inner.value)
    incoming = inner.value
    status = incoming.status()
    response_headers = [
        (n, v.decode("utf-8", errors="replace")) for n, v in incoming.headers().entries()
    ]
    incoming_body = incoming.consume()
    read = incoming_body.stream()
    chunks = []
    try:
        while True:
            chunks.append(read.blocking_read(READ_CHUNK))
    except Err as e:
        if not isinstance(e.value, streams.StreamError_Closed):
            raise from_stream(e.value) from None
    finally:
        read.__exit__(None, None, None)
    return Response(request, status, response_headers, b"".join(chunks))
