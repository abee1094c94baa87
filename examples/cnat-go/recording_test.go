package main

// A recording of cnat-go's component as a test fixture: the harness loaded
// from it reaches the outcome the component reached.
//
// testdata/at.recording.json was written by `bosun reconcile --record` (its
// random bytes dropped: cnat uses none natively); the host's test
// go_cnat_recorded_by_bosun_is_a_go_test_fixture_that_agrees
// (host/tests/go_guest.rs) records the component afresh and points
// BOSUN_RECORDING at that file.

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"

	bosun "github.com/bosun-dev/bosun/sdks/go"
	"github.com/bosun-dev/bosun/sdks/go/bosuntest"
)

func TestTheHarnessLoadedFromARecordingReachesTheRecordedOutcome(t *testing.T) {
	path := os.Getenv("BOSUN_RECORDING")
	if path == "" {
		path = "testdata/at.recording.json"
	}
	h, at, err := bosuntest.FromRecordingFile[At](Cnat{}, path)
	if err != nil {
		t.Fatal(err)
	}
	outcome, err := h.Reconcile(at)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recording struct {
		Outcome struct {
			Response struct {
				Status         any              `json:"status"`
				Children       []any            `json:"children"`
				RequeueAfterMs *uint64          `json:"requeueAfterMs"`
				Events         []map[string]any `json:"events"`
			} `json:"response"`
		} `json:"outcome"`
	}
	if err := json.Unmarshal(data, &recording); err != nil {
		t.Fatal(err)
	}
	recorded := recording.Outcome.Response

	var status any
	if _, err := outcome.Status(&status); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(status, recorded.Status) {
		t.Errorf("status %v, recorded %v", status, recorded.Status)
	}
	children := []any{}
	for _, child := range outcome.Children {
		var value any
		if err := json.Unmarshal([]byte(child), &value); err != nil {
			t.Fatal(err)
		}
		children = append(children, value)
	}
	if !reflect.DeepEqual(children, append([]any{}, recorded.Children...)) {
		t.Errorf("children %v, recorded %v", children, recorded.Children)
	}
	if !reflect.DeepEqual(outcome.RequeueAfterMs, recorded.RequeueAfterMs) {
		t.Errorf("requeueAfterMs %v, recorded %v", outcome.RequeueAfterMs, recorded.RequeueAfterMs)
	}
	events := []map[string]any{}
	for _, e := range outcome.Events {
		kind := "Normal"
		if e.Type != bosun.Normal {
			kind = "Warning"
		}
		events = append(events, map[string]any{"type": kind, "reason": e.Reason, "note": e.Note, "action": e.Action})
	}
	if !reflect.DeepEqual(events, append([]map[string]any{}, recorded.Events...)) {
		t.Errorf("events %v, recorded %v", events, recorded.Events)
	}
}
