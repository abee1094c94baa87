// Package bosuntest runs a bosun reconciler natively, under `go test`,
// through the same JSON boundary the host uses.
//
// The Harness plays the host: it encodes the object, the observed children
// and the settings as JSON exactly as the host hands them over, answers
// reads from objects you give it (enforcing the host's access rules:
// declared kinds only, the primary's namespace only), fixes the clock, and
// collects logs. What comes back is what the host would receive from the
// component:
//
//	outcome, err := bosuntest.New[At](Cnat{}).Now(t).Reconcile(at)
//	// err is the *bosun.Error the host would get, a panic's included
package bosuntest

import (
	"encoding/json"
	"fmt"
	"time"

	bosun "github.com/bosun-dev/bosun/sdks/go"
)

// Harness is a stand-in for the bosun host. Builder methods return it.
type Harness struct {
	module   bosun.Module
	clock    time.Time
	observed []string
	objects  []map[string]any
	settings *string
	trigger  bosun.Trigger
	attempt  uint32
	// http is the stubs and the requests sent, across calls.
	http *stubs
	// failure is a setup error (a child that does not encode, say),
	// reported by the next call rather than by every builder method.
	failure error
}

// New is a harness for r, with the clock at the real time, no children,
// no objects, no settings, and the trigger `manual`.
func New[T any](r bosun.Reconciler[T]) *Harness {
	return &Harness{module: bosun.New(r), clock: time.Now(), trigger: "manual", attempt: 1, http: &stubs{}}
}

// Now fixes the clock the reconciler sees.
func (h *Harness) Now(now time.Time) *Harness {
	h.clock = now
	return h
}

// NowRFC3339 fixes the clock from text such as 2026-12-01T10:00:00Z.
func (h *Harness) NowRFC3339(text string) *Harness {
	when, err := time.Parse(time.RFC3339Nano, text)
	if err != nil {
		h.fail(fmt.Errorf("Harness.NowRFC3339(%q): %w", text, err))
		return h
	}
	return h.Now(when)
}

// Child adds an observed child, as if the host had seen it owned by the
// object; kind fills in its apiVersion and kind.
func (h *Harness) Child(child any, kind bosun.Kind) *Harness {
	value, err := withKind(child, kind)
	if err != nil {
		h.fail(err)
		return h
	}
	encoded, err := json.Marshal(value)
	if err != nil {
		h.fail(err)
		return h
	}
	h.observed = append(h.observed, string(encoded))
	return h
}

// Object adds an object to the cache Context.Get and Context.List read.
func (h *Harness) Object(obj any, kind bosun.Kind) *Harness {
	value, err := withKind(obj, kind)
	if err != nil {
		h.fail(err)
		return h
	}
	h.objects = append(h.objects, value)
	return h
}

// Settings sets the module's settings (any value that encodes as JSON).
func (h *Harness) Settings(settings any) *Harness {
	encoded, err := json.Marshal(settings)
	if err != nil {
		h.fail(fmt.Errorf("Harness.Settings: %w", err))
		return h
	}
	return h.RawSettings(string(encoded))
}

// RawSettings sets the settings text as the operator wrote it, JSON or not.
func (h *Harness) RawSettings(text string) *Harness {
	h.settings = &text
	return h
}

// Trigger sets the trigger and attempt number the reconciler sees.
func (h *Harness) Trigger(trigger bosun.Trigger, attempt uint32) *Harness {
	h.trigger, h.attempt = trigger, attempt
	return h
}

// Metadata is the metadata the component would export, or an error for a
// declaration the host refuses to load (a module that owns its own primary
// kind): better a failing test than a module that never runs.
func (h *Harness) Metadata() (bosun.ModuleInfo, error) {
	info := h.module.Info()
	for _, own := range info.Owns {
		if own.Group == info.Primary.Group && own.Kind == info.Primary.Kind {
			return info, fmt.Errorf("module %s owns its own primary kind %s: the host refuses to load it; own another kind", info.Name, own.Kind)
		}
	}
	return info, nil
}

// Reconcile runs Reconcile on obj. A failed reconcile is the *bosun.Error
// the host would get; a mistake in the test's own setup is another error.
func (h *Harness) Reconcile(obj any) (*Outcome, error) {
	req, host, err := h.prepare(obj)
	if err != nil {
		return nil, err
	}
	response, failure := h.module.Reconcile(req, host)
	if failure != nil {
		return nil, failure
	}
	return &Outcome{Response: response, Logs: host.logs}, nil
}

// FinalizeOutcome is what a finalize returned.
type FinalizeOutcome struct {
	*bosun.Finalized
	Logs []Log
}

// Finalize runs Finalize on obj.
func (h *Harness) Finalize(obj any) (*FinalizeOutcome, error) {
	req, host, err := h.prepare(obj)
	if err != nil {
		return nil, err
	}
	answer, failure := h.module.Finalize(req, host)
	if failure != nil {
		return nil, failure
	}
	return &FinalizeOutcome{Finalized: answer, Logs: host.logs}, nil
}

func (h *Harness) prepare(obj any) (*bosun.Request, *testHost, error) {
	if h.failure != nil {
		return nil, nil, h.failure
	}
	info, err := h.Metadata()
	if err != nil {
		return nil, nil, err
	}
	encoded, err := json.Marshal(obj)
	if err != nil {
		return nil, nil, fmt.Errorf("the object does not encode as JSON: %w", err)
	}
	var head struct {
		Metadata bosun.ObjectMeta `json:"metadata"`
	}
	_ = json.Unmarshal(encoded, &head) // a malformed object is the reconciler's to meet
	readable := map[string]bool{}
	for _, k := range append(append([]bosun.Kind{info.Primary}, info.Owns...), info.Reads...) {
		readable[k.APIVersion()+" "+k.Kind] = true
	}
	h.http.origins = info.HTTPOrigins
	host := &testHost{clock: h.clock, objects: h.objects, readable: readable, http: h.http}
	if info.Primary.Scope == bosun.Namespaced {
		ns := head.Metadata.Namespace
		host.namespace = &ns
	}
	req := &bosun.Request{
		Object:   string(encoded),
		Children: append([]string(nil), h.observed...),
		Settings: h.settings,
		Trigger:  h.trigger,
		Attempt:  h.attempt,
	}
	return req, host, nil
}

func (h *Harness) fail(err error) {
	if h.failure == nil {
		h.failure = err
	}
}

// withKind is obj as a JSON object with kind's apiVersion and kind filled
// in where missing.
func withKind(obj any, kind bosun.Kind) (map[string]any, error) {
	encoded, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("a %s does not encode as JSON: %w", kind.Kind, err)
	}
	var value map[string]any
	if err := json.Unmarshal(encoded, &value); err != nil {
		return nil, fmt.Errorf("a %s is not a JSON object: %w", kind.Kind, err)
	}
	if v, _ := value["apiVersion"].(string); v == "" {
		value["apiVersion"] = kind.APIVersion()
	}
	if v, _ := value["kind"].(string); v == "" {
		value["kind"] = kind.Kind
	}
	return value, nil
}
