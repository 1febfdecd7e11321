package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestSocketIOMounted: /socket.io/ answers an Engine.IO handshake with the configured ping
// figures, and its sessions show in /metrics.
func TestSocketIOMounted(t *testing.T) {
	ts := startServer(t, nil)
	get := func(path string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", ts.base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	open := get("/socket.io/?EIO=4&transport=polling")
	if !strings.HasPrefix(open, `0{"sid":"`) || !strings.Contains(open, `"pingInterval":10000,"pingTimeout":20000,"maxPayload":65536`) {
		t.Fatalf("open packet %q", open)
	}
	if m := get("/metrics"); !strings.Contains(m, "switchboard_socketio_sessions 1") {
		t.Errorf("metrics lack switchboard_socketio_sessions 1")
	}
}
