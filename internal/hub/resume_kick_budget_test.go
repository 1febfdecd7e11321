package hub

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/membudget"
)

// TestKickedParkedPresenceGivesHeldBack: a parked presence that the server ends (the API's
// remove, an identity takeover) gives back what it held to the memory budget, as one that
// expires or is resumed does.
func TestKickedParkedPresenceGivesHeldBack(t *testing.T) {
	b := membudget.New(64 << 20)
	h, err := New(Config{Logger: quietLogger(), Budget: b, ResumeGrace: time.Hour, RateLimit: 1e9, RateBurst: 1e9})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Drain()
	for _, kick := range []string{"remove", "close-room"} {
		t.Run(kick, func(t *testing.T) {
			sa, sinkA := reviewJoin(t, h, `{"type":"join","room":"r-`+kick+`"}`)
			sb, _ := reviewJoin(t, h, `{"type":"join","room":"r-`+kick+`"}`)
			a := sinkA.welcome(t).Self
			sa.Drop("lost") // parked: what B sends it is held
			for range 10 {
				if err := sb.HandleFrame([]byte(`{"type":"message","target":"`+string(a)+`","data":"0123456789"}`), time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			if b.Used() == 0 {
				t.Fatal("held events not charged")
			}
			switch kick {
			case "remove":
				err = h.Remove(context.Background(), "r-"+kick, a)
			case "close-room":
				_, err = h.CloseRoom(context.Background(), "r-"+kick)
			}
			if err != nil {
				t.Fatal(err)
			}
			sb.Leave("left")
			if b.Used() != 0 {
				t.Errorf("the parked presence is gone but the budget still holds %d bytes for it", b.Used())
			}
		})
	}
}

// TestNothingHeldAfterForget: between a parked presence giving up its hold (expiry, a kick)
// and its leaving the room, events still reach its sink: they are refused, not held and
// charged to an account already released.
func TestNothingHeldAfterForget(t *testing.T) {
	b := membudget.New(1 << 20)
	r := newTestOutbox(b, 100, 64<<10)
	r.park(func() {})
	r.Send(msg("held"))
	r.forget()
	if r.Send(msg("after")) {
		t.Error("an event was held after the hold was given up")
	}
	if b.Used() != 0 {
		t.Errorf("the budget holds %d bytes after the hold was given up", b.Used())
	}
}
