package bus

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/switchboard-rtc/switchboard/protocol"
)

type recSink struct {
	mu     sync.Mutex
	events []protocol.Event
}

func (s *recSink) Send(e *protocol.Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, *e)
	return true
}

func (s *recSink) types() []protocol.Type {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ts []protocol.Type
	for _, e := range s.events {
		ts = append(ts, e.Type)
	}
	return ts
}

func member(room string) (*Member, *recSink) {
	s := &recSink{}
	return &Member{Room: room, Info: protocol.PeerInfo{ID: protocol.NewPeerID()}, Sink: s}, s
}

func TestMemoryRoomCapUnderConcurrentJoins(t *testing.T) {
	b := NewMemory(nil)
	const tries, limit = 200, 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	joined, full := 0, 0
	for i := 0; i < tries; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, _ := member("r")
			err := b.Join(context.Background(), m, limit, func([]protocol.PeerInfo) {})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				joined++
			case errors.Is(err, ErrRoomFull):
				full++
			default:
				t.Errorf("join: %v", err)
			}
		}()
	}
	wg.Wait()
	if joined != limit || full != tries-limit {
		t.Fatalf("joined %d, refused %d; want %d and %d", joined, full, limit, tries-limit)
	}
	if got := b.stats.Peers.Load(); got != limit {
		t.Fatalf("peers gauge %d", got)
	}
}

// Under concurrent joins, every member sees each other member exactly once: either in its
// welcome or as a later peer-joined, and the welcome comes first.
func TestMemoryPresenceIsConsistent(t *testing.T) {
	b := NewMemory(nil)
	const n = 40
	members := make([]*Member, n)
	sinks := make([]*recSink, n)
	welcomed := make([]map[protocol.PeerID]bool, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		members[i], sinks[i] = member("r")
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := b.Join(context.Background(), members[i], 0, func(others []protocol.PeerInfo) {
				welcomed[i] = map[protocol.PeerID]bool{}
				for _, o := range others {
					welcomed[i][o.ID] = true
				}
				sinks[i].Send(&protocol.Event{Type: protocol.TypeWelcome})
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		seen := map[protocol.PeerID]int{}
		for id := range welcomed[i] {
			seen[id]++
		}
		for j, e := range sinks[i].events {
			if j == 0 && e.Type != protocol.TypeWelcome {
				t.Fatalf("member %d got %v before its welcome", i, e.Type)
			}
			if e.Type == protocol.TypePeerJoined {
				seen[e.Peer.ID]++
			}
		}
		if len(seen) != n-1 {
			t.Fatalf("member %d knows %d peers, want %d", i, len(seen), n-1)
		}
		for id, c := range seen {
			if c != 1 || id == members[i].Info.ID {
				t.Fatalf("member %d saw %s %d times", i, id, c)
			}
		}
	}
}

func TestMemoryRelayScopedToRoom(t *testing.T) {
	b := NewMemory(nil)
	a, _ := member("one")
	c, cs := member("one")
	other, os := member("two")
	for _, m := range []*Member{a, c, other} {
		if err := b.Join(context.Background(), m, 0, func([]protocol.PeerInfo) {}); err != nil {
			t.Fatal(err)
		}
	}
	e := &protocol.Event{Type: protocol.TypeOffer, From: a.Info.ID, Data: []byte(`1`)}
	if err := b.Relay(a, []byte(c.Info.ID), e); err != nil {
		t.Fatal(err)
	}
	if err := b.Relay(a, []byte(other.Info.ID), e); !errors.Is(err, ErrUnknownTarget) {
		t.Fatalf("cross-room relay: %v", err)
	}
	if err := b.Relay(a, []byte(a.Info.ID), e); !errors.Is(err, ErrUnknownTarget) {
		t.Fatalf("relay to self: %v", err)
	}
	if got := cs.types(); len(got) != 1 || got[0] != protocol.TypeOffer {
		t.Fatalf("target got %v", got)
	}
	if got := os.types(); len(got) != 0 {
		t.Fatalf("other room got %v", got)
	}
	b.Leave(c, "left")
	if err := b.Relay(a, []byte(c.Info.ID), e); !errors.Is(err, ErrUnknownTarget) {
		t.Fatalf("relay to a departed peer: %v", err)
	}
	b.Leave(a, "left")
	b.Leave(other, "left")
	if b.stats.Rooms.Load() != 0 || len(b.rooms) != 0 {
		t.Fatalf("empty rooms left behind: %d", len(b.rooms))
	}
	if err := b.Relay(a, []byte(c.Info.ID), e); !errors.Is(err, ErrNotMember) {
		t.Fatalf("relay after leave: %v", err)
	}
}
