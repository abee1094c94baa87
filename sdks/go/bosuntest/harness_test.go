package bosuntest_test

// The SDK through its harness: the JSON boundary, the host's read rules,
// settings, errors and panics, finalize, conditions.

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	bosun "github.com/bosun-dev/bosun/sdks/go"
	"github.com/bosun-dev/bosun/sdks/go/bosuntest"
	"github.com/bosun-dev/bosun/sdks/go/conditions"
	"github.com/bosun-dev/bosun/sdks/go/kinds"
)

var memo = bosun.CustomKind("example.com", "v1", "Memo")

type Memo struct {
	bosun.TypeMeta `json:",inline"`
	Metadata       bosun.ObjectMeta `json:"metadata"`
	Spec           struct {
		Text  string `json:"text"`
		Mode  string `json:"mode"`
		Fetch string `json:"fetch"`
	} `json:"spec"`
	Status *MemoStatus `json:"status,omitempty"`
}

type MemoStatus struct {
	Conditions []bosun.Condition `json:"conditions,omitempty"`
	Seen       []string          `json:"seen,omitempty"`
}

type settings struct {
	Prefix string `json:"prefix"`
}

// writer does what its object's spec.mode says, so one reconciler covers
// every path.
type writer struct{}

func (writer) Kind() bosun.Kind { return memo }

func (writer) Metadata() *bosun.Metadata {
	return bosun.NewMetadata("writer", "1.0.0").Owns(kinds.ConfigMap).Reads(kinds.Secret).WithFinalizer("example.com/cleanup")
}

func (writer) Reconcile(m *Memo, ctx *bosun.Context) (*bosun.Response, error) {
	var s settings
	if _, err := ctx.Settings(&s); err != nil {
		return nil, err
	}
	status := &MemoStatus{}
	switch m.Spec.Mode {
	case "panic":
		var nothing map[string]int
		nothing["x"] = 1 // assignment to entry in nil map
	case "error":
		return nil, fmt.Errorf("wrapped: %w", errors.New("the backend is down"))
	case "permanent":
		return nil, bosun.Permanent("BadText", "text is empty")
	case "get":
		var secret bosun.Object
		found, err := ctx.Get(kinds.Secret, m.Spec.Fetch, &secret)
		if err != nil {
			return nil, err
		}
		status.Seen = append(status.Seen, fmt.Sprintf("found=%v", found))
	case "list":
		var maps []bosun.ConfigMap
		if err := ctx.List(kinds.ConfigMap, m.Spec.Fetch, &maps); err != nil {
			return nil, err
		}
		for _, cm := range maps {
			status.Seen = append(status.Seen, cm.Metadata.Name)
		}
	case "children":
		var owned []bosun.ConfigMap
		if err := ctx.Children(kinds.ConfigMap, &owned); err != nil {
			return nil, err
		}
		for _, cm := range owned {
			status.Seen = append(status.Seen, cm.Metadata.Name+"="+cm.Data["text"])
		}
		status.Seen = append(status.Seen, string(ctx.Trigger), fmt.Sprint(ctx.Attempt))
	case "unencodable":
		return bosun.NewResponse().Status(map[string]any{"f": func() {}}), nil
	}
	conditions.Set(&status.Conditions, ctx.Condition("Ready", true, "Written", "ok"))
	ctx.Info("wrote " + m.Metadata.Name)
	cm := bosun.ConfigMap{Metadata: bosun.ObjectMeta{Name: m.Metadata.Name}, Data: map[string]string{"text": s.Prefix + m.Spec.Text}}
	return bosun.NewResponse().Child(cm, kinds.ConfigMap).Status(status).
		RequeueAfter(1500 * time.Microsecond).Event(bosun.WarningEvent("Wrote", "a note")), nil
}

func (writer) Finalize(m *Memo, ctx *bosun.Context) (*bosun.Finalized, error) {
	if m.Spec.Mode == "slow" {
		return bosun.Pending(2 * time.Second).Event(bosun.NormalEvent("Waiting", "for the backend")), nil
	}
	return bosun.Done(), nil
}

