package bosuntest

import (
	"encoding/json"
	"fmt"
	"time"

	bosun "github.com/bosun-dev/bosun/sdks/go"
)

// Log is one line the reconciler logged.
type Log struct {
	Level   bosun.LogLevel
	Message string
}

// Outcome is what a reconcile returned, as the host would receive it.
type Outcome struct {
	*bosun.Response
	Logs []Log
}

// Status decodes the desired status into out and reports whether the
// reconciler set one.
func (o *Outcome) Status(out any) (bool, error) {
	if o.StatusJSON == nil {
		return false, nil
	}
	return true, json.Unmarshal([]byte(*o.StatusJSON), out)
}

// ChildrenOf decodes the desired children of kind into out, a pointer to a
// slice.
func (o *Outcome) ChildrenOf(kind bosun.Kind, out any) error {
	var matching []json.RawMessage
	for _, raw := range o.Children {
		var value map[string]any
		if err := json.Unmarshal([]byte(raw), &value); err != nil {
			return fmt.Errorf("a desired child is not JSON: %w", err)
		}
		if kind.IsKindOf(value) {
			matching = append(matching, json.RawMessage(raw))
		}
	}
	encoded, err := json.Marshal(matching)
	if err != nil {
		return err
	}
	return json.Unmarshal(encoded, out)
}

// RequeueAfter is the requested requeue delay, and whether there is one.
func (o *Outcome) RequeueAfter() (time.Duration, bool) {
	if o.RequeueAfterMs == nil {
		return 0, false
	}
	return time.Duration(*o.RequeueAfterMs) * time.Millisecond, true
}
