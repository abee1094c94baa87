//go:build wasip1

package bosun

// The HTTP client's glue: wasi:http/outgoing-handler@0.2.12 and the parts
// of wasi:http/types, wasi:io/streams, poll and error it needs, in the
// canonical ABI, written by hand as abi_wasip1.go is. Only the blocking
// calls: the reconciler API is synchronous. A module that never sends
// links none of these imports (Go's linker drops what is unreachable, and
// the component then imports no wasi:http).
//
// Layouts beyond abi_wasip1.go's (a resource handle is an i32; a variant or
// result is a one-byte discriminant, then its payload at the payload's
// largest alignment):
//
//	error-code                  disc@0, payload@8                          size 32
//	  DNS-error                 rcode: option<string>@8 (disc, ptr@12, len@16)
//	  HTTP-*-body-size          option<u64>@8 (disc, u64@16)
//	  internal-error            option<string>@8 (disc, ptr@12, len@16)
//	result<own<T>, error-code>  disc@0, handle or error-code@8              size 40
//	option<error-code>          disc@0, error-code@8                        size 40
//	future-incoming-response.get:
//	  option<result<result<own<incoming-response>, error-code>, ()>>
//	                            disc@0, outer@8, inner@16, handle or error-code@24   size 56
//	result<own<T>, ()>          disc@0, handle@4                            size 8
//	result<_, stream-error>     disc@0, stream-error@4 (disc, handle@8)     size 12
//	result<list<u8>, stream-error>  disc@0, (ptr@4, len@8) or stream-error@4 size 12
//	list<tuple<string, list<u8>>>   each (name ptr, len, value ptr, len)    16 each

import (
	"encoding/binary"
	"fmt"
	"strings"
)

const (
	// writeChunk is what blocking-write-and-flush takes at most at a time.
	writeChunk = 4096
	// readChunk is how much one read asks for.
	readChunk = 64 * 1024
)

//go:wasmimport wasi:http/types@0.2.12 [static]fields.from-list
func fieldsFromList(ptr, n, ret uint32)

//go:wasmimport wasi:http/types@0.2.12 [method]fields.entries
func fieldsEntries(self, ret uint32)

//go:wasmimport wasi:http/types@0.2.12 [resource-drop]fields
func dropFields(self uint32)

//go:wasmimport wasi:http/types@0.2.12 [constructor]outgoing-request
func newOutgoingRequest(headers uint32) uint32

//go:wasmimport wasi:http/types@0.2.12 [method]outgoing-request.set-method
func setMethod(self, disc, ptr, n uint32) uint32

//go:wasmimport wasi:http/types@0.2.12 [method]outgoing-request.set-scheme
func setScheme(self, some, disc, ptr, n uint32) uint32

//go:wasmimport wasi:http/types@0.2.12 [method]outgoing-request.set-authority
func setAuthority(self, some, ptr, n uint32) uint32

//go:wasmimport wasi:http/types@0.2.12 [method]outgoing-request.set-path-with-query
func setPathWithQuery(self, some, ptr, n uint32) uint32

//go:wasmimport wasi:http/types@0.2.12 [method]outgoing-request.body
func outgoingRequestBody(self, ret uint32)

//go:wasmimport wasi:http/types@0.2.12 [resource-drop]outgoing-request
func dropOutgoingRequest(self uint32)

//go:wasmimport wasi:http/types@0.2.12 [constructor]request-options
func newRequestOptions() uint32

//go:wasmimport wasi:http/types@0.2.12 [method]request-options.set-connect-timeout
func setConnectTimeout(self, some uint32, nanos uint64) uint32

//go:wasmimport wasi:http/types@0.2.12 [method]request-options.set-first-byte-timeout
func setFirstByteTimeout(self, some uint32, nanos uint64) uint32

//go:wasmimport wasi:http/types@0.2.12 [method]request-options.set-between-bytes-timeout
func setBetweenBytesTimeout(self, some uint32, nanos uint64) uint32

//go:wasmimport wasi:http/types@0.2.12 [method]outgoing-body.write
func outgoingBodyWrite(self, ret uint32)

//go:wasmimport wasi:http/types@0.2.12 [static]outgoing-body.finish
func outgoingBodyFinish(self, some, trailers, ret uint32)

//go:wasmimport wasi:http/types@0.2.12 [resource-drop]outgoing-body
func dropOutgoingBody(self uint32)

//go:wasmimport wasi:http/types@0.2.12 [method]future-incoming-response.subscribe
func futureSubscribe(self uint32) uint32

