package bosuntest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	bosun "github.com/bosun-dev/bosun/sdks/go"
)

// HTTPStub answers matching requests in a Harness, as the Rust and Python
// SDKs' HttpStub. A stub matches by origin, optionally by path (the query
// too when the stub's URL has one) and by method:
//
//	bosuntest.StubOrigin("https://dns.example:8081")             // anything there: 200
//	bosuntest.StubGet(zoneURL).JSON(map[string]any{"rrsets": nil}).Once() // one GET, then the next stub
//	bosuntest.StubPatch(zoneURL).Status(422).JSON(map[string]string{"error": "bad content"})
//	bosuntest.StubOrigin("https://dns.example:8081").Timeout()   // or .Refused(), .ConnectionRefused()
type HTTPStub struct {
	method  bosun.Method // "" for any
	origin  string       // lower case
	path    *string      // nil for any
	status  int
	headers []bosun.Header
	body    []byte
	failure *bosun.HTTPError // kind and message; method and URL come from the request
	limit   int              // 0 for any number
	bad     error            // a stub that cannot match, reported when the harness runs
}

// StubOrigin answers every request to origin (scheme://host[:port]),
// whatever its method and path.
func StubOrigin(origin string) *HTTPStub {
	stub := &HTTPStub{status: 200}
	parsed, path, err := split(origin)
	stub.origin = parsed
	if err == nil && path != nil {
		err = fmt.Errorf("StubOrigin(%q) takes an origin without a path", origin)
	}
	stub.bad = err
	return stub
}

// Stub answers requests with method to url.
func Stub(method bosun.Method, url string) *HTTPStub {
	stub := &HTTPStub{status: 200, method: method}
	parsed, path, err := split(url)
	if path == nil {
		root := "/"
		path = &root
	}
	stub.origin, stub.path, stub.bad = parsed, path, err
	return stub
}

func StubGet(url string) *HTTPStub    { return Stub(bosun.MethodGet, url) }
func StubPost(url string) *HTTPStub   { return Stub(bosun.MethodPost, url) }
func StubPut(url string) *HTTPStub    { return Stub(bosun.MethodPut, url) }
func StubPatch(url string) *HTTPStub  { return Stub(bosun.MethodPatch, url) }
func StubDelete(url string) *HTTPStub { return Stub(bosun.MethodDelete, url) }

// Times makes the stub answer at most times requests; then the next
// matching stub answers.
func (s *HTTPStub) Times(times int) *HTTPStub {
	s.limit = times
	return s
}

// Once is Times(1).
func (s *HTTPStub) Once() *HTTPStub { return s.Times(1) }

// Status sets the status it answers with (200 unless set).
func (s *HTTPStub) Status(status int) *HTTPStub {
	s.status, s.failure = status, nil
	return s
}

// Header adds a header to the answer.
func (s *HTTPStub) Header(name, value string) *HTTPStub {
	s.headers = append(s.headers, bosun.Header{Name: name, Value: value})
	return s
}

// Body sets the answer's body.
func (s *HTTPStub) Body(body string) *HTTPStub {
	s.body = []byte(body)
	return s
}

// JSON answers with value as JSON (and Content-Type: application/json).
func (s *HTTPStub) JSON(value any) *HTTPStub {
	encoded, err := json.Marshal(value)
	if err != nil && s.bad == nil {
		s.bad = fmt.Errorf("a stub's JSON does not encode: %w", err)
	}
	s.body = encoded
	return s.Header("Content-Type", "application/json")
}

// Refused fails as the host does when the origin is not granted.
func (s *HTTPStub) Refused() *HTTPStub {
	return s.Fail(bosun.HTTPRefused, "the origin is not granted to this module")
}

// Timeout fails as a request that got no answer in time.
func (s *HTTPStub) Timeout() *HTTPStub { return s.Fail(bosun.HTTPTimeout, "HttpResponseTimeout") }

// ConnectionRefused fails as a request to a port where nothing listens.
func (s *HTTPStub) ConnectionRefused() *HTTPStub {
	return s.Fail(bosun.HTTPConnection, "ConnectionRefused")
}

// Fail fails matching requests with an error of kind.
func (s *HTTPStub) Fail(kind bosun.HTTPErrorKind, message string) *HTTPStub {
	s.failure = &bosun.HTTPError{Kind: kind, Message: message}
	return s
}

func (s *HTTPStub) matches(method bosun.Method, parts bosun.URLParts) bool {
	if s.method != "" && s.method != method {
		return false
	}
	if s.origin != strings.ToLower(parts.Origin()) {
		return false
	}
	if s.path == nil {
		return true
	}
	if strings.Contains(*s.path, "?") {
		return *s.path == parts.PathWithQuery
	}
	path, _, _ := strings.Cut(parts.PathWithQuery, "?")
	return *s.path == path
}

// specificity ranks method and path over path over origin alone.
func (s *HTTPStub) specificity() int {
	rank := 0
	if s.method != "" {
		rank += 2
	}
	if s.path != nil {
		rank++
	}
	return rank
}

