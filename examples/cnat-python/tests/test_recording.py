"""A recording of cnat-python's component as a test fixture: the harness
loaded from it reaches the outcome the component reached.

``tests/at.recording.json`` was written by ``bosun reconcile --record``
(its random bytes dropped: cnat uses none natively); the host's test
``python_cnat_recorded_by_bosun_is_a_pytest_fixture_that_agrees``
(host/tests/python_guest.rs) records the component afresh and points
``BOSUN_RECORDING`` at that file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bosun.testing import Harness

from app import Cnat

RECORDING = Path(os.environ.get("BOSUN_RECORDING") or Path(__file__).parent / "at.recording.json")


def test_the_harness_loaded_from_a_recording_reaches_the_recorded_outcome():
    harness, at = Harness.from_recording(RECORDING, Cnat)
    outcome = harness.reconcile(at)
    recorded = json.loads(RECORDING.read_text())["outcome"]["response"]
    assert outcome.status == recorded["status"]
    assert outcome.children_json == recorded["children"]
    assert outcome.requeue_after_ms == recorded["requeueAfterMs"]
    assert [
        {"type": e.event_type.value, "reason": e.reason, "note": e.note, "action": e.action_name}
        for e in outcome.events
    ] == recorded["events"]