//go:wasmimport wasi:http/types@0.2.12 [method]future-incoming-response.get
func futureGet(self, ret uint32)

//go:wasmimport wasi:http/types@0.2.12 [resource-drop]future-incoming-response
func dropFuture(self uint32)

//go:wasmimport wasi:http/types@0.2.12 [method]incoming-response.status
func incomingStatus(self uint32) uint32

//go:wasmimport wasi:http/types@0.2.12 [method]incoming-response.headers
func incomingHeaders(self uint32) uint32

//go:wasmimport wasi:http/types@0.2.12 [method]incoming-response.consume
func incomingConsume(self, ret uint32)

//go:wasmimport wasi:http/types@0.2.12 [resource-drop]incoming-response
func dropIncomingResponse(self uint32)

//go:wasmimport wasi:http/types@0.2.12 [method]incoming-body.stream
func incomingBodyStream(self, ret uint32)

//go:wasmimport wasi:http/types@0.2.12 [static]incoming-body.finish
func incomingBodyFinish(self uint32) uint32

//go:wasmimport wasi:http/types@0.2.12 [resource-drop]future-trailers
func dropFutureTrailers(self uint32)

//go:wasmimport wasi:http/types@0.2.12 http-error-code
func httpErrorCode(ioError, ret uint32)

//go:wasmimport wasi:http/outgoing-handler@0.2.12 handle
func outgoingHandle(request, some, options, ret uint32)

//go:wasmimport wasi:io/poll@0.2.12 [method]pollable.block
func pollableBlock(self uint32)

//go:wasmimport wasi:io/poll@0.2.12 [resource-drop]pollable
func dropPollable(self uint32)

//go:wasmimport wasi:io/streams@0.2.12 [method]output-stream.blocking-write-and-flush
func blockingWriteAndFlush(self, ptr, n, ret uint32)

//go:wasmimport wasi:io/streams@0.2.12 [resource-drop]output-stream
func dropOutputStream(self uint32)

//go:wasmimport wasi:io/streams@0.2.12 [method]input-stream.blocking-read
func blockingRead(self uint32, n uint64, ret uint32)

//go:wasmimport wasi:io/streams@0.2.12 [resource-drop]input-stream
func dropInputStream(self uint32)

//go:wasmimport wasi:io/error@0.2.12 [method]error.to-debug-string
func ioErrorDebug(self, ret uint32)

//go:wasmimport wasi:io/error@0.2.12 [resource-drop]error
func dropIOError(self uint32)

func u32(b []byte, off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }

// errorCodes are wasi:http's error-code cases in order, by the names the
// Rust SDK's bindings give them (and its messages show), each with the
// kind the Rust SDK classifies it as.
var errorCodes = [...]struct {
	name string
	kind HTTPErrorKind
}{
	{"DnsTimeout", HTTPTimeout},
	{"DnsError", HTTPConnection},
	{"DestinationNotFound", HTTPConnection},
	{"DestinationUnavailable", HTTPConnection},
	{"DestinationIpProhibited", HTTPRefused},
	{"DestinationIpUnroutable", HTTPConnection},
	{"ConnectionRefused", HTTPConnection},
	{"ConnectionTerminated", HTTPConnection},
	{"ConnectionTimeout", HTTPTimeout},
	{"ConnectionReadTimeout", HTTPTimeout},
	{"ConnectionWriteTimeout", HTTPTimeout},
	{"ConnectionLimitReached", HTTPConnection},
	{"TlsProtocolError", HTTPConnection},
	{"TlsCertificateError", HTTPConnection},
	{"TlsAlertReceived", HTTPConnection},
	{"HttpRequestDenied", HTTPRefused},
	{"HttpRequestLengthRequired", HTTPProtocol},
	{"HttpRequestBodySize", HTTPRefused},
	{"HttpRequestMethodInvalid", HTTPInvalidRequest},
	{"HttpRequestUriInvalid", HTTPInvalidRequest},
	{"HttpRequestUriTooLong", HTTPInvalidRequest},
	{"HttpRequestHeaderSectionSize", HTTPInvalidRequest},
	{"HttpRequestHeaderSize", HTTPInvalidRequest},
	{"HttpRequestTrailerSectionSize", HTTPProtocol},
	{"HttpRequestTrailerSize", HTTPProtocol},
	{"HttpResponseIncomplete", HTTPProtocol},
	{"HttpResponseHeaderSectionSize", HTTPProtocol},
	{"HttpResponseHeaderSize", HTTPProtocol},
	{"HttpResponseBodySize", HTTPRefused},
	{"HttpResponseTrailerSectionSize", HTTPProtocol},
	{"HttpResponseTrailerSize", HTTPProtocol},
	{"HttpResponseTransferCoding", HTTPProtocol},
	{"HttpResponseContentCoding", HTTPProtocol},
	{"HttpResponseTimeout", HTTPTimeout},
	{"HttpUpgradeFailed", HTTPProtocol},
	{"HttpProtocolError", HTTPProtocol},
	{"LoopDetected", HTTPProtocol},
	{"ConfigurationError", HTTPProtocol},
	{"InternalError", HTTPProtocol},
}

