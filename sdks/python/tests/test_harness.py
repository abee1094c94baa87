"""The SDK through its native harness: the same JSON boundary as the host."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

import bosun
from bosun import Context, Event, Response, kinds
from bosun.testing import Harness

WIDGET = bosun.custom_kind("example.com", "v1", "Widget")


def widget(name: str = "w", namespace: str = "shop", **fields) -> dict:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": namespace, "generation": 3},
        **fields,
    }


class Reader(bosun.Reconciler):
    """Reads what the test asks it to, and reports it in the status."""

    kind = WIDGET

    def metadata(self):
        return bosun.Metadata("reader", "1.0.0").owns(kinds.ConfigMap).reads(kinds.Secret)

    def reconcile(self, obj, ctx: Context):
        spec = obj.get("spec", {})
        found = {}
        if "get" in spec:
            kind = getattr(kinds, spec["get"]["kind"])
            got = ctx.get(kind, spec["get"]["name"])
            found["got"] = None if got is None else got["metadata"]["name"]
        if "list" in spec:
            kind = getattr(kinds, spec["list"]["kind"])
            listed = ctx.list(kind, spec["list"].get("selector"))
            found["listed"] = sorted(o["metadata"]["name"] for o in listed)
        found["children"] = [c["metadata"]["name"] for c in ctx.children(kinds.ConfigMap)]
        found["settings"] = ctx.settings()
        found["trigger"] = ctx.trigger.value
        found["attempt"] = ctx.attempt
        return Response().status(found)


def secret(name, namespace="shop", labels=None):
    meta = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"metadata": meta}


def test_reads_answer_from_the_harness_cache_in_the_object_namespace():
    harness = (
        Harness(Reader)
        .object(secret("a"), kinds.Secret)
        .object(secret("a", namespace="elsewhere"), kinds.Secret)
        .object(secret("b", labels={"tier": "web"}), kinds.Secret)
    )
    out = harness.reconcile(widget(spec={"get": {"kind": "Secret", "name": "a"}}))
    assert out.status["got"] == "a"
    out = harness.reconcile(widget(spec={"get": {"kind": "Secret", "name": "missing"}}))
    assert out.status["got"] is None
    out = harness.reconcile(widget(spec={"list": {"kind": "Secret"}}))
    assert out.status["listed"] == ["a", "b"], "only the object's namespace"
    out = harness.reconcile(widget(spec={"list": {"kind": "Secret", "selector": "tier in (web,api)"}}))
    assert out.status["listed"] == ["b"]
    out = harness.reconcile(widget(spec={"list": {"kind": "Secret", "selector": "!tier"}}))
    assert out.status["listed"] == ["a"]


def test_a_read_of_an_undeclared_kind_is_a_retryable_read_failure():
    with pytest.raises(bosun.Error) as caught:
        Harness(Reader).reconcile(widget(spec={"get": {"kind": "Pod", "name": "x"}}))
    assert not caught.value.is_permanent
    assert caught.value.reason == "ReadFailed"
    assert "Pod.v1 is not a declared kind" in caught.value.message


def test_a_bad_selector_is_refused_like_the_host_refuses_it():
    with pytest.raises(bosun.Error) as caught:
        Harness(Reader).reconcile(widget(spec={"list": {"kind": "Secret", "selector": "a in (b"}}))
    assert caught.value.reason == "ReadFailed"


def test_children_settings_trigger_and_attempt_reach_the_context():
    out = (
        Harness(Reader)
        .child({"metadata": {"name": "c1"}}, kinds.ConfigMap)
        .child({"metadata": {"name": "s1"}}, kinds.Secret)
        .settings({"replicas": 2})
        .trigger(bosun.Trigger.RETRY, 4)
        .reconcile(widget())
    )
    assert out.status == {
        "children": ["c1"],
        "settings": {"replicas": 2},
        "trigger": "retry",
        "attempt": 4,
    }


def test_settings_that_are_not_json_are_a_permanent_error():
    with pytest.raises(bosun.Error) as caught:
        Harness(Reader).raw_settings("{not json").reconcile(widget())
    assert caught.value.is_permanent
    assert caught.value.reason == "InvalidSettings"


class Crashes(bosun.Reconciler):
    kind = WIDGET

    def metadata(self):
        return bosun.Metadata("crashes", "0.1.0")

    def reconcile(self, obj, ctx):
        return helper(obj)


def helper(obj):
    return obj["spec"]["missing"]


def test_an_uncaught_exception_is_a_retryable_error_with_message_and_traceback():
    with pytest.raises(bosun.Error) as caught:
        Harness(Crashes).reconcile(widget(spec={}))
    error = caught.value
    assert not error.is_permanent
    assert error.reason == "UncaughtException"
    assert error.message.startswith("KeyError: 'missing'")
    assert "Traceback (most recent call last)" in error.message
    assert "in helper" in error.message, "the innermost frame is kept"


class Raises(bosun.Reconciler):
    kind = WIDGET

    def metadata(self):
        return bosun.Metadata("raises", "0.1.0")

    def reconcile(self, obj, ctx):
        raise bosun.permanent("BadSpec", "spec.size must be positive")


def test_a_raised_bosun_error_arrives_as_raised():
    with pytest.raises(bosun.Error) as caught:
        Harness(Raises).reconcile(widget())
    assert caught.value == bosun.permanent("BadSpec", "spec.size must be positive")


class Returns(bosun.Reconciler):
    """Returns what the object's spec says, to check the response encoding."""

    kind = WIDGET

    def metadata(self):
        return bosun.Metadata("returns", "0.1.0").owns(kinds.ConfigMap)

    def reconcile(self, obj, ctx):
        case = obj["spec"]["case"]
        if case == "no-kind":
            return Response().child({"metadata": {"name": "x"}})
        if case == "nan":
            return Response().status({"ratio": float("nan")})
        if case == "not-a-response":
            return {"status": {}}
        if case == "full":
            return (
                Response()
                .child({"metadata": {"name": "cm"}, "data": {"k": "v"}}, kinds.ConfigMap)
                .status({"conditions": [ctx.condition("Ready", True, "Up", "all good")]})
                .requeue_after(timedelta(seconds=1, microseconds=1))
                .event(Event.warning("Odd", "something odd").action("Checking"))
            )
        raise AssertionError(case)


