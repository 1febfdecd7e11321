package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"
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

// sioConn is a bare Socket.IO client over WebSocket: connected to the main namespace, it
// reads packets as strings and answers pings.
type sioConn struct {
	t  *testing.T
	c  *websocket.Conn
	id string
}

func dialSocketIO(t *testing.T, ts *testServer) *sioConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.base, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	s := &sioConn{t: t, c: c}
	if open := s.read(); !strings.HasPrefix(open, "0{") {
		t.Fatalf("open packet %q", open)
	}
	s.write("40")
	got := s.read()
	var m struct{ SID string }
	if !strings.HasPrefix(got, "40{") || json.Unmarshal([]byte(got[2:]), &m) != nil {
		t.Fatalf("CONNECT reply %q", got)
	}
	s.id = m.SID
	return s
}

func (s *sioConn) write(p string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := s.c.Write(ctx, websocket.MessageText, []byte(p)); err != nil {
		s.t.Fatal(err)
	}
}

func (s *sioConn) read() string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for {
		_, b, err := s.c.Read(ctx)
		if err != nil {
			s.t.Fatal(err)
		}
		if string(b) == "2" {
			s.write("3")
			continue
		}
		return string(b)
	}
}

// TestClusterSocketIOAndNativeOnTwoNodes: a Socket.IO socket on one node and a native peer on
// another meet in a room through the NATS bus and signal each other.
func TestClusterSocketIOAndNativeOnTwoNodes(t *testing.T) {
	n := startNATS(t)
	n1, n2 := startNode(t, n, nil), startNode(t, n, nil)
	waitCluster(t, n1, n2)

	nat := dial(t, n1)
	nat.join("mixed", nil)
	s := dialSocketIO(t, n2)
	s.write(`421["join",{"room":"mixed"}]`)
	ack := s.read()
	if !strings.HasPrefix(ack, `431[{"type":"welcome"`) || !strings.Contains(ack, `"peers":[{"id":"`+nat.id+`"`) {
		t.Fatalf("join ack %q should list the native peer of node 1", ack)
	}
	if pj := nat.expect("peer-joined"); pj.peerID() != s.id {
		t.Fatalf("peer-joined on node 1: %s", pj.Raw)
	}
	s.write(`42["offer",{"target":"` + nat.id + `","type":"offer","sdp":"v=0"}]`)
	if off := nat.expect("offer"); off.From != s.id || string(off.Data) != `{"target":"`+nat.id+`","type":"offer","sdp":"v=0"}` {
		t.Fatalf("offer on node 1: %s", off.Raw)
	}
	nat.sendRaw(`{"type":"answer","target":"` + s.id + `","data":{"type":"answer","sdp":"a"}}`)
	if got := s.read(); got != `42["answer",{"type":"answer","sdp":"a","from":"`+nat.id+`"},"1"]` { // its offset last
		t.Fatalf("answer on node 2: %q", got)
	}
}
