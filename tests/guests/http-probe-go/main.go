// A test guest that sends one HTTP request through the Go SDK's client and
// reports the answer in its status: for the host tests of the SDK's
// wasi:http path (host/tests/go_http.rs).
//
// The origin it declares sits in origin's padded room after the marker, so
// a test can patch the built component's bytes to a server on a port chosen
// at run time (bosun_testenv::go_guests::http_probe_reaching), as
// http-probe-python's is.
package main

import (
	"strings"

	bosun "github.com/bosun-dev/bosun/sdks/go"
	"github.com/bosun-dev/bosun/sdks/go/kinds"
)

// paddedOrigin has exactly 64 bytes of room after the marker, padded with
// spaces. A variable, not a constant: the compiler would fold a constant's
// trimmed value into the code and leave the padded bytes unread.
var paddedOrigin = "HTTP-PROBE-ORIGIN=http://127.0.0.1:9                                              "

func origin() string {
	_, value, _ := strings.Cut(paddedOrigin, "=")
	return strings.TrimSpace(value)
}

// Probe is the ConfigMap whose data says what to send.
type Probe struct {
	bosun.TypeMeta `json:",inline"`
	Metadata       bosun.ObjectMeta `json:"metadata"`
	Data           struct {
		Method string  `json:"method"`
		Path   string  `json:"path"`
		Body   *string `json:"body"`
	} `json:"data"`
}

type HTTPProbe struct{}

func (HTTPProbe) Kind() bosun.Kind { return kinds.ConfigMap }

func (HTTPProbe) Metadata() *bosun.Metadata {
	return bosun.NewMetadata("http-probe", "0.1.0").HTTPOrigin(origin())
}

func (HTTPProbe) Reconcile(probe *Probe, ctx *bosun.Context) (*bosun.Response, error) {
	method, path := bosun.Method(probe.Data.Method), probe.Data.Path
	if method == "" {
		method = bosun.MethodGet
	}
	if path == "" {
		path = "/"
	}
	request := ctx.HTTP().Request(method, origin()+path)
	if probe.Data.Body != nil {
		request.JSON(map[string]string{"sent": *probe.Data.Body})
	}
	answer, err := request.Header("X-Probe", "1").Send()
	if err == nil {
		answer, err = answer.ErrorForStatus()
	}
	if err != nil {
		return nil, err
	}
	return bosun.NewResponse().Status(map[string]any{
		"code": answer.Status,
		"body": answer.Text(),
		"type": answer.Header("content-type"),
	}), nil
}

func init() { bosun.Export[Probe](HTTPProbe{}) }

func main() {}
