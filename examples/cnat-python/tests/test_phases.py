"""cnat's behaviour, natively, through the SDK's harness: the same cases as
examples/cnat/tests/phases.rs."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

import bosun
from bosun import kinds
from bosun.testing import Harness

import app
from app import PHASE_DONE, PHASE_PENDING, PHASE_RUNNING, Cnat


def at(schedule: str, phase: str | None = None) -> app.At:
    obj: app.At = {
        "apiVersion": "cnat.programming-kubernetes.info/v1alpha1",
        "kind": "At",
        "metadata": {
            "name": "example-at",
            "namespace": "default",
            "uid": "8c6a1c9e-0000-4000-8000-000000000001",
            "generation": 1,
        },
        "spec": {"schedule": schedule, "command": "echo YAY"},
    }
    if phase is not None:
        obj["status"] = {"phase": phase}
    return obj


def phase(outcome) -> str:
    assert outcome.status is not None, "cnat always sets a status"
    return outcome.status["phase"]


def test_waits_for_the_schedule_and_requeues_for_the_remaining_time():
    outcome = Harness(Cnat).now("2026-12-01T09:59:00Z").reconcile(at("2026-12-01T10:00:00Z"))
    assert phase(outcome) == PHASE_PENDING
    assert outcome.requeue_after == timedelta(seconds=60)
    assert outcome.requeue_after_ms == 60_000
    assert outcome.children(kinds.Pod) == []


def test_rounds_a_part_of_a_millisecond_up():
    outcome = (
        Harness(Cnat)
        .now("2026-12-01T09:59:59.999999+00:00")
        .reconcile(at("2026-12-01T10:00:00Z"))
    )
    assert outcome.requeue_after_ms == 1, "never requeued before the schedule"


def test_starts_the_pod_when_due():
    outcome = (
        Harness(Cnat)
        .now("2026-12-01T10:00:01Z")
        .reconcile(at("2026-12-01T10:00:00Z", PHASE_PENDING))
    )
    assert phase(outcome) == PHASE_RUNNING
    assert outcome.requeue_after is None
    pods = outcome.children(kinds.Pod)
    assert len(pods) == 1
    pod = pods[0]
    assert pod["metadata"]["name"] == "example-at-pod"
    assert pod["metadata"]["labels"]["app"] == "example-at"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "OnFailure"
    assert spec["containers"] == [
        {"name": "busybox", "image": "busybox", "command": ["echo", "YAY"]}
    ]
    assert outcome.events[0].reason == "Started"
    assert outcome.events[0].action_name == "Scheduling"
    assert outcome.events[0].note == 'created pod example-at-pod to run "echo YAY"'
    assert any("schedule 2026-12-01T10:00:00Z reached" in line for _, line in outcome.logs)


def test_stays_running_while_the_pod_runs_and_is_done_when_it_finishes():
    running = at("2026-12-01T10:00:00Z", PHASE_RUNNING)
    pod = {**app.pod(running), "status": {"phase": "Running"}}
    outcome = Harness(Cnat).child(pod, kinds.Pod).reconcile(running)
    assert phase(outcome) == PHASE_RUNNING
    assert len(outcome.children(kinds.Pod)) == 1, "the pod stays desired"
    assert outcome.events == []

    for finished in ("Succeeded", "Failed"):
        pod["status"]["phase"] = finished
        outcome = Harness(Cnat).child(pod, kinds.Pod).reconcile(running)
        assert phase(outcome) == PHASE_DONE, f"pod {finished}"
        assert len(outcome.children(kinds.Pod)) == 1, "the finished pod is kept, not pruned"
        assert outcome.events[0].reason == "Done"


def test_done_keeps_the_pod_as_it_was_applied_not_as_observed():
    done = at("2026-12-01T10:00:00Z", PHASE_DONE)
    applied = {"apiVersion": "v1", "kind": "Pod", **app.pod(done)}
    observed = copy.deepcopy(applied)
    observed["spec"]["dnsPolicy"] = "ClusterFirst"
    observed["status"] = {"phase": "Succeeded"}
    outcome = Harness(Cnat).child(observed).reconcile(done)
    assert phase(outcome) == PHASE_DONE
    assert outcome.children(kinds.Pod) == [applied]


def test_done_is_final():
    outcome = Harness(Cnat).reconcile(at("2026-12-01T10:00:00Z", PHASE_DONE))
    assert phase(outcome) == PHASE_DONE
    assert outcome.children(kinds.Pod) == [], "no new pod once done"


def test_a_bad_schedule_is_a_permanent_error():
    with pytest.raises(bosun.Error) as caught:
        Harness(Cnat).reconcile(at("next tuesday"))
    assert caught.value.is_permanent
    assert caught.value.reason == "InvalidSchedule"
    assert '"next tuesday"' in caught.value.message
    # The book's layout has no offset: anything else is rejected too.
    with pytest.raises(bosun.Error) as caught:
        Harness(Cnat).reconcile(at("2026-12-01T10:00:00+02:00"))
    assert caught.value.is_permanent


def test_declares_pods_as_its_only_owned_kind():
    info = Harness(Cnat).metadata()
    assert info.name == "cnat"
    assert info.primary.group == "cnat.programming-kubernetes.info"
    assert info.primary.kind == "At"
    assert info.primary.plural == "ats"
    assert [k.kind for k in info.owns] == ["Pod"]
    assert info.finalizer is None


def test_a_date_that_does_not_exist_is_a_permanent_error():
    with pytest.raises(bosun.Error) as caught:
        Harness(Cnat).reconcile(at("2026-02-30T10:00:00Z"))
    assert caught.value.is_permanent
    assert caught.value.reason == "InvalidSchedule"