func object(mode, fetch string) *Memo {
	m := &Memo{TypeMeta: bosun.TypeMeta{APIVersion: "example.com/v1", Kind: "Memo"}}
	m.Metadata = bosun.ObjectMeta{Name: "note", Namespace: "team", Generation: 3}
	m.Spec.Text, m.Spec.Mode, m.Spec.Fetch = "hello", mode, fetch
	return m
}

func failure(t *testing.T, err error) *bosun.Error {
	t.Helper()
	var typed *bosun.Error
	if !errors.As(err, &typed) {
		t.Fatalf("want a *bosun.Error, got %v", err)
	}
	return typed
}

func TestAReconcileCrossesTheJSONBoundary(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	outcome, err := bosuntest.New[Memo](writer{}).Now(now).Settings(settings{Prefix: "> "}).Reconcile(object("", ""))
	if err != nil {
		t.Fatal(err)
	}
	if len(outcome.Children) != 1 || outcome.Children[0] != `{"apiVersion":"v1","data":{"text":"> hello"},"kind":"ConfigMap","metadata":{"name":"note"}}` {
		t.Errorf("children %q", outcome.Children)
	}
	var status MemoStatus
	if _, err := outcome.Status(&status); err != nil {
		t.Fatal(err)
	}
	ready := conditions.Find(status.Conditions, "Ready")
	if ready == nil || ready.LastTransitionTime != "2026-12-01T10:00:00Z" || *ready.ObservedGeneration != 3 {
		t.Errorf("conditions %+v", status.Conditions)
	}
	if *outcome.RequeueAfterMs != 2 {
		t.Errorf("1.5 ms is requeued after 2 ms, never before: %d", *outcome.RequeueAfterMs)
	}
	if outcome.Events[0] != (bosun.Event{Type: bosun.Warning, Reason: "Wrote", Note: "a note", Action: "Reconcile"}) {
		t.Errorf("events %+v", outcome.Events)
	}
	if outcome.Logs[0] != (bosuntest.Log{Level: bosun.LevelInfo, Message: "wrote note"}) {
		t.Errorf("logs %+v", outcome.Logs)
	}
}

func TestAPanicIsARetryableErrorCarryingItsMessageAndFrames(t *testing.T) {
	_, err := bosuntest.New[Memo](writer{}).Reconcile(object("panic", ""))
	f := failure(t, err)
	if f.Permanent || f.Reason != "UncaughtPanic" {
		t.Fatalf("%v", f)
	}
	if !strings.HasPrefix(f.Message, "panic: assignment to entry in nil map\n") || !strings.Contains(f.Message, "writer.Reconcile(") {
		t.Errorf("message %q", f.Message)
	}
}

func TestErrorsKeepTheirKind(t *testing.T) {
	_, err := bosuntest.New[Memo](writer{}).Reconcile(object("error", ""))
	if f := failure(t, err); f.Permanent || f.Reason != "ReconcileFailed" || f.Message != "wrapped: the backend is down" {
		t.Errorf("a plain error is retryable: %v", f)
	}
	_, err = bosuntest.New[Memo](writer{}).Reconcile(object("permanent", ""))
	if f := failure(t, err); !f.Permanent || f.Reason != "BadText" {
		t.Errorf("%v", f)
	}
	_, err = bosuntest.New[Memo](writer{}).Reconcile(object("unencodable", ""))
	if f := failure(t, err); f.Permanent || f.Reason != "SerializationFailed" {
		t.Errorf("%v", f)
	}
	_, err = bosuntest.New[Memo](writer{}).RawSettings("{not json").Reconcile(object("", ""))
	if f := failure(t, err); !f.Permanent || f.Reason != "InvalidSettings" {
		t.Errorf("%v", f)
	}
	_, err = bosuntest.New[Memo](writer{}).Reconcile("not an object")
	if f := failure(t, err); !f.Permanent || f.Reason != "InvalidObject" {
		t.Errorf("%v", f)
	}
}

