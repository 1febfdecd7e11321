package turnserver

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tlsPair returns both ends of a TLS connection over loopback, handshake done: the server's
// end as the TURN server gets it (tls.Server over the accepted TCP connection).
func tlsPair(t *testing.T) (srv, cli *tls.Conn) {
	t.Helper()
	srvCfg, cliCfg := testTLS(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *tls.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		tc := tls.Server(c, srvCfg)
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		if tc.Handshake() != nil {
			_ = c.Close()
			accepted <- nil
			return
		}
		_ = tc.SetDeadline(time.Time{})
		accepted <- tc
	}()
	cli, err = tls.Dial("tcp4", ln.Addr().String(), cliCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.NetConn().Close() })
	if srv = <-accepted; srv == nil {
		t.Fatal("server handshake failed")
	}
	t.Cleanup(func() { _ = srv.NetConn().Close() })
	return srv, cli
}

// fillSendBuffer writes raw bytes under c's TLS until the kernel takes no more (a client that
// stopped reading), with no write of the TLS connection's own in flight.
func fillSendBuffer(t *testing.T, c *tls.Conn) {
	t.Helper()
	chunk := make([]byte, 64<<10)
	for {
		_ = c.NetConn().SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := c.NetConn().Write(chunk)
		if err == nil {
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal(err)
		}
		if n == 0 { // not a byte more in 50 ms: full
			_ = c.NetConn().SetWriteDeadline(time.Time{})
			return
		}
	}
}

func newTestTable() *connTable {
	return &connTable{
		max: 100, perClient: 100, idle: time.Minute, allocate: time.Minute,
		stats: new(Stats), log: func(string, ...any) {},
		conns: map[*trackedConn]struct{}{}, byKey: map[netip.Prefix]int{},
	}
}

// TestTLSCloseQuiet: closing a TURN connection over TLS neither fails (pion logs each failed
// Close as a warning, so a client that resets its connection would write a warning line) nor
// waits on a client that stopped reading (crypto/tls's close_notify waits up to 5 s for room
// in the send buffer; the table closes its connections one after the other at shutdown).
func TestTLSCloseQuiet(t *testing.T) {
	t.Run("client reset", func(t *testing.T) {
		table := newTestTable()
		srv, cli := tlsPair(t)
		tc := table.add(srv)
		_ = cli.NetConn().(*net.TCPConn).SetLinger(0)
		_ = cli.NetConn().Close()
		waitReset(t, srv.NetConn().(*net.TCPConn))
		if err := tc.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("Close of a reset client's TLS connection: %v (pion logs it as a warning)", err)
		}
	})
	t.Run("client not reading", func(t *testing.T) {
		table := newTestTable()
		var tcs []*trackedConn
		for range 2 {
			srv, _ := tlsPair(t)
			fillSendBuffer(t, srv)
			tcs = append(tcs, table.add(srv))
		}
		start := time.Now()
		table.closeAll()
		if d := time.Since(start); d > time.Second {
			t.Errorf("closeAll of 2 TLS connections whose clients do not read took %v", d.Round(time.Millisecond))
		}
		start = time.Now()
		for _, tc := range tcs {
			_ = tc.Close()
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Close after closeAll took %v", d.Round(time.Millisecond))
		}
		table.wg.Wait()
	})
	t.Run("server close", func(t *testing.T) {
		s, err := New(Config{Listen: "127.0.0.1:0", Secret: []byte(testSecret), Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		srvCfg, cliCfg := testTLS(t)
		addr, err := s.ListenTLS("127.0.0.1:0", srvCfg)
		if err != nil {
			_ = s.Close(context.Background())
			t.Fatal(err)
		}
		for range 2 {
			c, err := tls.Dial("tcp4", addr.String(), cliCfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.NetConn().Close() })
		}
		waitUntil(t, "two connections tracked", func() bool { return s.table.count() == 2 })
		s.table.mu.Lock()
		for c := range s.table.conns {
			fillSendBuffer(t, c.Conn.(*tls.Conn))
		}
		s.table.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Close with 2 TLS clients that do not read took %v", d.Round(time.Millisecond))
		}
	})
}

// waitReset waits until c's socket has seen its peer's reset.
func waitReset(t *testing.T, c *net.TCPConn) {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the reset to arrive", func() bool {
		state := -1
		_ = raw.Control(func(fd uintptr) {
			info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
			if err == nil {
				state = int(info.State)
			}
		})
		return state == 7 // TCP_CLOSE: reset by the peer
	})
}
