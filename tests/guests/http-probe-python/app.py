"""A Python test guest that sends one HTTP request through the SDK's client
and reports the answer in its status: for the host tests of the Python
SDK's wasi:http path (host/tests/python_guest.rs).

The origin it declares sits in ORIGIN's padded room after the marker, so a
test can patch the built component's bytes to a server on a port chosen at
run time (bosun_testenv::python_guests::http_probe_reaching), as misbehave's
origins are patched.
"""

from __future__ import annotations

import bosun
from bosun import kinds

# Exactly 64 characters of room after the marker, padded with spaces.
ORIGIN = "HTTP-PROBE-ORIGIN=" + "http://127.0.0.1:9".ljust(64)


def origin() -> str:
    return ORIGIN.split("=", 1)[1].strip()


class Probe(bosun.Reconciler):
    kind = kinds.ConfigMap

    def metadata(self):
        return bosun.Metadata("http-probe", "0.1.0").http_origin(origin())

    def reconcile(self, cm, ctx):
        data = cm.get("data", {})
        request = ctx.http().request(bosun.http.Method(data.get("method", "GET")), origin() + data.get("path", "/"))
        if "body" in data:
            request = request.json({"sent": data["body"]})
        answer = request.header("X-Probe", "1").send().error_for_status()
        return bosun.Response().status(
            {"code": answer.status, "body": answer.text(), "type": answer.header("content-type")}
        )


WitWorld = bosun.export(Probe)
