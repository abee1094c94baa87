package bosuntest

// A bosun recording (`bosun reconcile --record`, `bosun record get`) as a
// test fixture, as the Rust SDK's Harness::from_recording.
//
// The format is the host's bosun.dev/recording/v1
// (host/src/recorder/format.rs); only what the harness can stand in for is
// read: the clock, the request (children, settings, trigger, attempt), the
// objects the reads returned (they become the harness's objects, so its
// read rules answer as the host did) and each HTTP exchange (a stub
// answering once, in order). Random bytes are not replayed natively.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	bosun "github.com/bosun-dev/bosun/sdks/go"
)

// RecordingFormat is the recording format this SDK reads.
const RecordingFormat = "bosun.dev/recording/v1"

// MaxRecordingBytes is the largest recording read, as
// `bosun reconcile --replay`'s cap.
const MaxRecordingBytes = 64 << 20

// RecordingError is why a recording cannot be loaded: malformed, too
// large, another format version, or a call the harness cannot make.
type RecordingError struct{ Message string }

func (e *RecordingError) Error() string { return e.Message }

func badRecording(format string, args ...any) error {
	return &RecordingError{Message: fmt.Sprintf(format, args...)}
}

var recordedTimeouts = []string{"DnsTimeout", "ConnectionTimeout", "ConnectionReadTimeout", "HttpResponseTimeout"}

// FromRecording is a harness for r holding what the recording in data
// holds — its clock, settings, children, trigger, the objects its reads
// returned and its HTTP answers as stubs answering once, in order — and
// the recorded object, to pass to Reconcile or Finalize:
//
//	h, at, err := bosuntest.FromRecordingFile[At](Cnat{}, "testdata/at.recording.json")
//	outcome, err := h.Reconcile(at)
//
// The error is a *RecordingError for data that is not a
// bosun.dev/recording/v1 recording of a reconcile or finalize, is
// malformed, or is over 64 MiB.
func FromRecording[T any](r bosun.Reconciler[T], data []byte) (*Harness, T, error) {
	var object T
	if len(data) > MaxRecordingBytes {
		return nil, object, badRecording("the recording is %d bytes; a recording is at most %d bytes", len(data), MaxRecordingBytes)
	}
	var recording map[string]any
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.UseNumber()
	if err := decoder.Decode(&recording); err != nil {
		return nil, object, badRecording("not a bosun recording: %v", err)
	}
	if recording == nil {
		return nil, object, badRecording("not a bosun recording: it is not a JSON object")
	}
	format, present := recording["format"]
	if !present {
		return nil, object, badRecording(`not a bosun recording: it has no "format"`)
	}
	if format != RecordingFormat {
		found, _ := json.Marshal(format)
		return nil, object, badRecording("recording format %s is not one this SDK reads (it reads %q)", found, RecordingFormat)
	}
	h := New(r)
	text, err := fill(h, recording)
	if err != nil {
		return nil, object, err
	}
	if err := json.Unmarshal([]byte(text), &object); err != nil {
		return nil, object, badRecording("the recorded object is not a %v: %v", reflect.TypeOf(object), err)
	}
	return h, object, nil
}

// FromRecordingFile is FromRecording of the file at path, read only up to
// the cap.
func FromRecordingFile[T any](r bosun.Reconciler[T], path string) (*Harness, T, error) {
	var object T
	file, err := os.Open(path)
	if err != nil {
		return nil, object, badRecording("cannot read %s: %v", path, err)
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, MaxRecordingBytes+1))
	if err != nil {
		return nil, object, badRecording("cannot read %s: %v", path, err)
	}
	if len(data) > MaxRecordingBytes {
		return nil, object, badRecording("the recording %s is larger than %d bytes, a recording's cap", path, MaxRecordingBytes)
	}
	return FromRecording(r, data)
}

// fill loads recording into h; returns the recorded object's JSON text.
func fill(h *Harness, recording map[string]any) (string, error) {
	call := "reconcile"
	if c, present := recording["call"]; present {
		call, _ = c.(string)
		if call != "reconcile" && call != "finalize" {
			return "", badRecording("the recording's call %v is neither reconcile nor finalize", quoted(c))
		}
	}
	request, ok := recording["request"].(map[string]any)
	if !ok {
		return "", badRecording("the recording's request is missing")
	}
	object, ok := request["object"].(string)
	if !ok {
		return "", badRecording("the recording's object is missing")
	}
	var head map[string]any
	if err := json.Unmarshal([]byte(object), &head); err != nil {
		return "", badRecording("the recorded object is not JSON: %v", err)
	}
	if now, present := recording["now"]; present && now != nil {
		text, _ := now.(string)
		when, err := time.Parse(time.RFC3339Nano, text)
		if err != nil {
			return "", badRecording("the recording's now %v is not a time", quoted(now))
		}
		h.Now(when)
	}
	children, err := list(request, "children")
	if err != nil {
		return "", err
	}
	for _, child := range children {
		text, ok := child.(string)
		if !ok {
			return "", badRecording("a recorded child is not JSON text")
		}
		h.observed = append(h.observed, text)
	}
	if settings, present := request["settings"]; present && settings != nil {
		text, ok := settings.(string)
		if !ok {
			return "", badRecording("the recorded settings are not JSON text")
		}
		h.RawSettings(text)
	}
	trigger := bosun.Trigger("manual")
	if t, present := request["trigger"]; present {
		name, _ := t.(string)
		trigger = bosun.Trigger(name)
		if !slices.Contains(bosun.Triggers, trigger) {
			return "", badRecording("the recording's trigger %v is unknown", quoted(t))
		}
	}
	attempt := uint32(1)
	if a, present := request["attempt"]; present {
		number, ok := a.(json.Number)
		value, err := number.Int64()
		if !ok || err != nil || value < 0 || value > int64(^uint32(0)) {
			return "", badRecording("the recording's attempt %v is not a count", quoted(a))
		}
		attempt = uint32(value)
	}
	h.Trigger(trigger, attempt)

	reads, err := list(recording, "reads")
	if err != nil {
		return "", err
	}
	for _, read := range reads {
		texts, err := readObjects(read)
		if err != nil {
			return "", err
		}
		for _, text := range texts {
			var seen map[string]any
			if err := json.Unmarshal([]byte(text), &seen); err != nil {
				return "", badRecording("a recorded read answer is not JSON: %v", err)
			}
			if seen == nil {
				return "", badRecording("a recorded read answer is not an object")
			}
			if !slices.ContainsFunc(h.objects, func(o map[string]any) bool { return reflect.DeepEqual(o, seen) }) {
				h.objects = append(h.objects, seen)
			}
		}
	}
	exchanges, err := list(recording, "http")
	if err != nil {
		return "", err
	}
	for _, exchange := range exchanges {
		stub, err := recordedStub(exchange)
		if err != nil {
			return "", err
		}
		h.HTTP(stub)
	}
	return object, nil
}

