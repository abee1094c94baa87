// Package conditions handles status conditions the way
// meta.SetStatusCondition does: build a condition with Context.Condition,
// put it into your status with Set; the transition time moves only when
// the condition's status changes.
package conditions

import bosun "github.com/bosun-dev/bosun/sdks/go"

// Set puts condition into *conditions, replacing the one of the same type.
// When one of that type exists with the same status its
// lastTransitionTime is kept; reason, message and observedGeneration are
// updated. Reports whether anything changed.
func Set(conditions *[]bosun.Condition, condition bosun.Condition) bool {
	existing := Find(*conditions, condition.Type)
	if existing == nil {
		*conditions = append(*conditions, condition)
		return true
	}
	changed := false
	if existing.Status != condition.Status {
		existing.Status = condition.Status
		existing.LastTransitionTime = condition.LastTransitionTime
		changed = true
	}
	if existing.Reason != condition.Reason {
		existing.Reason = condition.Reason
		changed = true
	}
	if existing.Message != condition.Message {
		existing.Message = condition.Message
		changed = true
	}
	if !sameGeneration(existing.ObservedGeneration, condition.ObservedGeneration) {
		existing.ObservedGeneration = condition.ObservedGeneration
		changed = true
	}
	return changed
}

// Find is the condition of type typ, or nil. It points into conditions.
func Find(conditions []bosun.Condition, typ string) *bosun.Condition {
	for i := range conditions {
		if conditions[i].Type == typ {
			return &conditions[i]
		}
	}
	return nil
}

// Remove removes the condition of type typ and reports whether there was one.
func Remove(conditions *[]bosun.Condition, typ string) bool {
	for i, c := range *conditions {
		if c.Type == typ {
			*conditions = append((*conditions)[:i], (*conditions)[i+1:]...)
			return true
		}
	}
	return false
}

// IsTrue reports whether the condition of type typ is present with status True.
func IsTrue(conditions []bosun.Condition, typ string) bool {
	c := Find(conditions, typ)
	return c != nil && c.Status == "True"
}

func sameGeneration(a, b *int64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
