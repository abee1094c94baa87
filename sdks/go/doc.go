// Package bosun is the Go SDK for bosun reconcilers: a reconciler written
// here compiles with mainline Go (GOOS=wasip1 GOARCH=wasm
// -buildmode=c-shared) to a core module whose exports and imports follow
// the canonical ABI of the WIT world `bosun:reconciler/reconciler` (the
// file wit/reconciler.wit beside this one). Making it a component takes
// the WASI preview1 reactor adapter; see README.md.
//
// The surface mirrors the Rust SDK (bosun-sdk) and the Python and
// TypeScript ones: a Reconciler for a primary Kind taken from a catalogue
// (package kinds) or declared with CustomKind, Metadata, a Context
// (observed children, settings, reads, the clock, the log), Response,
// Event and Finalized builders, package conditions, and Retryable and
// Permanent errors. A panic that escapes the reconciler becomes a
// retryable error carrying its message, never a trap. Package bosuntest
// runs a reconciler natively under `go test`, through the same JSON
// boundary the host uses.
package bosun
