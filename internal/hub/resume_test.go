package hub

import (
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// recorder is a bus.Sink that keeps what it is sent.
type recorder struct{ got []*protocol.Event }

func (r *recorder) Send(e *protocol.Event) bool {
	c := *e
	r.got = append(r.got, &c)
	return true
}

func msg(data string) *protocol.Event {
	return &protocol.Event{Type: protocol.TypeMessage, From: "a", Data: []byte(data)}
}

func TestResumeSinkHolds(t *testing.T) {
	tests := []struct {
		name      string
		maxEvents int
		maxBytes  int
		send      []string
		wantOver  bool // the hold overflowed
	}{
		{"empty", 4, 1 << 10, nil, false},
		{"within both bounds", 10, 1 << 10, []string{"1", "2", "3"}, false},
		{"exactly the event bound (with the one sent after)", 4, 1 << 10, []string{"1", "2", "3"}, false},
		{"one event too many", 3, 1 << 10, []string{"1", "2", "3", "4"}, true},
		{"bytes overflow", 100, 300, []string{strings.Repeat("x", 110), strings.Repeat("y", 90), "z"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			live := &recorder{}
			r := &resumeSink{cur: live, maxEvents: tt.maxEvents, maxBytes: tt.maxBytes}
			overs := 0
			r.park(func() { overs++ })
			for _, d := range tt.send {
				buf := []byte(d)
				r.Send(&protocol.Event{Type: protocol.TypeMessage, From: "a", Data: buf})
				for i := range buf {
					buf[i] = '!' // the sender's buffer is reused after Send
				}
			}
			if got := r.overflowed(); got != tt.wantOver || overs != map[bool]int{false: 0, true: 1}[tt.wantOver] {
				t.Fatalf("overflowed %v (callback %d times), want %v", got, overs, tt.wantOver)
			}
			if r.Send(msg("after")) == tt.wantOver {
				t.Fatalf("Send after %d events reported %v", len(tt.send), !tt.wantOver)
			}
			next := &recorder{}
			welcome := &protocol.Event{Type: protocol.TypeWelcome}
			welcome.Welcome = &protocol.Welcome{}
			if ok := r.attach(next, welcome, 0, 0); ok == tt.wantOver {
				t.Fatalf("attach = %v with overflow %v", ok, tt.wantOver)
			}
			if tt.wantOver {
				if len(next.got) != 0 || len(live.got) != 0 {
					t.Fatalf("delivered %d and %d events after an overflow", len(next.got), len(live.got))
				}
				return
			}
			want := append(append([]string{}, tt.send...), "after")
			if len(next.got) != len(want)+1 || next.got[0].Type != protocol.TypeWelcome {
				t.Fatalf("attach delivered %d events, want the welcome and %d", len(next.got), len(want))
			}
			for i, d := range want {
				if got := string(next.got[i+1].Data); got != d || next.got[i+1].Seq != uint64(i+1) {
					t.Fatalf("held event %d = %q seq %d, want %q seq %d (in order, copied from the sender's buffer)", i, got, next.got[i+1].Seq, d, i+1)
				}
			}
			if len(live.got) != 0 {
				t.Fatalf("the lost connection got %d events while parked", len(live.got))
			}
			r.Send(msg("live"))
			if last := next.got[len(next.got)-1]; string(last.Data) != "live" {
				t.Fatalf("after attach events go to the new connection; last is %q", last.Data)
			}
		})
	}
}
