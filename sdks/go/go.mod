module github.com/bosun-dev/bosun/sdks/go

// 1.24 is the first Go with //go:wasmexport, which the component glue
// (abi_wasip1.go) needs; nothing else here is newer.
go 1.24
