package stats

import (
	"sync/atomic"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// Stats is the set of server counters. The zero value is ready to use.
type Stats struct {
	// Connections is the number of open signaling connections (gauge).
	Connections atomic.Int64
	// Handshakes counts accepted WebSocket handshakes; HandshakesRefused those refused.
	Handshakes        atomic.Uint64
	HandshakesRefused atomic.Uint64
	// Rooms and Peers are the number of rooms and joined peers (gauges).
	Rooms atomic.Int64
	Peers atomic.Int64
	// Relayed counts relayed messages by type, counting each delivery.
	Relayed [protocol.NumTypes]atomic.Uint64
	// Errors counts error frames sent, by code.
	Errors [protocol.NumCodes]atomic.Uint64
	// BytesIn and BytesOut count WebSocket payload bytes read and written.
	BytesIn  atomic.Uint64
	BytesOut atomic.Uint64
	// SendQueueDrops counts peers disconnected because their send queue overflowed.
	SendQueueDrops atomic.Uint64
	// Kicks counts connections closed for policy violations (rate limit).
	Kicks atomic.Uint64
	// FramesRateLimited counts WebSocket frames that are not whole messages (pings, pongs,
	// fragments) dropped over the rate limit.
	FramesRateLimited atomic.Uint64
	// HostsRefused counts requests for a Host other than --public-url's (421);
	// MetricsRefused requests for /metrics from non-loopback clients on the main listener (404).
	HostsRefused   atomic.Uint64
	MetricsRefused atomic.Uint64
	// RefusedDescriptors counts connections refused because the process was out of (or
	// within its reserve of) file descriptors: upgrades answered 503, connections closed at
	// accept (docs/limits.md).
	RefusedDescriptors atomic.Uint64
	// RefusedMemory counts connections refused because nine tenths of the memory budget
	// were held (503 before the upgrade or the Engine.IO handshake).
	RefusedMemory atomic.Uint64
	// RefusedClientSessions counts Engine.IO handshakes refused because their client held
	// its share of sessions (429); RefusedClientConns WebSocket upgrades refused because their
	// client held its share of connections (429).
	RefusedClientSessions atomic.Uint64
	RefusedClientConns    atomic.Uint64
	// RefusedClientHTTP counts requests answered 429 because their client held its share of
	// HTTP connections (--http-conns-per-client).
	RefusedClientHTTP atomic.Uint64
	// RefusedTLSHandshakes counts connections to a port HTTPS shares with TURN closed at
	// accept because their client (--http-conns-per-client), or all clients, had too many
	// TLS handshakes under way.
	RefusedTLSHandshakes atomic.Uint64
	// PerClient counts the per-client rate limits' refusals and tables (clients.go).
	PerClient ClientStats
	// Parked is the number of presences kept for resumption after their connection was lost
	// (gauge); Resumes counts those taken back, ResumesExpired those given up.
	Parked         atomic.Int64
	Resumes        atomic.Uint64
	ResumesExpired atomic.Uint64
	// ResumesRefused counts resume joins whose token could not be used (invalid, expired,
	// spent, another room); Restores those whose presence was re-created from the token alone.
	ResumesRefused atomic.Uint64
	Restores       atomic.Uint64
	// ResumeTokensRefreshed counts resume-token frames sent; RetriesDeduped relays re-sent
	// with retry that were acked without relaying them again.
	ResumeTokensRefreshed atomic.Uint64
	RetriesDeduped        atomic.Uint64
	// LoopSlices counts batches of ready connections an event loop cut short after its time
	// slice, leaving the rest for its next wait.
	LoopSlices atomic.Uint64
	// Panics counts recovered panics in connection handling.
	Panics atomic.Uint64
	// SocketIOSessions is the number of open Engine.IO sessions on /socket.io/ (gauge; those
	// on a WebSocket are also in Connections); SocketIOUpgrades counts upgrades from polling.
	SocketIOSessions atomic.Int64
	SocketIOUpgrades atomic.Uint64
	// SocketIOParked is the number of Socket.IO sockets kept after a lost connection for a
	// recovery (gauge); SocketIOParkRefused counts lost sockets not kept because as many as
	// the sessions cap were; SocketIORecovered counts recoveries (socket.recovered),
	// SocketIORecoveryGaps those that kept the socket but had lost events (a fresh pid), and
	// SocketIORecoveryRefused the pids that took nothing back (unknown, forged, or their
	// socket gone).
	SocketIOParked          atomic.Int64
	SocketIOParkRefused     atomic.Uint64
	SocketIORecovered       atomic.Uint64
	SocketIORecoveryGaps    atomic.Uint64
	SocketIORecoveryRefused atomic.Uint64
	// ClusterHeld is the number of relays a cluster node holds for members orphaned by a
	// restarting or dead node, until they resume elsewhere, or for members it took over
	// until their former node has sent what it held (gauge); ClusterHeldDropped counts
	// those refused because a hold was full, or dropped when the member finally left.
	ClusterHeld        atomic.Int64
	ClusterHeldDropped atomic.Uint64
	// Webhook events by outcome, counted once per URL: WebhooksDelivered accepted (2xx),
	// WebhooksRejected refused (a 4xx but 408 and 429: not retried), WebhooksDropped lost
	// (pushed out of a full queue, or left at shutdown). WebhookRetries counts failed attempts
	// that were retried; WebhooksQueued is the number of events waiting (gauge).
	WebhooksDelivered atomic.Uint64
	WebhooksRejected  atomic.Uint64
	WebhooksDropped   atomic.Uint64
	WebhookRetries    atomic.Uint64
	WebhooksQueued    atomic.Int64
	// Timeouts counts connections and requests cut by a timeout, by TimeoutKind.
	Timeouts [NumTimeoutKinds]atomic.Uint64
}
