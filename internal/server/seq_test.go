package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Every event a presence gets after its welcome carries the next seq of that presence;
// answers to the connection (welcome, ack, error, ice-servers) carry none.
func TestSeqOnEveryEventKind(t *testing.T) {
	ts := startServer(t, nil)
	a, b := dial(t, ts), dial(t, ts)
	wa := a.join("r", nil)
	b.join("r", map[string]any{"name": "Bob"})
	if strings.Contains(wa.Raw, `"seq"`) {
		t.Fatalf("a fresh welcome carries a seq: %s", wa.Raw)
	}
	want := uint64(0)
	next := func(typ string) msg {
		t.Helper()
		m := a.expect(typ)
		want++
		if m.Seq != want {
			t.Fatalf("%s: seq %d, want %d: %s", typ, m.Seq, want, m.Raw)
		}
		return m
	}
	next("peer-joined")
	for _, typ := range []string{"offer", "answer", "ice-candidate", "message"} {
		b.send(map[string]any{"type": typ, "id": typ, "target": a.id, "data": map[string]any{"x": 1}})
		if m := b.expect("ack"); strings.Contains(m.Raw, `"seq"`) {
			t.Fatalf("an ack carries a seq: %s", m.Raw)
		}
		next(typ)
	}
	b.send(map[string]any{"type": "message", "broadcast": true, "data": "all"})
	next("message")
	ctx := context.Background()
	if err := ts.Hub().UpdateMeta(ctx, "r", b.peerIDOf(), []byte(`{"role":"host"}`)); err != nil {
		t.Fatal(err)
	}
	next("peer-updated")
	if m := b.expect("peer-updated"); m.Seq != 1 {
		t.Fatalf("b's own counter: %s", m.Raw)
	}
	if err := ts.Hub().Notify(ctx, "r", "", []byte(`{"text":"hi"}`)); err != nil {
		t.Fatal(err)
	}
	next("server-message")
	a.send(map[string]any{"type": "ice-servers", "id": 1})
	if m := a.expect("ice-servers"); strings.Contains(m.Raw, `"seq"`) {
		t.Fatalf("ice-servers carries a seq: %s", m.Raw)
	}
	a.send(map[string]any{"type": "message", "id": 2, "target": "nobody", "data": 1})
	if m := a.expectError("unknown-target"); strings.Contains(m.Raw, `"seq"`) {
		t.Fatalf("an error carries a seq: %s", m.Raw)
	}
	b.send(map[string]any{"type": "leave"})
	next("peer-left")
}

// peerIDOf returns the client's peer id (set by join).
func (c *client) peerIDOf() protocol.PeerID { return protocol.PeerID(c.id) }

// jsonField returns the string field key of the JSON object b.
func jsonField(t *testing.T, b []byte, key string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	s, _ := m[key].(string)
	return s
}

// Events written into a connection that died silently (no FIN, no RST: the server still
// thinks it open) are replayed after the client's last when it resumes; the others see
// nothing.
func TestReplayAfterSilentCut(t *testing.T) {
	ts := startServer(t, nil)
	proxy := testserver.NewCutter(t, strings.TrimPrefix(ts.base, "http://"))
	a := dialURL(t, "ws://"+proxy.Addr()+"/ws")
	wa := a.join("r", nil)
	b := dial(t, ts)
	b.join("r", nil)
	if m := a.expect("peer-joined"); m.Seq != 1 {
		t.Fatalf("peer-joined: %s", m.Raw)
	}
	if proxy.Sever() != 1 {
		t.Fatal("nothing severed")
	}
	for i := range 5 {
		b.send(map[string]any{"type": "message", "id": i, "target": a.id, "data": i})
		b.expect("ack") // acked: a is connected as far as the server knows
	}
	a.c.CloseNow()
	a2 := dialURL(t, "ws://"+proxy.Addr()+"/ws")
	a2.send(map[string]any{"type": "join", "room": "r", "resume": wa.Resume, "last": 1})
	w := a2.expect("welcome")
	if !w.Resumed || w.peerID() != a.id || w.Seq != 6 || w.Gap || w.Restored || len(w.Peers) != 1 || w.Peers[0].ID != b.id {
		t.Fatalf("resumed welcome: %s", w.Raw)
	}
	for i := range 5 {
		if m := a2.expect("message"); m.Seq != uint64(i+2) || string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("replayed %d: %s", i, m.Raw)
		}
	}
	a2.expectNothing(50 * time.Millisecond)
	b.expectNothing(50 * time.Millisecond) // no peer-left, no peer-joined

	// Resumed again from the middle: only what follows last.
	a2.c.CloseNow()
	a3 := dial(t, ts)
	a3.send(map[string]any{"type": "join", "room": "r", "resume": w.Resume, "last": 4})
	if w3 := a3.expect("welcome"); !w3.Resumed || w3.Seq != 6 || w3.Gap {
		t.Fatalf("second resume: %s", w3.Raw)
	}
	for _, seq := range []uint64{5, 6} {
		if m := a3.expect("message"); m.Seq != seq {
			t.Fatalf("want seq %d: %s", seq, m.Raw)
		}
	}
}

