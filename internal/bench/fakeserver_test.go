package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"
)

// fakeServer is a minimal in-process stand-in for both servers the bench
// drives: Switchboard's native protocol on /ws (join, welcome, peer-joined,
// relays) and the seed's Socket.IO relay on /socket.io/ (Engine.IO open,
// CONNECT, events relayed to data.target, pings).
type fakeServer struct {
	srv    *httptest.Server
	mu     sync.Mutex
	conns  map[string]*websocket.Conn
	rooms  map[string][]string
	nextID atomic.Int64
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
	// pingSocketIO makes the socket.io side send an Engine.IO ping after CONNECT.
	pingSocketIO bool
	pongs        atomic.Int64
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	f := &fakeServer{conns: map[string]*websocket.Conn{}, rooms: map[string][]string{}}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", f.handleNative)
	mux.HandleFunc("/socket.io/", f.handleSocketIO)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.close)
	return f
}

func (f *fakeServer) url(p protoKind) string {
	base := "ws" + strings.TrimPrefix(f.srv.URL, "http")
	if p == protoSocketIO {
		return base + "/socket.io/?EIO=4&transport=websocket"
	}
	return base + "/ws"
}

func (f *fakeServer) close() {
	f.cancel()
	f.srv.CloseClientConnections()
	f.srv.Close()
	f.wg.Wait()
}

func (f *fakeServer) add(id string, c *websocket.Conn) {
	f.mu.Lock()
	f.conns[id] = c
	f.mu.Unlock()
}

func (f *fakeServer) remove(id string) {
	f.mu.Lock()
	delete(f.conns, id)
	f.mu.Unlock()
}

func (f *fakeServer) lookup(id string) *websocket.Conn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns[id]
}

func (f *fakeServer) accept(w http.ResponseWriter, r *http.Request) (*websocket.Conn, bool) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return nil, false
	}
	c.SetReadLimit(1 << 20)
	f.wg.Add(1)
	return c, true
}

func (f *fakeServer) handleNative(w http.ResponseWriter, r *http.Request) {
	c, ok := f.accept(w, r)
	if !ok {
		return
	}
	defer f.wg.Done()
	defer c.CloseNow()
	id := fmt.Sprintf("peer%d", f.nextID.Add(1))
	f.add(id, c)
	defer f.remove(id)
	ctx := f.ctx
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		var in struct {
			Type   string          `json:"type"`
			ID     json.RawMessage `json:"id"`
			Room   string          `json:"room"`
			Target string          `json:"target"`
			Data   json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(msg, &in); err != nil {
			_ = c.Write(ctx, websocket.MessageText, []byte(`{"type":"error","code":"bad-json","message":"bad"}`))
			continue
		}
		switch in.Type {
		case "join":
			f.mu.Lock()
			others := append([]string(nil), f.rooms[in.Room]...)
			f.rooms[in.Room] = append(f.rooms[in.Room], id)
			f.mu.Unlock()
			peers := make([]map[string]string, 0, len(others))
			for _, o := range others {
				peers = append(peers, map[string]string{"id": o})
			}
			welcome, _ := json.Marshal(map[string]any{"type": "welcome", "id": in.ID, "v": 1, "peer": id, "room": in.Room, "peers": peers, "iceServers": []any{}})
			_ = c.Write(ctx, websocket.MessageText, welcome)
			for _, o := range others {
				if oc := f.lookup(o); oc != nil {
					_ = oc.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"type":"peer-joined","peer":{"id":%q}}`, id))
				}
			}
		case "offer", "answer", "ice-candidate":
			tc := f.lookup(in.Target)
			if tc == nil {
				_ = c.Write(ctx, websocket.MessageText, []byte(`{"type":"error","code":"unknown-target","message":"no"}`))
				continue
			}
			out := fmt.Appendf(nil, `{"type":%q,"from":%q,"data":%s}`, in.Type, id, in.Data)
			_ = tc.Write(ctx, websocket.MessageText, out)
		default:
			_ = c.Write(ctx, websocket.MessageText, []byte(`{"type":"error","code":"unknown-type","message":"no"}`))
		}
	}
}

func (f *fakeServer) handleSocketIO(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("EIO") != "4" || r.URL.Query().Get("transport") != "websocket" {
		http.Error(w, "bad query", http.StatusBadRequest)
		return
	}
	c, ok := f.accept(w, r)
	if !ok {
		return
	}
	defer f.wg.Done()
	defer c.CloseNow()
	ctx := f.ctx
	n := f.nextID.Add(1)
	_ = c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `0{"sid":"eio%d","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`, n))
	id := fmt.Sprintf("sock%d", n)
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		switch {
		case string(msg) == "40":
			f.add(id, c)
			defer f.remove(id)
			_ = c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `40{"sid":%q}`, id))
			if f.pingSocketIO {
				_ = c.Write(ctx, websocket.MessageText, []byte("2"))
			}
		case string(msg) == "3":
			f.pongs.Add(1)
		case bytes.HasPrefix(msg, []byte("42")):
			var ev []json.RawMessage
			if err := json.Unmarshal(msg[2:], &ev); err != nil || len(ev) != 2 {
				continue
			}
			var d struct {
				Target string `json:"target"`
			}
			if json.Unmarshal(ev[1], &d) != nil {
				continue
			}
			if tc := f.lookup(d.Target); tc != nil {
				_ = tc.Write(ctx, websocket.MessageText, msg) // relayed unchanged, as socket.to(target).emit does
			}
		}
	}
}
