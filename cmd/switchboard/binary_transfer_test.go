package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/internal/transfer"
	"github.com/switchboard-rtc/switchboard/internal/wormhole"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// TestBinaryTransfers: serve, send and recv as separate processes of the real binary, with
// codes: a file (and a third process with a wrong code, refused, while the right receiver
// gets the file), a folder tree meeting a hostile receiving folder, names no receiver may
// take (refused by send; from a hostile Go sender, by recv), standard input to standard
// output, a text, and relay only through the embedded TURN.
func TestBinaryTransfers(t *testing.T) {
	url := startServe(t, "--turn=false")

	t.Run("file and a wrong code", func(t *testing.T) {
		src, out := t.TempDir(), t.TempDir()
		want := writeRandom(t, filepath.Join(src, "x.dat"), 1<<20)
		ctx, cancel := context.WithTimeout(context.Background(), transferWait)
		defer cancel()
		send, code, lines := startCLISend(t, ctx, url, nil, filepath.Join(src, "x.dat"))
		wrong := wrongCodeOf(t, code)
		bad := startCLIRecv(t, ctx, url, wrong, "--out", out)
		if err := bad.wait(t, "recv with a wrong code"); err == nil {
			t.Fatalf("recv with a wrong code succeeded:\n%s", bad.stderr.String())
		}
		if l, w := errorLine(t, bad, "recv with a wrong code"), "switchboard: recv: "+errWrongCode.Error(); l != w {
			t.Fatalf("recv with a wrong code: %q, want %q", l, w)
		}
		waitLine(t, lines, "someone tried a wrong code (1 of 3)")
		recv := startCLIRecv(t, ctx, url, code, "--out", out)
		waitBoth(t, send, recv)
		if sumFile(t, filepath.Join(out, "x.dat")) != want {
			t.Fatal("x.dat differs")
		}
		if !strings.Contains(recv.stderr.String(), "over QUIC (direct)") {
			t.Fatalf("recv did not go over QUIC:\n%s", recv.stderr.String())
		}
		if got := names(t, out); len(got) != 1 {
			t.Fatalf("the receiving folder holds %v, want x.dat alone", got)
		}
	})

	t.Run("folders into a hostile folder", func(t *testing.T) {
		src, out, outside := t.TempDir(), t.TempDir(), t.TempDir()
		good := map[string][32]byte{
			"photos/a.jpg":          writeRandom(t, filepath.Join(src, "photos", "a.jpg"), 200<<10),
			"photos/ü ñ 日本 -x.txt":  writeRandom(t, filepath.Join(src, "photos", "ü ñ 日本 -x.txt"), 10),
			"photos/.hidden":        writeRandom(t, filepath.Join(src, "photos", ".hidden"), 0),
			"photos/sub/dir/…/deep": writeRandom(t, filepath.Join(src, "photos", "sub", "dir", "…", "deep"), 3000),
		}
		writeRandom(t, filepath.Join(src, "photos", "2026", "b.jpg"), 100<<10)
		writeRandom(t, filepath.Join(src, "photos", "2026", "dec", "c.txt"), 1)
		writeRandom(t, filepath.Join(src, "docs", "d.txt"), 5)
		if err := os.Symlink("/etc/passwd", filepath.Join(src, "photos", "link")); err != nil {
			t.Fatal(err)
		}
		// On the receiving side: photos/2026 a link out of the folder, docs a file.
		if err := os.Mkdir(filepath.Join(out, "photos"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(out, "photos", "2026")); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, "docs"), []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), transferWait)
		defer cancel()
		send, code, _ := startCLISend(t, ctx, url, nil, filepath.Join(src, "photos"), filepath.Join(src, "docs"))
		recv := startCLIRecv(t, ctx, url, code, "--out", out)
		for _, c := range []struct {
			cmd  *command
			name string
		}{{recv, "recv"}, {send, "send"}} {
			if err := c.cmd.wait(t, c.name); err == nil {
				t.Fatalf("%s succeeded although 3 files were refused:\n%s", c.name, c.cmd.stderr.String())
			}
			if l, w := errorLine(t, c.cmd, c.name), "switchboard: "+c.name+": 3 of 7 file(s) not transferred (see above)"; l != w {
				t.Fatalf("%s: %q, want %q\n%s", c.name, l, w, c.cmd.stderr.String())
			}
			for _, line := range []string{
				"photos/2026/b.jpg: refused: not a plain file name (photos/2026 goes through photos/2026, a link)",
				"photos/2026/dec/c.txt: refused: not a plain file name (photos/2026/dec goes through photos/2026, a link)",
				"docs/d.txt: refused: not a plain file name (docs is a file, not a folder)",
			} {
				if !strings.Contains(c.cmd.stderr.String(), line+"\n") {
					t.Fatalf("%s did not say %q:\n%s", c.name, line, c.cmd.stderr.String())
				}
			}
		}
		if !strings.Contains(send.stderr.String(), "photos/link: left out") {
			t.Fatalf("send did not say it left the link out:\n%s", send.stderr.String())
		}
		for name, sum := range good {
			if sumFile(t, filepath.Join(out, filepath.FromSlash(name))) != sum {
				t.Fatalf("%s differs", name)
			}
		}
		if got := names(t, outside); len(got) != 0 {
			t.Fatalf("written outside the receiving folder: %v", got)
		}
		if b, err := os.ReadFile(filepath.Join(out, "docs")); err != nil || string(b) != "mine" {
			t.Fatalf("the receiver's file docs: %q, %v", b, err)
		}
		want := []string{"docs", "photos/.hidden", "photos/2026", "photos/a.jpg", "photos/sub/dir/…/deep", "photos/ü ñ 日本 -x.txt"}
		if got := names(t, out); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("the receiving folder holds %q, want %q", got, want)
		}
	})

	t.Run("names no receiver takes", func(t *testing.T) {
		deep := strings.Repeat("d/", 32) + "f.txt"
		for _, c := range []struct{ name, why string }{
			{`back\slash.txt`, "contains a path separator"},
			{"new\nline.txt", "contains a control character"},
			{"bell\a.txt", "contains a control character"},
			{"\xff\xfe.txt", "not UTF-8"},
			{strings.Repeat("n", 251), "longer than 250 bytes"},
			{deep, "more than 32 folders deep"},
		} {
			root := t.TempDir()
			writeRandom(t, filepath.Join(root, "tree", "ok.txt"), 10)
			writeRandom(t, filepath.Join(root, "tree", filepath.FromSlash(c.name)), 10)
			ctx, cancel := context.WithTimeout(context.Background(), transferWait)
			send := startCLI(t, ctx, nil, "send", "--server", url, "--loopback", filepath.Join(root, "tree"))
			err := send.wait(t, "send")
			cancel()
			if err == nil {
				t.Fatalf("%q: send accepted it:\n%s", c.name, send.stderr.String())
			}
			if l := errorLine(t, send, "send"); !strings.HasPrefix(l, "switchboard: send: transfer: bad file name ") || !strings.HasSuffix(l, c.why) {
				t.Fatalf("%q: %q, want the bad name and %q", c.name, l, c.why)
			}
			if strings.Contains(send.stdout.String(), "switchboard recv") {
				t.Fatalf("%q: send offered a code:\n%s", c.name, send.stdout.String())
			}
		}
	})

	t.Run("a hostile sender", func(t *testing.T) {
		// What the send command never sends, from a Go peer speaking the protocol itself to
		// recv --room: each name refused (bad-name), nothing written in or out of the folder.
		hostile := []string{
			"../evil.txt", "/tmp/abs-evil.txt", "a/../../evil.txt", "a//b.txt", "a/b/", "..", ".",
			`..\evil.txt`, strings.Repeat("d/", 33) + "f", strings.Repeat("a/", 2100) + "f",
		}
		parent := t.TempDir()
		out := filepath.Join(parent, "out")
		ctx, cancel := context.WithTimeout(context.Background(), transferWait)
		defer cancel()
		recv := startCLIRecv(t, ctx, url, "--room", "hostile", "--out", out)
		answers := make(chan map[string]any, 2*len(hostile))
		opened := make(chan *webrtc.DataChannel, 1)
		testserver.DialPeer(t, url, "hostile", sdk.Options{Meta: map[string]string{"role": "send"}, OnPeer: func(p *sdk.Peer) {
			proto := transfer.Protocol
			dc, err := p.CreateDataChannel(transfer.Label, &webrtc.DataChannelInit{Protocol: &proto})
			if err != nil {
				t.Error(err)
				return
			}
			dc.OnOpen(func() { opened <- dc })
			dc.OnMessage(func(m webrtc.DataChannelMessage) {
				var a map[string]any
				if json.Unmarshal(m.Data, &a) == nil {
					answers <- a
				}
			})
		}}, transferWait)
		dc := testserver.Recv(t, opened, transferWait, "the channel to recv")
		sum := sha256.Sum256([]byte("pwn"))
		for _, name := range hostile {
			for _, m := range []any{
				map[string]any{"type": "file", "name": name, "size": 3},
				[]byte("pwn"),
				map[string]any{"type": "end", "sha256": hex.EncodeToString(sum[:])},
			} {
				var err error
				if b, ok := m.([]byte); ok {
					err = dc.Send(b)
				} else {
					j, _ := json.Marshal(m)
					err = dc.SendText(string(j))
				}
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := dc.SendText(`{"type":"done"}`); err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			a := testserver.Recv(t, answers, transferWait, "recv's answers")
			if a["type"] == "done" {
				if i != len(hostile) {
					t.Fatalf("recv answered %d files, want %d", i, len(hostile))
				}
				break
			}
			if i >= len(hostile) || a["type"] != "error" || a["code"] != transfer.CodeBadName || a["name"] != hostile[i] {
				t.Fatalf("answer %d: %v, want bad-name for %.40q", i, a, hostile[i])
			}
		}
		_ = dc.Close()
		if err := recv.wait(t, "recv"); err == nil {
			t.Fatalf("recv succeeded:\n%s", recv.stderr.String())
		}
		want := fmt.Sprintf("switchboard: recv: %d of %d file(s) not transferred (see above)", len(hostile), len(hostile))
		if l := errorLine(t, recv, "recv"); l != want {
			t.Fatalf("recv: %q, want %q", l, want)
		}
		if n := strings.Count(recv.stderr.String(), ": refused: not a plain file name ("); n != len(hostile) {
			t.Fatalf("recv gave %d reasons, want %d:\n%s", n, len(hostile), recv.stderr.String())
		}
		if got := names(t, parent); len(got) != 0 {
			t.Fatalf("written: %v", got)
		}
		if _, err := os.Stat("/tmp/abs-evil.txt"); !os.IsNotExist(err) {
			t.Fatalf("/tmp/abs-evil.txt: %v", err)
		}
	})

	t.Run("standard input to standard output", func(t *testing.T) {
		data := make([]byte, 300<<10)
		for i := range data {
			data[i] = byte(i*7 + i>>9)
		}
		ctx, cancel := context.WithTimeout(context.Background(), transferWait)
		defer cancel()
		send, code, _ := startCLISend(t, ctx, url, bytes.NewReader(data), "-", "--name", "dump.bin")
		recv := startCLIRecv(t, ctx, url, code, "--out", "-")
		waitBoth(t, send, recv)
		if got := recv.stdout.String(); got != string(data) {
			t.Fatalf("recv --out - wrote %d bytes, want the %d of standard input", len(got), len(data))
		}
	})

	t.Run("text", func(t *testing.T) {
		out := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), transferWait)
		defer cancel()
		send, code, _ := startCLISend(t, ctx, url, nil, "--text", "meet at 7, gate B")
		recv := startCLIRecv(t, ctx, url, code, "--out", out)
		waitBoth(t, send, recv)
		if got := recv.stdout.String(); got != "meet at 7, gate B\n" {
			t.Fatalf("recv printed %q", got)
		}
		if got := names(t, out); len(got) != 0 {
			t.Fatalf("a text wrote %v", got)
		}
	})

	t.Run("relay only", func(t *testing.T) {
		url := startServe(t, "--turn-allow-peer", "127.0.0.0/8") // relays to loopback peers
		src, out := t.TempDir(), t.TempDir()
		want := writeRandom(t, filepath.Join(src, "x.dat"), 1<<20)
		ctx, cancel := context.WithTimeout(context.Background(), transferWait)
		defer cancel()
		send, code, _ := startCLISend(t, ctx, url, nil, "--relay", filepath.Join(src, "x.dat"))
		recv := startCLIRecv(t, ctx, url, code, "--relay", "--out", out)
		waitBoth(t, send, recv)
		if sumFile(t, filepath.Join(out, "x.dat")) != want {
			t.Fatal("x.dat differs")
		}
		if !strings.Contains(recv.stderr.String(), "over QUIC (relay)") {
			t.Fatalf("not through the relay:\n%s", recv.stderr.String())
		}
	})
}

// wrongCodeOf parses code and returns it with its last word changed.
func wrongCodeOf(t *testing.T, code string) string {
	t.Helper()
	c, err := wormhole.ParseCode(code)
	if err != nil {
		t.Fatalf("send printed %q: %v", code, err)
	}
	return wrongCode(c)
}

// names lists what dir holds, files and links (not following them), as sorted slash paths.
func names(t *testing.T, dir string) []string {
	t.Helper()
	var got []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, rerr := filepath.Rel(dir, p)
			if rerr != nil {
				return rerr
			}
			got = append(got, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}
