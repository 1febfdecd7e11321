package sdk_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/quic-go/quic-go"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// quicPair dials two peers into a room and returns each one's view of the other once
// connected.
func quicPair(t *testing.T, url, room string, opts sdk.Options) (pa, pb *sdk.Peer, a, b *sdk.Client) {
	t.Helper()
	oa, seenA := seeing(opts)
	ob, seenB := seeing(opts)
	a = dial(t, url, room, oa)
	b = dial(t, url, room, ob)
	pa, pb = waitChan(t, seenA, "a knows b"), waitChan(t, seenB, "b knows a")
	waitChan(t, pa.Connected(), "a connected")
	waitChan(t, pb.Connected(), "b connected")
	return pa, pb, a, b
}

// seeing returns opts with an OnPeer that also hands each new peer to the channel (after the
// original OnPeer, if any).
func seeing(opts sdk.Options) (sdk.Options, <-chan *sdk.Peer) {
	seen := make(chan *sdk.Peer, 8)
	on := opts.OnPeer
	opts.OnPeer = func(p *sdk.Peer) {
		if on != nil {
			on(p)
		}
		select {
		case seen <- p:
		default:
		}
	}
	return opts, seen
}

// bothQUIC calls QUIC on both sides at once and returns the two connections (or errors).
func bothQUIC(ctx context.Context, pa, pb *sdk.Peer) (ca, cb *quic.Conn, ea, eb error) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ca, ea = pa.QUIC(ctx) }()
	go func() { defer wg.Done(); cb, eb = pb.QUIC(ctx) }()
	wg.Wait()
	return
}

// roundTrip opens a stream from c1, writes n random bytes, and checks that the other end
// echoes them back.
func roundTrip(t *testing.T, c1, c2 *quic.Conn, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	echoed := make(chan error, 1)
	go func() {
		s, err := c2.AcceptStream(ctx)
		if err != nil {
			echoed <- err
			return
		}
		_, err = io.Copy(s, s) // until c1's FIN
		if err == nil {
			err = s.Close()
		}
		echoed <- err
	}()
	s, err := c1.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, n)
	_, _ = rand.Read(want)
	go func() {
		_, _ = s.Write(want)
		_ = s.Close()
	}()
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("read the echo: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo: %d bytes, want the %d sent", len(got), n)
	}
	if err := <-echoed; err != nil {
		t.Fatalf("echo side: %v", err)
	}
}

