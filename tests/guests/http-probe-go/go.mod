module github.com/bosun-dev/bosun/tests/guests/http-probe-go

go 1.24

require github.com/bosun-dev/bosun/sdks/go v0.0.0

replace github.com/bosun-dev/bosun/sdks/go => ../../../sdks/go
