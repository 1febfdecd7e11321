package webhook_test

import (
	"net/http"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/webhook"
)

// BenchmarkRoomEvent measures what the bus pays per event, under its lock: with a receiver that
// never answers (a full queue: every event pushes the oldest out) and with one that answers at
// once (the delivery goroutine takes the queue's lock too).
func BenchmarkRoomEvent(b *testing.B) {
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request, n int)
	}{
		{"stuck-receiver", func(w http.ResponseWriter, r *http.Request, n int) { <-r.Context().Done() }},
		{"fast-receiver", nil},
	} {
		b.Run(tc.name, func(b *testing.B) {
			rc := newReceiver(b, tc.answer)
			s, _ := newSender(b, func(c *webhook.Config) { c.Queue = 1000 }, rc.srv.URL)
			e := joined("r", "p")
			for range 1000 {
				s.RoomEvent(e)
			}
			b.ReportAllocs()
			for b.Loop() {
				s.RoomEvent(e)
			}
		})
	}
}
