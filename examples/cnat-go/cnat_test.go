package main

// cnat's behaviour, natively, through the SDK's harness: the same cases as
// examples/cnat/tests/phases.rs and examples/cnat-python.

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	bosun "github.com/bosun-dev/bosun/sdks/go"
	"github.com/bosun-dev/bosun/sdks/go/bosuntest"
	"github.com/bosun-dev/bosun/sdks/go/kinds"
)

func at(schedule, phase string) *At {
	obj := &At{
		TypeMeta: bosun.TypeMeta{APIVersion: "cnat.programming-kubernetes.info/v1alpha1", Kind: "At"},
		Metadata: bosun.ObjectMeta{
			Name:       "example-at",
			Namespace:  "default",
			UID:        "8c6a1c9e-0000-4000-8000-000000000001",
			Generation: 1,
		},
		Spec: &AtSpec{Schedule: schedule, Command: "echo YAY"},
	}
	if phase != "" {
		obj.Status = &AtStatus{Phase: phase}
	}
	return obj
}

func harness() *bosuntest.Harness { return bosuntest.New[At](Cnat{}) }

func reconcile(t *testing.T, h *bosuntest.Harness, obj *At) *bosuntest.Outcome {
	t.Helper()
	outcome, err := h.Reconcile(obj)
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	return outcome
}

func phaseOf(t *testing.T, outcome *bosuntest.Outcome) string {
	t.Helper()
	var status AtStatus
	if set, err := outcome.Status(&status); err != nil || !set {
		t.Fatalf("cnat always sets a status (set %v, err %v)", set, err)
	}
	return status.Phase
}

func pods(t *testing.T, outcome *bosuntest.Outcome) []bosun.Pod {
	t.Helper()
	var out []bosun.Pod
	if err := outcome.ChildrenOf(kinds.Pod, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWaitsForTheScheduleAndRequeuesForTheRemainingTime(t *testing.T) {
	outcome := reconcile(t, harness().NowRFC3339("2026-12-01T09:59:00Z"), at("2026-12-01T10:00:00Z", ""))
	if got := phaseOf(t, outcome); got != PhasePending {
		t.Errorf("phase %q", got)
	}
	if delay, ok := outcome.RequeueAfter(); !ok || delay != time.Minute {
		t.Errorf("requeue %v %v", delay, ok)
	}
	if *outcome.RequeueAfterMs != 60_000 {
		t.Errorf("requeue ms %d", *outcome.RequeueAfterMs)
	}
	if len(pods(t, outcome)) != 0 {
		t.Error("no pod before the schedule")
	}
}

func TestRoundsAPartOfAMillisecondUp(t *testing.T) {
	outcome := reconcile(t, harness().NowRFC3339("2026-12-01T09:59:59.999999Z"), at("2026-12-01T10:00:00Z", ""))
	if *outcome.RequeueAfterMs != 1 {
		t.Errorf("never requeued before the schedule: %d", *outcome.RequeueAfterMs)
	}
}

func TestStartsThePodWhenDue(t *testing.T) {
	outcome := reconcile(t, harness().NowRFC3339("2026-12-01T10:00:01Z"), at("2026-12-01T10:00:00Z", PhasePending))
	if got := phaseOf(t, outcome); got != PhaseRunning {
		t.Errorf("phase %q", got)
	}
	if _, ok := outcome.RequeueAfter(); ok {
		t.Error("no requeue once running")
	}
	all := pods(t, outcome)
	if len(all) != 1 {
		t.Fatalf("pods %v", all)
	}
	pod := all[0]
	if pod.Metadata.Name != "example-at-pod" || pod.Metadata.Labels["app"] != "example-at" {
		t.Errorf("metadata %+v", pod.Metadata)
	}
	want := []bosun.Container{{Name: "busybox", Image: "busybox", Command: []string{"echo", "YAY"}}}
	if pod.Spec.RestartPolicy != "OnFailure" || !reflect.DeepEqual(pod.Spec.Containers, want) {
		t.Errorf("spec %+v", pod.Spec)
	}
	event := outcome.Events[0]
	if event.Reason != "Started" || event.Action != "Scheduling" || event.Note != `created pod example-at-pod to run "echo YAY"` {
		t.Errorf("event %+v", event)
	}
	logged := false
	for _, line := range outcome.Logs {
		logged = logged || strings.Contains(line.Message, "schedule 2026-12-01T10:00:00Z reached")
	}
	if !logged {
		t.Errorf("logs %v", outcome.Logs)
	}
}

func TestStaysRunningWhileThePodRunsAndIsDoneWhenItFinishes(t *testing.T) {
	running := at("2026-12-01T10:00:00Z", PhaseRunning)
	observed := pod(running)
	observed.Status = &bosun.PodStatus{Phase: "Running"}
	outcome := reconcile(t, harness().Child(observed, kinds.Pod), running)
	if got := phaseOf(t, outcome); got != PhaseRunning {
		t.Errorf("phase %q", got)
	}
	if len(pods(t, outcome)) != 1 || len(outcome.Events) != 0 {
		t.Errorf("the pod stays desired, no event: %+v", outcome.Response)
	}
	for _, finished := range []string{"Succeeded", "Failed"} {
		observed.Status.Phase = finished
		outcome := reconcile(t, harness().Child(observed, kinds.Pod), running)
		if got := phaseOf(t, outcome); got != PhaseDone {
			t.Errorf("pod %s: phase %q", finished, got)
		}
		if len(pods(t, outcome)) != 1 {
			t.Errorf("pod %s: the finished pod is kept, not pruned", finished)
		}
		if outcome.Events[0].Reason != "Done" {
			t.Errorf("pod %s: events %+v", finished, outcome.Events)
		}
	}
}

func TestDoneKeepsThePodAsItWasAppliedNotAsObserved(t *testing.T) {
	done := at("2026-12-01T10:00:00Z", PhaseDone)
	applied := pod(done)
	applied.TypeMeta = bosun.TypeMeta{APIVersion: "v1", Kind: "Pod"}
	observed := map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "example-at-pod", "namespace": "default"},
		"spec":     map[string]any{"dnsPolicy": "ClusterFirst", "containers": []any{}},
		"status":   map[string]any{"phase": "Succeeded"},
	}
	outcome := reconcile(t, harness().Child(observed, kinds.Pod), done)
	if got := phaseOf(t, outcome); got != PhaseDone {
		t.Errorf("phase %q", got)
	}
	if got := pods(t, outcome); len(got) != 1 || !reflect.DeepEqual(got[0], applied) {
		t.Errorf("pods %+v, want %+v", got, applied)
	}
}

