package bosun

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"
)

// Trigger is why the host runs a reconcile (the WIT enum's case names). A
// hint for logging and backoff: a reconciler must reach the same answer
// whatever the trigger.
type Trigger string

// The triggers, in the WIT enum's order.
var Triggers = []Trigger{
	"object-changed", "child-changed", "read-changed", "requeue",
	"retry", "resync", "module-changed", "manual",
}

// Context is what the host observed about the object being reconciled
// (its children, the module's settings) and the way to ask for more (reads
// from the host's cache, the clock, the log), for one call.
type Context struct {
	Trigger Trigger
	// Attempt is 1 for the first attempt, counting up while retryable
	// errors repeat.
	Attempt    uint32
	children   []observed
	settings   *string
	namespace  *string
	generation *int64
	host       Host
}

// observed is a child as JSON and the identity it is found by.
type observed struct {
	raw  string
	head struct {
		APIVersion string     `json:"apiVersion"`
		Kind       string     `json:"kind"`
		Metadata   ObjectMeta `json:"metadata"`
	}
}

func newContext(req *Request, kind Kind, meta *ObjectMeta, host Host) (*Context, error) {
	ctx := &Context{Trigger: req.Trigger, Attempt: req.Attempt, settings: req.Settings, host: host}
	for _, raw := range req.Children {
		child := observed{raw: raw}
		if err := json.Unmarshal([]byte(raw), &child.head); err != nil {
			return nil, Retryable("InvalidChild", fmt.Sprintf("an observed child is not JSON: %v", err))
		}
		ctx.children = append(ctx.children, child)
	}
	if kind.Scope == Namespaced && meta.Namespace != "" {
		ns := meta.Namespace
		ctx.namespace = &ns
	}
	if meta.Generation != 0 {
		generation := meta.Generation
		ctx.generation = &generation
	}
	return ctx, nil
}

// Children decodes the observed children of kind (objects the host saw
// with a controller ownerReference to this object) into out, a pointer to
// a slice.
func (c *Context) Children(kind Kind, out any) error {
	var raws []string
	for _, child := range c.children {
		if child.head.APIVersion == kind.APIVersion() && child.head.Kind == kind.Kind {
			raws = append(raws, child.raw)
		}
	}
	return decodeAll(raws, out, "InvalidChild", kind.Kind)
}

// Child decodes the observed child of kind called name into out, and
// reports whether there is one.
func (c *Context) Child(kind Kind, name string, out any) (bool, error) {
	for _, child := range c.children {
		h := child.head
		if h.APIVersion == kind.APIVersion() && h.Kind == kind.Kind && h.Metadata.Name == name {
			if err := json.Unmarshal([]byte(child.raw), out); err != nil {
				return false, Retryable("InvalidChild", fmt.Sprintf("%s %s: %v", kind.Kind, name, err))
			}
			return true, nil
		}
	}
	return false, nil
}

// Settings decodes the module's settings into out and reports whether the
// operator gave any. Settings that do not decode are a permanent error:
// retrying cannot fix them, and a settings change reconciles every object
// again.
func (c *Context) Settings(out any) (bool, error) {
	if c.settings == nil {
		return false, nil
	}
	if err := json.Unmarshal([]byte(*c.settings), out); err != nil {
		return false, Permanent("InvalidSettings", fmt.Sprintf("module settings: %v", err))
	}
	return true, nil
}

// Now is the current time, from the host. Use it rather than time.Now so
// that tests and `bosun reconcile --now` fix it.
func (c *Context) Now() time.Time {
	return c.host.Now()
}

// Condition is a condition stamped with the current time and the object's
// generation, ready for conditions.Set.
func (c *Context) Condition(typ string, status bool, reason, message string) Condition {
	s := "False"
	if status {
		s = "True"
	}
	return Condition{
		Type:               typ,
		Status:             s,
		Reason:             reason,
		Message:            message,
		LastTransitionTime: RFC3339(c.Now()),
		ObservedGeneration: c.generation,
	}
}

// Get decodes the object of kind called name from the host's cache into
// out (in this object's namespace for a namespaced kind) and reports
// whether it exists. kind must be the primary kind, an owned kind or a
// declared read kind.
func (c *Context) Get(kind Kind, name string, out any) (bool, error) {
	found, err := c.host.GetObject(kind.APIVersion(), kind.Kind, c.namespaceFor(kind), name)
	if err != nil {
		return false, Retryable("ReadFailed", err.Error())
	}
	if found == nil {
		return false, nil
	}
	if err := json.Unmarshal([]byte(*found), out); err != nil {
		return false, Retryable("ReadFailed", fmt.Sprintf("%s %s: %v", kind.Kind, name, err))
	}
	return true, nil
}

// List decodes the objects of kind in the host's cache (in this object's
// namespace for a namespaced kind) that match labelSelector, in Kubernetes
// syntax such as `app=web,tier in (a,b),!legacy` ("" for all), into out, a
// pointer to a slice.
func (c *Context) List(kind Kind, labelSelector string, out any) error {
	var selector *string
	if labelSelector != "" {
		selector = &labelSelector
	}
	found, err := c.host.ListObjects(kind.APIVersion(), kind.Kind, c.namespaceFor(kind), selector)
	if err != nil {
		return Retryable("ReadFailed", err.Error())
	}
	return decodeAll(found, out, "ReadFailed", kind.Kind)
}

// HTTP is the client for requests to the origins the module declared with
// Metadata.HTTPOrigin and the operator granted.
func (c *Context) HTTP() Client { return Client{host: c.host} }

// Log writes a line to the host's log, tagged with the module and object.
func (c *Context) Log(level LogLevel, message string) { c.host.Log(level, message) }

// Info logs at info level.
func (c *Context) Info(message string) { c.Log(LevelInfo, message) }

// Warn logs at warn level.
func (c *Context) Warn(message string) { c.Log(LevelWarn, message) }

// Debug logs at debug level.
func (c *Context) Debug(message string) { c.Log(LevelDebug, message) }

func (c *Context) namespaceFor(kind Kind) *string {
	if kind.Scope == Namespaced {
		return c.namespace
	}
	return nil
}

// decodeAll decodes each JSON text in raws into a new element of the slice
// out points to.
func decodeAll(raws []string, out any, reason, kind string) error {
	slice := reflect.ValueOf(out)
	if slice.Kind() != reflect.Pointer || slice.Elem().Kind() != reflect.Slice {
		return Retryable(reason, fmt.Sprintf("%s: decoding needs a pointer to a slice, not %T", kind, out))
	}
	list := slice.Elem()
	list.Set(reflect.MakeSlice(list.Type(), 0, len(raws)))
	for _, raw := range raws {
		item := reflect.New(list.Type().Elem())
		if err := json.Unmarshal([]byte(raw), item.Interface()); err != nil {
			return Retryable(reason, fmt.Sprintf("%s: %v", kind, err))
		}
		list.Set(reflect.Append(list, item.Elem()))
	}
	return nil
}

// RFC3339 is when as Kubernetes writes a metav1.Time: UTC, whole seconds.
func RFC3339(when time.Time) string {
	return when.UTC().Format("2006-01-02T15:04:05Z")
}
