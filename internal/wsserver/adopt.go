package wsserver

import (
	"net/http"
	"time"
)

// Handler receives the messages of a connection adopted by another protocol (Adopt). Its
// methods run on the connection's event loop, one at a time, and must not block.
type Handler interface {
	// Text handles one complete text message (valid UTF-8). A *hub.CloseError return closes
	// the connection with its code; any other error closes it with 1011.
	Text(p []byte, now time.Time) error
	// Binary handles one complete binary message, with the same error rules as Text.
	Binary(p []byte, now time.Time) error
	// Ping is called every PingInterval, whatever the client sends, instead of a WebSocket
	// ping: the protocol sends its own. A client silent for PeerTimeout is still dropped.
	Ping(now time.Time)
	// Closed is called once when the connection ends, with a peer-left reason (see
	// docs/protocol.md).
	Closed(reason string)
}

// LossHandler is implemented by Handlers that tell a connection lost without a goodbye (EOF
// without a close frame, a read or write error, missed pings) from one that ended: for them
// Lost replaces Closed when the connection was lost.
type LossHandler interface {
	Lost(reason string)
}

// Conn is the sending side of an adopted connection. Its methods are safe for concurrent use.
type Conn struct{ c *conn }

// SendText writes one text message whose payload build appends to dst (which it must return,
// grown), or queues what the socket cannot take. It reports false when the connection is gone
// or its send queue overflowed (the connection is then closed as slow).
func (a *Conn) SendText(build func(dst []byte) []byte) bool {
	bp := scratchPool.Get().(*[]byte)
	const reserve = 10 // longest server frame header
	b := build((*bp)[:reserve])
	start := putFrameHeader(b, reserve, opText, len(b)-reserve)
	ok := a.c.write(b[start:], false)
	if cap(b) <= 1<<16 {
		*bp = b[:0]
		scratchPool.Put(bp)
	}
	return ok
}

// Close starts a close handshake with code and reason from any goroutine; the handler's Closed
// follows with reason "closed".
func (a *Conn) Close(code int, reason string) {
	a.c.l.post(func(now time.Time) { a.c.closeWith(code, reason, "closed", now) })
}

// Adopt answers a WebSocket handshake like ServeHTTP, with the same checks (Origin policy,
// shutdown), limits, event loops and timeouts, but hands the connection's messages to the
// Handler newHandler returns rather than to a hub session. newHandler runs before any message
// arrives.
func (s *Server) Adopt(w http.ResponseWriter, r *http.Request, newHandler func(*Conn) Handler) {
	s.serve(w, r, newHandler)
}
