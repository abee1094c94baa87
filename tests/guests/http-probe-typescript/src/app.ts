// A test guest that sends one HTTP request through the TypeScript SDK's
// client and reports the answer in its status: for the host tests of the
// SDK's wasi:http path (host/tests/typescript_http.rs).
//
// The origin it declares sits in ORIGIN's padded room after the marker, so
// a test can patch the built component's bytes to a server on a port chosen
// at run time (bosun_testenv::typescript_guests::http_probe_reaching), as
// http-probe-python's is. The marker is joined at run time: the snapshot
// the component starts from then holds it once, in the joined string, and
// not again in the module's source text.

import { http, Metadata, Response, kinds, type Context } from "@bosun/sdk";

// Exactly 64 characters of room after the marker, padded with spaces.
const ORIGIN = "HTTP-PROBE-" + ("ORIGIN=" + "http://127.0.0.1:9".padEnd(64));

function origin(): string {
  return ORIGIN.slice(ORIGIN.indexOf("=") + 1).trim();
}

interface Probe {
  data?: { method?: string; path?: string; body?: string };
}

export default class HttpProbe {
  readonly kind = kinds.ConfigMap;

  metadata() {
    return new Metadata("http-probe", "0.1.0").httpOrigin(origin());
  }

  reconcile(cm: Probe, ctx: Context) {
    const data = cm.data ?? {};
    const method = data.method ?? "GET";
    if (!http.isMethod(method)) throw new Error(`${method} is not a method`);
    const request = ctx.http().request(method, origin() + (data.path ?? "/"));
    if (data.body !== undefined) request.json({ sent: data.body });
    const answer = request.header("X-Probe", "1").send().errorForStatus();
    return new Response().status({ code: answer.status, body: answer.text(), type: answer.header("content-type") });
  }
}
