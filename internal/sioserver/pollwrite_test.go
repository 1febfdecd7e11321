package sioserver

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/membudget"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// TestPollAnswerChargedWhileWritten: a long-polling answer that the client does not read
// stays charged to the memory budget until it is written (or its write deadline passes), on
// top of what the session queues meanwhile — both are held at once.
func TestPollAnswerChargedWhileWritten(t *testing.T) {
	b := membudget.New(256 << 20)
	ts := startServer(t, hub.Config{}, func(c *Config) { c.Budget = b; c.SendQueueBytes = 32 << 20 })
	c := clientFrom(t, "127.0.0.1")
	base := ts.url + "socket.io/?EIO=4&transport=polling"
	resp, body := doFrom(t, c, "GET", base, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("handshake: %d %q", resp.StatusCode, body)
	}
	sid := body[strings.Index(body, `"sid":"`)+7:]
	sid = sid[:strings.IndexByte(sid, '"')]
	doFrom(t, c, "POST", base+"&sid="+sid, "40")
	doFrom(t, c, "GET", base+"&sid="+sid, "") // the CONNECT answer
	ss := ts.sio.session(sid)
	queued := func() int {
		ss.mu.Lock()
		defer ss.mu.Unlock()
		return len(ss.queue)
	}
	pad := []byte(`"` + strings.Repeat("p", 64<<10) + `"`)
	fill := func(n int) {
		for queued() < n {
			if !ss.Send(&protocol.Event{Type: protocol.TypeMessage, From: "x", Data: pad}) {
				t.Fatal("send refused")
			}
		}
	}
	fill(8 << 20) // more than a loopback socket's kernel buffer takes (tcp_wmem's 4 MB)

	// A GET from a client that never reads its answer.
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	conn, err := d.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(ts.url, "/"), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET /socket.io/?EIO=4&transport=polling&sid=" + sid + " HTTP/1.1\r\nHost: x\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the queue taken by the GET", func() bool { return queued() == 0 })
	fill(4 << 20)
	if used := b.Used(); used < 12<<20 {
		t.Fatalf("an 8 MiB answer being written and a 4 MiB queue are held; the budget is charged %d bytes", used)
	}
}

// TestDropLingeringSession: a closed session kept to deliver its last packets (a kick's,
// a leave's) that the memory budget's reclaimer drops lets its queue go at once, keeping only
// the close packet; before, the drop did nothing until the session's ping timeout.
func TestDropLingeringSession(t *testing.T) {
	b := membudget.New(64 << 20)
	ts := startServer(t, hub.Config{}, func(c *Config) { c.Budget = b })
	ss := newSess(ts.sio, time.Now())
	pad := []byte(`"` + strings.Repeat("p", 64<<10) + `"`)
	for range 8 {
		ss.Send(&protocol.Event{Type: protocol.TypeMessage, From: "x", Data: pad})
	}
	ss.mu.Lock()
	ss.flush = true // last words for the next GET
	ss.mu.Unlock()
	ss.close("kicked")
	if ts.sio.session(ss.sid) == nil || b.Used() < 512<<10 {
		t.Fatalf("the kicked session does not linger with its queue (used %d)", b.Used())
	}
	ss.dropSlow()
	if used := b.Used(); used > 64 {
		t.Fatalf("after the drop the lingering session still holds %d bytes", used)
	}
	ss.mu.Lock()
	last := string(ss.queue)
	ss.mu.Unlock()
	if last != "1" {
		t.Fatalf("after the drop the session's queue is %q, want the close packet", last)
	}
}