func TestReadsFollowTheHostsRules(t *testing.T) {
	secret := map[string]any{"metadata": map[string]any{"name": "token", "namespace": "team"}}
	elsewhere := map[string]any{"metadata": map[string]any{"name": "other", "namespace": "elsewhere"}}
	h := func() *bosuntest.Harness {
		return bosuntest.New[Memo](writer{}).Object(secret, kinds.Secret).Object(elsewhere, kinds.Secret)
	}
	seen := func(outcome *bosuntest.Outcome, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var status MemoStatus
		_, _ = outcome.Status(&status)
		return status.Seen
	}
	if got := seen(h().Reconcile(object("get", "token"))); got[0] != "found=true" {
		t.Errorf("%v", got)
	}
	if got := seen(h().Reconcile(object("get", "other"))); got[0] != "found=false" {
		t.Errorf("another namespace's object is not visible: %v", got)
	}

	labelled := func(name, tier string) map[string]any {
		return map[string]any{"metadata": map[string]any{"name": name, "namespace": "team", "labels": map[string]any{"tier": tier}}}
	}
	lists := bosuntest.New[Memo](writer{}).
		Object(labelled("a", "web"), kinds.ConfigMap).Object(labelled("b", "db"), kinds.ConfigMap).Object(labelled("c", "cache"), kinds.ConfigMap)
	if got := seen(lists.Reconcile(object("list", "tier in (web,db)"))); strings.Join(got, ",") != "a,b" {
		t.Errorf("%v", got)
	}
	if got := seen(lists.Reconcile(object("list", "tier!=web"))); strings.Join(got, ",") != "b,c" {
		t.Errorf("%v", got)
	}
	_, err := lists.Reconcile(object("list", "tier in (web"))
	if f := failure(t, err); f.Reason != "ReadFailed" || !strings.Contains(f.Message, "unbalanced") {
		t.Errorf("%v", f)
	}
}

func TestAnUndeclaredKindIsRefused(t *testing.T) {
	_, err := bosuntest.New[Memo](readsDeployments{}).Reconcile(object("", ""))
	if f := failure(t, err); f.Reason != "ReadFailed" || !strings.Contains(f.Message, "Deployment.apps/v1 is not a declared kind") {
		t.Errorf("%v", f)
	}
}

type readsDeployments struct{ writer }

func (readsDeployments) Reconcile(m *Memo, ctx *bosun.Context) (*bosun.Response, error) {
	var d bosun.Object
	if _, err := ctx.Get(kinds.Deployment, "web", &d); err != nil {
		return nil, err
	}
	return bosun.NewResponse(), nil
}

func TestChildrenSettingsAndTriggerReachTheReconciler(t *testing.T) {
	owned := bosun.ConfigMap{Metadata: bosun.ObjectMeta{Name: "note"}, Data: map[string]string{"text": "old"}}
	outcome, err := bosuntest.New[Memo](writer{}).Child(owned, kinds.ConfigMap).
		Child(map[string]any{"metadata": map[string]any{"name": "not-a-configmap"}}, kinds.Secret).
		Trigger("retry", 4).Reconcile(object("children", ""))
	if err != nil {
		t.Fatal(err)
	}
	var status MemoStatus
	_, _ = outcome.Status(&status)
	if strings.Join(status.Seen, ",") != "note=old,retry,4" {
		t.Errorf("%v", status.Seen)
	}
}

func TestFinalize(t *testing.T) {
	done, err := bosuntest.New[Memo](writer{}).Finalize(object("", ""))
	if err != nil || !done.IsDone {
		t.Errorf("%+v %v", done, err)
	}
	slow, err := bosuntest.New[Memo](writer{}).Finalize(object("slow", ""))
	if err != nil || slow.IsDone || *slow.RequeueAfterMs != 2000 || slow.Events[0].Reason != "Waiting" {
		t.Errorf("%+v %v", slow, err)
	}
}

func TestMetadata(t *testing.T) {
	info, err := bosuntest.New[Memo](writer{}).Metadata()
	if err != nil {
		t.Fatal(err)
	}
	if info.Primary != (bosun.Kind{Group: "example.com", Version: "v1", Kind: "Memo", Plural: "memos"}) ||
		info.Owns[0] != kinds.ConfigMap || info.Reads[0] != kinds.Secret || *info.Finalizer != "example.com/cleanup" {
		t.Errorf("%+v", info)
	}
	if _, err := bosuntest.New[Memo](ownsItself{}).Metadata(); err == nil || !strings.Contains(err.Error(), "owns its own primary kind") {
		t.Errorf("%v", err)
	}
}

type ownsItself struct{ writer }

func (ownsItself) Metadata() *bosun.Metadata { return bosun.NewMetadata("loop", "1").Owns(memo) }
