// The At controller ("cnat", cloud-native at) from the book Programming
// Kubernetes, in Go: the same behaviour as examples/cnat, against the same
// CRD (examples/cnat/crd.yaml) and samples.
//
// Build the core module with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o cnat-go.core.wasm .
//
// and make it a component as sdks/go/README.md says.
package main

import bosun "github.com/bosun-dev/bosun/sdks/go"

func init() { bosun.Export[At](Cnat{}) }

// main is never called: a c-shared module runs its init functions, then
// serves its exports.
func main() {}
