package sioserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/wsserver"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// oneNodeCluster is this node's own lobby seen as a cluster's with no other node: what
// serveMove needs of it is LobbyHandOff, counted.
type oneNodeCluster struct {
	*memLobby
	handOffs atomic.Int64
}

func (c *oneNodeCluster) HandleSockets(func(string, []byte) []byte) error { return nil }
func (c *oneNodeCluster) AskSocket(context.Context, protocol.PeerID, []byte) ([]byte, error) {
	return nil, errors.New("no other node")
}
func (c *oneNodeCluster) LobbyHandOff(id protocol.PeerID, node string) {
	c.handOffs.Add(1)
	c.LobbyLeave(id)
}

// FuzzServeMove: another node's request for a socket — the input, with "PID" standing for the
// pid of a parked lobby socket — never panics; it is answered {"ok":true,...} only when its
// pid is exactly the parked socket's, which is then gone here (a second request is refused).
func FuzzServeMove(f *testing.F) {
	for _, s := range []string{
		`{"pid":"PID","last":0}`, `{"pid":"PID","last":3}`, `{"pid":"PID"}`, `{"pid":"PIDX"}`, `{"pid":"xPID"}`,
		`{"pid":""}`, `{}`, ``, `null`, `[]`, `{"pid":"PID","last":-1}`, `{"pid":"PID","last":1e99}`, `{"pid":5}`,
	} {
		f.Add([]byte(s))
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := hub.New(hub.Config{Logger: log})
	if err != nil {
		f.Fatal(err)
	}
	ws, err := wsserver.New(wsserver.Config{Hub: h, Logger: log})
	if err != nil {
		f.Fatal(err)
	}
	defer ws.Close()
	cl := &oneNodeCluster{memLobby: newMemLobby(h.Stats())}
	srv, err := New(Config{Hub: h, WS: ws, Logger: log, Lobby: cl})
	if err != nil {
		f.Fatal(err)
	}
	defer srv.Close()
	if srv.cluster == nil {
		f.Fatal("the cluster lobby was not taken")
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		now := time.Now()
		ss := newSess(srv, now)
		if ss == nil {
			t.Fatal("session table full: sessions are not removed")
		}
		ss.in.Lock()
		err := ss.packet(eioPacket{typ: eioMessage, data: []byte{sioConnect}}, now)
		ss.in.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		pid := ss.sock.currentPID()
		ss.lose("closed") // parked
		req := []byte(strings.ReplaceAll(string(in), "PID", pid))
		var want moveReq
		named := json.Unmarshal(req, &want) == nil && want.PID == pid
		var ans moveAns
		if err := json.Unmarshal(srv.serveMove("node-x", req), &ans); err != nil {
			t.Fatalf("%q: answer not JSON: %v", req, err)
		}
		if ans.OK != named {
			t.Fatalf("%q: ok %v, want %v", req, ans.OK, named)
		}
		if ans.OK {
			if again := srv.serveMove("node-x", req); string(again) != string(moveRefused) {
				t.Fatalf("%q: handed over twice: %s", req, again)
			}
			return
		}
		// Not handed over: it is still parked here; end it.
		srv.sockMu.Lock()
		k := srv.socks[pid]
		srv.sockMu.Unlock()
		if k == nil {
			t.Fatalf("%q: refused, but the socket is gone", req)
		}
		k.mu.Lock()
		k.endLocked()
		k.mu.Unlock()
		cl.LobbyLeave(k.id)
	})
}
