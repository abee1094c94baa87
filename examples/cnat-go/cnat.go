package main

// An At stays PENDING until spec.schedule (UTC, Go layout
// 2006-01-02T15:04:05Z), then a one-shot busybox Pod runs spec.command and
// the phase becomes RUNNING; once the Pod has succeeded or failed the phase
// is DONE. A schedule that does not parse is a permanent error, which the
// host shows as a condition and a warning event.

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	bosun "github.com/bosun-dev/bosun/sdks/go"
	"github.com/bosun-dev/bosun/sdks/go/kinds"
)

// AT is the At kind (examples/cnat/crd.yaml).
var AT = bosun.CustomKind("cnat.programming-kubernetes.info", "v1alpha1", "At")

// The Go layout the book uses for spec.schedule.
const scheduleLayout = "2006-01-02T15:04:05Z"

const (
	PhasePending = "PENDING"
	PhaseRunning = "RUNNING"
	PhaseDone    = "DONE"
)

// At runs Command once, at Schedule.
type At struct {
	bosun.TypeMeta `json:",inline"`
	Metadata       bosun.ObjectMeta `json:"metadata"`
	// A pointer, as an object may come without one whatever the CRD says;
	// cnat does not check (as cnat-python does not check for a missing
	// key): an At without a spec panics when due, which the SDK returns
	// as a retryable error.
	Spec   *AtSpec   `json:"spec"`
	Status *AtStatus `json:"status,omitempty"`
}

// AtSpec says what to run and when.
type AtSpec struct {
	Schedule string `json:"schedule"`
	Command  string `json:"command"`
}

// AtStatus is where an At is in its life.
type AtStatus struct {
	Phase              string            `json:"phase,omitempty"`
	ObservedGeneration *int64            `json:"observedGeneration,omitempty"`
	Conditions         []bosun.Condition `json:"conditions,omitempty"`
}

// Cnat is the reconciler.
type Cnat struct{}

func (Cnat) Kind() bosun.Kind { return AT }

func (Cnat) Metadata() *bosun.Metadata {
	return bosun.NewMetadata("cnat", "0.1.0").Owns(kinds.Pod)
}

func (Cnat) Reconcile(at *At, ctx *bosun.Context) (*bosun.Response, error) {
	phase := ""
	if at.Status != nil {
		phase = at.Status.Phase
	}
	var observed bosun.Pod
	found, err := ctx.Child(kinds.Pod, podName(at), &observed)
	if err != nil {
		return nil, err
	}
	switch phase {
	case PhaseDone:
		// Done for good: keep the finished Pod (so it is not pruned) as it
		// was asked for, not as observed, whose defaulted fields would be
		// claimed and written again; never start it again once gone.
		if found {
			return status(PhaseDone).Child(pod(at), kinds.Pod), nil
		}
		return status(PhaseDone), nil
	case PhaseRunning:
		if found && observed.Status != nil && (observed.Status.Phase == "Succeeded" || observed.Status.Phase == "Failed") {
			return status(PhaseDone).Child(pod(at), kinds.Pod).
				Event(bosun.NormalEvent("Done", fmt.Sprintf("pod %s finished", podName(at)))), nil
		}
		return status(PhaseRunning).Child(pod(at), kinds.Pod), nil
	}
	// No phase yet, or PENDING: wait for the schedule.
	remaining, err := timeUntil(at.Spec.Schedule, ctx.Now())
	if err != nil {
		return nil, err
	}
	if remaining > 0 {
		return status(PhasePending).RequeueAfter(remaining), nil
	}
	ctx.Info(fmt.Sprintf("schedule %s reached; starting the command", at.Spec.Schedule))
	return status(PhaseRunning).Child(pod(at), kinds.Pod).Event(
		bosun.NormalEvent("Started", fmt.Sprintf("created pod %s to run %s", podName(at), strconv.Quote(at.Spec.Command))).
			WithAction("Scheduling"),
	), nil
}

func status(phase string) *bosun.Response {
	return bosun.NewResponse().Status(AtStatus{Phase: phase})
}

// timeUntil is how long until schedule, zero once it has passed. A schedule
// that does not parse is a permanent error: the user has to fix the object.
func timeUntil(schedule string, now time.Time) (time.Duration, error) {
	due, err := time.Parse(scheduleLayout, schedule)
	if err != nil {
		return 0, bosun.Permanent("InvalidSchedule",
			fmt.Sprintf("schedule %s is not in the layout %s: %v", strconv.Quote(schedule), scheduleLayout, err))
	}
	return max(due.Sub(now), 0), nil
}

func podName(at *At) string {
	return at.Metadata.Name + "-pod"
}

// pod is the one-shot Pod that runs the command, as the book's newPodForCR.
func pod(at *At) bosun.Pod {
	return bosun.Pod{
		Metadata: bosun.ObjectMeta{
			Name:      podName(at),
			Namespace: at.Metadata.Namespace,
			Labels:    map[string]string{"app": at.Metadata.Name},
		},
		Spec: bosun.PodSpec{
			Containers: []bosun.Container{{
				Name:    "busybox",
				Image:   "busybox",
				Command: strings.Split(at.Spec.Command, " "),
			}},
			RestartPolicy: "OnFailure",
		},
	}
}
