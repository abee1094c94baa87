package bosun

import (
	"testing"
	"time"
)

func TestPluralsAreKubeRsOnes(t *testing.T) {
	for kind, plural := range map[string]string{
		"At": "ats", "Memo": "memos", "Policy": "policies", "Gateway": "gateways",
		"Box": "boxes", "Match": "matches", "Mesh": "meshes", "Endpoints": "endpoints",
	} {
		if got := PluralOf(kind); got != plural {
			t.Errorf("%s: %s, want %s", kind, got, plural)
		}
	}
}

func TestAPIVersion(t *testing.T) {
	if got := (Kind{Version: "v1", Kind: "Pod"}).APIVersion(); got != "v1" {
		t.Error(got)
	}
	if got := CustomKind("example.com", "v1", "Memo").APIVersion(); got != "example.com/v1" {
		t.Error(got)
	}
}

func TestDelaysRoundUpToWholeMilliseconds(t *testing.T) {
	for delay, ms := range map[time.Duration]uint64{
		-time.Second: 0, 0: 0, time.Nanosecond: 1, time.Millisecond: 1, 1001 * time.Microsecond: 2, time.Hour: 3_600_000,
	} {
		if got := delayMs(delay); got != ms {
			t.Errorf("%v: %d, want %d", delay, got, ms)
		}
	}
}