// A connected presence whose outbox is full drops its oldest events; a resume from before
// them is told so (gap) and gets what is left.
func TestResumeGap(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.ResumeHoldEvents = 4 })
	proxy := testserver.NewCutter(t, strings.TrimPrefix(ts.base, "http://"))
	a := dialURL(t, "ws://"+proxy.Addr()+"/ws")
	wa := a.join("r", nil)
	b := dial(t, ts)
	b.join("r", nil)
	a.expect("peer-joined")
	proxy.Sever()
	for i := range 10 {
		b.send(map[string]any{"type": "message", "id": i, "target": a.id, "data": i})
		b.expect("ack")
	}
	a.c.CloseNow()
	a2 := dial(t, ts)
	a2.send(map[string]any{"type": "join", "room": "r", "resume": wa.Resume, "last": 1})
	if w := a2.expect("welcome"); !w.Resumed || !w.Gap || w.Seq != 11 {
		t.Fatalf("welcome: %s", w.Raw)
	}
	for i := 6; i < 10; i++ {
		if m := a2.expect("message"); string(m.Data) != fmt.Sprint(i) || m.Seq != uint64(i+2) {
			t.Fatalf("want message %d: %s", i, m.Raw)
		}
	}
	b.expectNothing(50 * time.Millisecond)
}

// A relay re-sent with retry after a resume is acked and not relayed again when the server
// had accepted it; without retry, or with an id it never accepted, it is relayed.
func TestRetryDedupe(t *testing.T) {
	ts := startServer(t, nil)
	a, b := dial(t, ts), dial(t, ts)
	wa := a.join("r", nil)
	b.join("r", nil)
	a.expect("peer-joined")
	a.send(map[string]any{"type": "message", "id": "m1", "target": b.id, "data": 1})
	a.expect("ack")
	if m := b.expect("message"); string(m.Data) != "1" {
		t.Fatalf("b: %s", m.Raw)
	}
	a.c.CloseNow() // lost
	eventually(t, "a to be kept", func() bool { return ts.Hub().Stats().Parked.Load() == 1 })
	a2 := dial(t, ts)
	a2.send(map[string]any{"type": "join", "room": "r", "resume": wa.Resume, "last": 1})
	if w := a2.expect("welcome"); !w.Resumed {
		t.Fatalf("welcome: %s", w.Raw)
	}
	a2.send(map[string]any{"type": "message", "id": "m1", "retry": true, "target": b.id, "data": 1})
	if m := a2.expect("ack"); string(m.ID) != `"m1"` {
		t.Fatalf("retry not acked: %s", m.Raw)
	}
	b.expectNothing(50 * time.Millisecond)
	a2.send(map[string]any{"type": "message", "id": "m2", "retry": true, "target": b.id, "data": 2})
	a2.expect("ack")
	if m := b.expect("message"); string(m.Data) != "2" {
		t.Fatalf("a retry the server never accepted: %s", m.Raw)
	}
	a2.send(map[string]any{"type": "message", "id": "m1", "target": b.id, "data": 3})
	a2.expect("ack")
	if m := b.expect("message"); string(m.Data) != "3" {
		t.Fatalf("without retry ids are not checked: %s", m.Raw)
	}
	if got := ts.Hub().Stats().RetriesDeduped.Load(); got != 1 {
		t.Fatalf("retries deduped: %d", got)
	}
}

