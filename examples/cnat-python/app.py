"""The ``At`` controller ("cnat", cloud-native at) from the book *Programming
Kubernetes*, in Python: the same behaviour as ``examples/cnat``, against the
same CRD (``examples/cnat/crd.yaml``) and samples.

An ``At`` stays ``PENDING`` until ``spec.schedule`` (UTC, Go layout
``2006-01-02T15:04:05Z``), then a one-shot busybox Pod runs ``spec.command``
and the phase becomes ``RUNNING``; once the Pod has succeeded or failed the
phase is ``DONE``. A schedule that does not parse is a permanent error,
which the host shows as a condition and a warning event.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import TypedDict

import bosun
from bosun import Context, Event, Response, kinds
from bosun.types import Condition, ObjectMeta, Pod

AT = bosun.custom_kind("cnat.programming-kubernetes.info", "v1alpha1", "At")

# The Go layout the book uses for `spec.schedule`, 2006-01-02T15:04:05Z.
# Matched by hand rather than with datetime.strptime: strptime imports the
# module `_strptime` on first use, and componentize-py bundles only the
# modules imported while it builds the component.
SCHEDULE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")

PHASE_PENDING = "PENDING"
PHASE_RUNNING = "RUNNING"
PHASE_DONE = "DONE"


class AtSpec(TypedDict):
    schedule: str
    command: str


class AtStatus(TypedDict, total=False):
    phase: str
    observedGeneration: int
    conditions: list[Condition]


class At(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: AtSpec
    status: AtStatus


class Cnat(bosun.Reconciler):
    kind = AT

    def metadata(self) -> bosun.Metadata:
        return bosun.Metadata("cnat", "0.1.0").owns(kinds.Pod)

    def reconcile(self, at: At, ctx: Context) -> Response:  # type: ignore[override]
        phase = (at.get("status") or {}).get("phase", "")
        observed = ctx.child(kinds.Pod, pod_name(at))
        if phase == PHASE_DONE:
            # Done for good: keep the finished Pod (so it is not pruned) as
            # it was asked for, not as observed, whose defaulted fields would
            # be claimed and written again; never start it again once gone.
            done = status(PHASE_DONE)
            return done.child(pod(at), kinds.Pod) if observed is not None else done
        if phase == PHASE_RUNNING:
            pod_phase = ((observed or {}).get("status") or {}).get("phase")
            if pod_phase in ("Succeeded", "Failed"):
                return (
                    status(PHASE_DONE)
                    .child(pod(at), kinds.Pod)
                    .event(Event.normal("Done", f"pod {pod_name(at)} finished"))
                )
            return status(PHASE_RUNNING).child(pod(at), kinds.Pod)
        # No phase yet, or PENDING: wait for the schedule.
        remaining = time_until(at["spec"]["schedule"], ctx.now())
        if remaining > timedelta(0):
            return status(PHASE_PENDING).requeue_after(remaining)
        ctx.info(f"schedule {at['spec']['schedule']} reached; starting the command")
        command = at["spec"]["command"]
        return (
            status(PHASE_RUNNING)
            .child(pod(at), kinds.Pod)
            .event(
                Event.normal(
                    "Started", f"created pod {pod_name(at)} to run {json.dumps(command, ensure_ascii=False)}"
                ).action("Scheduling")
            )
        )


def status(phase: str) -> Response:
    return Response().status(AtStatus(phase=phase))


def time_until(schedule: str, now: datetime) -> timedelta:
    """How long until ``schedule``, zero once it has passed. A schedule that
    does not parse is a permanent error: the user has to fix the object."""
    try:
        fields = SCHEDULE.fullmatch(schedule)
        if fields is None:
            raise ValueError("expected YYYY-MM-DDTHH:MM:SSZ")
        due = datetime(*(int(f) for f in fields.groups()), tzinfo=timezone.utc)
    except ValueError as e:
        raise bosun.permanent(
            "InvalidSchedule",
            f"schedule {json.dumps(schedule)} is not in the layout 2006-01-02T15:04:05Z: {e}",
        ) from None
    return max(due - now, timedelta(0))


def pod_name(at: At) -> str:
    return f"{at['metadata']['name']}-pod"


def pod(at: At) -> Pod:
    """The one-shot Pod that runs the command, as the book's ``newPodForCR``."""
    metadata: ObjectMeta = {"name": pod_name(at), "labels": {"app": at["metadata"]["name"]}}
    if "namespace" in at["metadata"]:
        metadata["namespace"] = at["metadata"]["namespace"]
    return {
        "metadata": metadata,
        "spec": {
            "containers": [
                {
                    "name": "busybox",
                    "image": "busybox",
                    "command": at["spec"]["command"].split(" "),
                }
            ],
            "restartPolicy": "OnFailure",
        },
    }


WitWorld = bosun.export(Cnat)
