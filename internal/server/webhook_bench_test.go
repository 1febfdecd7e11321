package server_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/config"
)

// BenchmarkWebhookJoin measures join latency (join frame to welcome) on three servers side by
// side, joins alternating between them: no webhooks, a receiver that answers after 100 ms, and
// one that never answers. Each iteration is one join and leave on each (4 events each). It
// reports p50 and p99 per server and the p99 overhead of each receiver (target ≤ +1 ms):
//
//	go test -run '^$' -bench WebhookJoin -benchtime 3000x ./internal/server/
func BenchmarkWebhookJoin(b *testing.B) {
	unblock := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(100 * time.Millisecond):
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	}))
	b.Cleanup(slow.Close)
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-unblock:
		}
	}))
	b.Cleanup(stuck.Close)
	b.Cleanup(func() { close(unblock) })
	_, noneURL := runServer(b, func(c *config.Config) { withWebhooks(c) })
	_, slowURL := runServer(b, func(c *config.Config) { withWebhooks(c, slow.URL) })
	_, stuckURL := runServer(b, func(c *config.Config) { withWebhooks(c, stuck.URL); c.WebhookTimeout = time.Minute })
	joiners := []*joiner{newJoiner(b, noneURL), newJoiner(b, slowURL), newJoiner(b, stuckURL)}
	names := []string{"none", "slow", "stuck"}
	for i := range 50 {
		for _, j := range joiners {
			j.joinLeave(fmt.Sprint("lat-warm-", i))
		}
	}
	lat := make([]latencies, len(joiners))
	for i := 0; b.Loop(); i++ {
		room := fmt.Sprint("lat-", i)
		for k := range joiners {
			k = (k + i) % len(joiners) // rotate who goes first
			lat[k] = append(lat[k], joiners[k].joinLeave(room))
		}
	}
	b.StopTimer()
	for k, name := range names {
		b.ReportMetric(float64(lat[k].pct(0.5).Microseconds()), "p50-"+name+"-µs")
		b.ReportMetric(float64(lat[k].pct(0.99).Microseconds()), "p99-"+name+"-µs")
		if k > 0 {
			b.ReportMetric(float64((lat[k].pct(0.99) - lat[0].pct(0.99)).Microseconds()), "p99-"+name+"-overhead-µs")
		}
		b.Logf("%-5s %v", name, lat[k])
	}
}