// codeError is the error an error-code at code[0:32] makes, classified as
// the Rust SDK does.
func codeError(request *HTTPRequest, code []byte) *HTTPError {
	disc := int(code[0])
	if disc >= len(errorCodes) {
		return request.Err(HTTPProtocol, fmt.Sprintf("error-code case %d", disc))
	}
	c := errorCodes[disc]
	message := c.name
	switch c.name {
	case "HttpRequestDenied":
		message = "the origin is not granted to this module"
	case "DestinationIpProhibited":
		message = "the address it resolves to is not granted to this module"
	case "HttpRequestBodySize", "HttpResponseBodySize":
		message = "over the byte budget"
		if code[8] != 0 {
			message = fmt.Sprintf("over the byte budget (%d bytes)", binary.LittleEndian.Uint64(code[16:]))
		}
	case "DnsError":
		message = "DNS: no answer"
		if code[8] != 0 {
			message = "DNS: " + stringAt(u32(code, 12), u32(code, 16))
		}
	case "InternalError":
		if code[8] != 0 {
			message = stringAt(u32(code, 12), u32(code, 16))
		}
	}
	return request.Err(c.kind, message)
}

// streamError is the error a stream-error at e[0:8] makes: the error-code
// behind a failed operation when wasi:http gives one.
func streamError(request *HTTPRequest, e []byte) *HTTPError {
	if e[0] != 0 {
		return request.Err(HTTPConnection, "the connection closed early")
	}
	ioError := u32(e, 4)
	defer dropIOError(ioError)
	code := alloc(40)
	httpErrorCode(ioError, addr(code))
	if code[0] != 0 {
		return codeError(request, code[8:])
	}
	text := alloc(8)
	ioErrorDebug(ioError, addr(text))
	return request.Err(HTTPConnection, stringAt(u32(text, 0), u32(text, 4)))
}

// methodCase is method's case in wasi:http's method variant (9 is other).
func methodCase(method Method) uint32 {
	for i, m := range []Method{MethodGet, MethodHead, MethodPost, MethodPut, MethodDelete, "CONNECT", MethodOptions, "TRACE", MethodPatch} {
		if m == method {
			return uint32(i)
		}
	}
	return 9
}

