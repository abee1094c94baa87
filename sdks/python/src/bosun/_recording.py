"""A bosun recording (``bosun reconcile --record``, ``bosun record get``) as
a test fixture, as the Rust SDK's ``Harness::from_recording``.

The format is the host's ``bosun.dev/recording/v1`` (``host/src/recorder/format.rs``);
only what the harness can stand in for is read: the clock, the request
(children, settings, trigger, attempt), the objects the reads returned
(they become the harness's cache, so its read rules answer as the host
did) and each HTTP exchange (a stub answering once, in order). Random
bytes are not replayed natively.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from typing import Any

from ._stubs import HttpStub
from .context import Trigger
from .http import HttpErrorKind, Method

FORMAT_V1 = "bosun.dev/recording/v1"
"""The format this SDK reads."""

MAX_RECORDING_BYTES = 64 << 20
"""The largest recording read, as ``bosun reconcile --replay``'s cap."""

_TIMEOUTS = {"DnsTimeout", "ConnectionTimeout", "ConnectionReadTimeout", "HttpResponseTimeout"}


class RecordingError(ValueError):
    """Why a recording cannot be loaded: malformed, too large, another
    format version, or a call the harness cannot make."""


def load(source: Any) -> dict[str, Any]:
    """The recording in ``source``: a path (``str`` or ``os.PathLike``), JSON
    text (``str`` starting with ``{``, or ``bytes``) or an already parsed dict."""
    if isinstance(source, dict):
        recording = source
    else:
        if isinstance(source, (bytes, bytearray)):
            data = bytes(source)
        elif isinstance(source, str) and source.lstrip().startswith("{"):
            data = source.encode()
        elif isinstance(source, (str, os.PathLike)):
            data = _read_capped(os.fspath(source))
        else:
            raise RecordingError(
                f"a recording is a path, JSON text or a dict, not {type(source).__name__}"
            )
        if len(data) > MAX_RECORDING_BYTES:
            raise RecordingError(
                f"the recording is {len(data)} bytes; a recording is at most {MAX_RECORDING_BYTES} bytes"
            )
        try:
            recording = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise RecordingError(f"not a bosun recording: {e}") from None
    if not isinstance(recording, dict):
        raise RecordingError("not a bosun recording: it is not a JSON object")
    found = recording.get("format")
    if found is None:
        raise RecordingError('not a bosun recording: it has no "format"')
    if found != FORMAT_V1:
        raise RecordingError(
            f"recording format {json.dumps(found)} is not one this SDK reads (it reads {json.dumps(FORMAT_V1)})"
        )
    return recording


def _read_capped(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_RECORDING_BYTES + 1)
    except OSError as e:
        raise RecordingError(f"cannot read {path}: {e}") from None
    if len(data) > MAX_RECORDING_BYTES:
        raise RecordingError(
            f"the recording {path} is larger than {MAX_RECORDING_BYTES} bytes, a recording's cap"
        )
    return data


def fill(harness: Any, recording: dict[str, Any]) -> dict[str, Any]:
    """Loads ``recording`` into ``harness``; returns the recorded object."""
    call = recording.get("call", "reconcile")
    if call not in ("reconcile", "finalize"):
        raise RecordingError(f"the recording's call {call!r} is neither reconcile nor finalize")
    request = _field(recording, "request", dict, "request")
    obj = _json(_field(request, "object", str, "object"), "the recorded object")
    if not isinstance(obj, dict):
        raise RecordingError("the recorded object is not a JSON object")
    now = recording.get("now")
    if now is not None:
        if not isinstance(now, str):
            raise RecordingError(f"the recording's now {now!r} is not a time")
        try:
            harness.now(_nanos_to_micros(now))
        except ValueError as e:
            raise RecordingError(f"the recording's now {now!r}: {e}") from None
    for child in _list(request, "children"):
        if not isinstance(child, str):
            raise RecordingError("a recorded child is not JSON text")
        harness._children.append(child)
    settings = request.get("settings")
    if settings is not None:
        if not isinstance(settings, str):
            raise RecordingError("the recorded settings are not JSON text")
        harness.raw_settings(settings)
    trigger = request.get("trigger", "manual")
    try:
        trigger = Trigger(trigger)
    except ValueError:
        raise RecordingError(f"the recording's trigger {trigger!r} is unknown") from None
    attempt = request.get("attempt", 1)
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 0:
        raise RecordingError(f"the recording's attempt {attempt!r} is not a count")
    harness.trigger(trigger, attempt)
    for read in _list(recording, "reads"):
        for text in _read_objects(read):
            seen = _json(text, "a recorded read answer")
            if not isinstance(seen, dict):
                raise RecordingError("a recorded read answer is not an object")
            if seen not in harness._objects:
                harness._objects.append(seen)
    for exchange in _list(recording, "http"):
        harness.http(_stub(exchange))
    return obj


