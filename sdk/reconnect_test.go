package sdk_test

import (
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// reconnectPair dials a through a cutter proxy and b directly, opens a data channel from b to
// a, and returns them with the proxy and a channel of a's reconnect results.
func reconnectPair(t *testing.T, grace bool) (a, b *sdk.Client, dc *webrtc.DataChannel, echoes chan string, proxy *testserver.Cutter, reconnected chan bool, left chan string) {
	t.Helper()
	url := testserver.Start(t, func(c *config.Config) {
		if !grace {
			c.ResumeGrace = 0
		}
	})
	proxy = testserver.NewCutter(t, strings.TrimPrefix(url, "http://"))
	reconnected = make(chan bool, 4)
	left = make(chan string, 8)
	a = dial(t, "http://"+proxy.Addr(), "resume", sdk.Options{
		Name:          "a",
		OnPeer:        echoOnChannels,
		OnPeerLeft:    func(p *sdk.Peer, reason string) { left <- "a saw " + p.ID() + " " + reason },
		OnReconnected: func(resumed bool) { reconnected <- resumed },
	})
	echoes = make(chan string, 16)
	opened := make(chan *webrtc.DataChannel, 1)
	b = dial(t, url, "resume", sdk.Options{
		Name:       "b",
		OnPeerLeft: func(p *sdk.Peer, reason string) { left <- "b saw " + p.ID() + " " + reason },
		OnPeer: func(p *sdk.Peer) {
			echoOnChannels(p)
			if p.ID() != a.ID() {
				return
			}
			ch, err := p.CreateDataChannel("chat", nil)
			if err != nil {
				t.Error(err)
				return
			}
			ch.OnOpen(func() { opened <- ch })
			ch.OnMessage(func(m webrtc.DataChannelMessage) { echoes <- string(m.Data) })
		},
	})
	dc = waitChan(t, opened, "b's channel to a open")
	if err := dc.SendText("before"); err != nil {
		t.Fatal(err)
	}
	if got := waitChan(t, echoes, "echo before the cut"); got != "echo:before" {
		t.Fatalf("echo %q", got)
	}
	return a, b, dc, echoes, proxy, reconnected, left
}

// a's signaling connection is cut mid-call: it resumes with the same id, the data channel
// opened before never closes, and b never sees a leave.
func TestReconnectResumes(t *testing.T) {
	a, _, dc, echoes, proxy, reconnected, left := reconnectPair(t, true)
	id := a.ID()
	if n := proxy.Cut(); n != 1 {
		t.Fatalf("cut %d connections, want 1", n)
	}
	if resumed := waitChan(t, reconnected, "a reconnected"); !resumed {
		t.Fatal("a joined anew; want resumed")
	}
	if a.ID() != id {
		t.Fatalf("a's id changed from %s to %s", id, a.ID())
	}
	if err := dc.SendText("after"); err != nil {
		t.Fatal(err)
	}
	if got := waitChan(t, echoes, "echo after resuming"); got != "echo:after" {
		t.Fatalf("echo %q", got)
	}
	select {
	case l := <-left:
		t.Fatalf("a resumed, yet %s", l)
	default:
	}
}

// Without resumption on the server a joins anew: the old pair is reported gone on both sides
// and a new one forms under a's new id.
func TestReconnectRejoins(t *testing.T) {
	a, b, _, _, proxy, reconnected, left := reconnectPair(t, false)
	oldA, idB := a.ID(), b.ID()
	proxy.Cut()
	if resumed := waitChan(t, reconnected, "a reconnected"); resumed {
		t.Fatal("a resumed with resumption off")
	}
	if a.ID() == oldA {
		t.Fatal("a kept its id after joining anew")
	}
	want := map[string]bool{"a saw " + idB + " reconnect": true, "b saw " + oldA + " closed": true}
	for len(want) > 0 {
		l := waitChan(t, left, "peer-left reports")
		if !want[l] {
			t.Fatalf("unexpected %q", l)
		}
		delete(want, l)
	}
	// The new pair connects: a channel from a to b echoes.
	p := a.Peer(idB)
	if p == nil {
		t.Fatal("a has no peer b after rejoining")
	}
	ch, err := p.CreateDataChannel("again", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	ch.OnOpen(func() { _ = ch.SendText("hi") })
	ch.OnMessage(func(m webrtc.DataChannelMessage) { got <- string(m.Data) })
	if s := waitChan(t, got, "echo on the new pair"); s != "echo:hi" {
		t.Fatalf("echo %q", s)
	}
}