func (s *HTTPStub) answer(request *bosun.HTTPRequest) (*bosun.HTTPResponse, error) {
	if s.failure != nil {
		return nil, request.Err(s.failure.Kind, s.failure.Message)
	}
	headers := append([]bosun.Header(nil), s.headers...)
	return bosun.NewHTTPResponse(request, s.status, headers, append([]byte(nil), s.body...)), nil
}

func (s *HTTPStub) String() string {
	method, path := "any method", "/*"
	if s.method != "" {
		method = string(s.method)
	}
	if s.path != nil {
		path = *s.path
	}
	return method + " " + s.origin + path
}

// HTTP answers matching requests with stub. When several match, the most
// specific wins (method and path over path over origin), then the one added
// first that has answers left, so a sequence reads in order. A request to
// an origin the module did not declare is refused as the host refuses it;
// one no stub matches fails the test.
func (h *Harness) HTTP(stub *HTTPStub) *Harness {
	if stub.bad != nil {
		h.fail(stub.bad)
	}
	h.http.stubs = append(h.http.stubs, stub)
	h.http.used = append(h.http.used, 0)
	return h
}

// Requests is every HTTP request the reconciler sent through this harness,
// in order (refused ones included).
func (h *Harness) Requests() []*bosun.HTTPRequest {
	return append([]*bosun.HTTPRequest(nil), h.http.sent...)
}

// stubs is the harness's HTTP state, shared by the hosts of its calls.
type stubs struct {
	stubs   []*HTTPStub
	used    []int
	sent    []*bosun.HTTPRequest
	origins []string
}

func (t *testHost) HTTP(request *bosun.HTTPRequest) (*bosun.HTTPResponse, error) {
	s := t.http
	s.sent = append(s.sent, request)
	parts, err := request.URLParts()
	if err != nil {
		return nil, err
	}
	declared := false
	for _, origin := range s.origins {
		declared = declared || originCovers(origin, parts.Origin())
	}
	if !declared {
		return nil, request.Err(bosun.HTTPRefused, parts.Origin()+
			" is not an origin this module declared (Metadata.HTTPOrigin); the host refuses it")
	}
	best := -1
	for i, stub := range s.stubs {
		if (stub.limit != 0 && s.used[i] >= stub.limit) || !stub.matches(request.Method, parts) {
			continue
		}
		if best < 0 || stub.specificity() > s.stubs[best].specificity() {
			best = i
		}
	}
	if best < 0 {
		known := " none"
		if len(s.stubs) > 0 {
			known = ""
			for _, stub := range s.stubs {
				known += "\n    " + stub.String()
			}
		}
		// The test's own mistake: it fails the test, not the reconcile.
		panic(bosun.HarnessFailure{Message: fmt.Sprintf(
			"unexpected HTTP request %s %s: no HTTPStub matches it; stubs given:%s",
			request.Method, request.URL, known)})
	}
	s.used[best]++
	return s.stubs[best].answer(request)
}

// originCovers is whether the declared origin (scheme://host[:port], or
// scheme://*.domain[:port] for its subdomains) covers origin.
func originCovers(declared, origin string) bool {
	ds, dh, dp, okd := splitOrigin(declared)
	os, oh, op, oko := splitOrigin(origin)
	if !okd || !oko || ds != os || dp != op {
		return false
	}
	if domain, wild := strings.CutPrefix(dh, "*"); wild && strings.HasPrefix(domain, ".") {
		return strings.HasSuffix(oh, domain) && len(oh) > len(domain)
	}
	return dh == oh
}

func splitOrigin(text string) (scheme, host string, port int, ok bool) {
	scheme, rest, found := strings.Cut(text, "://")
	if !found {
		return "", "", 0, false
	}
	scheme = strings.ToLower(scheme)
	switch scheme {
	case "http":
		port = 80
	case "https":
		port = 443
	default:
		return "", "", 0, false
	}
	rest = strings.ToLower(strings.TrimRight(rest, "/"))
	if colon := strings.LastIndex(rest, ":"); colon >= 0 {
		h, p := rest[:colon], rest[colon+1:]
		// `[::1]` alone has colons but no port.
		if n, err := strconv.Atoi(p); err == nil && p != "" && !strings.HasPrefix(p, "+") &&
			(!strings.HasSuffix(h, "]") || strings.HasPrefix(rest, "[")) {
			return scheme, h, n, true
		}
	}
	return scheme, rest, port, true
}

// split is url's origin (lower case) and its path, nil when it has none.
func split(url string) (string, *string, error) {
	request := &bosun.HTTPRequest{Method: bosun.MethodGet, URL: url}
	parts, err := request.URLParts()
	if err != nil {
		return "", nil, err
	}
	_, after, _ := strings.Cut(url, "://")
	if !strings.ContainsAny(after, "/?") {
		return strings.ToLower(parts.Origin()), nil, nil
	}
	path := parts.PathWithQuery
	return strings.ToLower(parts.Origin()), &path, nil
}
