package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
	"github.com/quic-go/quic-go"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// TestQUICWithoutPeerConnection: QUIC does not depend on the peer connection. Each side
// closes its peer connection as soon as it learns of the other (OnPeer, before the SDK starts
// negotiating it) and calls QUIC right there: the peer connection never connects, there is
// no control channel, and the QUIC connection still comes up and carries bytes both ways.
func TestQUICWithoutPeerConnection(t *testing.T) {
	url := testserver.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	type result struct {
		p    *sdk.Peer
		conn *quic.Conn
		err  error
	}
	results := make(chan result, 2)
	var wg sync.WaitGroup
	defer wg.Wait() // after the clients close (deferred below): no QUIC call outlives the test
	onPeer := func(p *sdk.Peer) {
		if err := p.PeerConnection().Close(); err != nil {
			t.Errorf("close the peer connection: %v", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := p.QUIC(ctx)
			results <- result{p, conn, err}
		}()
	}
	a := dial(t, url, "quic-no-pc", sdk.Options{OnPeer: onPeer})
	defer a.Close()
	b := dial(t, url, "quic-no-pc", sdk.Options{OnPeer: onPeer})
	defer b.Close()
	r1, r2 := waitChan(t, results, "the first QUIC call"), waitChan(t, results, "the second QUIC call")
	if r1.err != nil || r2.err != nil {
		t.Fatalf("QUIC: %v / %v", r1.err, r2.err)
	}
	roundTrip(t, r1.conn, r2.conn, 1<<20)
	roundTrip(t, r2.conn, r1.conn, 256<<10)
	for _, r := range []result{r1, r2} {
		if s := r.p.PeerConnection().ConnectionState(); s != webrtc.PeerConnectionStateClosed {
			t.Errorf("peer connection %v, want closed", s)
		}
		select {
		case <-r.p.Connected():
			t.Error("the peer connection connected")
		default:
		}
	}
}

// rogue is a raw WebSocket client in a room, for sending hand-made relays.
type rogue struct {
	t    *testing.T
	conn *websocket.Conn
	id   string
}

func joinRogue(ctx context.Context, t *testing.T, url, room string) *rogue {
	t.Helper()
	conn, _, err := websocket.Dial(ctx, url+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.CloseNow() })
	r := &rogue{t: t, conn: conn}
	r.send(ctx, map[string]any{"type": "join", "room": room})
	for r.id == "" {
		_, b, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("rogue: waiting for welcome: %v", err)
		}
		var f struct{ Type, Peer string }
		if json.Unmarshal(b, &f) == nil && f.Type == "welcome" {
			r.id = f.Peer
		}
	}
	// Keep reading (the client must not stall the server's queue) until the conn closes.
	go func() {
		for {
			if _, _, err := conn.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	return r
}

func (r *rogue) send(ctx context.Context, v any) {
	b, _ := json.Marshal(v)
	if err := r.conn.Write(ctx, websocket.MessageText, b); err != nil {
		r.t.Fatalf("rogue: %v", err)
	}
}

// relay sends each data as a `message` to target.
func (r *rogue) relay(ctx context.Context, target string, data ...any) {
	for _, d := range data {
		r.send(ctx, map[string]any{"type": "message", "target": target, "data": d})
	}
}

// TestQUICHostileExchange: a remote that sends a malformed QUIC hello, an oversized one, or
// too many candidates gets that pair's QUIC refused with a clear error (and an OnError
// report) before the local side even asks; a hello from a peer that then leaves goes with
// the peer. Nothing is left running once the client closes.
func TestQUICHostileExchange(t *testing.T) {
	url := testserver.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	e := newErrs()
	peers := make(chan *sdk.Peer, 8)
	a, err := sdk.Dial(ctx, url, "quic-hostile", &sdk.Options{Loopback: true, OnError: e.on, OnPeer: func(p *sdk.Peer) { peers <- p }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	hello := func(fp string) map[string]any {
		return map[string]any{"switchboard": "quic", "quic": "hello", "v": 1, "ufrag": "abcd", "pwd": strings.Repeat("p", 22), "fp": fp}
	}
	good := strings.Repeat("ab", 32)
	tooMany := []any{hello(good)}
	for range 70 {
		tooMany = append(tooMany, map[string]any{"switchboard": "quic", "quic": "cand", "cand": "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host"})
	}
	for _, tc := range []struct {
		name string
		msgs []any
		want string
	}{
		{"bad json", []any{map[string]any{"switchboard": "quic", "quic": "hello", "v": "one"}}, "cannot unmarshal"},
		{"oversized", []any{hello(strings.Repeat("ab", 1500))}, "bytes (at most 2048)"},
		{"too many candidates", tooMany, "more than 32 messages"},
		{"candidate first", []any{map[string]any{"switchboard": "quic", "quic": "cand", "cand": "x"}}, "cand before hello"},
	} {
		r := joinRogue(ctx, t, url, "quic-hostile")
		p := waitChan(t, peers, "the rogue peer "+tc.name)
		r.relay(ctx, a.ID(), tc.msgs...)
		reported := quicReport(t, e.ch, tc.name)
		if !strings.Contains(reported.Error(), tc.want) {
			t.Errorf("%s: reported %v, want ErrQUICSignal with %q", tc.name, reported, tc.want)
		}
		qctx, qcancel := context.WithTimeout(ctx, wait)
		_, err := p.QUIC(qctx)
		qcancel()
		if !errors.Is(err, sdk.ErrQUIC) || !errors.Is(err, sdk.ErrQUICSignal) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: QUIC: %v, want ErrQUIC and ErrQUICSignal with %q", tc.name, err, tc.want)
		}
		_ = r.conn.Close(websocket.StatusNormalClosure, "")
		waitChan(t, p.Closed(), "the rogue "+tc.name+" gone")
	}

	// A valid hello, held for a QUIC call that has not come, then the remote leaves.
	r := joinRogue(ctx, t, url, "quic-hostile")
	p := waitChan(t, peers, "the last rogue peer")
	r.relay(ctx, a.ID(), hello(good))
	_ = r.conn.Close(websocket.StatusNormalClosure, "")
	waitChan(t, p.Closed(), "the rogue gone")
	if _, err := p.QUIC(ctx); !errors.Is(err, sdk.ErrQUIC) || !errors.Is(err, sdk.ErrPeerClosed) {
		t.Errorf("QUIC with a peer that left: %v, want ErrQUIC and ErrPeerClosed", err)
	}
	for more := true; more; {
		select {
		case err := <-e.ch:
			if errors.Is(err, sdk.ErrQUICSignal) {
				t.Errorf("a valid hello reported: %v", err)
			}
		default:
			more = false
		}
	}

	a.Close()
	noQUICGoroutines(t, "TestQUICHostileExchange")
}

// quicReport returns the next error reported on ch that wraps ErrQUICSignal (others, such as
// an offer to a rogue that left, are not this test's business).
func quicReport(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	for {
		if err := waitChan(t, ch, "the report of "+what); errors.Is(err, sdk.ErrQUICSignal) {
			return err
		}
	}
}
