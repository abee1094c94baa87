/**
 * The host functions a reconciler calls, behind one interface so that the
 * native test harness can stand in for the real host.
 */

import type { HttpRequest, HttpResponse } from "./http.js";

/** The severity of a log line (the WIT enum's cases). */
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error";

/** The host refused a read; the message is the host's reason. */
export class HostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HostError";
  }
}

/** The host, as seen from a guest. Objects cross as JSON text. */
export interface Host {
  log(level: LogLevel, message: string): void;
  /** Throws {@link HostError} when the host refuses the read. */
  getObject(apiVersion: string, kind: string, namespace: string | undefined, name: string): string | undefined;
  /** Throws {@link HostError} when the host refuses the read. */
  listObjects(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    labelSelector: string | undefined,
  ): string[];
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /**
   * Sends a checked request and reads the whole response; throws
   * `HttpError` when no response came (refused, timed out, connection failed).
   */
  http(request: HttpRequest): HttpResponse;
}
