package wsserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sys/unix"

	"github.com/switchboard-rtc/switchboard/internal/hub"
)

// TestTLSChurnKeepsConnectionsApart: WebSockets over TLS opened, joined and closed as fast as
// a few clients can, while a pair relays: every handshake succeeds and every message arrives
// intact. A closed connection's descriptor number is handed to the next accepted connection
// at once, so a TLS connection that read or wrote through its descriptor after the loop closed
// it (its record layer reading on after the close frame, or sending an alert) would steal
// another client's ClientHello or write records into its stream: that client would fail with
// "first record does not look like a TLS handshake" or "bad record MAC".
func TestTLSChurnKeepsConnectionsApart(t *testing.T) {
	cert, pool := testCert(t)
	// The pair relays and the churn joins as fast as they can: no rate limit in their way.
	h, err := hub.New(hub.Config{Logger: discardLogger(), RateLimit: 1e6, RateBurst: 1e6, Clients: hub.ClientLimits{JoinRate: -1}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Hub: h, Logger: discardLogger(), Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(TLSListener(inner, &tls.Config{Certificates: []tls.Certificate{cert}})) }()
	t.Cleanup(func() {
		_ = s.Close()
		_ = hs.Close()
		<-done
	})
	url := "wss://" + inner.Addr().String() + "/ws"
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// One connection's whole life: handshake, join, welcome, close handshake.
	churn := func(room string) error {
		c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
		if err != nil {
			return fmt.Errorf("dial: %w", err)
		}
		defer c.CloseNow()
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"`+room+`"}`)); err != nil {
			return fmt.Errorf("join: %w", err)
		}
		_, b, err := c.Read(ctx)
		if err != nil {
			return fmt.Errorf("welcome: %w", err)
		}
		if !strings.Contains(string(b), `"welcome"`) {
			return fmt.Errorf("welcome: got %.80s", b)
		}
		if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
			return fmt.Errorf("close: %w", err)
		}
		return nil
	}

	// A pair relays through the churn; each message must arrive whole and in order.
	a := dialTLS(ctx, t, url, hc)
	b := dialTLS(ctx, t, url, hc)
	writeCtx(ctx, t, a, `{"type":"join","room":"pair"}`)
	readCtx(ctx, t, a) // welcome
	writeCtx(ctx, t, b, `{"type":"join","room":"pair"}`)
	wb := readCtx(ctx, t, b)
	readCtx(ctx, t, a) // peer-joined
	self := wb[strings.Index(wb, `"peer":"`)+8:]
	self = self[:strings.IndexByte(self, '"')]

	const workers, each = 8, 200
	errs := make(chan error, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := churn(fmt.Sprintf("churn-%d-%d", w, i)); err != nil {
					errs <- err
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	for i := 0; ; i++ {
		data := fmt.Sprintf("m%d-%s", i, strings.Repeat("x", i%2000))
		writeCtx(ctx, t, a, `{"type":"message","target":"`+self+`","data":"`+data+`"}`)
		if got := readCtx(ctx, t, b); !strings.Contains(got, `"data":"`+data+`"`) {
			t.Fatalf("message %d arrived as %.120s", i, got)
		}
		select {
		case <-finished:
		default:
			continue
		}
		if i >= 50 {
			break
		}
	}
	close(errs)
	n := 0
	for err := range errs {
		if n < 5 {
			t.Error(err)
		}
		n++
	}
	if n > 0 {
		t.Fatalf("%d of %d connections failed", n, workers*each)
	}
}

func dialTLS(ctx context.Context, t *testing.T, url string, hc *http.Client) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func writeCtx(ctx context.Context, t *testing.T, c *websocket.Conn, s string) {
	t.Helper()
	if err := c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		t.Fatal(err)
	}
}

func readCtx(ctx context.Context, t *testing.T, c *websocket.Conn) string {
	t.Helper()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLoopConnClosedNeverTouchesDescriptor: once the loop has closed a TLS connection, its
// record layer can neither read nor write the descriptor number it had (the kernel may have
// given it to a new connection): reads and writes fail, the bytes stay where they are.
func TestLoopConnClosedNeverTouchesDescriptor(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	// fds[0] plays the reused number, fds[1] the new connection's client.
	if _, err := unix.Write(fds[1], []byte("ClientHello")); err != nil {
		t.Fatal(err)
	}
	lc := &loopConn{c: &conn{fd: fds[0], closed: true}}
	var buf [64]byte
	if n, err := lc.Read(buf[:]); n != 0 || !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after close: %d, %v; want 0, net.ErrClosed", n, err)
	}
	if n, err := lc.Write([]byte("alert")); n != 0 || !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after close: %d, %v; want 0, net.ErrClosed", n, err)
	}
	if n, err := unix.Read(fds[0], buf[:]); err != nil || string(buf[:n]) != "ClientHello" {
		t.Errorf("the new connection's bytes: %q, %v; want them untouched", buf[:n], err)
	}
	if n, err := unix.Read(fds[1], buf[:]); !errors.Is(err, unix.EAGAIN) {
		t.Errorf("the new connection's client read %q (%v); want nothing written to it", buf[:max(n, 0)], err)
	}
}
