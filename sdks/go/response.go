package bosun

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// EventType is the type of a Kubernetes Event.
type EventType uint8

const (
	Normal EventType = iota
	Warning
)

// Event is a Kubernetes Event the host records against the object.
type Event struct {
	Type   EventType
	Reason string
	Note   string
	Action string
}

// NormalEvent is a `Normal` event with the action `Reconcile`.
func NormalEvent(reason, note string) Event {
	return Event{Type: Normal, Reason: reason, Note: note, Action: "Reconcile"}
}

// WarningEvent is a `Warning` event with the action `Reconcile`.
func WarningEvent(reason, note string) Event {
	return Event{Type: Warning, Reason: reason, Note: note, Action: "Reconcile"}
}

// WithAction sets what was done or failed, in CamelCase.
func (e Event) WithAction(action string) Event {
	e.Action = action
	return e
}

// Response is the desired state for one object, built with chained calls.
// Return every child you want on every call; the host prunes the children
// it observed that you no longer return:
//
//	return bosun.NewResponse().Status(status).Child(pod, kinds.Pod), nil
type Response struct {
	Children       []string
	StatusJSON     *string
	RequeueAfterMs *uint64
	Events         []Event
	// An encoding failure surfaces when the response is returned (as in
	// the Rust SDK), so that building it stays a chain of calls.
	err *Error
}

// NewResponse is an empty response: no children, status untouched.
func NewResponse() *Response {
	return &Response{}
}

// Child adds a desired child, its apiVersion and kind filled in from kind
// when missing. The host sets the namespace and the controller
// ownerReference; set only what you want to own.
func (r *Response) Child(child any, kind Kind) *Response {
	encoded, err := json.Marshal(child)
	if err != nil {
		r.fail(fmt.Sprintf("a desired %s does not encode as JSON: %v", kind.Kind, err))
		return r
	}
	var value map[string]any
	if err := json.Unmarshal(encoded, &value); err != nil {
		r.fail(fmt.Sprintf("a desired %s is not a JSON object: %v", kind.Kind, err))
		return r
	}
	if v, _ := value["apiVersion"].(string); v == "" {
		value["apiVersion"] = kind.APIVersion()
	}
	if v, _ := value["kind"].(string); v == "" {
		value["kind"] = kind.Kind
	}
	return r.push(value, kind.Kind)
}

func (r *Response) push(value map[string]any, kind string) *Response {
	encoded, err := encode(value)
	if err != nil {
		r.fail(fmt.Sprintf("a desired %s does not encode as JSON: %v", kind, err))
		return r
	}
	r.Children = append(r.Children, encoded)
	return r
}

// Status sets the desired status; the host writes it to the status
// subresource.
func (r *Response) Status(status any) *Response {
	s, err := encode(status)
	if err != nil {
		r.fail(fmt.Sprintf("the status does not encode as JSON: %v", err))
		return r
	}
	r.StatusJSON = &s
	return r
}

// RequeueAfter asks for another reconcile after delay even if nothing
// changes.
func (r *Response) RequeueAfter(delay time.Duration) *Response {
	ms := delayMs(delay)
	r.RequeueAfterMs = &ms
	return r
}

// Event records an event against the object.
func (r *Response) Event(event Event) *Response {
	r.Events = append(r.Events, event)
	return r
}

func (r *Response) fail(message string) {
	if r.err == nil {
		r.err = Retryable("SerializationFailed", message)
	}
}

// Finalized is the answer to Finalize: Done or Pending.
type Finalized struct {
	IsDone         bool
	RequeueAfterMs *uint64
	Events         []Event
}

// Done says cleanup is complete: the host removes the finalizer.
func Done() *Finalized {
	return &Finalized{IsDone: true}
}

// Pending says cleanup is under way: call Finalize again after delay.
func Pending(delay time.Duration) *Finalized {
	ms := delayMs(delay)
	return &Finalized{RequeueAfterMs: &ms}
}

// Event records an event against the object.
func (f *Finalized) Event(event Event) *Finalized {
	f.Events = append(f.Events, event)
	return f
}

// delayMs is whole milliseconds rounded up, so a requeue never comes due
// before the time asked for; a negative delay is zero.
func delayMs(delay time.Duration) uint64 {
	if delay <= 0 {
		return 0
	}
	ms := delay / time.Millisecond
	if delay%time.Millisecond != 0 && ms < math.MaxInt64 {
		ms++
	}
	return uint64(ms)
}

// encode is value as JSON without encoding/json's HTML escaping (`<`, `>`
// and `&` as \u003c...), which the host does not need: the text stays as
// the author wrote it, as the other SDKs write it.
func encode(value any) (string, error) {
	var out bytes.Buffer
	encoder := json.NewEncoder(&out)
	encoder.SetEscapeHTML(false)
	if err := encoder.Encode(value); err != nil {
		return "", err
	}
	return string(bytes.TrimSuffix(out.Bytes(), []byte("\n"))), nil
}
