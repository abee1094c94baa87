package conditions

import (
	"testing"

	bosun "github.com/bosun-dev/bosun/sdks/go"
)

func TestTheTransitionTimeMovesOnlyWithTheStatus(t *testing.T) {
	var list []bosun.Condition
	one := int64(1)
	if !Set(&list, bosun.Condition{Type: "Ready", Status: "False", Reason: "Waiting", LastTransitionTime: "t1"}) {
		t.Fatal("added")
	}
	if !Set(&list, bosun.Condition{Type: "Ready", Status: "False", Reason: "Still", LastTransitionTime: "t2", ObservedGeneration: &one}) {
		t.Fatal("reason and generation changed")
	}
	if list[0].LastTransitionTime != "t1" || list[0].Reason != "Still" || *list[0].ObservedGeneration != 1 {
		t.Errorf("%+v", list[0])
	}
	if Set(&list, bosun.Condition{Type: "Ready", Status: "False", Reason: "Still", LastTransitionTime: "t3", ObservedGeneration: &one}) {
		t.Error("nothing changed")
	}
	Set(&list, bosun.Condition{Type: "Ready", Status: "True", Reason: "Done", LastTransitionTime: "t4", ObservedGeneration: &one})
	if list[0].LastTransitionTime != "t4" || !IsTrue(list, "Ready") {
		t.Errorf("%+v", list[0])
	}
	if !Remove(&list, "Ready") || Remove(&list, "Ready") || len(list) != 0 {
		t.Errorf("%+v", list)
	}
}
