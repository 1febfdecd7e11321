package hub

// Attack tests from the review of issue 11: races between kicks (identity takeover, the
// server API) and resumes, drops and relays. Run: go test -race -count=1 -run Review ./internal/hub/

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// syncSink is a concurrency-safe bus.Sink that keeps copies of what it is sent and records
// kicks and closes, as wsserver's conn would.
type syncSink struct {
	mu     sync.Mutex
	got    []protocol.Event
	kicked string
	closed string
}

func (r *syncSink) Send(e *protocol.Event) bool {
	c := *e
	c.Data = append([]byte(nil), e.Data...)
	r.mu.Lock()
	r.got = append(r.got, c)
	r.mu.Unlock()
	return true
}
func (r *syncSink) Kick(code int, reason string) { r.mu.Lock(); r.kicked = reason; r.mu.Unlock() }
func (r *syncSink) CloseConn(reason string)      { r.mu.Lock(); r.closed = reason; r.mu.Unlock() }

func (r *syncSink) events() []protocol.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]protocol.Event(nil), r.got...)
}

func (r *syncSink) welcome(t *testing.T) *protocol.Welcome {
	t.Helper()
	for _, e := range r.events() {
		if e.Type == protocol.TypeWelcome {
			return e.Welcome
		}
	}
	t.Fatalf("no welcome in %d events", len(r.events()))
	return nil
}

func reviewJoin(t *testing.T, h *Hub, frame string) (*Session, *syncSink) {
	t.Helper()
	sink := &syncSink{}
	s := h.Connect(sink, time.Now())
	if err := s.HandleFrame([]byte(frame), time.Now()); err != nil {
		t.Fatalf("join %s: %v", frame, err)
	}
	return s, sink
}

