package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/sdk"
)

const wait = 10 * time.Second

type errs struct {
	mu   sync.Mutex
	list []error
	ch   chan error
}

func newErrs() *errs { return &errs{ch: make(chan error, 100)} }

func (e *errs) on(_ *sdk.Peer, err error) {
	e.mu.Lock()
	e.list = append(e.list, err)
	e.mu.Unlock()
	select {
	case e.ch <- err:
	default:
	}
}

func dial(t *testing.T, url, room string, opts sdk.Options) *sdk.Client {
	t.Helper()
	return testserver.DialPeer(t, url, room, opts, wait)
}

func waitChan[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	return testserver.Recv(t, ch, wait, what)
}

// echoOnChannels answers every message on every data channel the remote opens.
func echoOnChannels(p *sdk.Peer) {
	p.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnMessage(func(m webrtc.DataChannelMessage) { _ = dc.Send(append([]byte("echo:"), m.Data...)) })
	})
}

func TestTwoPeersExchangeData(t *testing.T) {
	url := testserver.Start(t, nil)
	a := dial(t, url, "pair", sdk.Options{Name: "a", OnPeer: echoOnChannels})
	got := make(chan string, 10)
	b := dial(t, url, "pair", sdk.Options{Name: "b", OnPeer: func(p *sdk.Peer) {
		dc, err := p.CreateDataChannel("chat", nil)
		if err != nil {
			t.Error(err)
			return
		}
		dc.OnOpen(func() { _ = dc.SendText("hello") })
		dc.OnMessage(func(m webrtc.DataChannelMessage) { got <- string(m.Data) })
	}})
	if msg := waitChan(t, got, "echo"); msg != "echo:hello" {
		t.Fatalf("got %q", msg)
	}
	pb := b.Peer(a.ID())
	if pb == nil || pb.Name() != "a" {
		t.Fatalf("b does not know a by name")
	}
	waitChan(t, pb.Connected(), "connected")
	pa := a.Peer(b.ID())
	if pa == nil || pa.Polite() == pb.Polite() {
		t.Fatal("exactly one side of a pair must be polite")
	}
	// sdk.TuneTransport's SNAP: each side got the other's SCTP INIT in its description, so
	// the association came up with DTLS, without SCTP's own two round trips.
	for _, p := range []*sdk.Peer{pa, pb} {
		if rd := p.PeerConnection().RemoteDescription(); rd == nil || !strings.Contains(rd.SDP, "a=sctp-init:") {
			t.Fatalf("%s's remote description has no a=sctp-init", p.Name())
		}
	}
}

func TestThreePeersFullMeshAndLeave(t *testing.T) {
	url := testserver.Start(t, nil)
	type link struct{ from, to string }
	opened := make(chan link, 20)
	left := make(chan link, 20)
	mk := func(name string) sdk.Options {
		return sdk.Options{
			Name: name,
			OnPeer: func(p *sdk.Peer) {
				go func() {
					select {
					case <-p.Connected():
						opened <- link{name, p.Name()}
					case <-p.Closed():
					}
				}()
			},
			OnPeerLeft: func(p *sdk.Peer, reason string) { left <- link{name, p.Name()} },
		}
	}
	dial(t, url, "mesh", mk("a"))
	b := dial(t, url, "mesh", mk("b"))
	dial(t, url, "mesh", mk("c"))
	seen := map[link]bool{}
	for len(seen) < 6 {
		seen[waitChan(t, opened, "mesh connections")] = true
	}
	for _, l := range []link{{"a", "b"}, {"b", "a"}, {"a", "c"}, {"c", "a"}, {"b", "c"}, {"c", "b"}} {
		if !seen[l] {
			t.Fatalf("missing %v in %v", l, seen)
		}
	}
	b.Close()
	gone := map[link]bool{}
	for len(gone) < 2 {
		if l := waitChan(t, left, "peer-left"); l.from != "b" { // b itself reports its peers at Close
			gone[l] = true
		}
	}
	if !gone[link{"a", "b"}] || !gone[link{"c", "b"}] {
		t.Fatalf("b's departure not seen by both: %v", gone)
	}
}

// Both sides of an established pair add a track at the same moment, three times over: both
// want to renegotiate at once (glare), and every track must still reach the other side.
func TestGlareConverges(t *testing.T) {
	url := testserver.Start(t, nil)
	var mu sync.Mutex
	peers := map[string]*sdk.Peer{}
	arrived := make(chan string, 20)
	ready := make(chan struct{}, 2)
	onPeer := func(side string) func(*sdk.Peer) {
		return func(p *sdk.Peer) {
			mu.Lock()
			peers[side] = p
			mu.Unlock()
			p.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
				if _, _, err := tr.ReadRTP(); err == nil {
					arrived <- side + " got " + tr.StreamID()
				}
			})
			go func() {
				select {
				case <-p.Connected():
					ready <- struct{}{}
				case <-p.Closed():
				}
			}()
		}
	}
	dial(t, url, "glare", sdk.Options{OnPeer: onPeer("a")})
	dial(t, url, "glare", sdk.Options{OnPeer: onPeer("b")})
	waitChan(t, ready, "a connected")
	waitChan(t, ready, "b connected")
	stop := make(chan struct{})
	var writers sync.WaitGroup
	defer func() { close(stop); writers.Wait() }()
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		for _, side := range []string{"a", "b"} {
			tr, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", fmt.Sprintf("%s%d", side, round))
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := peers[side].AddTrack(tr); err != nil {
					t.Error(err)
				}
			}()
			writers.Add(1)
			go func() {
				defer writers.Done()
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for i := 0; i < 1000; i++ {
					select {
					case <-tick.C:
					case <-stop:
						return
					}
					_ = tr.WriteSample(media.Sample{Data: []byte{0xfc, 0xff, 0xfe}, Duration: 20 * time.Millisecond})
				}
			}()
		}
		wg.Wait()
		got := map[string]bool{}
		for len(got) < 2 {
			got[waitChan(t, arrived, fmt.Sprintf("tracks after glare round %d", round))] = true
		}
		if want := fmt.Sprintf("a got b%d", round); !got[want] || !got[fmt.Sprintf("b got a%d", round)] {
			t.Fatalf("round %d: %v", round, got)
		}
	}
}

