package hub

// What a restore takes over from the node that held the presence: its retry ids, and a
// counter a client cannot forge. Run: go test -race -count=1 -run 'Restore' ./internal/hub/

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/resume"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// twoNodeBus is the memory bus as two nodes sharing one room would see it: TakeOver asks the
// member of the other node for its Handover, as natsbus does over NATS.
type twoNodeBus struct {
	*bus.Memory
	held *bus.Member
}

func (b *twoNodeBus) TakeOver(ctx context.Context, room string, peer protocol.PeerID, last uint64) (*bus.Handover, error) {
	if m := b.held; m != nil && m.Room == room && m.Info.ID == peer && m.Handover != nil {
		return m.Handover(last), nil
	}
	return nil, ctx.Err()
}

// twoNodes returns two hubs on one memory bus with the same resume secret.
func twoNodes(t *testing.T) (*Hub, *Hub, *twoNodeBus) {
	t.Helper()
	toks, err := resume.New(resume.Config{Secrets: [][]byte{resume.RandomSecret()}})
	if err != nil {
		t.Fatal(err)
	}
	b := &twoNodeBus{Memory: bus.NewMemory(nil)}
	h1, err := New(Config{Logger: quietLogger(), Resume: toks, Bus: b})
	if err != nil {
		t.Fatal(err)
	}
	h2, err := New(Config{Logger: quietLogger(), Resume: toks, Bus: b})
	if err != nil {
		t.Fatal(err)
	}
	return h1, h2, b
}

func countData(sink *syncSink, data string) int {
	n := 0
	for _, e := range sink.events() {
		if e.Type == protocol.TypeMessage && string(e.Data) == data {
			n++
		}
	}
	return n
}

// TestRestoreKeepsRetryIDs: a relay accepted on the node that held the presence, re-sent
// with retry after the client resumed on another node, is acked there without being relayed
// again; a retry the first node never saw is relayed.
func TestRestoreKeepsRetryIDs(t *testing.T) {
	h1, h2, b := twoNodes(t)
	sa, sinkA := reviewJoin(t, h1, `{"type":"join","room":"r"}`)
	sb, sinkB := reviewJoin(t, h1, `{"type":"join","room":"r"}`)
	send := func(s *Session, id int, data string, retry bool) {
		t.Helper()
		f := fmt.Sprintf(`{"type":"message","id":%d,"target":%q,"data":%q,"retry":%v}`, id, sb.Peer(), data, retry)
		if err := s.HandleFrame([]byte(f), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	send(sa, 5, "once", false)
	peer := sa.Peer()
	b.held = sa.cur()
	// The client lost its connection to h1 before the ack and comes back through h2.
	s2, sink2 := reviewJoin(t, h2, `{"type":"join","room":"r","resume":"`+lastToken(t, sinkA)+`"}`)
	if w := sink2.welcome(t); !w.Restored || w.Self != peer {
		t.Fatalf("not restored on the second node: %+v", w)
	}
	send(s2, 5, "once", true)
	send(s2, 6, "new", true)
	if n := countData(sinkB, `"once"`); n != 1 {
		t.Fatalf("a relay retried after a resume on another node reached its target %d times, want 1", n)
	}
	if n := countData(sinkB, `"new"`); n != 1 {
		t.Fatalf("a retry the first node never accepted reached its target %d times, want 1", n)
	}
	if n := h2.stats.RetriesDeduped.Load(); n != 1 {
		t.Fatalf("retries deduped on the second node = %d, want 1", n)
	}
}

// TestRestoreRefusesAbsurdLast: a restore's counter starts at the client's last when no node
// hands the presence over; a forged last near 2^64 would wrap it (the next event seq 0, which
// the client then takes for one it read). Such a restore is refused: the join is a new
// presence. A last past the handed-over counter is clamped to it.
func TestRestoreRefusesAbsurdLast(t *testing.T) {
	h1, h2, b := twoNodes(t)
	_, sinkA := reviewJoin(t, h1, `{"type":"join","room":"r"}`)
	sb, _ := reviewJoin(t, h1, `{"type":"join","room":"r"}`)
	tok := lastToken(t, sinkA)
	s, sink := reviewJoin(t, h2, `{"type":"join","room":"r","resume":"`+tok+`","last":18446744073709551615}`)
	w := sink.welcome(t)
	if w.Restored {
		f := fmt.Sprintf(`{"type":"message","target":%q,"data":1}`, s.Peer())
		_ = sb.HandleFrame([]byte(f), time.Now())
		var seq uint64
		for _, e := range sink.events() {
			if e.Type == protocol.TypeMessage {
				seq = e.Seq
			}
		}
		t.Fatalf("restored with last 2^64-1: welcome seq %d, the next event's seq %d", w.Seq, seq)
	}

	// A presence another node holds, no event sent to it: a last of 1000 is clamped to 0.
	sc, sinkC := reviewJoin(t, h1, `{"type":"join","room":"r"}`)
	b.held = sc.cur()
	_, sink = reviewJoin(t, h2, `{"type":"join","room":"r","resume":"`+lastToken(t, sinkC)+`","last":1000}`)
	if w := sink.welcome(t); !w.Restored || w.Seq != 0 {
		t.Fatalf("restore with a last past the counter: restored=%v seq=%d, want restored at 0", w.Restored, w.Seq)
	}
}

// TestRetryIDsBounded: a presence remembers at most maxRetryIDs relay ids, 8 bytes each
// whatever their length (ids of up to protocol.MaxIDLen bytes), and still knows the newest.
func TestRetryIDsBounded(t *testing.T) {
	var r retryIDs
	id := func(i int) []byte { return []byte(fmt.Sprintf(`"%061d"`, i)) } // 63 bytes
	for i := 0; i < 3*maxRetryIDs; i++ {
		r.add(id(i))
	}
	if n := len(r.list()); n != maxRetryIDs || cap(r.ids)*8 > 2*maxRetryIDs*8 {
		t.Fatalf("remembers %d ids in %d bytes", n, cap(r.ids)*8)
	}
	if !r.seen(id(3*maxRetryIDs-1)) || r.seen(id(0)) {
		t.Fatal("the newest id is forgotten, or the oldest remembered")
	}
	var again retryIDs
	again.load(r.list())
	if !again.seen(id(3*maxRetryIDs-1)) || again.seen(id(2*maxRetryIDs-1)) || len(again.list()) != maxRetryIDs {
		t.Fatal("loading a handover's ids did not keep the same window")
	}
}
