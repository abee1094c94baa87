package bosun

// A blocking HTTP client for reconcilers, over wasi:http/outgoing-handler:
// the Rust SDK's client (guest-sdk/src/http.rs) in Go, with the same error
// classification.
//
//	resp, err := ctx.HTTP().
//		Get("https://dns.example:8081/api/v1/servers/localhost/zones/example.org.").
//		Header("Accept", "application/json").
//		Send() // refused, timed out, connection failed: an *HTTPError
//	if err == nil {
//		resp, err = resp.ErrorForStatus() // 4xx and 5xx: an *HTTPError too
//	}
//	if err == nil {
//		err = resp.JSON(&zone)
//	}
//	if err != nil {
//		return nil, err // classified: see HTTPError
//	}
//
// Nothing is reachable unless granted: a module declares its origins with
// Metadata.HTTPOrigin, the operator grants them, and the host checks every
// request and adds the credentials the grant binds to an origin. The
// client follows no redirects. Natively, through package bosuntest, no
// request reaches the network: the harness answers from stubs.
//
// Why not net/http: Go on wasip1 has no sockets, and a net/http transport
// over wasi:http would pull an event loop into a synchronous API. The
// component glue (wasihttp_wasip1.go) calls wasi:http's blocking functions.

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxQuotedBody is how much of an error body ErrorForStatus quotes, in bytes.
const MaxQuotedBody = 512

// Method is an HTTP method.
type Method string

const (
	MethodGet     Method = "GET"
	MethodHead    Method = "HEAD"
	MethodPost    Method = "POST"
	MethodPut     Method = "PUT"
	MethodPatch   Method = "PATCH"
	MethodDelete  Method = "DELETE"
	MethodOptions Method = "OPTIONS"
)

// HTTPErrorKind is what kind of failure an HTTPError is; its value is the
// reason the error carries when it fails the reconcile.
type HTTPErrorKind string

const (
	// HTTPRefused: the host refused the request (origin or address not
	// granted, or a budget spent).
	HTTPRefused HTTPErrorKind = "HttpRefused"
	// HTTPTimeout: no answer in time (connect, first byte, between bytes,
	// or the call's deadline).
	HTTPTimeout HTTPErrorKind = "HttpTimeout"
	// HTTPConnection: the connection failed (DNS, refused, reset, TLS).
	HTTPConnection HTTPErrorKind = "HttpConnection"
	// HTTPStatus: the server answered 4xx or 5xx (ErrorForStatus).
	HTTPStatus HTTPErrorKind = "HttpStatus"
	// HTTPInvalidRequest: the request could not be made as written (URL, header).
	HTTPInvalidRequest HTTPErrorKind = "HttpInvalidRequest"
	// HTTPBody: the response body could not be read or parsed.
	HTTPBody HTTPErrorKind = "HttpBody"
	// HTTPProtocol: another protocol failure.
	HTTPProtocol HTTPErrorKind = "HttpProtocol"
)

var httpWhat = map[HTTPErrorKind]string{
	HTTPRefused:        "refused by the host",
	HTTPTimeout:        "timed out",
	HTTPConnection:     "connection failed",
	HTTPStatus:         "failed",
	HTTPInvalidRequest: "cannot be sent",
	HTTPBody:           "answered badly",
	HTTPProtocol:       "failed",
}

// HTTPError is why a request failed; it names the method and URL.
//
// Returned from Reconcile it fails the reconcile classified (it unwraps to
// an *Error): a 4xx other than 408 and 429, and a request that cannot be
// made as written, are permanent — the object or the settings must change
// — and everything else is retryable, a refusal included, since the
// operator may yet grant the origin. The reason is the Kind.
type HTTPError struct {
	Kind   HTTPErrorKind
	Method Method
	URL    string
	// Message is what went wrong, without the method and URL.
	Message string
	// Status is the status for HTTPStatus, 0 otherwise.
	Status int
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s %s %s: %s", e.Method, e.URL, httpWhat[e.Kind], e.Message)
}

// IsPermanent is true when retrying cannot help until something else
// changes: a 4xx but 408 (timeout) and 429 (too many requests), or a
// request that cannot be made as written.
func (e *HTTPError) IsPermanent() bool {
	switch e.Kind {
	case HTTPStatus:
		return e.Status >= 400 && e.Status < 500 && e.Status != 408 && e.Status != 429
	case HTTPInvalidRequest:
		return true
	}
	return false
}

