package bosuntest_test

// A bosun recording as a test fixture: FromRecording loads the clock,
// request, read answers and HTTP answers of a bosun.dev/recording/v1 file
// (testdata/zone.recording.json, written by hand in the host's format; the
// same file as the Python and TypeScript SDKs' fixture) and the harness
// reaches the recorded outcome.

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bosun "github.com/bosun-dev/bosun/sdks/go"
	"github.com/bosun-dev/bosun/sdks/go/bosuntest"
	"github.com/bosun-dev/bosun/sdks/go/kinds"
)

const recordedZone = "https://dns.example:8081/api/v1/servers/localhost/zones/example.org."

const zoneFixture = "testdata/zone.recording.json"

type configMap struct {
	bosun.TypeMeta `json:",inline"`
	Metadata       bosun.ObjectMeta  `json:"metadata"`
	Data           map[string]string `json:"data,omitempty"`
}

// recordedZoner uses every input a recording holds: reads, HTTP, settings,
// children, trigger, attempt and the clock.
type recordedZoner struct{}

func (recordedZoner) Kind() bosun.Kind { return kinds.ConfigMap }

func (recordedZoner) Metadata() *bosun.Metadata {
	return bosun.NewMetadata("zone", "0.1.0").Owns(kinds.Secret).Reads(kinds.Secret).HTTPOrigin("https://dns.example:8081").WithFinalizer("zone.example.com/records")
}

// Finalize is done once the zone has no records left.
func (recordedZoner) Finalize(_ *configMap, ctx *bosun.Context) (*bosun.Finalized, error) {
	answer, err := ctx.HTTP().Get(recordedZone).Send()
	if err == nil {
		answer, err = answer.ErrorForStatus()
	}
	var zone struct {
		RRSets []any `json:"rrsets"`
	}
	if err == nil {
		err = answer.JSON(&zone)
	}
	if err != nil {
		return nil, err
	}
	if len(zone.RRSets) == 0 {
		return bosun.Done(), nil
	}
	return bosun.Pending(5 * time.Second), nil
}

func (recordedZoner) Reconcile(_ *configMap, ctx *bosun.Context) (*bosun.Response, error) {
	var target configMap
	found, err := ctx.Get(kinds.Secret, "www-target", &target)
	if err != nil {
		return nil, err
	}
	var labelled []configMap
	if err := ctx.List(kinds.Secret, "app=www", &labelled); err != nil {
		return nil, err
	}
	var zone struct {
		RRSets []any `json:"rrsets"`
	}
	get := func() error {
		answer, err := ctx.HTTP().Get(recordedZone).Header("Accept", "application/json").Send()
		if err == nil {
			answer, err = answer.ErrorForStatus()
		}
		if err == nil {
			err = answer.JSON(&zone)
		}
		return err
	}
	if err := get(); err != nil {
		return nil, err
	}
	if len(zone.RRSets) == 0 {
		answer, err := ctx.HTTP().Patch(recordedZone).JSON(map[string]any{"rrsets": []any{map[string]string{"name": "www"}}}).Send()
		if err == nil {
			_, err = answer.ErrorForStatus()
		}
		if err != nil {
			return nil, err
		}
		if err := get(); err != nil {
			return nil, err
		}
	}
	var settings struct {
		TTL int `json:"ttl"`
	}
	if _, err := ctx.Settings(&settings); err != nil {
		return nil, err
	}
	var children []configMap
	if err := ctx.Children(kinds.ConfigMap, &children); err != nil {
		return nil, err
	}
	var name any
	if found {
		name = target.Metadata.Name
	}
	return bosun.NewResponse().Status(map[string]any{
		"records":  len(zone.RRSets),
		"target":   name,
		"labelled": len(labelled),
		"ttl":      settings.TTL,
		"children": len(children),
		"trigger":  ctx.Trigger,
		"attempt":  ctx.Attempt,
		"now":      ctx.Now().Unix(),
	}), nil
}

func zoneRecording(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(zoneFixture)
	if err != nil {
		t.Fatal(err)
	}
	var recording map[string]any
	if err := json.Unmarshal(data, &recording); err != nil {
		t.Fatal(err)
	}
	return recording
}

