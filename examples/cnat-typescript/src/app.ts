/**
 * The `At` controller ("cnat", cloud-native at) from the book *Programming
 * Kubernetes*, in TypeScript: the same behaviour as `examples/cnat` and
 * `examples/cnat-python`, against the same CRD (`examples/cnat/crd.yaml`)
 * and samples.
 *
 * An `At` stays `PENDING` until `spec.schedule` (UTC, Go layout
 * `2006-01-02T15:04:05Z`), then a one-shot busybox Pod runs `spec.command`
 * and the phase becomes `RUNNING`; once the Pod has succeeded or failed the
 * phase is `DONE`. A schedule that does not parse is a permanent error,
 * which the host shows as a condition and a warning event.
 */

import {
  Event,
  Metadata,
  Response,
  customKind,
  kinds,
  permanent,
  type Condition,
  type Context,
  type KubeObject,
  type ObjectMeta,
  type Pod,
  type Reconciler,
} from "@bosun/sdk";

export const AT = customKind("cnat.programming-kubernetes.info", "v1alpha1", "At");

// The Go layout the book uses for `spec.schedule`, 2006-01-02T15:04:05Z.
// Matched by hand: Date.parse accepts many other forms (offsets, dates
// alone), which the Rust cnat rejects.
const SCHEDULE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z$/;

export const PHASE_PENDING = "PENDING";
export const PHASE_RUNNING = "RUNNING";
export const PHASE_DONE = "DONE";

export interface At extends KubeObject {
  metadata: ObjectMeta & { name: string };
  spec: { schedule: string; command: string };
  status?: { phase?: string; observedGeneration?: number; conditions?: Condition[] };
}

export class Cnat implements Reconciler<At> {
  readonly kind = AT;

  metadata(): Metadata {
    return new Metadata("cnat", "0.1.0").owns(kinds.Pod);
  }

  reconcile(at: At, ctx: Context): Response {
    const phase = at.status?.phase ?? "";
    const observed = ctx.child<Pod>(kinds.Pod, podName(at));
    if (phase === PHASE_DONE) {
      // Done for good: keep the finished Pod (so it is not pruned) as it was
      // asked for, not as observed, whose defaulted fields would be claimed
      // and written again; never start it again once gone.
      const done = status(PHASE_DONE);
      return observed !== undefined ? done.child(pod(at), kinds.Pod) : done;
    }
    if (phase === PHASE_RUNNING) {
      const podPhase = observed?.status?.phase;
      if (podPhase === "Succeeded" || podPhase === "Failed") {
        return status(PHASE_DONE)
          .child(pod(at), kinds.Pod)
          .event(Event.normal("Done", `pod ${podName(at)} finished`));
      }
      return status(PHASE_RUNNING).child(pod(at), kinds.Pod);
    }
    // No phase yet, or PENDING: wait for the schedule.
    const remaining = timeUntil(at.spec.schedule, ctx.now());
    if (remaining > 0) {
      return status(PHASE_PENDING).requeueAfter(remaining);
    }
    ctx.info(`schedule ${at.spec.schedule} reached; starting the command`);
    return status(PHASE_RUNNING)
      .child(pod(at), kinds.Pod)
      .event(
        Event.normal("Started", `created pod ${podName(at)} to run ${JSON.stringify(at.spec.command)}`).action(
          "Scheduling",
        ),
      );
  }
}

export default Cnat;

function status(phase: string): Response {
  return new Response().status({ phase });
}

/**
 * Milliseconds until `schedule`, zero once it has passed. A schedule that
 * does not parse is a permanent error: the user has to fix the object.
 */
export function timeUntil(schedule: string, now: Date): number {
  const fields = SCHEDULE.exec(schedule);
  const bad = (why: string) =>
    permanent(
      "InvalidSchedule",
      `schedule ${JSON.stringify(schedule)} is not in the layout 2006-01-02T15:04:05Z: ${why}`,
    );
  if (fields === null) throw bad("expected YYYY-MM-DDTHH:MM:SSZ");
  const [year, month, day, hour, minute, second] = fields.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const due = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  // Date.UTC rolls 2026-02-30 over into March: a date that does not exist
  // comes back with other fields.
  if (
    due.getUTCFullYear() !== year ||
    due.getUTCMonth() !== month - 1 ||
    due.getUTCDate() !== day ||
    due.getUTCHours() !== hour ||
    due.getUTCMinutes() !== minute ||
    due.getUTCSeconds() !== second
  ) {
    throw bad("no such date or time");
  }
  return Math.max(due.getTime() - now.getTime(), 0);
}

export function podName(at: At): string {
  return `${at.metadata.name}-pod`;
}

/** The one-shot Pod that runs the command, as the book's `newPodForCR`. */
export function pod(at: At): Pod {
  const metadata: ObjectMeta = { name: podName(at), labels: { app: at.metadata.name } };
  if (at.metadata.namespace !== undefined) metadata.namespace = at.metadata.namespace;
  return {
    metadata,
    spec: {
      containers: [{ name: "busybox", image: "busybox", command: at.spec.command.split(" ") }],
      restartPolicy: "OnFailure",
    },
  };
}
