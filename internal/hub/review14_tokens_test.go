package hub

// Attack tests from the review of issue 14: resume tokens that outlive the presence they name.
// Run: go test -race -count=1 -run Review14 ./internal/hub/

import (
	"context"
	"testing"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// lastToken returns the newest resume token sink was given: a welcome's or a refresh's.
func lastToken(t *testing.T, sink *syncSink) string {
	t.Helper()
	tok := ""
	for _, e := range sink.events() {
		switch {
		case e.Type == protocol.TypeWelcome && e.Welcome.Resume != "":
			tok = e.Welcome.Resume
		case e.Type == protocol.TypeResumeToken:
			tok = e.Resume
		}
	}
	if tok == "" {
		t.Fatalf("no resume token in %d events", len(sink.events()))
	}
	return tok
}

// refresh makes the hub send s's presence a fresh token now, as its half-TTL timer would.
func refresh(t *testing.T, s *Session) {
	t.Helper()
	s.mu.Lock()
	rs := s.rsink
	s.mu.Unlock()
	if rs == nil {
		t.Fatal("session has no resumable presence")
	}
	s.hub.refreshToken(rs)
}

// restoredAs reports whether a join with token re-created (or took back) peer.
func restoredAs(t *testing.T, h *Hub, token string, peer protocol.PeerID) bool {
	t.Helper()
	s, sink := reviewJoin(t, h, `{"type":"join","room":"r","resume":"`+token+`"}`)
	w := sink.welcome(t)
	ok := w.Resumed && w.Self == peer
	s.Leave("left")
	return ok
}

// TestReview14EvictedTokenRevivesRemovedPresence: a presence remembers at most maxJTIs of
// its tokens, to spend them when it ends, and every resume adds one while the token it was
// resumed with stays in the list though spent. A client holding a refreshed token plus the
// older one resumes three times with the newest: the older, still unspent, falls out of the
// list. The server removes the presence; the older token then re-creates it (restore), with
// its id, in the room it was removed from.
func TestReview14EvictedTokenRevivesRemovedPresence(t *testing.T) {
	h, err := New(Config{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	sa, sinkA := reviewJoin(t, h, `{"type":"join","room":"r"}`)
	reviewJoin(t, h, `{"type":"join","room":"r"}`) // someone to keep the room open
	peer := sa.Peer()
	kept := sinkA.welcome(t).Resume // the client keeps its first token aside
	refresh(t, sa)
	tok := lastToken(t, sinkA)
	if tok == kept {
		t.Fatal("the refresh sent no new token")
	}
	for i := 0; i < 3; i++ {
		s, sink := reviewJoin(t, h, `{"type":"join","room":"r","resume":"`+tok+`"}`)
		if w := sink.welcome(t); !w.Resumed || w.Self != peer {
			t.Fatalf("resume %d did not take the presence back: %+v", i, w)
		}
		sa, tok = s, lastToken(t, sink)
	}
	if err := h.Remove(context.Background(), "r", peer); err != nil {
		t.Fatal(err)
	}
	h.bg.Wait() // the removed presence's tokens are spent
	if restoredAs(t, h, kept, peer) {
		t.Fatalf("a token of presence %s, minted before it was removed, re-created it after the removal", peer)
	}
}

// TestReview14HandoverLeavesTokensUnspent: when a presence is handed over to another node
// (bus.Member.Handover, a resume there), the node it leaves forgets it without spending its
// other tokens (a refreshed one, the one before). Once the presence has left on its new node
// (which spends only the tokens it minted), an older token re-creates it.
func TestReview14HandoverLeavesTokensUnspent(t *testing.T) {
	h, err := New(Config{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	sa, sinkA := reviewJoin(t, h, `{"type":"join","room":"r"}`)
	reviewJoin(t, h, `{"type":"join","room":"r"}`)
	peer := sa.Peer()
	older := sinkA.welcome(t).Resume
	refresh(t, sa)
	m := sa.cur()
	// The client resumes on another node with its newest token; that node asks this one.
	if ho := m.Handover(0); ho == nil {
		t.Fatal("Handover returned nothing for a connected presence")
	}
	h.bg.Wait()
	if restoredAs(t, h, older, peer) {
		t.Fatalf("a token of presence %s from before its handover to another node still re-creates it here", peer)
	}
}
