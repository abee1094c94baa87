package bosun

import "fmt"

// Error is a failed reconcile: return it from Reconcile or Finalize. Make
// one with Retryable (the host tries again with exponential backoff) or
// Permanent (a condition and a warning event, no retry until the object
// changes). Any other error returned becomes a retryable error with reason
// ReconcileFailed; a panic, a retryable UncaughtPanic.
type Error struct {
	Reason    string
	Message   string
	Permanent bool
}

func (e *Error) Error() string {
	kind := "retryable"
	if e.Permanent {
		kind = "permanent"
	}
	return fmt.Sprintf("%s error %s: %s", kind, e.Reason, e.Message)
}

// Retryable is a passing failure, worth retrying: a dependency not ready
// yet, a read that failed.
func Retryable(reason, message string) *Error {
	return &Error{Reason: reason, Message: message}
}

// Permanent says the object cannot be reconciled as it is (an invalid spec,
// say): retrying would not help; the user has to change the object.
func Permanent(reason, message string) *Error {
	return &Error{Reason: reason, Message: message, Permanent: true}
}
