package bosun

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
)

// Reconciler is the logic of one controller for primary objects decoded
// into T: its Kind, its Metadata, and Reconcile. A reconciler that declares
// a finalizer also implements Finalizer[T]. Keep nothing between calls:
// the host runs every call in a fresh sandbox.
type Reconciler[T any] interface {
	Kind() Kind
	Metadata() *Metadata
	Reconcile(obj *T, ctx *Context) (*Response, error)
}

// Finalizer cleans up for an object that is being deleted; implement it
// beside Reconcile when Metadata declares a finalizer. Without it,
// finalizing is done at once.
type Finalizer[T any] interface {
	Finalize(obj *T, ctx *Context) (*Finalized, error)
}

// Request is one call as the host sends it (`bosun:reconciler/types.request`).
type Request struct {
	Object   string
	Children []string
	Settings *string
	Trigger  Trigger
	Attempt  uint32
}

// ModuleInfo is `bosun:reconciler/types.module-info`.
type ModuleInfo struct {
	Name        string
	Version     string
	Primary     Kind
	Owns        []Kind
	Reads       []Kind
	Finalizer   *string
	HTTPOrigins []string
}

// Module is a reconciler behind the JSON boundary: what the component's
// exports call, and what the harness calls, so tests cross the boundary
// the host does. Every failure comes back as an *Error.
type Module interface {
	Info() ModuleInfo
	Reconcile(req *Request, host Host) (*Response, *Error)
	Finalize(req *Request, host Host) (*Finalized, *Error)
}

// New wraps r as a Module.
func New[T any](r Reconciler[T]) Module {
	return module[T]{r}
}

type module[T any] struct{ r Reconciler[T] }

func (m module[T]) Info() ModuleInfo {
	declared := m.r.Metadata()
	info := ModuleInfo{
		Name:        declared.Name,
		Version:     declared.Version,
		Primary:     m.r.Kind(),
		Owns:        declared.Owned,
		Reads:       declared.Read,
		HTTPOrigins: declared.Origins,
	}
	if declared.Finalizer != "" {
		f := declared.Finalizer
		info.Finalizer = &f
	}
	return info
}

func (m module[T]) Reconcile(req *Request, host Host) (response *Response, failure *Error) {
	defer recovered(&failure)
	obj, ctx, err := m.decode(req, host)
	if err != nil {
		return nil, err
	}
	response, rerr := m.r.Reconcile(obj, ctx)
	if rerr != nil {
		return nil, asError(rerr)
	}
	if response == nil {
		return nil, Retryable("InvalidResponse", "Reconcile returned a nil *Response and no error")
	}
	if response.err != nil {
		return nil, response.err
	}
	return response, nil
}

func (m module[T]) Finalize(req *Request, host Host) (answer *Finalized, failure *Error) {
	defer recovered(&failure)
	finalizer, ok := m.r.(Finalizer[T])
	if !ok {
		return Done(), nil
	}
	obj, ctx, err := m.decode(req, host)
	if err != nil {
		return nil, err
	}
	answer, ferr := finalizer.Finalize(obj, ctx)
	if ferr != nil {
		return nil, asError(ferr)
	}
	if answer == nil {
		return nil, Retryable("InvalidResponse", "Finalize returned a nil *Finalized and no error")
	}
	return answer, nil
}

func (m module[T]) decode(req *Request, host Host) (*T, *Context, *Error) {
	kind := m.r.Kind()
	// The API server validated the object against its schema, so an
	// object that does not decode cannot be fixed by retrying.
	obj := new(T)
	if err := json.Unmarshal([]byte(req.Object), obj); err != nil {
		return nil, nil, Permanent("InvalidObject", fmt.Sprintf("the %s does not decode: %v", kind.Kind, err))
	}
	var head struct {
		Metadata ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal([]byte(req.Object), &head); err != nil {
		return nil, nil, Permanent("InvalidObject", fmt.Sprintf("the %s's metadata does not decode: %v", kind.Kind, err))
	}
	ctx, err := newContext(req, kind, &head.Metadata, host)
	if err != nil {
		return nil, nil, asError(err)
	}
	return obj, ctx, nil
}

// asError is err as an *Error: itself when it is one (wrapped or not), a
// retryable ReconcileFailed carrying its message otherwise.
func asError(err error) *Error {
	var typed *Error
	if errors.As(err, &typed) {
		return typed
	}
	return Retryable("ReconcileFailed", err.Error())
}

// HarnessFailure is a test's own failure raised inside a reconciler by the
// native harness (package bosuntest): it must fail the test, not become the
// retryable error an ordinary panic becomes.
type HarnessFailure struct{ Message string }

// stackLines is how many lines of a panic's stack are kept: the innermost
// frames say where it happened, and the host cuts long messages anyway.
const stackLines = 12

// recovered turns a panic into a retryable UncaughtPanic carrying its
// value and the innermost frames of the stack, written into *failure:
// a panic that escaped would end the instance with a trap, which counts
// toward quarantine and loses the message.
func recovered(failure **Error) {
	value := recover()
	if value == nil {
		return
	}
	if h, ok := value.(HarnessFailure); ok {
		panic(h)
	}
	*failure = Retryable("UncaughtPanic", fmt.Sprintf("panic: %v\n%s", value, frames(debug.Stack())))
}

// frames is the stack below the panic: runtime/debug.Stack's lines after
// the frame of runtime.gopanic (the panicking function and its callers),
// at most stackLines of them.
func frames(stack []byte) string {
	lines := strings.Split(strings.TrimSpace(string(stack)), "\n")
	start := 0
	for i, line := range lines {
		if strings.HasPrefix(line, "panic(") {
			start = i + 2 // the panic frame's function and file lines
			break
		}
	}
	if start >= len(lines) {
		start = 0
	}
	lines = lines[start:]
	if len(lines) > stackLines {
		lines = lines[:stackLines]
	}
	return strings.Join(lines, "\n")
}

// exported is the module the component's exports serve (see Export).
var exported Module

// Export makes r the reconciler the component's exports call. Call it from
// an init function of the main package:
//
//	func init() { bosun.Export[At](Cnat{}) }
//	func main() {}
func Export[T any](r Reconciler[T]) {
	exported = New(r)
}
