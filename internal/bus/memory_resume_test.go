package bus

import (
	"context"
	"slices"
	"testing"

	"github.com/switchboard-rtc/switchboard/protocol"
)

func joinOK(t *testing.T, b *Memory, m *Member) []protocol.PeerInfo {
	t.Helper()
	var others []protocol.PeerInfo
	if err := b.Join(context.Background(), m, 0, func(o []protocol.PeerInfo) { others = o }); err != nil {
		t.Fatalf("join: %v", err)
	}
	return others
}

// A resumed presence whose id is still in the room takes its place: nobody hears a
// peer-joined, the join order is kept, and relays reach the new member.
func TestMemoryResumedJoinReplacesInPlace(t *testing.T) {
	b := NewMemory(nil)
	a, as := member("r")
	old, _ := member("r")
	c, cs := member("r")
	joinOK(t, b, a)
	joinOK(t, b, old)
	joinOK(t, b, c)
	before := len(as.types())

	nsink := &recSink{}
	n := &Member{Room: "r", Info: old.Info, Sink: nsink, Resumed: true}
	others := joinOK(t, b, n)
	if len(others) != 2 || others[0].ID != a.Info.ID || others[1].ID != c.Info.ID {
		t.Fatalf("welcome lists %v, want a and c", others)
	}
	if got := as.types(); len(got) != before {
		t.Fatalf("a heard %v after the resumed join", got[before:])
	}
	if err := b.Relay(a, []byte(n.Info.ID), &protocol.Event{Type: protocol.TypeMessage, From: a.Info.ID, Data: []byte(`1`)}); err != nil {
		t.Fatalf("relay to the resumed member: %v", err)
	}
	if got := nsink.types(); !slices.Equal(got, []protocol.Type{protocol.TypeMessage}) {
		t.Fatalf("resumed member got %v", got)
	}
	peers, err := b.Peers(context.Background(), "r")
	if err != nil || len(peers) != 3 || peers[1].Info.ID != old.Info.ID {
		t.Fatalf("peers %v %v: want the resumed member second", peers, err)
	}
	// The old member is out of the room: its leave changes nothing.
	nc := len(cs.types())
	b.Leave(old, "closed")
	if got := cs.types(); len(got) != nc {
		t.Fatalf("c heard %v after the replaced member's leave", got[nc:])
	}
	if peers, _ := b.Peers(context.Background(), "r"); len(peers) != 3 {
		t.Fatalf("the old member's leave removed the resumed one: %d peers", len(peers))
	}
}

// A resumed presence whose id is not in the room is announced with peer-joined marked resumed.
func TestMemoryResumedJoinAnnouncedResumed(t *testing.T) {
	b := NewMemory(nil)
	a, as := member("r")
	joinOK(t, b, a)
	n := &Member{Room: "r", Info: protocol.PeerInfo{ID: protocol.NewPeerID()}, Sink: &recSink{}, Resumed: true}
	joinOK(t, b, n)
	as.mu.Lock()
	defer as.mu.Unlock()
	if len(as.events) != 1 || as.events[0].Type != protocol.TypePeerJoined || !as.events[0].Resumed {
		t.Fatalf("a heard %+v, want one peer-joined marked resumed", as.events)
	}
}

// A restart leave tells nobody.
func TestMemoryRestartLeaveIsSilent(t *testing.T) {
	b := NewMemory(nil)
	a, as := member("r")
	c, _ := member("r")
	joinOK(t, b, a)
	joinOK(t, b, c)
	n := len(as.types())
	b.Leave(c, ReasonRestart)
	if got := as.types(); len(got) != n {
		t.Fatalf("a heard %v after a restart leave", got[n:])
	}
	if peers, _ := b.Peers(context.Background(), "r"); len(peers) != 1 {
		t.Fatalf("%d peers after the restart leave, want 1", len(peers))
	}
	if h, err := b.TakeOver(context.Background(), "r", c.Info.ID, 0); h != nil || err != nil {
		t.Fatalf("TakeOver on one node = %v, %v; want nil, nil", h, err)
	}
}

// A resumed presence marked Lost that takes its id's place is announced to the others with a
// peer-joined marked resumed (what they sent it lately may be gone).
func TestMemoryLostResumedJoinAnnounced(t *testing.T) {
	b := NewMemory(nil)
	a, as := member("r")
	old, _ := member("r")
	joinOK(t, b, a)
	joinOK(t, b, old)
	before := len(as.types())
	n := &Member{Room: "r", Info: old.Info, Sink: &recSink{}, Resumed: true, Lost: true}
	joinOK(t, b, n)
	if got := as.types(); !slices.Equal(got[before:], []protocol.Type{protocol.TypePeerJoined}) {
		t.Fatalf("a heard %v after the lost resumed join, want one peer-joined", got[before:])
	}
	if peers, _ := b.Peers(context.Background(), "r"); len(peers) != 2 {
		t.Fatalf("%d peers, want 2", len(peers))
	}
}
