"""A bosun recording as a test fixture: ``Harness.from_recording`` loads the
clock, request, read answers and HTTP answers of a ``bosun.dev/recording/v1``
file (``fixtures/zone.recording.json``, written by hand in the host's format)
and the harness reaches the recorded outcome."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import bosun
from bosun import kinds
from bosun.testing import Harness, RecordingError

FIXTURE = Path(__file__).parent / "fixtures" / "zone.recording.json"
ZONE = "https://dns.example:8081/api/v1/servers/localhost/zones/example.org."


class Zone(bosun.Reconciler):
    """Uses every input a recording holds: reads, HTTP, settings, children,
    trigger, attempt and the clock."""

    kind = kinds.ConfigMap

    def metadata(self):
        return (
            bosun.Metadata("zone", "0.1.0")
            .owns(kinds.Secret)
            .reads(kinds.Secret)
            .http_origin("https://dns.example:8081")
            .finalizer("zone.example.com/records")
        )

    def reconcile(self, cm, ctx):
        target = ctx.get(kinds.Secret, "www-target")
        labelled = ctx.list(kinds.Secret, "app=www")
        zone = ctx.http().get(ZONE).header("Accept", "application/json").send().error_for_status().json()
        if not zone["rrsets"]:
            ctx.http().patch(ZONE).json({"rrsets": [{"name": "www"}]}).send().error_for_status()
            zone = ctx.http().get(ZONE).send().error_for_status().json()
        return bosun.Response().status(
            {
                "records": len(zone["rrsets"]),
                "target": target["metadata"]["name"] if target else None,
                "labelled": len(labelled),
                "ttl": ctx.settings()["ttl"],
                "children": len(ctx.children(kinds.ConfigMap)),
                "trigger": ctx.trigger.value,
                "attempt": ctx.attempt,
                "now": int(ctx.now().timestamp()),
            }
        )

    def finalize(self, cm, ctx):
        # Done once the zone has no records left.
        zone = ctx.http().get(ZONE).send().error_for_status().json()
        return bosun.Finalized.done() if not zone["rrsets"] else bosun.Finalized.pending(5)


def test_a_recording_loads_as_a_fixture_and_the_harness_reaches_its_outcome():
    harness, cm = Harness.from_recording(FIXTURE, Zone)
    assert cm["metadata"]["name"] == "www"
    outcome = harness.reconcile(cm)
    recorded = json.loads(FIXTURE.read_text())["outcome"]["response"]
    assert outcome.status == recorded["status"]
    assert outcome.children_json == recorded["children"]
    assert outcome.requeue_after_ms == recorded["requeueAfterMs"]
    assert [(r.method.value, r.url) for r in outcome.http_requests] == [
        (e["request"]["method"], e["request"]["url"]) for e in json.loads(FIXTURE.read_text())["http"]
    ]


def test_a_recorded_finalize_loads_and_finalize_replays_it():
    recording = json.loads(FIXTURE.read_text())
    recording["call"] = "finalize"
    recording["http"] = recording["http"][2:]  # the zone, with one record
    harness, cm = Harness.from_recording(recording, Zone)
    outcome = harness.finalize(cm)
    assert not outcome.done
    assert outcome.requeue_after is not None and outcome.requeue_after.total_seconds() == 5


def test_a_recording_loads_from_text_bytes_a_path_string_or_a_dict():
    text = FIXTURE.read_text()
    for source in (text, text.encode(), str(FIXTURE), json.loads(text)):
        harness, cm = Harness.from_recording(source, Zone)
        assert harness.reconcile(cm).status["records"] == 1


def test_each_recorded_http_answer_is_used_once_in_order():
    recording = json.loads(FIXTURE.read_text())
    recording["http"] = recording["http"][:1]  # the PATCH was never recorded
    harness, cm = Harness.from_recording(recording, Zone)
    with pytest.raises(AssertionError, match="unexpected HTTP request PATCH"):
        harness.reconcile(cm)


def test_a_recorded_http_failure_replays_as_the_same_kind_of_error():
    recording = json.loads(FIXTURE.read_text())
    recording["http"] = [dict(recording["http"][0], response=None, error="ConnectionRefused")]
    harness, cm = Harness.from_recording(recording, Zone)
    with pytest.raises(bosun.Error) as caught:
        harness.reconcile(cm)
    assert caught.value.reason == "HttpConnection"


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda r: r.update(format="bosun.dev/recording/v2"), "is not one this SDK reads"),
        (lambda r: r.pop("format"), 'has no "format"'),
        (lambda r: r.update(call="shadow"), "neither reconcile nor finalize"),
        (lambda r: r.pop("request"), "request is missing"),
        (lambda r: r["request"].update(object="{not json"), "the recorded object is not JSON"),
        (lambda r: r["request"].update(trigger="someday"), "trigger 'someday' is unknown"),
        (lambda r: r.update(now="yesterday"), "the recording's now"),
        (lambda r: r.update(now=12), "the recording's now 12 is not a time"),
        (lambda r: r["reads"][0]["answer"].update(found="[1"), "read answer is not JSON"),
        (lambda r: r["http"][0]["request"].update(method="BREW"), "method 'BREW' is unknown"),
        (lambda r: r["http"][0]["response"].pop("status"), "has no status"),
        (lambda r: r["http"][2]["response"].update(body={"base64": "**"}), "not valid base64"),
        (lambda r: r.update(http={}), '"http" is not a list'),
    ],
)
def test_a_malformed_or_mismatched_recording_is_a_clear_error(change, message):
    recording = json.loads(FIXTURE.read_text())
    change(recording)
    with pytest.raises(RecordingError, match=message.replace("(", r"\(")):
        Harness.from_recording(json.dumps(recording), Zone)


def test_what_is_not_a_recording_is_a_clear_error(tmp_path):
    with pytest.raises(RecordingError, match="not a bosun recording"):
        Harness.from_recording("{", Zone)
    with pytest.raises(RecordingError, match="not a JSON object"):
        Harness.from_recording(b"[1]", Zone)
    with pytest.raises(RecordingError, match="cannot read"):
        Harness.from_recording(tmp_path / "absent.json", Zone)


def test_a_recording_file_larger_than_the_cap_is_refused_unread(tmp_path):
    big = tmp_path / "big.json"
    with big.open("wb") as f:
        f.truncate((64 << 20) + 1)
    with pytest.raises(RecordingError, match="larger than 67108864 bytes"):
        Harness.from_recording(big, Zone)
