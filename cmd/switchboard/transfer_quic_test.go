package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
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
			if err := send.wait(t, "send"); err != nil {
				t.Fatalf("send: %v\n%s", err, send.stderr.String())
			}
			if err := recv.wait(t, "recv"); err != nil {
				t.Fatalf("recv: %v\n%s", err, recv.stderr.String())
			}
			if sumFile(t, filepath.Join(out, "f.bin")) != want {
				t.Fatal("f.bin differs")
			}
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
