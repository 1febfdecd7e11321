package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// TestSendRecvPath: send and recv go over QUIC when both can, say so on stderr, and fall back
// to the data channel when either side says --no-quic; the file arrives intact every way.
func TestSendRecvPath(t *testing.T) {
	url := testserver.Start(t, nil)
	for _, tc := range []struct {
		name             string
		sendArgs, rcArgs []string
		want             string
	}{
		{"both quic", nil, nil, "over QUIC (direct)"},
		{"recv without", nil, []string{"--no-quic"}, "over the data channel"},
		{"send without", []string{"--no-quic"}, nil, "over the data channel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, out := t.TempDir(), t.TempDir()
			size := 8 << 20
			if raceEnabled {
				size = 2 << 20
			}
			want := writeRandom(t, filepath.Join(src, "f.bin"), size)
			ctx, cancel := context.WithTimeout(context.Background(), transferWait)
			defer cancel()
			room := strings.ReplaceAll(tc.name, " ", "-")
			recv := start(t, ctx, recvFiles, append([]string{"--room", room, "--out", out, "--server", url, "--loopback"}, tc.rcArgs...)...)
			send := start(t, ctx, sendFiles, append([]string{"--room", room, "--server", url, "--loopback", filepath.Join(src, "f.bin")}, tc.sendArgs...)...)
			bothDone(t, send, recv, filepath.Join(out, "f.bin"), want)
			for who, s := range map[string]string{"send": send.stderr.String(), "recv": recv.stderr.String()} {
				line := lineWith(s, map[string]string{"send": "sending to ", "recv": "receiving from "}[who])
				if !strings.HasSuffix(line, tc.want) {
					t.Errorf("%s's path line %q does not end with %q", who, line, tc.want)
				}
			}
		})
	}
}

// lineWith returns the first line of s that starts with prefix.
func lineWith(s, prefix string) string {
	for l := range strings.SplitSeq(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// silentSenders joins n WebSocket clients to room that announce themselves as QUIC senders
// and then answer nothing (their peer connection never fails, their QUIC never comes up).
func silentSenders(t *testing.T, ctx context.Context, url, room string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	for range n {
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		join := `{"type":"join","room":"` + room + `","name":"fake","meta":{"role":"send","quic":1}}`
		if err := c.Write(ctx, websocket.MessageText, []byte(join)); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { // reads (and drops) until the test ends
			defer wg.Done()
			for {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
			}
		}()
		t.Cleanup(func() { _ = c.Close(websocket.StatusNormalClosure, "") })
	}
}

// TestRecvQUICSetupsBounded: a room full of self-declared QUIC senders that never answer
// makes recv run at most quicMaxSetups QUIC setups at once, each freed at its limit from its
// start; a real sender then still gets its file through (over QUIC: the slots are free).
func TestRecvQUICSetupsBounded(t *testing.T) {
	const fakes = quicMaxSetups + 3
	got := make(chan *quicSetups, 1)
	onQUICSetups = func(s *quicSetups) {
		if s.limit == quicRecvLimit { // recv's
			s.limit = 2 * time.Second
			got <- s
		}
	}
	t.Cleanup(func() { onQUICSetups = nil })
	url := testserver.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), transferWait)
	defer cancel()
	silentSenders(t, ctx, url, "crowd", fakes)
	src, out := t.TempDir(), t.TempDir()
	want := writeRandom(t, filepath.Join(src, "f.bin"), 1<<20)
	recv := start(t, ctx, recvFiles, "--room", "crowd", "--out", out, "--server", url, "--loopback")
	s := waitChan(t, got, "recv's QUIC setups")
	// Every fake has had its setup or its refusal; then every setup ends at its limit.
	for {
		active, peak, refused, changed := s.state()
		if peak > quicMaxSetups {
			t.Fatalf("%d QUIC setups at once, at most %d allowed", peak, quicMaxSetups)
		}
		if active == 0 && peak+refused >= fakes {
			if peak != quicMaxSetups || refused != fakes-quicMaxSetups {
				t.Fatalf("peak %d, refused %d; want %d, %d", peak, refused, quicMaxSetups, fakes-quicMaxSetups)
			}
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("recv's setups: %d running, peak %d, refused %d when the test timed out\n%s", active, peak, refused, recv.stderr.String())
		}
	}
	send := start(t, ctx, sendFiles, "--room", "crowd", "--server", url, "--loopback", filepath.Join(src, "f.bin"))
	bothDone(t, send, recv, filepath.Join(out, "f.bin"), want)
	if line := lineWith(send.stderr.String(), "sending to "); !strings.HasSuffix(line, "over QUIC (direct)") {
		t.Errorf("send's path line %q: want QUIC once the fakes' setups are freed", line)
	}
}

// waitChan returns the next value of ch, failing the test after transferWait.
func waitChan[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(transferWait):
		t.Fatalf("no %s within %v", what, transferWait)
	}
	var zero T
	return zero
}

// TestQUICReason: the path line's reason says what happened, not always "none within 5s".
func TestQUICReason(t *testing.T) {
	left := fmt.Errorf("%w with p1: %w", sdk.ErrQUIC, sdk.ErrPeerClosed)
	bad := fmt.Errorf("%w with p1: %w: a hello without ufrag", sdk.ErrQUIC, sdk.ErrQUICSignal)
	timedOut := fmt.Errorf("%w with p1: %w", sdk.ErrQUIC, context.Canceled)
	for _, tc := range []struct {
		a    quicAttempt
		err  error
		want string
	}{
		{quicAttempt{err: left, cause: errors.New("none within 5s of the peer connection")}, left, "the receiver left"},
		{quicAttempt{err: bad}, bad, "the receiver's QUIC exchange was malformed"},
		{quicAttempt{err: timedOut, cause: errors.New("none within 12s")}, timedOut, "none within 12s"},
		{quicAttempt{}, fmt.Errorf("transfer: open stream: %w", context.DeadlineExceeded), "its stream did not open in time"},
	} {
		if got := quicReason(&tc.a, tc.err); got != tc.want {
			t.Errorf("quicReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// bothDone waits for send and recv to succeed and checks the received file's SHA-256.
func bothDone(t *testing.T, send, recv *command, path string, want [32]byte) {
	t.Helper()
	if err := send.wait(t, "send"); err != nil {
		t.Fatalf("send: %v\n%s", err, send.stderr.String())
	}
	if err := recv.wait(t, "recv"); err != nil {
		t.Fatalf("recv: %v\n%s", err, recv.stderr.String())
	}
	if sumFile(t, path) != want {
		t.Fatalf("%s differs", filepath.Base(path))
	}
}