def test_a_child_without_apiversion_or_kind_fails_the_call():
    with pytest.raises(bosun.Error) as caught:
        Harness(Returns).reconcile(widget(spec={"case": "no-kind"}))
    assert caught.value.reason == "SerializationFailed"
    assert not caught.value.is_permanent


def test_nan_is_not_sent_as_json():
    with pytest.raises(bosun.Error) as caught:
        Harness(Returns).reconcile(widget(spec={"case": "nan"}))
    assert caught.value.reason == "SerializationFailed"


def test_returning_something_else_than_a_response_is_an_error_not_a_crash():
    with pytest.raises(bosun.Error) as caught:
        Harness(Returns).reconcile(widget(spec={"case": "not-a-response"}))
    assert caught.value.reason == "InvalidResponse"


def test_a_full_response_crosses_the_boundary():
    out = Harness(Returns).now("2026-01-02T03:04:05.678Z").reconcile(widget(spec={"case": "full"}))
    assert out.children_json == [
        {"metadata": {"name": "cm"}, "data": {"k": "v"}, "apiVersion": "v1", "kind": "ConfigMap"}
    ]
    assert out.child(kinds.ConfigMap, "cm") is not None
    assert out.status == {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Up",
                "message": "all good",
                "lastTransitionTime": "2026-01-02T03:04:05Z",
                "observedGeneration": 3,
            }
        ]
    }
    assert out.requeue_after_ms == 1001, "rounded up to the next millisecond"
    [event] = out.events
    assert (event.event_type, event.reason, event.note, event.action_name) == (
        bosun.EventType.WARNING,
        "Odd",
        "something odd",
        "Checking",
    )


class Finalizes(bosun.Reconciler):
    kind = WIDGET

    def metadata(self):
        return bosun.Metadata("finalizes", "0.1.0").finalizer("example.com/cleanup")

    def reconcile(self, obj, ctx):
        return Response()

    def finalize(self, obj, ctx):
        if obj["spec"].get("busy"):
            return bosun.Finalized.pending(2.5).event(Event.normal("Waiting", "still busy"))
        return bosun.Finalized.done()


def test_finalize_reports_pending_then_done():
    pending = Harness(Finalizes).finalize(widget(spec={"busy": True}))
    assert not pending.done
    assert pending.requeue_after == timedelta(milliseconds=2500)
    assert pending.events[0].reason == "Waiting"
    assert Harness(Finalizes).finalize(widget(spec={})).done
    assert Harness(Finalizes).metadata().finalizer == "example.com/cleanup"
    assert Harness(Reader).finalize(widget()).done, "the default finalize is done at once"


class OwnsItself(bosun.Reconciler):
    kind = WIDGET

    def metadata(self):
        return bosun.Metadata("loop", "0.1.0").owns(WIDGET)


def test_owning_the_primary_kind_fails_in_the_harness_as_it_fails_to_load():
    with pytest.raises(AssertionError, match="owns its own primary kind"):
        Harness(OwnsItself).metadata()


def test_an_object_that_is_not_a_json_object_is_a_permanent_error():
    from bosun import _dispatch

    with pytest.raises(bosun.Error) as caught:
        _dispatch.reconcile(Reader, _dispatch.WireRequest(object="[1]"), host=None)  # type: ignore[arg-type]
    assert caught.value.is_permanent
    assert caught.value.reason == "InvalidObject"


def test_metadata_rejects_what_is_not_a_kind():
    with pytest.raises(TypeError, match="bosun Kind"):
        bosun.Metadata("m", "1").owns("pods")  # type: ignore[arg-type]


def test_the_object_reaches_the_reconciler_as_the_host_sends_it():
    class Echo(bosun.Reconciler):
        kind = WIDGET

        def metadata(self):
            return bosun.Metadata("echo", "0.1.0")

        def reconcile(self, obj, ctx):
            return Response().status({"seen": json.dumps(obj, sort_keys=True)})

    obj = widget(spec={"x": [1, 2.5, None, "é"]})
    assert json.loads(Harness(Echo).reconcile(obj).status["seen"]) == obj
