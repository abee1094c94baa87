package bosuntest_test

// The HTTP client through the harness's stubs: the same surface and error
// classification as the Rust SDK's (guest-sdk/src/http.rs) and the Python
// and TypeScript ones'.

import (
	"errors"
	"strings"
	"testing"

	bosun "github.com/bosun-dev/bosun/sdks/go"
	"github.com/bosun-dev/bosun/sdks/go/bosuntest"
)

const api = "https://dns.example:8081"

var zoneKind = bosun.CustomKind("dns.example.com", "v1", "Zone")

type Zone struct {
	bosun.TypeMeta `json:",inline"`
	Metadata       bosun.ObjectMeta `json:"metadata"`
	Spec           struct {
		Method string `json:"method"`
		Path   string `json:"path"`
		Body   any    `json:"body"`
	} `json:"spec"`
}

type zoner struct{ origins []string }

func (zoner) Kind() bosun.Kind { return zoneKind }

func (z zoner) Metadata() *bosun.Metadata {
	m := bosun.NewMetadata("zoner", "0.1.0")
	for _, o := range z.origins {
		m.HTTPOrigin(o)
	}
	return m
}

func (zoner) Reconcile(zone *Zone, ctx *bosun.Context) (*bosun.Response, error) {
	method, path := bosun.Method(zone.Spec.Method), zone.Spec.Path
	if method == "" {
		method = bosun.MethodGet
	}
	if path == "" {
		path = "/zones/a."
	}
	request := ctx.HTTP().Request(method, api+path).Header("Accept", "application/json")
	if zone.Spec.Body != nil {
		request.JSON(zone.Spec.Body)
	}
	answer, err := request.Send()
	if err == nil {
		answer, err = answer.ErrorForStatus()
	}
	var got any
	if err == nil {
		err = answer.JSON(&got)
	}
	if err != nil {
		return nil, err
	}
	return bosun.NewResponse().Status(map[string]any{"code": answer.Status, "answer": got}), nil
}

func zone(method, path string, body any) map[string]any {
	return map[string]any{
		"apiVersion": "dns.example.com/v1", "kind": "Zone", "metadata": map[string]any{"name": "a"},
		"spec": map[string]any{"method": method, "path": path, "body": body},
	}
}

func harness() *bosuntest.Harness { return bosuntest.New[Zone](zoner{origins: []string{api}}) }

func reconcileError(t *testing.T, err error) *bosun.Error {
	t.Helper()
	var typed *bosun.Error
	if !errors.As(err, &typed) {
		t.Fatalf("want a *bosun.Error, got %v", err)
	}
	return typed
}

func TestAStubbedAnswerReachesTheReconcilerAndTheRequestIsRecorded(t *testing.T) {
	h := harness().HTTP(bosuntest.StubPatch(api + "/zones/a.").JSON(map[string]bool{"ok": true}))
	out, err := h.Reconcile(zone("PATCH", "", map[string]any{"rrsets": []any{}}))
	if err != nil {
		t.Fatal(err)
	}
	var status struct {
		Code   int             `json:"code"`
		Answer map[string]bool `json:"answer"`
	}
	if _, err := out.Status(&status); err != nil {
		t.Fatal(err)
	}
	if status.Code != 200 || !status.Answer["ok"] {
		t.Fatalf("status %+v", status)
	}
	sent := h.Requests()
	if len(sent) != 1 || sent[0].Method != bosun.MethodPatch || sent[0].Header("content-type") != "application/json" ||
		sent[0].Header("ACCEPT") != "application/json" || string(sent[0].Body) != `{"rrsets":[]}` {
		t.Fatalf("sent %+v", sent)
	}
}

func TestTheMostSpecificStubWinsThenTheFirstWithAnswersLeft(t *testing.T) {
	h := harness().
		HTTP(bosuntest.StubOrigin(api).Status(503)).
		HTTP(bosuntest.StubGet(api + "/zones/a.").JSON(map[string]int{"n": 1}).Once()).
		HTTP(bosuntest.StubGet(api + "/zones/a.").JSON(map[string]int{"n": 2}))
	for _, want := range []float64{1, 2, 2} {
		out, err := h.Reconcile(zone("", "", nil))
		if err != nil {
			t.Fatal(err)
		}
		var status struct{ Answer map[string]float64 }
		if _, err := out.Status(&status); err != nil || status.Answer["n"] != want {
			t.Fatalf("want n=%v, got %+v (%v)", want, status, err)
		}
	}
	_, err := h.Reconcile(zone("", "/other", nil))
	if e := reconcileError(t, err); e.Reason != "HttpStatus" || e.Permanent {
		t.Fatalf("a 503 is a retryable HttpStatus, got %v", e)
	}
}

