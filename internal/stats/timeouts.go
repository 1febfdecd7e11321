package stats

// TimeoutKind names what a timeout cut (docs/limits.md); it indexes Stats.Timeouts.
type TimeoutKind int

// The timeouts counted in Stats.Timeouts.
const (
	// TimeoutHTTPBody: a request body that did not arrive within --read-timeout.
	TimeoutHTTPBody TimeoutKind = iota
	// TimeoutFrame: a WebSocket frame or fragmented message not finished within
	// --frame-timeout (closed 1008).
	TimeoutFrame
	// TimeoutConnect: an Engine.IO session that sent no Socket.IO CONNECT within
	// --connect-timeout.
	TimeoutConnect
	// TimeoutUpgrade: a WebSocket opened to upgrade an Engine.IO polling session that did
	// not finish the upgrade within --upgrade-timeout.
	TimeoutUpgrade
	// NumTimeoutKinds is the number of kinds.
	NumTimeoutKinds
)

var timeoutNames = [NumTimeoutKinds]string{"http-body", "ws-frame", "sio-connect", "sio-upgrade"}

// String returns the kind's metric label.
func (k TimeoutKind) String() string {
	if k < 0 || k >= NumTimeoutKinds {
		return "unknown"
	}
	return timeoutNames[k]
}
