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
	// TimeoutTLSHandshake: a connection to a port HTTPS shares with TURN that did not finish
	// its TLS handshake (and, without ALPN, send its first bytes) within --header-timeout.
	TimeoutTLSHandshake
	// NumTimeoutKinds is the number of kinds.
	NumTimeoutKinds
)

var timeoutNames = [NumTimeoutKinds]string{"http-body", "ws-frame", "sio-connect", "sio-upgrade", "tls-handshake"}

// String returns the kind's metric label.
func (k TimeoutKind) String() string {
	if k < 0 || k >= NumTimeoutKinds {
		return "unknown"
	}
	return timeoutNames[k]
}