// Unwrap is the *Error the reconcile fails with, so that errors.As (and
// the dispatcher) see the classification.
func (e *HTTPError) Unwrap() error {
	return &Error{Reason: string(e.Kind), Message: e.Error(), Permanent: e.IsPermanent()}
}

// Header is one header line; a name may repeat.
type Header struct{ Name, Value string }

// HTTPRequest is a request as sent: what the harness records and stubs see.
type HTTPRequest struct {
	Method Method
	URL    string
	// Headers in the order they were added.
	Headers []Header
	// Body is empty when none was set.
	Body []byte
	// Timeout is what the guest asked for; 0 for none.
	Timeout time.Duration
}

// Header is the first value of header name (case-insensitive), "" when absent.
func (r *HTTPRequest) Header(name string) string {
	value, _ := findHeader(r.Headers, name)
	return value
}

func findHeader(headers []Header, name string) (string, bool) {
	for _, h := range headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

// Err is an error of kind about this request.
func (r *HTTPRequest) Err(kind HTTPErrorKind, message string) *HTTPError {
	return &HTTPError{Kind: kind, Method: r.Method, URL: r.URL, Message: message}
}

// URLParts is a URL split the way wasi:http takes it.
type URLParts struct {
	HTTPS bool
	// Authority is host[:port].
	Authority string
	// PathWithQuery is "/" at least; the fragment is dropped.
	PathWithQuery string
}

// Origin is scheme://host[:port], what the grant is checked against.
func (p URLParts) Origin() string {
	if p.HTTPS {
		return "https://" + p.Authority
	}
	return "http://" + p.Authority
}

// URLParts splits the URL, or says why it cannot be sent.
func (r *HTTPRequest) URLParts() (URLParts, *HTTPError) {
	var parts URLParts
	rest, https := strings.CutPrefix(r.URL, "https://")
	if !https {
		var plain bool
		if rest, plain = strings.CutPrefix(r.URL, "http://"); !plain {
			return parts, r.Err(HTTPInvalidRequest, "only http:// and https:// URLs can be requested")
		}
	}
	for i := 0; i < len(r.URL); i++ {
		if b := r.URL[i]; b <= ' ' || b >= 0x7f {
			return parts, r.Err(HTTPInvalidRequest, "the URL holds spaces, control or non-ASCII characters; percent-encode them")
		}
	}
	rest, _, _ = strings.Cut(rest, "#")
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority, path := rest[:end], rest[end:]
	if authority == "" {
		return parts, r.Err(HTTPInvalidRequest, "the URL names no host")
	}
	if strings.Contains(authority, "@") {
		// Credentials come from the grant, bound to the origin by the host.
		return parts, r.Err(HTTPInvalidRequest, "credentials in a URL are not sent; the operator binds them to the origin in the grant")
	}
	if path == "" {
		path = "/"
	}
	if strings.HasPrefix(path, "?") {
		return parts, r.Err(HTTPInvalidRequest, "the URL's query needs a path before it (`/?…`)")
	}
	return URLParts{HTTPS: https, Authority: authority, PathWithQuery: path}, nil
}

// Check says why the request cannot be sent as written, nil when it can.
func (r *HTTPRequest) Check() *HTTPError {
	if _, err := r.URLParts(); err != nil {
		return err
	}
	for _, h := range r.Headers {
		if !isToken(h.Name) {
			return r.Err(HTTPInvalidRequest, fmt.Sprintf("header name %q is not a token", h.Name))
		}
		if strings.ContainsAny(h.Value, "\r\n\x00") {
			return r.Err(HTTPInvalidRequest, fmt.Sprintf("header %s holds a line break or NUL", h.Name))
		}
	}
	return nil
}

func isToken(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		alnum := b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
		if !alnum && !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(b)) {
			return false
		}
	}
	return true
}

// HTTPResponse is a response, read whole.
type HTTPResponse struct {
	Status  int
	Headers []Header
	Body    []byte
	request *HTTPRequest
}

// NewHTTPResponse is a response to request (for hosts and test stubs).
func NewHTTPResponse(request *HTTPRequest, status int, headers []Header, body []byte) *HTTPResponse {
	return &HTTPResponse{Status: status, Headers: headers, Body: body, request: request}
}

// IsSuccess is true for 2xx.
func (r *HTTPResponse) IsSuccess() bool { return r.Status >= 200 && r.Status < 300 }

