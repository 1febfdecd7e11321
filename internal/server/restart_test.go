package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/config"
)

// drainUntilClosed reads c until the server closes it, failing on a peer-left.
func drainUntilClosed(t *testing.T, c *client) {
	t.Helper()
	for m := range c.msgs {
		if m.Type == "peer-left" {
			t.Fatalf("peer-left on a restart: %s", m.Raw)
		}
	}
	<-c.errc
}

// A restart with the same --resume-secret and no state file: each client resumes on the
// restarted server with its token and gets its presence back, same id, re-created from the
// token (restored); the others hear it come back as peer-joined resumed. Nobody hears a
// peer-left.
func TestRestartSameSecretRestores(t *testing.T) {
	secret := strings.Repeat("s", 40)
	mod := func(c *config.Config) { c.ResumeSecret = secret }
	ts1 := startServer(t, mod)
	a, b := dial(t, ts1), dial(t, ts1)
	wa := a.join("r", map[string]any{"name": "Ada"})
	wb := b.join("r", map[string]any{"name": "Bob"})
	pj := a.expect("peer-joined")
	stopServer(t, ts1)
	drainUntilClosed(t, a)
	drainUntilClosed(t, b)

	ts2 := startServer(t, mod)
	a2 := dial(t, ts2)
	a2.send(map[string]any{"type": "join", "room": "r", "resume": wa.Resume, "last": pj.Seq})
	w := a2.expect("welcome")
	if !w.Resumed || !w.Restored || w.peerID() != a.id || len(w.Peers) != 0 || w.Seq != pj.Seq {
		t.Fatalf("a's welcome after the restart: %s", w.Raw)
	}
	b2 := dial(t, ts2)
	b2.send(map[string]any{"type": "join", "room": "r", "resume": wb.Resume, "last": 0})
	w = b2.expect("welcome")
	if !w.Resumed || !w.Restored || w.peerID() != b.id || len(w.Peers) != 1 || w.Peers[0].ID != a.id || w.Peers[0].Name != "Ada" {
		t.Fatalf("b's welcome after the restart: %s", w.Raw)
	}
	if m := a2.expect("peer-joined"); m.peerID() != b.id || !m.Resumed || m.Seq != pj.Seq+1 {
		t.Fatalf("a: %s", m.Raw)
	}
	b2.send(map[string]any{"type": "message", "target": a.id, "data": "still here"})
	if m := a2.expect("message"); m.From != b.id {
		t.Fatalf("a: %s", m.Raw)
	}
	// A token is still good once: the spent one starts a new presence.
	c := dial(t, ts2)
	if w := c.join("r", map[string]any{"resume": wa.Resume}); w.Resumed {
		t.Fatalf("a spent token resumed again: %s", w.Raw)
	}
	a2.expect("peer-joined")
	a2.expectNothing(50 * time.Millisecond)
}

// A restart with --state-file: the rooms and members come back as kept presences; clients
// that return within the grace resume them (not restored: the room never lost them) and see
// their peers that have not returned yet; those that never return leave (timeout). The state
// file holds the resume secret: 0600, read once.
func TestStateFileRestore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	mod := func(c *config.Config) {
		c.StateFile, c.ResumeGrace, c.ResumeTokenTTL = path, 700*time.Millisecond, time.Minute
	}
	ts1 := startServer(t, mod) // no --resume-secret: the state file carries the random one
	a, b, c := dial(t, ts1), dial(t, ts1), dial(t, ts1)
	wa := a.join("r", nil)
	wb := b.join("r", nil)
	c.join("r", nil)
	a.expect("peer-joined")
	last := a.expect("peer-joined").Seq
	b.expect("peer-joined")
	stopServer(t, ts1)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no state file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v, want 0600", fi.Mode().Perm())
	}
	for _, x := range []*client{a, b, c} {
		drainUntilClosed(t, x)
	}

	ts2 := startServer(t, mod)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the state file is still there after it was read: %v", err)
	}
	a2 := dial(t, ts2)
	a2.send(map[string]any{"type": "join", "room": "r", "resume": wa.Resume, "last": last})
	w := a2.expect("welcome")
	if !w.Resumed || w.Restored || w.Gap || w.peerID() != a.id || len(w.Peers) != 2 || w.Peers[0].ID != b.id || w.Peers[1].ID != c.id {
		t.Fatalf("a's welcome: %s", w.Raw)
	}
	b2 := dial(t, ts2)
	b2.send(map[string]any{"type": "join", "room": "r", "resume": wb.Resume, "last": 0}) // b read less than it was sent
	if w := b2.expect("welcome"); !w.Resumed || !w.Gap || w.peerID() != b.id || len(w.Peers) != 2 {
		t.Fatalf("b's welcome: %s", w.Raw)
	}
	// c never comes back: after the grace both hear it left, nothing else.
	for _, x := range []*client{a2, b2} {
		for {
			m := x.next()
			if m.Type == "peer-joined" && m.Resumed {
				continue // the restore re-announced the room to itself, replayed
			}
			if m.Type != "peer-left" || m.peerID() != c.id || m.Reason != "timeout" {
				t.Fatalf("want c's peer-left timeout: %s", m.Raw)
			}
			break
		}
	}
	a2.expectNothing(50 * time.Millisecond)
}
