package sioserver

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Connection state recovery, packet by packet (recovery.go, takeover.go); the official
// client's view is in recovery_node_test.go.

// connectWith sends CONNECT with payload (may be "") and returns the answer's sid and pid.
func (c *wsClient) connectWith(payload string) (sid, pid string) {
	c.t.Helper()
	c.write("40" + payload)
	got := c.read()
	var m struct{ SID, PID string }
	if !strings.HasPrefix(got, "40{") || json.Unmarshal([]byte(got[2:]), &m) != nil || m.SID == "" {
		c.t.Fatalf("CONNECT reply %q", got)
	}
	c.id = m.SID
	return m.SID, m.PID
}

// expectMessage reads a "message" event and returns its n and offset.
func (c *wsClient) expectMessage() (n int, off string) {
	c.t.Helper()
	args := c.expectEvent("42")
	var d struct{ N int }
	if len(args) != 3 || string(args[0]) != `"message"` || json.Unmarshal(args[1], &d) != nil || json.Unmarshal(args[2], &off) != nil {
		c.t.Fatalf("message event %s, want [\"message\", data, offset]", args)
	}
	return d.N, off
}

func (c *wsClient) sendMessage(target string, n int) {
	c.t.Helper()
	c.write(`421["message",{"target":"` + target + `","n":` + itoa(n) + `}]`)
	if a := c.expectEvent("431"); string(a[0]) != `{"type":"ack","id":1}` {
		c.t.Fatalf("message %d: %s", n, a[0])
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestRecoveryPackets: the CONNECT answer has a pid; events have offsets; after a lost
// connection a CONNECT with {pid, offset} gets the same sid and pid, then the events after
// offset in order; a pid once recovered works again.
func TestRecoveryPackets(t *testing.T) {
	for _, room := range []bool{false, true} {
		t.Run(map[bool]string{false: "lobby", true: "room"}[room], func(t *testing.T) {
			ts := startServer(t, hub.Config{}, nil)
			a, b := dialSIO(t, ts.url, nil), dialSIO(t, ts.url, nil)
			aID, pid := a.connectWith("")
			b.connectWith("")
			if len(pid) < 22 {
				t.Fatalf("pid %q, want 128 random bits", pid)
			}
			if room {
				a.write(`420["join",{"room":"r"}]`)
				a.expectEvent("430")
				b.write(`420["join",{"room":"r"}]`)
				b.expectEvent("430")
				a.expectEvent("42") // peer-joined, offset 1
			}
			b.sendMessage(aID, 1)
			_, off := a.expectMessage()
			for round := range 2 {
				if !ts.sio.Disconnect(protocol.PeerID(aID)) {
					t.Fatal("no socket to disconnect")
				}
				b.sendMessage(aID, 2+2*round)
				b.sendMessage(aID, 3+2*round)
				c := dialSIO(t, ts.url, nil)
				sid, pid2 := c.connectWith(`{"pid":"` + pid + `","offset":"` + off + `","x":1}`)
				if sid != aID || pid2 != pid {
					t.Fatalf("round %d: sid %s pid %s, want %s and %s", round, sid, pid2, aID, pid)
				}
				for _, want := range []int{2 + 2*round, 3 + 2*round} {
					if n, o := c.expectMessage(); n != want || o <= off {
						t.Fatalf("round %d: message %d offset %s (last %s), want %d after it", round, n, o, off, want)
					} else {
						off = o
					}
				}
				a = c
			}
			if n := ts.hub.Stats().SocketIORecovered.Load(); n != 2 {
				t.Errorf("%d recoveries counted, want 2", n)
			}
			if room { // the room saw nothing: b got no peer-left
				b.write(`42["message",{"target":"` + aID + `","n":9}]`)
				if n, _ := a.expectMessage(); n != 9 {
					t.Fatalf("live message %d, want 9", n)
				}
			}
		})
	}
}

// TestRecoveryRefused: a pid that takes nothing back — forged, tampered with, of a socket
// that left (DISCONNECT) — or an offset that is not a decimal string gets a new socket, and
// the server goes on.
func TestRecoveryRefused(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	a := dialSIO(t, ts.url, nil)
	aID, pid := a.connectWith("")
	if !ts.sio.Disconnect(protocol.PeerID(aID)) {
		t.Fatal("no socket")
	}
	tampered := pid[:len(pid)-1] + "A"
	if pid[len(pid)-1] == 'A' {
		tampered = pid[:len(pid)-1] + "B"
	}
	for _, payload := range []string{
		`{"pid":"forged","offset":"1"}`,
		`{"pid":"` + tampered + `","offset":"0"}`,
		`{"pid":"` + pid + `","offset":1}`,
		`{"pid":"` + pid + `","offset":"-1"}`,
		`{"pid":"` + pid + `","offset":"1e3"}`,
		`{"pid":"` + pid + `","offset":"99999999999999999999999"}`,
		`{"pid":["` + pid + `"]}`,
		`{"pid":"` + strings.Repeat("x", maxPIDLen+1) + `"}`,
	} {
		c := dialSIO(t, ts.url, nil)
		if sid, p := c.connectWith(payload); sid == aID || p == pid || p == "" {
			t.Fatalf("%s: sid %s pid %s; want a new socket", payload, sid, p)
		}
	}
	// The parked socket is still there for its own client.
	c := dialSIO(t, ts.url, nil)
	if sid, _ := c.connectWith(`{"pid":"` + pid + `"}`); sid != aID {
		t.Fatalf("recovery without an offset: sid %s, want %s", sid, aID)
	}
	// A socket that left says goodbye: its pid takes nothing back.
	c.write("41")
	d := dialSIO(t, ts.url, nil)
	if sid, _ := d.connectWith(`{"pid":"` + pid + `","offset":"0"}`); sid == aID {
		t.Fatal("a socket that left was recovered")
	}
	// Counted: forged, tampered, left (the others ask for no recovery the server could honour).
	if n := ts.hub.Stats().SocketIORecoveryRefused.Load(); n != 3 {
		t.Errorf("%d refusals counted, want 3", n)
	}
}

// TestRecoveryOfOpenConnection: the client saw its connection die before the server did: a
// recovery takes the socket over and the old connection is closed.
func TestRecoveryOfOpenConnection(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	a, b := dialSIO(t, ts.url, nil), dialSIO(t, ts.url, nil)
	aID, pid := a.connectWith("")
	b.connectWith("")
	c := dialSIO(t, ts.url, nil)
	if sid, p := c.connectWith(`{"pid":"` + pid + `"}`); sid != aID || p != pid {
		t.Fatalf("sid %s pid %s, want %s %s", sid, p, aID, pid)
	}
	a.expectClosed()
	b.sendMessage(aID, 7)
	if n, _ := c.expectMessage(); n != 7 {
		t.Fatalf("message %d, want 7", n)
	}
}

// TestRecoveryGap: events the client did not read and the server could not keep (its lobby
// outbox holds 4) are lost: the socket is taken back with its id, but with a fresh pid, so
// the client knows it was not recovered. A parked socket whose outbox overflows is given up.
func TestRecoveryGap(t *testing.T) {
	ts := startServer(t, hub.Config{ResumeHoldEvents: 4}, nil)
	a, b := dialSIO(t, ts.url, nil), dialSIO(t, ts.url, nil)
	aID, pid := a.connectWith("")
	b.connectWith("")
	for i := range 8 {
		b.sendMessage(aID, i)
	}
	if !ts.sio.Disconnect(protocol.PeerID(aID)) {
		t.Fatal("no socket")
	}
	c := dialSIO(t, ts.url, nil)
	sid, p := c.connectWith(`{"pid":"` + pid + `","offset":"1"}`)
	if sid != aID || p == pid || p == "" {
		t.Fatalf("sid %s pid %s: want %s with a fresh pid", sid, p, aID)
	}
	if n := ts.hub.Stats().SocketIORecoveryGaps.Load(); n != 1 {
		t.Errorf("%d gaps counted, want 1", n)
	}
	// Parked and overflowing: given up, its pid takes nothing back, its id is unknown.
	if !ts.sio.Disconnect(protocol.PeerID(aID)) {
		t.Fatal("no socket")
	}
	// Its outbox still holds the 4 replayed events, which c never acknowledged with a pong.
	for i := range 5 {
		b.write(`421["message",{"target":"` + aID + `","n":` + itoa(i) + `}]`)
		b.expectEvent("431") // an ack while it is parked, unknown-target once given up
	}
	waitFor(t, 5*time.Second, "the parked socket to be given up", func() bool { return !ts.sio.inLobby(protocol.PeerID(aID)) })
	d := dialSIO(t, ts.url, nil)
	if sid, _ := d.connectWith(`{"pid":"` + p + `","offset":"0"}`); sid == aID {
		t.Fatal("a socket given up was recovered")
	}
}

// TestRecoveryWithTokens: with access tokens the CONNECT auth payload carries the token and
// pid/offset together: a recovery takes the socket back with its room and grant (no new
// welcome, its token not checked again); a pid that recovers nothing falls back to the token.
func TestRecoveryWithTokens(t *testing.T) {
	ts := startAuthServer(t, hub.Config{})
	a, b := dialSIO(t, ts.url, nil), dialSIO(t, ts.url, nil)
	a.write("40" + authPayload(mint(t, "ada", "r", nil)))
	var c0 struct{ SID, PID string }
	if got := a.read(); !strings.HasPrefix(got, "40{") || json.Unmarshal([]byte(got[2:]), &c0) != nil || c0.PID == "" {
		t.Fatalf("CONNECT answer %q, want sid and pid", got)
	}
	a.expectEvent("42") // welcome
	b.write("40" + authPayload(mint(t, "bob", "r", nil)))
	b.read()
	b.expectEvent("42") // welcome
	a.expectEvent("42") // peer-joined, offset 1
	b.sendMessage(c0.SID, 1)
	_, off := a.expectMessage()
	if off != "2" {
		t.Fatalf("offset %s, want 2 (the presence's seq)", off)
	}
	if !ts.sio.Disconnect(protocol.PeerID(c0.SID)) {
		t.Fatal("no socket")
	}
	b.sendMessage(c0.SID, 2)
	c := dialSIO(t, ts.url, nil)
	if sid, pid := c.connectWith(`{"token":"expired-or-not","pid":"` + c0.PID + `","offset":"` + off + `"}`); sid != c0.SID || pid != c0.PID {
		t.Fatalf("sid %s pid %s, want %s %s", sid, pid, c0.SID, c0.PID)
	}
	if n, o := c.expectMessage(); n != 2 || o != "3" {
		t.Fatalf("message %d offset %s, want 2 at 3 (no welcome first)", n, o)
	}
	d := dialSIO(t, ts.url, nil)
	d.write(`40{"token":"` + mint(t, "cy", "r", nil) + `","pid":"forged","offset":"3"}`)
	checkConnected(t, []string{d.read(), d.read()}, "r")
}

// TestRecoveryAfterClosePacket: socket.io-client sends Engine.IO's close packet after a failed
// long-poll: the socket is kept for its recovery (DISCONNECT is the goodbye).
func TestRecoveryAfterClosePacket(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	u := pollOpen(t, ts.url)
	if st, b := httpDo(t, "POST", u, "40", nil); st != 200 || b != "ok" {
		t.Fatalf("POST: %d %q", st, b)
	}
	_, pkts := pollGet(t, u)
	var c struct{ SID, PID string }
	if len(pkts) != 1 || json.Unmarshal([]byte(strings.TrimPrefix(pkts[0], "40")), &c) != nil || c.PID == "" {
		t.Fatalf("CONNECT answer %q", pkts)
	}
	if st, b := httpDo(t, "POST", u, "1", nil); st != 200 || b != "ok" {
		t.Fatalf("close POST: %d %q", st, b)
	}
	w := dialSIO(t, ts.url, nil)
	if sid, pid := w.connectWith(`{"pid":"` + c.PID + `"}`); sid != c.SID || pid != c.PID {
		t.Fatalf("sid %s pid %s, want %s %s", sid, pid, c.SID, c.PID)
	}
}