// HTTP sends request (already checked) through wasi:http and reads the
// whole response. Every child resource (a stream, a pollable, a
// response's headers) is dropped before its parent: the host traps on a
// parent dropped while a child lives.
func (wasmHost) HTTP(request *HTTPRequest) (*HTTPResponse, error) {
	parts, bad := request.URLParts()
	if bad != nil {
		return nil, bad
	}

	entries := alloc(uint32(16 * len(request.Headers)))
	for i, h := range request.Headers {
		putString(entries, 16*i, h.Name)
		putString(entries, 16*i+8, h.Value)
	}
	ret := alloc(8)
	fieldsFromList(addr(entries), uint32(len(request.Headers)), addr(ret))
	if ret[0] != 0 {
		return nil, request.Err(HTTPInvalidRequest, fmt.Sprintf("headers: header-error case %d", ret[4]))
	}
	outgoing := newOutgoingRequest(u32(ret, 4))
	methodPtr, methodLen := flat(string(request.Method))
	scheme := uint32(0)
	if parts.HTTPS {
		scheme = 1
	}
	authorityPtr, authorityLen := flat(parts.Authority)
	pathPtr, pathLen := flat(parts.PathWithQuery)
	for _, set := range []struct {
		what   string
		failed uint32
	}{
		{"method", setMethod(outgoing, methodCase(request.Method), methodPtr, methodLen)},
		{"scheme", setScheme(outgoing, 1, scheme, 0, 0)},
		{"host", setAuthority(outgoing, 1, authorityPtr, authorityLen)},
		{"path", setPathWithQuery(outgoing, 1, pathPtr, pathLen)},
	} {
		if set.failed != 0 {
			dropOutgoingRequest(outgoing)
			return nil, request.Err(HTTPInvalidRequest, "the "+set.what+" is not accepted")
		}
	}
	outgoingRequestBody(outgoing, addr(ret))
	if ret[0] != 0 {
		dropOutgoingRequest(outgoing)
		return nil, request.Err(HTTPProtocol, "the request body was taken twice")
	}
	body := u32(ret, 4)
	options, some := uint32(0), uint32(0)
	if request.Timeout > 0 {
		options, some = newRequestOptions(), 1
		nanos := uint64(request.Timeout.Nanoseconds())
		// A host may not support a timeout; its own bound applies then.
		_ = setConnectTimeout(options, 1, nanos)
		_ = setFirstByteTimeout(options, 1, nanos)
		_ = setBetweenBytesTimeout(options, 1, nanos)
	}
	handled := alloc(40)
	outgoingHandle(outgoing, some, options, addr(handled))
	if handled[0] != 0 {
		dropOutgoingBody(body)
		return nil, codeError(request, handled[8:])
	}
	future := u32(handled, 8)
	defer dropFuture(future)

	outgoingBodyWrite(body, addr(ret))
	if ret[0] != 0 {
		dropOutgoingBody(body)
		return nil, request.Err(HTTPProtocol, "the request body cannot be written")
	}
	stream := u32(ret, 4)
	var unsent []byte
	wrote := alloc(12)
	for start := 0; start < len(request.Body); start += writeChunk {
		chunk := request.Body[start:min(start+writeChunk, len(request.Body))]
		p, n := flat(string(chunk))
		blockingWriteAndFlush(stream, p, n, addr(wrote))
		if wrote[0] != 0 {
			unsent = wrote[4:12]
			break
		}
	}
	// A child resource: it must go before its body is finished.
	dropOutputStream(stream)
	if unsent == nil {
		finished := alloc(40)
		outgoingBodyFinish(body, 0, 0, addr(finished))
		if finished[0] != 0 {
			return nil, codeError(request, finished[8:])
		}
	} else {
		// The host stops taking a body when it refused the request or the
		// server answered before reading it all: the answer says which,
		// and says it better than the closed stream does.
		dropOutgoingBody(body)
	}

	pollable := futureSubscribe(future)
	pollableBlock(pollable)
	dropPollable(pollable)
	answer := alloc(56)
	futureGet(future, addr(answer))
	if answer[0] == 0 || answer[8] != 0 {
		if unsent != nil {
			return nil, streamError(request, unsent)
		}
		return nil, request.Err(HTTPProtocol, "the response was lost")
	}
	if answer[16] != 0 {
		return nil, codeError(request, answer[24:])
	}
	incoming := u32(answer, 24)
	defer dropIncomingResponse(incoming)
	status := int(incomingStatus(incoming))
	fields := incomingHeaders(incoming)
	list := alloc(8)
	fieldsEntries(fields, addr(list))
	dropFields(fields)
	var headers []Header
	raw := bytesAt(u32(list, 0), 16*u32(list, 4))
	for i := 0; i < int(u32(list, 4)); i++ {
		value := stringAt(u32(raw, 16*i+8), u32(raw, 16*i+12))
		headers = append(headers, Header{
			Name:  stringAt(u32(raw, 16*i), u32(raw, 16*i+4)),
			Value: strings.ToValidUTF8(value, "\uFFFD"),
		})
	}
	incomingConsume(incoming, addr(ret))
	if ret[0] != 0 {
		return nil, request.Err(HTTPProtocol, "the response body was taken twice")
	}
	incomingBody := u32(ret, 4)
	incomingBodyStream(incomingBody, addr(ret))
	if ret[0] != 0 {
		return nil, request.Err(HTTPProtocol, "the response body cannot be read")
	}
	read := u32(ret, 4)
	var bytes []byte
	got := alloc(12)
	var failed *HTTPError
	for {
		blockingRead(read, readChunk, addr(got))
		if got[0] != 0 {
			if got[4] != 0 { // closed: the whole body is read
				break
			}
			failed = streamError(request, got[4:12])
			break
		}
		bytes = append(bytes, bytesAt(u32(got, 4), u32(got, 8))...)
	}
	dropInputStream(read)
	dropFutureTrailers(incomingBodyFinish(incomingBody))
	if failed != nil {
		return nil, failed
	}
	return NewHTTPResponse(request, status, headers, bytes), nil
}