func TestDoneIsFinal(t *testing.T) {
	outcome := reconcile(t, harness(), at("2026-12-01T10:00:00Z", PhaseDone))
	if got := phaseOf(t, outcome); got != PhaseDone {
		t.Errorf("phase %q", got)
	}
	if len(pods(t, outcome)) != 0 {
		t.Error("no new pod once done")
	}
}

func permanent(t *testing.T, schedule string) *bosun.Error {
	t.Helper()
	_, err := harness().Reconcile(at(schedule, ""))
	var failure *bosun.Error
	if !errors.As(err, &failure) {
		t.Fatalf("%q: want a *bosun.Error, got %v", schedule, err)
	}
	if !failure.Permanent || failure.Reason != "InvalidSchedule" {
		t.Errorf("%q: %v", schedule, failure)
	}
	return failure
}

func TestABadScheduleIsAPermanentError(t *testing.T) {
	if failure := permanent(t, "next tuesday"); !strings.Contains(failure.Message, `"next tuesday"`) {
		t.Errorf("message %q", failure.Message)
	}
	// The book's layout has no offset: anything else is rejected too.
	permanent(t, "2026-12-01T10:00:00+02:00")
}

func TestADateThatDoesNotExistIsAPermanentError(t *testing.T) {
	permanent(t, "2026-02-30T10:00:00Z")
}

func TestAnAtWithoutASpecIsARetryablePanicNotACrash(t *testing.T) {
	broken := at("2026-12-01T10:00:00Z", "")
	broken.Spec = nil
	_, err := harness().Reconcile(broken)
	var failure *bosun.Error
	if !errors.As(err, &failure) || failure.Permanent || failure.Reason != "UncaughtPanic" {
		t.Fatalf("want a retryable UncaughtPanic, got %v", err)
	}
	if !strings.Contains(failure.Message, "nil pointer dereference") || !strings.Contains(failure.Message, "cnat.go:") {
		t.Errorf("the panic's value and frames: %s", failure.Message)
	}
}

func TestDeclaresPodsAsItsOnlyOwnedKind(t *testing.T) {
	info, err := harness().Metadata()
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "cnat" || info.Primary.Group != "cnat.programming-kubernetes.info" ||
		info.Primary.Kind != "At" || info.Primary.Plural != "ats" {
		t.Errorf("info %+v", info)
	}
	if len(info.Owns) != 1 || info.Owns[0] != kinds.Pod || info.Finalizer != nil {
		t.Errorf("owns %+v finalizer %v", info.Owns, info.Finalizer)
	}
}
