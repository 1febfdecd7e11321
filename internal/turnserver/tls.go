package turnserver

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
)

// TURN over TLS (turns: URLs, RFC 8656 §3.1 over RFC 5246/8446) comes in two ways, both into
// one listener of pion's, tracked in the same table as TCP (so the connection caps, the
// allocate deadline and the idle timeout are one for both):
//   - HandleTLS: connections already in TLS, handed over by the HTTPS port when their client
//     negotiated ALPN "stun.turn" or sent a STUN message first (wsserver.SharedTLSListener);
//   - ListenTLS: a TCP port of its own, whose handshakes run on the connection's first read,
//     within the allocate deadline.
//
// The certificate is the HTTPS one, so the URLs must name a host it is valid for
// (AdvertiseTLS).

// tlsSide is the TURN-over-TLS part of a Server.
type tlsSide struct {
	ln     *trackedListener // over intake; one of pion's listeners
	intake *intake
	url    atomic.Pointer[string] // host:port of the turns: URLs; nil: none handed out

	mu   sync.Mutex
	own  []net.Listener // ListenTLS's ports
	wg   sync.WaitGroup // their accept loops
	done bool
}

func (t *tlsSide) init(table *connTable, addr net.Addr) {
	t.intake = &intake{ch: make(chan net.Conn), done: make(chan struct{}), addr: addr}
	t.ln = &trackedListener{Listener: t.intake, t: table, done: make(chan struct{})}
}

// close closes ListenTLS's ports and waits for their accept loops; pion closes the intake.
func (t *tlsSide) close() {
	t.mu.Lock()
	t.done = true
	for _, ln := range t.own {
		_ = ln.Close()
	}
	t.mu.Unlock()
	_ = t.intake.Close()
	t.wg.Wait()
}

// HandleTLS takes a client connection already in TLS (its handshake done) for TURN; bytes
// read to tell it was STUN must be read again from c. It returns once the server took c, or
// closed it because the server is closed.
func (s *Server) HandleTLS(c net.Conn) { s.tls.intake.put(c) }

// ListenTLS serves TURN over TLS with cfg on a TCP port of its own (host:port; port 0 picks
// one) until Close, and returns its address. cfg's ALPN protocols are not offered there.
func (s *Server) ListenTLS(addr string, cfg *tls.Config) (*net.TCPAddr, error) {
	lc := net.ListenConfig{}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("turnserver: listen tls %s: %w", addr, err)
	}
	ln = survivingAccept(ln, s.log)
	cfg = cfg.Clone()
	cfg.NextProtos = nil // a TURN client's ALPN (stun.turn, or none) must not fail the handshake
	s.tls.mu.Lock()
	defer s.tls.mu.Unlock()
	if s.tls.done {
		_ = ln.Close()
		return nil, fmt.Errorf("turnserver: listen tls %s: %w", addr, net.ErrClosed)
	}
	s.tls.own = append(s.tls.own, ln)
	s.tls.wg.Add(1)
	go func() {
		defer s.tls.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by Close
			}
			s.tls.intake.put(tls.Server(c, cfg))
		}
	}()
	return ln.Addr().(*net.TCPAddr), nil
}

// AdvertiseTLS makes ICEServers hand out turns:host:port?transport=tcp with the same
// credentials. host must be a name (or an address) the certificate is valid for.
func (s *Server) AdvertiseTLS(host string, port int) {
	hp := net.JoinHostPort(host, strconv.Itoa(port))
	s.tls.url.Store(&hp)
}

// TLSURL returns the host:port the turns: URLs name, or "" when none are handed out.
func (s *Server) TLSURL() string {
	if h := s.tls.url.Load(); h != nil {
		return *h
	}
	return ""
}

// intake is a listener whose connections are handed to it (put) rather than accepted.
type intake struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func (l *intake) put(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *intake) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *intake) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *intake) Addr() net.Addr { return l.addr }
