package bosun

import "time"

// LogLevel is the severity of a log line (the WIT enum's cases, in order).
type LogLevel uint8

const (
	LevelTrace LogLevel = iota
	LevelDebug
	LevelInfo
	LevelWarn
	LevelError
)

// Host is the host as a guest sees it, behind one interface so that the
// native harness (package bosuntest) can stand in for the real one.
// Objects cross as JSON text.
type Host interface {
	Log(level LogLevel, message string)
	// GetObject returns nil when the object does not exist, and a
	// HostError when the host refuses the read.
	GetObject(apiVersion, kind string, namespace *string, name string) (*string, error)
	// ListObjects returns a HostError when the host refuses the read.
	ListObjects(apiVersion, kind string, namespace, labelSelector *string) ([]string, error)
	Now() time.Time
	// HTTP sends a checked request and reads the whole response; the
	// error, when no response came, is an *HTTPError.
	HTTP(request *HTTPRequest) (*HTTPResponse, error)
}

// HostError is a read the host refused; the message is the host's reason.
type HostError struct{ Message string }

func (e *HostError) Error() string { return e.Message }