func TestA4xxIsAPermanentHttpStatusQuotingTheBody(t *testing.T) {
	_, err := harness().HTTP(bosuntest.StubGet(api + "/zones/a.").Status(422).Body("bad\r\ncontent")).Reconcile(zone("", "", nil))
	e := reconcileError(t, err)
	want := "GET " + api + "/zones/a. failed: status 422: bad  content"
	if e.Reason != "HttpStatus" || !e.Permanent || e.Message != want {
		t.Fatalf("got %+v", e)
	}
	for _, status := range []int{408, 429, 500, 503} {
		_, err := harness().HTTP(bosuntest.StubOrigin(api).Status(status)).Reconcile(zone("", "", nil))
		if reconcileError(t, err).Permanent {
			t.Fatalf("%d is retryable", status)
		}
	}
}

func TestRefusalsTimeoutsAndFailedConnectionsAreRetryable(t *testing.T) {
	for _, c := range []struct {
		stub   *bosuntest.HTTPStub
		reason string
		words  string
	}{
		{bosuntest.StubOrigin(api).Refused(), "HttpRefused", "refused by the host"},
		{bosuntest.StubOrigin(api).Timeout(), "HttpTimeout", "timed out"},
		{bosuntest.StubOrigin(api).ConnectionRefused(), "HttpConnection", "connection failed: ConnectionRefused"},
	} {
		_, err := harness().HTTP(c.stub).Reconcile(zone("", "", nil))
		e := reconcileError(t, err)
		if e.Reason != c.reason || e.Permanent || !strings.Contains(e.Message, c.words) {
			t.Fatalf("want a retryable %s with %q, got %+v", c.reason, c.words, e)
		}
	}
}

func TestAnUndeclaredOriginIsRefusedAsTheHostRefusesIt(t *testing.T) {
	_, err := bosuntest.New[Zone](zoner{}).HTTP(bosuntest.StubOrigin(api)).Reconcile(zone("", "", nil))
	e := reconcileError(t, err)
	if e.Reason != "HttpRefused" || e.Permanent || !strings.Contains(e.Message, "not an origin this module declared (Metadata.HTTPOrigin)") {
		t.Fatalf("got %+v", e)
	}
	info, err := harness().Metadata()
	if err != nil || len(info.HTTPOrigins) != 1 || info.HTTPOrigins[0] != api {
		t.Fatalf("the origin is declared: %+v (%v)", info.HTTPOrigins, err)
	}
}

func TestARequestNoStubMatchesFailsTheTest(t *testing.T) {
	defer func() {
		h, ok := recover().(bosun.HarnessFailure)
		if !ok || !strings.Contains(h.Message, "unexpected HTTP request GET "+api+"/zones/a.: no HTTPStub matches it; stubs given:\n    POST") {
			t.Fatalf("want a HarnessFailure naming the stubs, got %+v", h)
		}
	}()
	_, _ = harness().HTTP(bosuntest.StubPost(api + "/zones/a.")).Reconcile(zone("", "", nil))
	t.Fatal("the reconcile returned")
}

func TestABodyThatIsNotTheJSONExpectedIsARetryableHttpBody(t *testing.T) {
	_, err := harness().HTTP(bosuntest.StubOrigin(api).Body("<html>")).Reconcile(zone("", "", nil))
	if e := reconcileError(t, err); e.Reason != "HttpBody" || e.Permanent {
		t.Fatalf("got %+v", e)
	}
}

func TestRequestsThatCannotBeSentArePermanentBeforeAnythingGoesOut(t *testing.T) {
	for _, url := range []string{"ftp://h/", "https:///path", "http://user:pw@h/", "http://h/a b", "http://h/\r\nX: y", "dns.example/path", "http://h?x"} {
		err := (&bosun.HTTPRequest{Method: bosun.MethodGet, URL: url}).Check()
		if err == nil || err.Kind != bosun.HTTPInvalidRequest || !err.IsPermanent() {
			t.Fatalf("%q: got %v", url, err)
		}
	}
	for _, h := range []bosun.Header{{Name: "X-Evil", Value: "a\r\nHost: other"}, {Name: "Bad Name", Value: "v"}} {
		if err := (&bosun.HTTPRequest{Method: bosun.MethodGet, URL: "http://h/", Headers: []bosun.Header{h}}).Check(); err == nil {
			t.Fatalf("%+v was accepted", h)
		}
	}
	parts, err := (&bosun.HTTPRequest{URL: "https://dns.example:8081/api/v1/zones/a.?x=1#frag"}).URLParts()
	if err != nil || parts != (bosun.URLParts{HTTPS: true, Authority: "dns.example:8081", PathWithQuery: "/api/v1/zones/a.?x=1"}) ||
		parts.Origin() != api {
		t.Fatalf("%+v %v", parts, err)
	}
}

func TestLongErrorBodiesAreCutAtACharacterBoundary(t *testing.T) {
	request := &bosun.HTTPRequest{Method: bosun.MethodGet, URL: "http://h/x"}
	_, err := bosun.NewHTTPResponse(request, 500, nil, []byte(strings.Repeat("é", 2000))).ErrorForStatus()
	var e *bosun.HTTPError
	if !errors.As(err, &e) || len(e.Message) > bosun.MaxQuotedBody+32 || !strings.HasSuffix(e.Message, "é…") {
		t.Fatalf("got %v", err)
	}
}