// TestQUICBetweenSDKPeers: both peers of a pair call QUIC, get one connection between them
// (direct on loopback), and move bytes both ways; later calls return the same connection.
func TestQUICBetweenSDKPeers(t *testing.T) {
	url := testserver.Start(t, nil)
	pa, pb, _, _ := quicPair(t, url, "quic", sdk.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ca, cb, ea, eb := bothQUIC(ctx, pa, pb)
	if ea != nil || eb != nil {
		t.Fatalf("QUIC: %v / %v", ea, eb)
	}
	if st := ca.ConnectionState().TLS; st.NegotiatedProtocol != sdk.QUICALPN || st.Version != 0x0304 {
		t.Fatalf("ALPN %q, TLS version %x", st.NegotiatedProtocol, st.Version)
	}
	if pa.QUICPath() != "direct" || pb.QUICPath() != "direct" {
		t.Fatalf("paths %q / %q, want direct", pa.QUICPath(), pb.QUICPath())
	}
	// On the host's network, a direct pair's QUIC runs on its own socket (GSO, batched
	// reads), not over ice.Conn; ICE's checks share the socket.
	if !sdk.QUICOwnSocket(pa) || !sdk.QUICOwnSocket(pb) {
		t.Fatalf("own socket: %v / %v, want both", sdk.QUICOwnSocket(pa), sdk.QUICOwnSocket(pb))
	}
	roundTrip(t, ca, cb, 3<<20)
	roundTrip(t, cb, ca, 1<<20)
	again, err := pa.QUIC(ctx)
	if err != nil || again != ca {
		t.Fatalf("second call: %p, %v; want the same connection %p", again, err, ca)
	}
}

// TestQUICWrongFingerprintRefused: a peer whose hello carries another certificate's
// fingerprint gets no connection: the pinned handshake fails on both sides.
func TestQUICWrongFingerprintRefused(t *testing.T) {
	url := testserver.Start(t, nil)
	pa, pb, _, _ := quicPair(t, url, "quic-fp", sdk.Options{})
	restore := sdk.SetQUICHelloHook(func(_ bool, _, _, fp *string) {
		*fp = strings.Repeat("ab", 32) // not the certificate's
	})
	defer restore()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, cb, ea, eb := bothQUIC(ctx, pa, pb)
	if ea == nil || eb == nil {
		t.Fatalf("QUIC with wrong fingerprints: %v / %v, want both refused", ea, eb)
	}
	if ca != nil || cb != nil {
		t.Fatal("a connection despite the errors")
	}
	for _, err := range []error{ea, eb} {
		if !errors.Is(err, sdk.ErrQUIC) {
			t.Fatalf("%v does not wrap ErrQUIC", err)
		}
	}
	// b joined second: it is the pair's newcomer, controls ICE and accepts; a dials.
	if !strings.Contains(ea.Error(), "does not match the fingerprint") {
		t.Fatalf("the dialing side's error does not say why: %v", ea)
	}
}

// TestQUICServerPinsClient: only the dialing side lies about its certificate. The
// client's own check passes (the server's fingerprint is true), so what refuses the
// connection is the accepting side's pin on the client certificate.
func TestQUICServerPinsClient(t *testing.T) {
	url := testserver.Start(t, nil)
	pa, pb, _, _ := quicPair(t, url, "quic-client-fp", sdk.Options{})
	restore := sdk.SetQUICHelloHook(func(newcomer bool, _, _, fp *string) {
		if !newcomer {
			*fp = strings.Repeat("cd", 32) // not the dialer's certificate
		}
	})
	defer restore()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// b joined second: the pair's newcomer, it accepts; a dials.
	ca, _, ea, eb := bothQUIC(ctx, pa, pb)
	server, dialer, conn := eb, ea, ca
	if !errors.Is(server, sdk.ErrQUIC) || !strings.Contains(server.Error(), "does not match the fingerprint") {
		t.Fatalf("the accepting side: %v; want the pin's refusal", server)
	}
	// In TLS 1.3 the client's handshake is complete before the server has checked the
	// client's certificate: the dialer may get a connection, which the server then closes —
	// with its TLS alert (bad certificate) or, when the refusing side has already closed its
	// listener, CONNECTION_REFUSED; or the alert already failed the dial. Either way the
	// dialer is left with no usable connection.
	if dialer == nil {
		select {
		case <-conn.Context().Done():
			dialer = context.Cause(conn.Context())
		case <-ctx.Done():
			t.Fatal("the dialer's connection stayed open after the server refused its certificate")
		}
	}
	if msg := dialer.Error(); !strings.Contains(msg, "certificate") && !strings.Contains(msg, "CONNECTION_REFUSED") {
		t.Fatalf("the dialing side's error does not say it was refused: %v", dialer)
	}
}

// TestQUICWithoutRemoteTimesOut: a remote that never calls QUIC (a browser, an older SDK)
// leaves the caller with an ErrQUIC once its ctx ends.
func TestQUICWithoutRemoteTimesOut(t *testing.T) {
	url := testserver.Start(t, nil)
	pa, _, _, _ := quicPair(t, url, "quic-alone", sdk.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := pa.QUIC(ctx)
	if !errors.Is(err, sdk.ErrQUIC) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no QUIC offer") {
		t.Fatalf("QUIC alone: %v", err)
	}
}

// TestQUICRelayOnly: two relay-only peers get their QUIC connection through the embedded
// TURN server.
func TestQUICRelayOnly(t *testing.T) {
	url := testserver.Start(t, func(c *config.Config) {
		c.TURN = true
		c.TURNAllowPeers = []string{"127.0.0.0/8"}
	})
	pa, pb, _, _ := quicPair(t, url, "quic-relay", sdk.Options{ICETransportPolicy: webrtc.ICETransportPolicyRelay})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ca, cb, ea, eb := bothQUIC(ctx, pa, pb)
	if ea != nil || eb != nil {
		t.Fatalf("QUIC: %v / %v", ea, eb)
	}
	if pa.QUICPath() != "relay" || pb.QUICPath() != "relay" {
		t.Fatalf("paths %q / %q, want relay", pa.QUICPath(), pb.QUICPath())
	}
	if sdk.QUICOwnSocket(pa) || sdk.QUICOwnSocket(pb) {
		t.Fatal("a relay-only pair's QUIC on a socket of its own; want it over the relay")
	}
	roundTrip(t, ca, cb, 1<<20)
}

// TestQUICClosedWithPeer: closing a client closes its QUIC connections (the remote sees
// its connection end) and leaves no goroutine behind.
func TestQUICClosedWithPeer(t *testing.T) {
	url := testserver.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	oa, seenA := seeing(sdk.Options{Loopback: true})
	ob, seenB := seeing(sdk.Options{Loopback: true})
	a, err := sdk.Dial(ctx, url, "quic-close", &oa)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sdk.Dial(ctx, url, "quic-close", &ob)
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	pa, pb := waitChan(t, seenA, "a knows b"), waitChan(t, seenB, "b knows a")
	ca, cb, ea, eb := bothQUIC(ctx, pa, pb)
	if ea != nil || eb != nil {
		a.Close()
		b.Close()
		t.Fatalf("QUIC: %v / %v", ea, eb)
	}
	roundTrip(t, ca, cb, 64<<10)
	a.Close()
	select {
	case <-ca.Context().Done():
	default:
		t.Fatal("a's QUIC connection is open after a.Close")
	}
	select {
	case <-cb.Context().Done(): // a's CONNECTION_CLOSE, or b's peer leaving
	case <-ctx.Done():
		t.Fatal("b's QUIC connection outlived a")
	}
	b.Close()
	noQUICGoroutines(t, "TestQUICClosedWithPeer")
}

// noQUICGoroutines fails t unless the SDK, Pion and quic-go goroutines that test started are
// gone within 5 s. (Goroutines ending is no event to wait on: this polls, as goleak does.)
func noQUICGoroutines(t *testing.T, test string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := quicGoroutines(test)
		if left == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left after Close:\n%s", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// quicGoroutines returns the stacks of goroutines running SDK, Pion or quic-go code (the
// server in the same process, and the test itself, are not counted).
func quicGoroutines(test string) string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, test) {
			continue
		}
		if strings.Contains(g, "github.com/pion/") || strings.Contains(g, "switchboard/sdk.") || strings.Contains(g, "github.com/quic-go/") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
