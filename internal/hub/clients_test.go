package hub

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// clientJoin joins room on a new session of client (none when invalid) and returns the
// session and what it was sent.
func clientJoin(t *testing.T, h *Hub, client netip.Prefix, frame string) (*Session, *syncSink) {
	t.Helper()
	sink := &syncSink{}
	s := h.Connect(sink, time.Now())
	s.SetClient(client)
	if err := s.HandleFrame([]byte(frame), time.Now()); err != nil {
		t.Fatalf("join %s: %v", frame, err)
	}
	return s, sink
}

func lastEvent(t *testing.T, sink *syncSink) protocol.Event {
	t.Helper()
	ev := sink.events()
	if len(ev) == 0 {
		t.Fatal("nothing sent")
	}
	return ev[len(ev)-1]
}

// TestJoinsPerClient: a client's new joins past its burst get rate-limited (under the join's
// id, the session kept: it joins once its client has tokens again); resumes are free; another
// client and a session with no client are not affected.
func TestJoinsPerClient(t *testing.T) {
	h, err := New(Config{Logger: quietLogger(), Clients: ClientLimits{JoinRate: 0.001, JoinBurst: 3}})
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParsePrefix("192.0.2.1/32")
	var first *Session
	var firstWelcome *protocol.Welcome
	for i := range 3 {
		s, sink := clientJoin(t, h, a, `{"type":"join","room":"r"}`)
		if i == 0 {
			first, firstWelcome = s, sink.welcome(t)
		}
		sink.welcome(t)
	}
	s, sink := clientJoin(t, h, a, `{"type":"join","room":"r","id":"j4"}`)
	e := lastEvent(t, sink)
	if e.Type != protocol.TypeError || e.Err.Code != protocol.CodeRateLimited || string(e.ID) != `"j4"` || s.Peer() != "" {
		t.Fatalf("fourth join: %+v (peer %q), want rate-limited under id j4", e, s.Peer())
	}
	if got := h.Stats().PerClient.JoinsRefused.Load(); got != 1 {
		t.Errorf("JoinsRefused = %d, want 1", got)
	}
	// The connection was lost: resuming it is not a new presence.
	first.Drop("lost")
	_, rsink := clientJoin(t, h, a, `{"type":"join","room":"r","resume":"`+firstWelcome.Resume+`"}`)
	if w := rsink.welcome(t); !w.Resumed {
		t.Fatal("resume refused or not resumed")
	}
	// Another client, and a session whose transport named none.
	_, bsink := clientJoin(t, h, netip.MustParsePrefix("2001:db8::/64"), `{"type":"join","room":"r"}`)
	bsink.welcome(t)
	for range 5 {
		_, nsink := clientJoin(t, h, netip.Prefix{}, `{"type":"join","room":"r"}`)
		nsink.welcome(t)
	}
	if got := h.Stats().PerClient.JoinClients.Load(); got != 2 {
		t.Errorf("JoinClients = %d, want 2", got)
	}
}

// TestJoinsPerClientOff: a negative rate turns the limit off.
func TestJoinsPerClientOff(t *testing.T) {
	h, err := New(Config{Logger: quietLogger(), Clients: ClientLimits{JoinRate: -1}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		_, sink := clientJoin(t, h, netip.MustParsePrefix("192.0.2.1/32"), fmt.Sprintf(`{"type":"join","room":"r%d"}`, i))
		sink.welcome(t)
	}
}

// TestTURNCredentialsPerClient: past its share a client's welcomes, resumed welcomes and
// ice-servers answers carry the STUN servers only, counted; another client still gets
// credentials.
func TestTURNCredentialsPerClient(t *testing.T) {
	minted := 0
	h, err := New(Config{
		Logger:     quietLogger(),
		ICEServers: []protocol.ICEServer{{URLs: []string{"stun:stun.test:3478"}}},
		ICEServersFor: func(peer protocol.PeerID, now time.Time) []protocol.ICEServer {
			if peer != "" {
				minted++
			}
			return []protocol.ICEServer{{URLs: []string{"turn:turn.test:3478"}, Username: "u-" + string(peer), Credential: "c"}}
		},
		Clients: ClientLimits{TURNPerMinute: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	hasTURN := func(b []byte) bool { return strings.Contains(string(b), "turn:turn.test") }
	a := netip.MustParsePrefix("192.0.2.1/32")
	s1, sink1 := clientJoin(t, h, a, `{"type":"join","room":"r"}`)
	if !hasTURN(sink1.welcome(t).ICEServers) {
		t.Fatal("first welcome has no TURN")
	}
	if err := s1.HandleFrame([]byte(`{"type":"ice-servers","id":1}`), time.Now()); err != nil {
		t.Fatal(err)
	}
	if e := lastEvent(t, sink1); e.Type != protocol.TypeICEServers || !hasTURN(e.ICEServers) {
		t.Fatalf("refresh within the share: %+v", e)
	}
	if err := s1.HandleFrame([]byte(`{"type":"ice-servers","id":2}`), time.Now()); err != nil {
		t.Fatal(err)
	}
	if e := lastEvent(t, sink1); e.Type != protocol.TypeICEServers || hasTURN(e.ICEServers) || !strings.Contains(string(e.ICEServers), "stun:stun.test") {
		t.Fatalf("refresh past the share: %s, want STUN only", e.ICEServers)
	}
	w1 := sink1.welcome(t)
	s1.Drop("lost")
	_, rsink := clientJoin(t, h, a, `{"type":"join","room":"r","resume":"`+w1.Resume+`"}`)
	if w := rsink.welcome(t); !w.Resumed || hasTURN(w.ICEServers) {
		t.Fatalf("resumed welcome past the share: resumed %v, %s", w.Resumed, w.ICEServers)
	}
	_, bsink := clientJoin(t, h, netip.MustParsePrefix("192.0.2.2/32"), `{"type":"join","room":"r"}`)
	if !hasTURN(bsink.welcome(t).ICEServers) {
		t.Fatal("another client got no TURN")
	}
	if got := h.Stats().PerClient.TURNCredentialsRefused.Load(); got != 2 {
		t.Errorf("TURNCredentialsRefused = %d, want 2", got)
	}
	if minted != 3 {
		t.Errorf("%d credentials minted, want 3", minted)
	}
}

// TestIdentityTakeoverCountsAsJoin: a join that takes over its identity's presence is a new
// presence, charged like any other.
func TestIdentityTakeoverCountsAsJoin(t *testing.T) {
	h, err := New(Config{
		Logger:  quietLogger(),
		Clients: ClientLimits{JoinRate: 0.001, JoinBurst: 2},
		Authorize: func(token, room string, now time.Time) (Grant, *protocol.Error) {
			return Grant{Identity: "alice", Room: "r"}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParsePrefix("192.0.2.1/32")
	_, first := clientJoin(t, h, a, `{"type":"join","token":"x"}`)
	first.welcome(t)
	_, second := clientJoin(t, h, a, `{"type":"join","token":"x"}`)
	second.welcome(t)
	if first.kicked == "" {
		t.Fatal("the second join did not take over the first presence")
	}
	_, third := clientJoin(t, h, a, `{"type":"join","token":"x","id":3}`)
	if e := lastEvent(t, third); e.Type != protocol.TypeError || e.Err.Code != protocol.CodeRateLimited {
		t.Fatalf("third takeover: %+v, want rate-limited", e)
	}
	if third.kicked != "" || second.kicked != "" {
		t.Fatalf("a refused join ended a connection (%q, %q)", third.kicked, second.kicked)
	}
}