func quoted(value any) string {
	encoded, _ := json.Marshal(value)
	return string(encoded)
}

func list(holder map[string]any, name string) ([]any, error) {
	value, present := holder[name]
	if !present || value == nil {
		return nil, nil
	}
	items, ok := value.([]any)
	if !ok {
		return nil, badRecording(`the recording's %q is not a list`, name)
	}
	return items, nil
}

func readObjects(read any) ([]string, error) {
	fields, ok := read.(map[string]any)
	if !ok {
		return nil, badRecording("a recorded read is not an object")
	}
	answer, ok := fields["answer"].(map[string]any)
	if !ok {
		if fields["answer"] == nil {
			return nil, nil
		}
		return nil, badRecording("a recorded read's answer is not an object")
	}
	var texts []string
	if found, ok := answer["found"].(string); ok {
		texts = append(texts, found)
	}
	if items, ok := answer["items"].([]any); ok {
		for _, item := range items {
			if text, ok := item.(string); ok {
				texts = append(texts, text)
			}
		}
	}
	return texts, nil
}

var base64Text = regexp.MustCompile(`^[A-Za-z0-9+/]*={0,2}$`)

func recordedStub(exchange any) (*HTTPStub, error) {
	fields, ok := exchange.(map[string]any)
	if !ok {
		return nil, badRecording("a recorded HTTP exchange has no request")
	}
	request, ok := fields["request"].(map[string]any)
	if !ok {
		return nil, badRecording("a recorded HTTP exchange has no request")
	}
	method := bosun.MethodGet
	if m, present := request["method"]; present {
		name, _ := m.(string)
		method = bosun.Method(name)
		switch method {
		case bosun.MethodGet, bosun.MethodHead, bosun.MethodPost, bosun.MethodPut,
			bosun.MethodPatch, bosun.MethodDelete, bosun.MethodOptions:
		default:
			return nil, badRecording("a recorded HTTP method %v is unknown", quoted(m))
		}
	}
	url, ok := request["url"].(string)
	if !ok {
		return nil, badRecording("a recorded HTTP request has no url")
	}
	stub := Stub(method, url).Once()
	if stub.bad != nil {
		return nil, badRecording("a recorded HTTP url %q: %v", url, stub.bad)
	}
	response, present := fields["response"]
	if !present || response == nil {
		failure, _ := fields["error"].(string)
		switch {
		case failure == "HttpRequestDenied":
			return stub.Refused(), nil
		case slices.Contains(recordedTimeouts, failure):
			return stub.Timeout(), nil
		case strings.HasPrefix(failure, "Connection"), strings.HasPrefix(failure, "Tls"):
			return stub.Fail(bosun.HTTPConnection, failure), nil
		default:
			return stub.Fail(bosun.HTTPProtocol, failure), nil
		}
	}
	answer, ok := response.(map[string]any)
	if !ok {
		return nil, badRecording("a recorded HTTP response is not an object")
	}
	number, ok := answer["status"].(json.Number)
	status, err := number.Int64()
	if !ok || err != nil || status < 0 || status > 0xffff {
		return nil, badRecording("a recorded HTTP response has no status")
	}
	stub.Status(int(status))
	headers, err := list(answer, "headers")
	if err != nil {
		return nil, err
	}
	for _, header := range headers {
		pair, ok := header.([]any)
		if !ok || len(pair) != 2 {
			continue
		}
		name, nameOK := pair[0].(string)
		value, valueOK := pair[1].(string)
		if nameOK && valueOK {
			stub.Header(name, value)
		}
	}
	body := map[string]any{}
	if b, present := answer["body"]; present && b != nil {
		body, ok = b.(map[string]any)
		if !ok {
			return nil, badRecording("a recorded HTTP body is not an object")
		}
	}
	if text, ok := body["text"].(string); ok {
		stub.Body(text)
	} else if encoded, ok := body["base64"].(string); ok {
		decoded, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil || !base64Text.MatchString(encoded) {
			return nil, badRecording("a recorded body is not valid base64")
		}
		stub.body = decoded
	}
	return stub, nil
}