func encode(t *testing.T, value any) []byte {
	t.Helper()
	data, err := json.Marshal(value)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestARecordingLoadsAsAFixtureAndTheHarnessReachesItsOutcome(t *testing.T) {
	h, cm, err := bosuntest.FromRecordingFile[configMap](recordedZoner{}, zoneFixture)
	if err != nil {
		t.Fatal(err)
	}
	if cm.Metadata.Name != "www" {
		t.Fatalf("the recorded object: %+v", cm)
	}
	outcome, err := h.Reconcile(cm)
	if err != nil {
		t.Fatal(err)
	}
	recorded := zoneRecording(t)["outcome"].(map[string]any)["response"].(map[string]any)
	var status any
	if _, err := outcome.Status(&status); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(status, recorded["status"]) {
		t.Fatalf("status %v, recorded %v", status, recorded["status"])
	}
	if len(outcome.Children) != 0 || outcome.RequeueAfterMs != nil {
		t.Fatalf("children %v, requeue %v", outcome.Children, outcome.RequeueAfterMs)
	}
	var sent []string
	for _, r := range h.Requests() {
		sent = append(sent, string(r.Method)+" "+r.URL)
	}
	want := []string{"GET " + recordedZone, "PATCH " + recordedZone, "GET " + recordedZone}
	if !reflect.DeepEqual(sent, want) {
		t.Fatalf("sent %v", sent)
	}
}

func TestARecordedFinalizeLoadsAndFinalizeReplaysIt(t *testing.T) {
	recording := zoneRecording(t)
	recording["call"] = "finalize"
	recording["http"] = recording["http"].([]any)[2:] // the zone, with one record
	h, cm, err := bosuntest.FromRecording[configMap](recordedZoner{}, encode(t, recording))
	if err != nil {
		t.Fatal(err)
	}
	outcome, err := h.Finalize(cm)
	if err != nil {
		t.Fatal(err)
	}
	if outcome.IsDone || outcome.RequeueAfterMs == nil || *outcome.RequeueAfterMs != 5000 {
		t.Fatalf("finalize: %+v", outcome.Finalized)
	}
}

func TestEachRecordedHTTPAnswerIsUsedOnceInOrder(t *testing.T) {
	recording := zoneRecording(t)
	recording["http"] = recording["http"].([]any)[:1] // the PATCH was never recorded
	h, cm, err := bosuntest.FromRecording[configMap](recordedZoner{}, encode(t, recording))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		failure, ok := recover().(bosun.HarnessFailure)
		if !ok || !strings.Contains(failure.Message, "unexpected HTTP request PATCH") {
			t.Fatalf("want a HarnessFailure for the PATCH, got %+v", failure)
		}
	}()
	_, _ = h.Reconcile(cm)
	t.Fatal("the PATCH no stub answers passed")
}

func TestARecordedHTTPFailureReplaysAsTheSameKindOfError(t *testing.T) {
	recording := zoneRecording(t)
	exchange := recording["http"].([]any)[0].(map[string]any)
	exchange["response"], exchange["error"] = nil, "ConnectionRefused"
	recording["http"] = []any{exchange}
	h, cm, err := bosuntest.FromRecording[configMap](recordedZoner{}, encode(t, recording))
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Reconcile(cm)
	var failure *bosun.Error
	if !errors.As(err, &failure) || failure.Reason != "HttpConnection" {
		t.Fatalf("got %v", err)
	}
}

func TestAMalformedOrMismatchedRecordingIsAClearError(t *testing.T) {
	field := func(r map[string]any, path ...any) map[string]any {
		var at any = r
		for _, step := range path {
			switch s := step.(type) {
			case string:
				at = at.(map[string]any)[s]
			case int:
				at = at.([]any)[s]
			}
		}
		return at.(map[string]any)
	}
	cases := []struct {
		change  func(map[string]any)
		message string
	}{
		{func(r map[string]any) { r["format"] = "bosun.dev/recording/v2" }, "is not one this SDK reads"},
		{func(r map[string]any) { delete(r, "format") }, `has no "format"`},
		{func(r map[string]any) { r["call"] = "shadow" }, "neither reconcile nor finalize"},
		{func(r map[string]any) { delete(r, "request") }, "request is missing"},
		{func(r map[string]any) { field(r, "request")["object"] = "{not json" }, "the recorded object is not JSON"},
		{func(r map[string]any) { field(r, "request")["object"] = `{"metadata": 1}` }, "the recorded object is not a bosuntest_test.configMap"},
		{func(r map[string]any) { field(r, "request")["trigger"] = "someday" }, `trigger "someday" is unknown`},
		{func(r map[string]any) { r["now"] = "yesterday" }, "the recording's now"},
		{func(r map[string]any) { r["now"] = 12 }, "the recording's now 12 is not a time"},
		{func(r map[string]any) { field(r, "reads", 0, "answer")["found"] = "[1" }, "read answer is not JSON"},
		{func(r map[string]any) { field(r, "http", 0, "request")["method"] = "BREW" }, `method "BREW" is unknown`},
		{func(r map[string]any) { delete(field(r, "http", 0, "response"), "status") }, "has no status"},
		{func(r map[string]any) { field(r, "http", 2, "response")["body"] = map[string]any{"base64": "**"} }, "not valid base64"},
		{func(r map[string]any) { r["http"] = map[string]any{} }, `"http" is not a list`},
	}
	for _, c := range cases {
		recording := zoneRecording(t)
		c.change(recording)
		_, _, err := bosuntest.FromRecording[configMap](recordedZoner{}, encode(t, recording))
		var bad *bosuntest.RecordingError
		if !errors.As(err, &bad) || !strings.Contains(err.Error(), c.message) {
			t.Errorf("%s: got %v", c.message, err)
		}
	}
}

func TestWhatIsNotARecordingIsAClearError(t *testing.T) {
	for data, message := range map[string]string{"{": "not a bosun recording", "[1]": "not a bosun recording", "null": "not a JSON object"} {
		_, _, err := bosuntest.FromRecording[configMap](recordedZoner{}, []byte(data))
		if err == nil || !strings.Contains(err.Error(), message) {
			t.Errorf("%s: got %v", data, err)
		}
	}
	_, _, err := bosuntest.FromRecordingFile[configMap](recordedZoner{}, filepath.Join(t.TempDir(), "absent.json"))
	if err == nil || !strings.Contains(err.Error(), "cannot read") {
		t.Errorf("got %v", err)
	}
}

func TestARecordingFileLargerThanTheCapIsRefused(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.json")
	file, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := file.Truncate(bosuntest.MaxRecordingBytes + 1); err != nil {
		t.Fatal(err)
	}
	file.Close()
	_, _, err = bosuntest.FromRecordingFile[configMap](recordedZoner{}, big)
	if err == nil || !strings.Contains(err.Error(), "larger than 67108864 bytes") {
		t.Fatalf("got %v", err)
	}
}
