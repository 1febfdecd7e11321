// Package wsserver is the native signaling endpoint: a WebSocket (RFC 6455) server built for
// many mostly idle connections.
//
// The HTTP handshake runs on net/http. After the upgrade the socket leaves Go's netpoller and
// joins one of a few epoll loops (half as many as CPUs), so an idle connection costs no goroutine, no
// stack and no buffer: a few hundred bytes of state. A loop reads into its own buffer, parses
// and unmasks frames in place, and hands each text message to the connection's hub.Session.
// Events for a peer are encoded and written straight to its socket by whichever goroutine
// produced them; only when the socket's send buffer is full do bytes wait in a per-connection
// queue, which is bounded: a peer that does not read is dropped, never waited for.
//
// Each loop also keeps time for its connections: it pings peers that have been quiet, drops
// those silent past the timeout, and finishes closing handshakes that stall.
package wsserver
