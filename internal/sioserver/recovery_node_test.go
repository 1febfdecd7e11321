package sioserver_test

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/sioserver"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
)

// Connection state recovery with the official socket.io-client: its connection cut by a TCP
// proxy (testserver.Cutter, no goodbye either way), it comes back through it.

type recoverResult struct {
	Reason, ID, First, PID, FirstPID, Transport string
	Recovered                                   bool
	Got                                         []int
}

// runRecover runs the recover scenario against a server at url, client a through a cutter,
// and cuts a's connection when a says it is ready.
func runRecover(t *testing.T, url string, spec map[string]any) recoverResult {
	t.Helper()
	cut := testserver.NewCutter(t, strings.TrimPrefix(url, "http://"))
	spec["via"] = "http://" + cut.Addr() + "/"
	b, _ := json.Marshal(spec)
	// Cut until the client sees it: a long-polling client between two requests has no
	// connection to cut (its next request opens a new one).
	var cuts atomic.Int64
	stop, done := make(chan struct{}), make(chan struct{})
	cutting := false
	stopCutting := func() {
		if cutting {
			cutting = false
			close(stop)
			<-done
		}
	}
	defer stopCutting()
	lines := sioserver.NodeScenarioSpec(t, url, "recover", string(b), func(line []byte, _ io.Writer) {
		var m struct {
			ID, Reason string
			Away       *string
		}
		_ = json.Unmarshal(line, &m)
		switch {
		case m.Away != nil:
			stopCutting()
		case m.ID != "" && m.Reason == "" && !cutting && cuts.Load() == 0:
			cutting = true
			go func() {
				defer close(done)
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for {
					cuts.Add(int64(cut.Cut()))
					select {
					case <-stop:
						return
					case <-tick.C:
					}
				}
			}()
		}
	})
	stopCutting()
	if cuts.Load() == 0 {
		t.Fatal("no connection was cut")
	}
	var r recoverResult
	if err := json.Unmarshal(lines[len(lines)-1], &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestNodeClientRecovers: cut, the client comes back with socket.recovered, the same id and
// pid, and every message once and in order — those sent before, while away and after —
// over polling, WebSocket and polling upgraded, in the lobby and in a room.
func TestNodeClientRecovers(t *testing.T) {
	url := testserver.Start(t, nil)
	for _, tr := range []struct {
		name       string
		transports []string
	}{{"polling", []string{"polling"}}, {"websocket", []string{"websocket"}}, {"upgrade", nil}} {
		for _, room := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/room=%v", tr.name, room), func(t *testing.T) {
				r := runRecover(t, url, map[string]any{"transports": tr.transports, "room": room, "away": 20, "expect": "recovered"})
				want := make([]int, 30)
				for i := range want {
					want[i] = i
				}
				if !r.Recovered || r.ID != r.First || r.PID != r.FirstPID || !slices.Equal(r.Got, want) {
					t.Fatalf("recovered %v, id %s (first %s), pid %s (first %s), got %v; want recovered, same id and pid, 0..29 once in order",
						r.Recovered, r.ID, r.First, r.PID, r.FirstPID, r.Got)
				}
				// A cut WebSocket closes; a cut long-poll fails.
				if r.Reason != "transport close" && r.Reason != "transport error" {
					t.Errorf("disconnect reason %q, want transport close or error", r.Reason)
				}
			})
		}
	}
}

// TestNodeClientNotRecoveredAfterGrace: a client that comes back after the grace finds its
// socket gone (it left its room): not recovered, a new id, nothing of the old socket's.
func TestNodeClientNotRecoveredAfterGrace(t *testing.T) {
	url := testserver.Start(t, func(c *config.Config) { c.ResumeGrace = 300 * time.Millisecond })
	for _, room := range []bool{false, true} {
		t.Run(fmt.Sprintf("room=%v", room), func(t *testing.T) {
			r := runRecover(t, url, map[string]any{"transports": []string{"websocket"}, "room": room, "away": 0, "expect": "new", "delay": 1200})
			if r.Recovered || r.ID == r.First || len(r.Got) != 5 {
				t.Fatalf("recovered %v, id %s (first %s), got %v; want a new socket, not recovered, the first 5 only", r.Recovered, r.ID, r.First, r.Got)
			}
		})
	}
}