def _field(holder: dict[str, Any], name: str, kind: type, what: str) -> Any:
    value = holder.get(name)
    if not isinstance(value, kind):
        raise RecordingError(f"the recording's {what} is missing")
    return value


def _list(holder: dict[str, Any], name: str) -> list[Any]:
    value = holder.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordingError(f'the recording\'s "{name}" is not a list')
    return value


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise RecordingError(f"{what} is not JSON: {e}") from None


def _nanos_to_micros(now: str) -> str:
    # The host writes up to nanoseconds; datetime holds microseconds.
    return re.sub(r"(\.\d{6})\d+", r"\1", now)


def _read_objects(read: Any) -> list[str]:
    if not isinstance(read, dict):
        raise RecordingError("a recorded read is not an object")
    answer = read.get("answer") or {}
    if not isinstance(answer, dict):
        raise RecordingError("a recorded read's answer is not an object")
    texts = []
    found = answer.get("found")
    if isinstance(found, str):
        texts.append(found)
    texts.extend(i for i in answer.get("items") or [] if isinstance(i, str))
    return texts


def _stub(exchange: Any) -> HttpStub:
    if not isinstance(exchange, dict) or not isinstance(exchange.get("request"), dict):
        raise RecordingError("a recorded HTTP exchange has no request")
    request = exchange["request"]
    method = request.get("method", "GET")
    try:
        method = Method(method)
    except ValueError:
        raise RecordingError(f"a recorded HTTP method {method!r} is unknown") from None
    url = request.get("url")
    if not isinstance(url, str):
        raise RecordingError("a recorded HTTP request has no url")
    try:
        stub = HttpStub.new(method, url).once()
    except Exception as e:  # a URL the SDK cannot parse
        raise RecordingError(f"a recorded HTTP url {url!r}: {e}") from None
    response = exchange.get("response")
    if response is None:
        error = exchange.get("error") or ""
        if error == "HttpRequestDenied":
            return stub.refused()
        if error in _TIMEOUTS:
            return stub.timeout()
        if error.startswith("Connection") or error.startswith("Tls"):
            return stub.fail(HttpErrorKind.CONNECTION, error)
        return stub.fail(HttpErrorKind.PROTOCOL, error)
    if not isinstance(response, dict):
        raise RecordingError("a recorded HTTP response is not an object")
    status = response.get("status")
    if not isinstance(status, int) or isinstance(status, bool) or not 0 <= status <= 0xFFFF:
        raise RecordingError("a recorded HTTP response has no status")
    stub.status(status)
    for header in _list(response, "headers"):
        if (
            isinstance(header, list)
            and len(header) == 2
            and all(isinstance(h, str) for h in header)
        ):
            stub.header(header[0], header[1])
    body = response.get("body") or {}
    if not isinstance(body, dict):
        raise RecordingError("a recorded HTTP body is not an object")
    if isinstance(body.get("text"), str):
        stub.body(body["text"])
    elif isinstance(body.get("base64"), str):
        try:
            stub.body(base64.b64decode(body["base64"], validate=True))
        except (binascii.Error, ValueError):
            raise RecordingError("a recorded body is not valid base64") from None
    return stub
