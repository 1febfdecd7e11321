package sioserver

import (
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/wsserver"
)

// FuzzParseRecovery: any auth payload is read without a panic; a pid taken is 1 to 64 bytes
// of the payload's "pid" string, and the offset is the "offset" string's decimal value (0
// when absent).
func FuzzParseRecovery(f *testing.F) {
	for _, s := range []string{
		"", "{}", `{"pid":"abc"}`, `{"pid":"abc","offset":"12"}`, `{"pid":"abc","offset":12}`,
		`{"pid":"abc","offset":null}`, `{"pid":"","offset":"1"}`, `{"pid":5}`, `{"pid":["a"]}`,
		`{"pid":"a","offset":"18446744073709551615"}`, `{"pid":"a","offset":"18446744073709551616"}`,
		`{"pid":"a","offset":"-1"}`, `{"pid":"a","offset":" 1"}`, `{"pid":"\u0061"}`, `{"pid":"a","pid":"b"}`,
		`{"token":"t","pid":"a","offset":"3","room":"r"}`, `"a"`, "null", `{"pid":"a"`, "{\"pid\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		pid, last, ok := parseRecovery(in)
		if !ok {
			if pid != "" || last != 0 {
				t.Fatalf("%q: refused but returned %q %d", in, pid, last)
			}
			return
		}
		var a struct {
			PID    string  `json:"pid"`
			Offset *string `json:"offset"`
		}
		if err := json.Unmarshal(in, &a); err != nil {
			t.Fatalf("%q: taken (%q, %d) but not a JSON object with a string pid: %v", in, pid, last, err)
		}
		if pid != a.PID || pid == "" || len(pid) > maxPIDLen {
			t.Fatalf("%q: pid %q, want %q (1-%d bytes)", in, pid, a.PID, maxPIDLen)
		}
		want := uint64(0)
		if a.Offset != nil {
			n, err := strconv.ParseUint(*a.Offset, 10, 64)
			if err != nil || strings.ContainsAny(*a.Offset, "+-") {
				t.Fatalf("%q: offset %q taken as %d", in, *a.Offset, last)
			}
			want = n
		}
		if last != want {
			t.Fatalf("%q: offset %d, want %d", in, last, want)
		}
	})
}

// FuzzConnectRecovery: a CONNECT whose auth payload is the input — with "PID" standing for
// the pid of a parked socket — on an open server never panics, and is answered with a CONNECT
// answer carrying a sid and a pid (the parked socket's when the input recovered it), or
// closes the session. The parked socket is recovered at most by a payload naming its pid.
func FuzzConnectRecovery(f *testing.F) {
	for _, s := range []string{
		"", "{}", `{"pid":"PID"}`, `{"pid":"PID","offset":"0"}`, `{"pid":"PID","offset":"1"}`,
		`{"pid":"PID","offset":1}`, `{"pid":"PIDX"}`, `{"pid":"xPID","offset":"2"}`, `{"offset":"1"}`,
		`{"pid":null,"offset":"1"}`, `"PID"`, "null", `{"pid":"PID","offset":"99999999999999999999"}`,
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
	srv, err := New(Config{Hub: h, WS: ws, Logger: log})
	if err != nil {
		f.Fatal(err)
	}
	defer srv.Close()
	connect := func(t *testing.T, payload []byte) (sid, pid string, closed bool) {
		now := time.Now()
		ss := newSess(srv, now)
		if ss == nil {
			t.Fatal("session table full: sessions are not removed")
		}
		ss.in.Lock()
		err := ss.packet(eioPacket{typ: eioMessage, data: append([]byte{sioConnect}, payload...)}, now)
		ss.in.Unlock()
		ss.mu.Lock()
		out := string(ss.queue)
		ss.queue = nil
		ss.mu.Unlock()
		if err != nil || strings.HasPrefix(out, "44/") { // refused, or another namespace
			srv.removeSession(ss)
			return "", "", true
		}
		var m struct{ SID, PID string }
		if !strings.HasPrefix(out, "40{") || json.Unmarshal([]byte(out[2:]), &m) != nil || m.SID == "" || m.PID == "" {
			t.Fatalf("%q: answered %q", payload, out)
		}
		// The session's connection is lost: its socket is parked.
		ss.lose("closed")
		return m.SID, m.PID, false
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		sid, pid, _ := connect(t, nil) // a socket to recover, parked
		payload := strings.ReplaceAll(string(in), "PID", pid)
		got, gotPID, closed := connect(t, []byte(payload))
		if closed {
			return
		}
		if (got == sid) != (gotPID == pid) {
			// The same socket with a fresh pid happens only when events were lost (none
			// were); a new socket never has the parked one's pid.
			t.Fatalf("%q: sid %s pid %s (parked %s %s)", payload, got, gotPID, sid, pid)
		}
		if got == sid && !strings.Contains(payload, pid) {
			t.Fatalf("%q: recovered a socket it did not name", payload)
		}
	})
}