// TestReviewKickRacesRelay: the server API's Remove (or an identity takeover from another
// connection's goroutine) runs bus.Leave, which writes Member.room, while the removed peer's
// own goroutine is inside bus.Relay reading from.room without a lock. Before issue 11 only the
// member's own goroutine ever called Leave. Fails under -race (DATA RACE in Memory.Leave /
// Memory.Relay).
func TestReviewKickRacesRelay(t *testing.T) {
	for round := 0; round < 300; round++ {
		h, err := New(Config{RateLimit: 1e9, RateBurst: 1e9, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		sa, _ := reviewJoin(t, h, `{"type":"join","room":"r"}`)
		_, sinkB := reviewJoin(t, h, `{"type":"join","room":"r"}`)
		b := sinkB.welcome(t).Self
		a := sa.Peer()
		var wg sync.WaitGroup
		wg.Add(1)
		started := make(chan struct{})
		go func() {
			defer wg.Done()
			frame := []byte(`{"type":"message","target":"` + string(b) + `","data":1}`)
			deadline := time.Now().Add(2 * time.Second)
			for i := 0; time.Now().Before(deadline); i++ {
				if i == 10 {
					close(started)
				}
				_ = sa.HandleFrame(frame, time.Now())
				if i > 10 && sa.Peer() == "" {
					return
				}
			}
		}()
		<-started
		if err := h.Remove(context.Background(), "r", a); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestReviewRemovedPresenceResumes: a presence removed by the server API while its client is
// resuming it comes back as a zombie. take() has already pulled the parked entry out of
// h.parked but h.owners still points at the parked entry, so kick() finds no session to end,
// only calls bus.Leave; resume() then welcomes the client as "resumed" with the member that
// has left the room, records it as live, and keeps answering ice-servers with fresh TURN
// credentials for a peer that is not present. The interleaving is pinned with the
// ICEServersFor hook, which resume() calls between take() and live() — the same window an API
// request lands in under load.
func TestReviewRemovedPresenceResumes(t *testing.T) {
	var h *Hub
	var armed atomic.Bool
	var victim atomic.Value
	var minted atomic.Int32
	h, err := New(Config{Logger: quietLogger(), ICEServersFor: func(peer protocol.PeerID, now time.Time) []protocol.ICEServer {
		if peer != "" {
			minted.Add(1)
		}
		if armed.CompareAndSwap(true, false) {
			// The API's DELETE /rooms/r/peers/{peer} arrives now.
			if err := h.Remove(context.Background(), "r", victim.Load().(protocol.PeerID)); err != nil {
				t.Errorf("remove: %v", err)
			}
		}
		return []protocol.ICEServer{{URLs: []string{"turn:127.0.0.1:3478"}, Username: "u-" + string(peer), Credential: "c"}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	sa, sinkA := reviewJoin(t, h, `{"type":"join","room":"r"}`)
	_, sinkB := reviewJoin(t, h, `{"type":"join","room":"r"}`)
	wa := sinkA.welcome(t)
	victim.Store(wa.Self)
	sa.Drop("lost") // connection lost: parked under wa.Resume

	armed.Store(true)
	s2, sink2 := reviewJoin(t, h, `{"type":"join","room":"r","resume":"`+wa.Resume+`"}`)

	var peerLeftRemoved bool
	for _, e := range sinkB.events() {
		if e.Type == protocol.TypePeerLeft && e.Peer.ID == wa.Self && e.Reason == "removed" {
			peerLeftRemoved = true
		}
	}
	if !peerLeftRemoved {
		t.Fatalf("B never heard A removed; test did not pin the race")
	}
	w := sink2.welcome(t)
	if w.Resumed && s2.Peer() == wa.Self {
		before := minted.Load()
		_ = s2.HandleFrame([]byte(`{"type":"ice-servers","id":1}`), time.Now())
		t.Errorf("removed peer %s resumed (welcome resumed=%v, session holds it); ice-servers refresh minted %d more TURN credential(s) for it",
			wa.Self, w.Resumed, minted.Load()-before)
		for _, e := range sink2.events() {
			if e.Type == protocol.TypeError {
				t.Logf("resumed client got error %s", e.Err.Code)
			}
		}
	}
	if _, err := h.Peers(context.Background(), "r"); err == nil {
		ps, _ := h.Peers(context.Background(), "r")
		for _, p := range ps {
			if p.Info.ID == wa.Self {
				t.Fatalf("removed peer still listed")
			}
		}
	}
	// And the zombie is the live owner of a member no bus knows.
	h.mu.Lock()
	n := len(h.owners)
	h.mu.Unlock()
	t.Logf("h.owners holds %d entries; the room has 1 member (B): the zombie is owned by the new session", n)
}

// TestReviewRemovedWhileOldConnOpenResumes: same as above, but the old connection still
// looks open (client noticed the loss first): take() detaches the session's member, so kick()
// sees o.s with s.member != m and sends nothing, and resume() revives the removed member.
func TestReviewRemovedWhileOldConnOpenResumes(t *testing.T) {
	var h *Hub
	var armed atomic.Bool
	var victim atomic.Value
	h, err := New(Config{Logger: quietLogger(), ICEServersFor: func(peer protocol.PeerID, now time.Time) []protocol.ICEServer {
		if armed.CompareAndSwap(true, false) {
			if err := h.Remove(context.Background(), "r", victim.Load().(protocol.PeerID)); err != nil {
				t.Errorf("remove: %v", err)
			}
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, sinkA := reviewJoin(t, h, `{"type":"join","room":"r"}`)
	reviewJoin(t, h, `{"type":"join","room":"r"}`)
	wa := sinkA.welcome(t)
	victim.Store(wa.Self)
	armed.Store(true)
	s2, sink2 := reviewJoin(t, h, `{"type":"join","room":"r","resume":"`+wa.Resume+`"}`)
	if w := sink2.welcome(t); w.Resumed && s2.Peer() == wa.Self {
		var removedSent bool
		for _, e := range append(sinkA.events(), sink2.events()...) {
			if e.Type == protocol.TypeError && e.Err.Code == protocol.CodeRemoved {
				removedSent = true
			}
		}
		t.Errorf("removed peer resumed on a new connection (error 'removed' sent to anyone: %v)", removedSent)
	}
}

// TestReviewOwnersDoNotLeak: join/leave, join/drop/expire, join/kick, takeover cycles leave
// h.owners, h.holders and h.parked empty.
func TestReviewOwnersDoNotLeak(t *testing.T) {
	h, err := New(Config{Logger: quietLogger(), ResumeGrace: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		s, _ := reviewJoin(t, h, `{"type":"join","room":"r"}`)
		s.Leave("left")
		s, _ = reviewJoin(t, h, `{"type":"join","room":"r"}`)
		s.Drop("lost")
		s, _ = reviewJoin(t, h, `{"type":"join","room":"r"}`)
		_ = h.Remove(context.Background(), "r", s.Peer())
		s.Leave("closed")
	}
	time.Sleep(100 * time.Millisecond)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.owners)+len(h.holders)+len(h.parked) != 0 {
		t.Fatalf("leak: owners %d holders %d parked %d", len(h.owners), len(h.holders), len(h.parked))
	}
}

// TestReviewTakeoverWhileParked: user alice's tab lost its connection (parked); she opens a
// new tab (same sub): takeover kicks the parked presence; the old tab's resume token must be
// dead.
func TestReviewTakeoverWhileParked(t *testing.T) {
	h := authHub(t)
	tok := reviewToken(t, "alice", "r")
	sa, sinkA := reviewJoin(t, h, `{"type":"join","token":"`+tok+`"}`)
	wa := sinkA.welcome(t)
	sa.Drop("lost")
	_, sinkN := reviewJoin(t, h, `{"type":"join","token":"`+tok+`"}`)
	wn := sinkN.welcome(t)
	s3, sink3 := reviewJoin(t, h, `{"type":"join","resume":"`+wa.Resume+`","token":"`+tok+`"}`)
	if w := sink3.welcome(t); w.Resumed {
		t.Fatalf("the replaced presence resumed")
	}
	_ = s3
	_ = wn
	ps, _ := h.Peers(context.Background(), "r")
	if len(ps) != 1 {
		t.Fatalf("room has %d peers, want 1 (alice once)", len(ps))
	}
}

func reviewToken(t *testing.T, sub, room string) string {
	t.Helper()
	// turn: the welcome's ICE servers then go through ICEServersFor, the hook the race tests
	// use to act in the middle of a join or a resume.
	c := map[string]any{"sub": sub, "room": room, "join": true, "turn": true, "exp": time.Now().Add(time.Hour).Unix()}
	tok, err := mintMap(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

var _ bus.Sink = (*syncSink)(nil)

func mintMap(c map[string]any) (string, error) {
	tk := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(c))
	tk.Header["kid"] = testKey.ID
	return tk.SignedString(testKey.Secret)
}

// TestReviewKickRacesDrop: the server API removes a peer at the moment its connection is lost.
// kick() releases h.mu before it looks at the session; a Drop in between parks the presence,
// so kick() finds s.member != m, does nothing to the parked entry and only calls bus.Leave.
// The parked entry then survives the removal: it is resumable with the old resume token for
// the grace period (a zombie presence, TURN refreshes included). Statistical: bounded rounds.
func TestReviewKickRacesDrop(t *testing.T) {
	hits := 0
	rounds := 20000
	for i := 0; i < rounds; i++ {
		h, err := New(Config{Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		sa, _ := reviewJoin(t, h, `{"type":"join","room":"r"}`)
		a := sa.Peer()
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Add(2)
		go func() { defer wg.Done(); <-start; _ = h.Remove(context.Background(), "r", a) }()
		go func() { defer wg.Done(); <-start; sa.Drop("lost") }()
		close(start)
		wg.Wait()
		h.mu.Lock()
		n := len(h.parked)
		h.mu.Unlock()
		if n > 0 {
			hits++
		}
		h.Drain()
	}
	if hits > 0 {
		t.Errorf("%d of %d rounds left a removed presence parked (resumable)", hits, rounds)
	}
}

// TestReviewSimultaneousSameIdentity: many connections of one identity join at once: exactly
// one presence remains, every other got "replaced", and the hub's maps hold only it.
func TestReviewSimultaneousSameIdentity(t *testing.T) {
	h := authHub(t)
	tok := reviewToken(t, "alice", "r")
	const n = 16
	var wg sync.WaitGroup
	sinks := make([]*syncSink, n)
	sess := make([]*Session, n)
	for i := range n {
		sinks[i] = &syncSink{}
		sess[i] = h.Connect(sinks[i], time.Now())
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = sess[i].HandleFrame([]byte(`{"type":"join","token":"`+tok+`"}`), time.Now())
		}()
	}
	wg.Wait()
	ps, err := h.Peers(context.Background(), "r")
	if err != nil || len(ps) != 1 {
		t.Fatalf("room has %d peers (%v), want 1", len(ps), err)
	}
	live, replaced := 0, 0
	for i := range n {
		if sess[i].Peer() != "" {
			live++
		}
		for _, e := range sinks[i].events() {
			if e.Type == protocol.TypeError && e.Err.Code == protocol.CodeReplaced {
				replaced++
			}
		}
	}
	h.mu.Lock()
	owners, holders := len(h.owners), len(h.holders)
	h.mu.Unlock()
	if live != 1 || replaced != n-1 || owners != 1 || holders != 1 {
		t.Fatalf("live sessions %d, replaced %d, owners %d, holders %d; want 1, %d, 1, 1", live, replaced, owners, holders, n-1)
	}
}

// TestReviewTakeoverFullRoom: a full room admits the same identity again (takeover) but not
// a newcomer.
func TestReviewTakeoverFullRoom(t *testing.T) {
	v := authHub(t)
	h, err := New(Config{Logger: quietLogger(), MaxPeersPerRoom: 2, Authorize: v.cfg.Authorize})
	if err != nil {
		t.Fatal(err)
	}
	reviewJoin(t, h, `{"type":"join","token":"`+reviewToken(t, "alice", "r")+`"}`)
	reviewJoin(t, h, `{"type":"join","token":"`+reviewToken(t, "bob", "r")+`"}`)
	_, again := reviewJoin(t, h, `{"type":"join","token":"`+reviewToken(t, "alice", "r")+`"}`)
	again.welcome(t)
	sc := &syncSink{}
	s := h.Connect(sc, time.Now())
	_ = s.HandleFrame([]byte(`{"type":"join","token":"`+reviewToken(t, "carol", "r")+`"}`), time.Now())
	if s.Peer() != "" {
		t.Fatalf("carol joined a full room")
	}
}

// TestReviewTakeoverDuringResume: alice's phone lost its connection and is resuming while her
// laptop joins with the same identity. The takeover's kick lands between take() and live() of
// the resume (pinned with the ICEServersFor hook): the phone is welcomed "resumed" into a
// presence that has left the room — it thinks it is in the call, nobody sees it, its relays
// fail, and it never hears "replaced".
func TestReviewTakeoverDuringResume(t *testing.T) {
	az := authHub(t).cfg.Authorize
	tok := reviewToken(t, "alice", "r")
	var h *Hub
	var armed atomic.Bool
	h, err := New(Config{Authorize: az, Logger: quietLogger(), ICEServersFor: func(peer protocol.PeerID, now time.Time) []protocol.ICEServer {
		if armed.CompareAndSwap(true, false) {
			reviewJoin(t, h, `{"type":"join","token":"`+tok+`"}`) // the laptop
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	phone, sinkP := reviewJoin(t, h, `{"type":"join","token":"`+tok+`"}`)
	wp := sinkP.welcome(t)
	phone.Drop("lost")
	armed.Store(true)
	s2, sink2 := reviewJoin(t, h, `{"type":"join","resume":"`+wp.Resume+`"}`)
	w := sink2.welcome(t)
	var replaced bool
	for _, e := range sink2.events() {
		if e.Type == protocol.TypeError && e.Err.Code == protocol.CodeReplaced {
			replaced = true
		}
	}
	ps, _ := h.Peers(context.Background(), "r")
	if w.Resumed && s2.Peer() == wp.Self && !replaced {
		t.Errorf("phone resumed presence %s that the laptop replaced (room lists %d peer(s), none of them it); it never hears 'replaced'", wp.Self, len(ps))
	}
}