// Header is the first value of header name (case-insensitive), "" when absent.
func (r *HTTPResponse) Header(name string) string {
	value, _ := findHeader(r.Headers, name)
	return value
}

// Text is the body as text (invalid UTF-8 replaced).
func (r *HTTPResponse) Text() string { return strings.ToValidUTF8(string(r.Body), "\uFFFD") }

// JSON decodes the body into out; a body that does not decode is an
// *HTTPError of kind HTTPBody.
func (r *HTTPResponse) JSON(out any) error {
	if err := json.Unmarshal(r.Body, out); err != nil {
		return r.request.Err(HTTPBody, fmt.Sprintf("the %d response is not the JSON expected: %v", r.Status, err))
	}
	return nil
}

// ErrorForStatus is the response itself below 400, and an *HTTPError of
// kind HTTPStatus for 4xx and 5xx, quoting the start of the body (servers
// usually say there what was wrong).
func (r *HTTPResponse) ErrorForStatus() (*HTTPResponse, error) {
	if r.Status < 400 {
		return r, nil
	}
	quoted := strings.NewReplacer("\r", " ", "\n", " ").Replace(strings.TrimSpace(r.Text()))
	if len(quoted) > MaxQuotedBody {
		cut := MaxQuotedBody
		for cut > 0 && !utf8.RuneStart(quoted[cut]) {
			cut--
		}
		quoted = quoted[:cut] + "…"
	}
	message := fmt.Sprintf("status %d", r.Status)
	if quoted != "" {
		message += ": " + quoted
	}
	err := r.request.Err(HTTPStatus, message)
	err.Status = r.Status
	return nil, err
}

// RequestBuilder is a request being built; Send makes it.
type RequestBuilder struct {
	host    Host
	request *HTTPRequest
	// unencoded is why the JSON body did not encode, reported by Send.
	unencoded error
}

// Header adds a header (appended: a name may repeat).
func (b *RequestBuilder) Header(name, value string) *RequestBuilder {
	b.request.Headers = append(b.request.Headers, Header{name, value})
	return b
}

// Body sets the body.
func (b *RequestBuilder) Body(body []byte) *RequestBuilder {
	b.request.Body = body
	return b
}

// JSON sets the body to value as JSON, with Content-Type: application/json.
// A value that does not encode fails Send as an HTTPInvalidRequest.
func (b *RequestBuilder) JSON(value any) *RequestBuilder {
	encoded, err := json.Marshal(value)
	if err != nil {
		b.unencoded = err
		return b
	}
	b.request.Body = encoded
	if _, ok := findHeader(b.request.Headers, "content-type"); !ok {
		b.request.Headers = append(b.request.Headers, Header{"Content-Type", "application/json"})
	}
	return b
}

// Timeout bounds the time to connect, to the first byte and between bytes
// (the host bounds each request by the call's deadline anyway).
func (b *RequestBuilder) Timeout(timeout time.Duration) *RequestBuilder {
	b.request.Timeout = timeout
	return b
}

// Request is the request as it stands.
func (b *RequestBuilder) Request() *HTTPRequest { return b.request }

// Send sends the request and reads the whole response. Any status is a
// response; ErrorForStatus turns 4xx and 5xx into errors. The error, when
// there is one, is an *HTTPError.
func (b *RequestBuilder) Send() (*HTTPResponse, error) {
	if b.unencoded != nil {
		return nil, b.request.Err(HTTPInvalidRequest, "the JSON body does not encode: "+b.unencoded.Error())
	}
	if err := b.request.Check(); err != nil {
		return nil, err
	}
	response, err := b.host.HTTP(b.request)
	if err != nil {
		return nil, err
	}
	return response, nil
}

// Client makes requests to the origins the module declared and the
// operator granted; from Context.HTTP.
type Client struct{ host Host }

// Request is a request with method to url (http:// or https://).
func (c Client) Request(method Method, url string) *RequestBuilder {
	return &RequestBuilder{host: c.host, request: &HTTPRequest{Method: method, URL: url}}
}

func (c Client) Get(url string) *RequestBuilder    { return c.Request(MethodGet, url) }
func (c Client) Post(url string) *RequestBuilder   { return c.Request(MethodPost, url) }
func (c Client) Put(url string) *RequestBuilder    { return c.Request(MethodPut, url) }
func (c Client) Patch(url string) *RequestBuilder  { return c.Request(MethodPatch, url) }
func (c Client) Delete(url string) *RequestBuilder { return c.Request(MethodDelete, url) }
