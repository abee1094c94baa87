package bosuntest

import (
	"encoding/json"
	"fmt"
	"time"

	bosun "github.com/bosun-dev/bosun/sdks/go"
)

// testHost answers the reconciler's host calls from the harness's objects,
// with the host's access rules.
type testHost struct {
	clock     time.Time
	objects   []map[string]any
	readable  map[string]bool
	namespace *string // the primary's, when it is namespaced
	logs      []Log
	http      *stubs
}

func (t *testHost) Log(level bosun.LogLevel, message string) {
	t.logs = append(t.logs, Log{Level: level, Message: message})
}

func (t *testHost) Now() time.Time { return t.clock }

func (t *testHost) GetObject(apiVersion, kind string, namespace *string, name string) (*string, error) {
	if err := t.checkAccess(apiVersion, kind, namespace); err != nil {
		return nil, err
	}
	for _, obj := range t.visible(apiVersion, kind, namespace) {
		if meta(obj).Name == name {
			encoded, err := json.Marshal(obj)
			if err != nil {
				return nil, &bosun.HostError{Message: err.Error()}
			}
			found := string(encoded)
			return &found, nil
		}
	}
	return nil, nil
}

func (t *testHost) ListObjects(apiVersion, kind string, namespace, labelSelector *string) ([]string, error) {
	if err := t.checkAccess(apiVersion, kind, namespace); err != nil {
		return nil, err
	}
	selector := ""
	if labelSelector != nil {
		selector = *labelSelector
	}
	matches, err := parseSelector(selector)
	if err != nil {
		return nil, &bosun.HostError{Message: err.Error()}
	}
	found := []string{}
	for _, obj := range t.visible(apiVersion, kind, namespace) {
		if matches(meta(obj).Labels) {
			encoded, err := json.Marshal(obj)
			if err != nil {
				return nil, &bosun.HostError{Message: err.Error()}
			}
			found = append(found, string(encoded))
		}
	}
	return found, nil
}

// checkAccess applies the host's rules: declared kinds only, and the
// primary's namespace only when the primary is namespaced.
func (t *testHost) checkAccess(apiVersion, kind string, namespace *string) error {
	if !t.readable[apiVersion+" "+kind] {
		return &bosun.HostError{Message: fmt.Sprintf("%s.%s is not a declared kind of this module; add it with Metadata.Reads", kind, apiVersion)}
	}
	if t.namespace != nil && namespace != nil && *namespace != *t.namespace {
		return &bosun.HostError{Message: fmt.Sprintf("namespace %q is outside this object's namespace %q", *namespace, *t.namespace)}
	}
	return nil
}

func (t *testHost) visible(apiVersion, kind string, namespace *string) []map[string]any {
	ns := namespace
	if ns == nil {
		ns = t.namespace
	}
	var out []map[string]any
	for _, obj := range t.objects {
		if obj["apiVersion"] != apiVersion || obj["kind"] != kind {
			continue
		}
		if ns != nil && meta(obj).Namespace != *ns {
			continue
		}
		out = append(out, obj)
	}
	return out
}

func meta(obj map[string]any) bosun.ObjectMeta {
	var head struct {
		Metadata bosun.ObjectMeta `json:"metadata"`
	}
	encoded, _ := json.Marshal(obj) // it came from JSON
	_ = json.Unmarshal(encoded, &head)
	return head.Metadata
}