// A connected presence gets a fresh token at half the TTL, which resumes it.
func TestResumeTokenRefresh(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.ResumeTokenTTL, c.ResumeGrace = 2*time.Second, time.Second })
	a := dial(t, ts)
	wa := a.join("r", nil)
	m := a.expect("resume-token") // within waitFor; due after 1 s
	if m.Resume == "" || m.Resume == wa.Resume || strings.Contains(m.Raw, `"seq"`) {
		t.Fatalf("resume-token: %s", m.Raw)
	}
	a.c.CloseNow()
	a2 := dial(t, ts)
	a2.send(map[string]any{"type": "join", "room": "r", "resume": m.Resume, "last": 0})
	if w := a2.expect("welcome"); !w.Resumed || w.peerID() != a.id {
		t.Fatalf("resume with the refreshed token: %s", w.Raw)
	}
}

// A read frame marks events read: a resume from before it replays only what follows.
func TestReadFrame(t *testing.T) {
	ts := startServer(t, nil)
	a, b := dial(t, ts), dial(t, ts)
	wa := a.join("r", nil)
	b.join("r", nil)
	a.expect("peer-joined")
	for i := range 3 {
		b.send(map[string]any{"type": "message", "target": a.id, "data": i})
		a.expect("message")
	}
	a.send(map[string]any{"type": "read", "seq": 3})
	a.c.CloseNow()
	eventually(t, "a to be kept", func() bool { return ts.Hub().Stats().Parked.Load() == 1 })
	a2 := dial(t, ts)
	a2.send(map[string]any{"type": "join", "room": "r", "resume": wa.Resume, "last": 0})
	if w := a2.expect("welcome"); !w.Resumed || w.Gap || w.Seq != 4 {
		t.Fatalf("welcome: %s", w.Raw)
	}
	if m := a2.expect("message"); m.Seq != 4 || string(m.Data) != "2" {
		t.Fatalf("replay after the read mark: %s", m.Raw)
	}
	a2.expectNothing(50 * time.Millisecond)
}

// The server pings with the seq of the last event written; the pong marks them read, so a
// resume from before gets nothing again.
func TestMarkPing(t *testing.T) {
	ts := startServer(t, nil)
	a := dialRaw(t, ts, 0)
	a.sendText(`{"type":"join","room":"r"}`)
	_, p, err := a.readFrame()
	if err != nil {
		t.Fatal(err)
	}
	token := jsonField(t, p, "resume")
	b := dial(t, ts)
	b.join("r", nil)
	for i := range 3 {
		b.send(map[string]any{"type": "message", "target": jsonField(t, p, "peer"), "data": i})
	}
	// peer-joined and three messages, then a ping "4".
	for got := 0; ; {
		op, payload, err := a.readFrame()
		if err != nil {
			t.Fatal(err)
		}
		if op == 0x1 {
			got++
			continue
		}
		if op != 0x9 {
			t.Fatalf("opcode %x", op)
		}
		if string(payload) != "4" || got != 4 {
			t.Fatalf("mark ping %q after %d events, want \"4\" after 4", payload, got)
		}
		a.writeFrame(0x8A, payload, true) // pong
		break
	}
	a.conn.Close() // lost after the pong: the server reads the pong first
	eventually(t, "a to be kept", func() bool { return ts.Hub().Stats().Parked.Load() == 1 })
	a2 := dial(t, ts)
	a2.send(map[string]any{"type": "join", "room": "r", "resume": token, "last": 0})
	if w := a2.expect("welcome"); !w.Resumed || w.Gap || w.Seq != 4 {
		t.Fatalf("welcome: %s", w.Raw)
	}
	a2.expectNothing(100 * time.Millisecond)
}
