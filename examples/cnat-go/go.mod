module github.com/bosun-dev/bosun/examples/cnat-go

go 1.24

require github.com/bosun-dev/bosun/sdks/go v0.0.0

// The SDK from this repository; outside it, `go get
// github.com/bosun-dev/bosun/sdks/go` instead.
replace github.com/bosun-dev/bosun/sdks/go => ../../sdks/go