// A rogue peer sends malformed SDP, a stray answer and a garbage candidate to a: errors are
// reported for that pair only, and a's pair with b keeps working.
func TestMalformedSignalHurtsOnlyItsPair(t *testing.T) {
	url := testserver.Start(t, nil)
	e := newErrs()
	got := make(chan string, 4)
	a := dial(t, url, "bad", sdk.Options{Name: "a", OnError: e.on, OnPeer: echoOnChannels})

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	rogue, _, err := websocket.Dial(ctx, url+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.CloseNow()
	send := func(v any) {
		b, _ := json.Marshal(v)
		if err := rogue.Write(ctx, websocket.MessageText, b); err != nil {
			t.Fatal(err)
		}
	}
	send(map[string]any{"type": "join", "room": "bad"})
	for _, bad := range []map[string]any{
		{"type": "offer", "target": a.ID(), "data": map[string]any{"type": "offer", "sdp": "this is not sdp"}},
		{"type": "answer", "target": a.ID(), "data": map[string]any{"type": "answer", "sdp": "v=0\r\n"}},
		{"type": "offer", "target": a.ID(), "data": "not an object"},
		{"type": "ice-candidate", "target": a.ID(), "data": map[string]any{"candidate": "garbage", "sdpMid": "99"}},
	} {
		send(bad)
	}
	waitChan(t, e.ch, "an error for the rogue pair")

	dial(t, url, "bad", sdk.Options{Name: "b", OnPeer: func(p *sdk.Peer) {
		if p.Name() != "a" {
			return
		}
		dc, err := p.CreateDataChannel("chat", nil)
		if err != nil {
			t.Error(err)
			return
		}
		dc.OnOpen(func() { _ = dc.SendText("still fine") })
		dc.OnMessage(func(m webrtc.DataChannelMessage) { got <- string(m.Data) })
	}})
	if msg := waitChan(t, got, "a-b echo"); msg != "echo:still fine" {
		t.Fatalf("got %q", msg)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, err := range e.list {
		var se *sdk.ServerError
		if errors.As(err, &se) {
			t.Fatalf("a's signaling got a server error: %v", err)
		}
	}
}

func TestMediaTrackArrivesWithCodec(t *testing.T) {
	url := testserver.Start(t, nil)
	type arrival struct {
		mime string
		n    int
	}
	got := make(chan arrival, 1)
	dial(t, url, "media", sdk.Options{OnPeer: func(p *sdk.Peer) {
		p.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			n := 0
			for n < 10 {
				if _, _, err := tr.ReadRTP(); err != nil {
					return
				}
				n++
			}
			got <- arrival{tr.Codec().MimeType, n}
		})
	}})
	dial(t, url, "media", sdk.Options{OnPeer: func(p *sdk.Peer) { sendOpus(t, p) }})
	a := waitChan(t, got, "RTP packets")
	if a.mime != webrtc.MimeTypeOpus || a.n != 10 {
		t.Fatalf("got %+v", a)
	}
}

func TestCloseLeaksNoGoroutines(t *testing.T) {
	url := testserver.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	opened := make(chan struct{}, 2)
	opts := &sdk.Options{Loopback: true, OnPeer: func(p *sdk.Peer) {
		go func() {
			select {
			case <-p.Connected():
				opened <- struct{}{}
			case <-p.Closed():
			}
		}()
	}}
	a, err := sdk.Dial(ctx, url, "leak", opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sdk.Dial(ctx, url, "leak", opts)
	if err != nil {
		t.Fatal(err)
	}
	waitChan(t, opened, "a connected")
	waitChan(t, opened, "b connected")
	if sdkGoroutines() == "" {
		t.Fatal("the leak check sees no SDK goroutines while peers are connected")
	}
	a.Close()
	b.Close()
	// Close returns after its own goroutines; Pion's last timers may take a moment.
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := sdkGoroutines()
		if left == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left after Close:\n%s", left)
		}
		runtime.Gosched()
	}
}

// sdkGoroutines returns the stacks of goroutines running SDK or Pion code. The server in the
// same process is not counted.
func sdkGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "TestCloseLeaksNoGoroutines") {
			continue
		}
		if strings.Contains(g, "github.com/pion/") || strings.Contains(g, "switchboard/sdk.") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
