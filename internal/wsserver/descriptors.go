package wsserver

import (
	"fmt"
	"net"
	"net/http"
	"strconv"

	"golang.org/x/sys/unix"
)

// Descriptors counts the process's file descriptors (internal/fdlimit.Gauge). A connection
// accepted by the HTTP server was noted open (+1); once hijacked for a WebSocket, the Server
// notes it closed (-1) when the WebSocket ends or the upgrade fails.
type Descriptors interface {
	// Full reports whether the process is within its reserve of descriptors.
	Full() bool
	// Note counts n descriptors opened (n > 0) or closed (n < 0).
	Note(n int)
}

// fdClosed notes that a hijacked connection's descriptor is closed.
func (s *Server) fdClosed() {
	if s.cfg.Descriptors != nil {
		s.cfg.Descriptors.Note(-1)
	}
}

// RetryAfter is the Retry-After, in seconds, of a handshake refused for want of descriptors.
const RetryAfter = 5

// refusedResponse answers a hijacked handshake that cannot get a descriptor of its own.
var refusedResponse = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: " + strconv.Itoa(RetryAfter) +
	"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 25\r\nConnection: close\r\n\r\nserver out of descriptors"

// refuseDescriptors answers an upgrade 503 because the process is within its descriptor
// reserve, and closes the HTTP connection so the client does not keep it open.
func (s *Server) refuseDescriptors(w http.ResponseWriter) {
	s.stats.HandshakesRefused.Add(1)
	s.stats.RefusedDescriptors.Add(1)
	w.Header().Set("Retry-After", strconv.Itoa(RetryAfter))
	w.Header().Set("Connection", "close")
	http.Error(w, "server out of descriptors", http.StatusServiceUnavailable)
}

// dupConn returns a non-blocking, close-on-exec duplicate of tcp's descriptor for an event
// loop to own (net/http's connection is closed after the upgrade).
func dupConn(tcp *net.TCPConn) (int, error) {
	raw, err := tcp.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("syscall conn: %w", err)
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(f uintptr) {
		fd, dupErr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, fmt.Errorf("control: %w", err)
	}
	if dupErr != nil {
		return -1, fmt.Errorf("dup: %w", dupErr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("nonblock: %w", err)
	}
	return fd, nil
}
