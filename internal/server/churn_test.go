package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/config"
)

// Many short connections opened and closed concurrently: every join is answered, and every
// socket is released (file descriptor numbers are reused under churn).
func TestConnectionChurn(t *testing.T) {
	// Dropped connections would keep their places for resumption and fill the rooms.
	ts := startServer(t, func(c *config.Config) {
		c.ResumeGrace = 0
		c.JoinsPerClient, c.JoinBurstPerClient = 1e6, 1e6 // one address plays every client
	})
	const workers, perWorker = 16, 60
	errc := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			for i := 0; i < perWorker; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), waitFor)
				c, _, err := websocket.Dial(ctx, ts.ws, nil)
				if err != nil {
					cancel()
					errc <- err
					return
				}
				room := fmt.Sprintf("churn-%d", i%3)
				err = c.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"`+room+`"}`))
				for err == nil {
					var b []byte
					_, b, err = c.Read(ctx)
					if strings.Contains(string(b), `"welcome"`) {
						break
					}
				}
				if i%2 == 0 && err == nil {
					// A clean closing handshake: the server must answer our close frame.
					err = c.Close(websocket.StatusNormalClosure, "")
				} else {
					c.CloseNow()
				}
				cancel()
				if err != nil {
					errc <- fmt.Errorf("join %d: %w", i, err)
					return
				}
			}
			errc <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(waitFor)
	for metricValue(t, ts, "switchboard_connections") != "0" || metricValue(t, ts, "switchboard_peers") != "0" {
		if time.Now().After(deadline) {
			t.Fatalf("connections %s, peers %s left after churn", metricValue(t, ts, "switchboard_connections"), metricValue(t, ts, "switchboard_peers"))
		}
		time.Sleep(20 * time.Millisecond) // polling a gauge with a deadline, not waiting for an event
	}
}
