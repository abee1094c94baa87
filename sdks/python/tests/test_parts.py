"""The SDK's pure parts: kinds, conditions, delays, the shipped WIT."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

import bosun
from bosun import conditions, kinds
from bosun.response import delay_ms


@pytest.mark.parametrize(
    "kind,plural",
    [("At", "ats"), ("Policy", "policies"), ("Gateway", "gateways"), ("Ingress", "ingresses"),
     ("Box", "boxes"), ("Patch", "patches"), ("Endpoints", "endpoints"), ("DNSRecord", "dnsrecords")],
)
def test_plural_follows_kube_derive(kind, plural):
    assert bosun.plural_of(kind) == plural


def test_catalogue_kinds_carry_their_api_version_and_scope():
    assert kinds.Pod.api_version == "v1"
    assert kinds.Deployment.api_version == "apps/v1"
    assert kinds.Namespace.scope is bosun.Scope.CLUSTER
    assert kinds.Pod in kinds.ALL and len(kinds.ALL) == len({k.kind for k in kinds.ALL})


def cond(status, reason, at, generation=1):
    return {"type": "Ready", "status": status, "reason": reason, "message": f"{reason} message",
            "lastTransitionTime": at, "observedGeneration": generation}


def test_conditions_keep_the_transition_time_while_status_is_unchanged():
    cs = [cond("True", "Up", "2026-01-01T00:00:00Z")]
    assert conditions.set(cs, cond("True", "StillUp", "2026-02-01T00:00:00Z", 2))
    ready = conditions.find(cs, "Ready")
    assert ready["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert (ready["reason"], ready["observedGeneration"]) == ("StillUp", 2)


def test_conditions_move_the_transition_time_when_status_flips():
    cs = [cond("True", "Up", "2026-01-01T00:00:00Z")]
    assert conditions.set(cs, cond("False", "Down", "2026-02-01T00:00:00Z"))
    assert conditions.find(cs, "Ready")["lastTransitionTime"] == "2026-02-01T00:00:00Z"
    assert not conditions.is_true(cs, "Ready")


def test_conditions_report_no_change_and_remove():
    cs = [cond("True", "Up", "2026-01-01T00:00:00Z")]
    assert not conditions.set(cs, cond("True", "Up", "2026-03-01T00:00:00Z"))
    assert conditions.set(cs, {**cond("True", "Other", "x"), "type": "Synced"})
    assert len(cs) == 2
    assert conditions.remove(cs, "Ready") and not conditions.remove(cs, "Ready")
    assert [c["type"] for c in cs] == ["Synced"]


@pytest.mark.parametrize(
    "delay,ms",
    [(timedelta(seconds=60), 60_000), (timedelta(microseconds=1), 1), (0.0005, 1), (2, 2000),
     (-5, 0), (timedelta(0), 0), (float("inf"), 2**64 - 1)],
)
def test_delays_round_up_to_whole_milliseconds(delay, ms):
    assert delay_ms(delay) == ms


def test_the_shipped_wit_is_the_published_http_world():
    # The package ships the repository's published world (wit/http) as it
    # is, so the bindings a Python guest gets are the ones every language's
    # get; its deps carry wit/reconciler.wit itself.
    shipped = Path(bosun.wit_dir())
    published = Path(__file__).resolve().parents[3] / "wit" / "http"
    def files(root):
        return {p.relative_to(root): p.read_bytes() for p in root.rglob("*.wit")}
    assert files(shipped) == files(published), (
        "sdks/python/src/bosun/wit differs from wit/http; copy wit/http over it"
    )


def test_the_app_module_imports_natively_without_the_component_bindings():
    class Noop(bosun.Reconciler):
        kind = kinds.ConfigMap

        def metadata(self):
            return bosun.Metadata("noop", "0.1.0")

    world = bosun.export(Noop)
    assert callable(world().reconcile)
    with pytest.raises(ModuleNotFoundError, match="wit_world"):
        world().metadata()
