package transfer_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/transfer"
)

func TestCheckName(t *testing.T) {
	for _, name := range []string{"a.txt", "report 2026 (final).pdf", ".bashrc", "ünïcode-ファイル.bin", "a..b", "...", strings.Repeat("x", 250)} {
		if err := transfer.CheckName(name); err != nil {
			t.Errorf("CheckName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{"", ".", "..", "../x", "/etc/passwd", "a/b", `a\b`, `..\x`, "C:/x", "x\x00y", "line\nbreak", "del\x7f", "\xff\xfe", strings.Repeat("x", 251)} {
		if err := transfer.CheckName(name); !errors.Is(err, transfer.ErrBadName) {
			t.Errorf("CheckName(%q) = %v, want ErrBadName", name, err)
		}
	}
}

// TestPlanBadNameInFolder: a name in a folder that no receiver would take stops the plan
// with one error that names the path and what is wrong with its part.
func TestPlanBadNameInFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tree")
	for _, n := range []string{"ok.txt", "new\nline.txt"} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := transfer.Plan([]string{dir})
	want := `transfer: bad file name "tree/new\nline.txt": its part "new\nline.txt": contains a control character`
	if !errors.Is(err, transfer.ErrBadName) || err.Error() != want {
		t.Fatalf("Plan: %v, want %s", err, want)
	}
}

// A large file arrives byte for byte, through NAME.part, and progress ends at its size.
func TestLargeFile(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	size := bigSize()
	want := randomFile(t, src, "big.bin", size, 1)

	var last transfer.Progress
	var calls, partial, allIn int
	s, run := pair(t,
		&transfer.SendOptions{Progress: func(p transfer.Progress) {
			last = p
			calls++
			switch {
			case p.Done || !p.ReceiverAcks:
			case p.Bytes > 0 && p.Bytes < size:
				partial++
			case p.Bytes == size:
				allIn++ // the receiver's got for the last byte, before its ok
			}
		}, ProgressInterval: time.Nanosecond},
		transfer.ReceiveOptions{Dir: out})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	rs, err := s.Send(ctx, []string{filepath.Join(src, "big.bin")})
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if len(rs) != 1 || rs[0].Name != "big.bin" || rs[0].Size != size || rs[0].Err != nil {
		t.Fatalf("send results: %+v", rs)
	}
	r := waitChan(t, run, "the receiver")
	if r.err != nil || len(r.results) != 1 || r.results[0].Err != nil {
		t.Fatalf("receive: %+v %v", r.results, r.err)
	}
	if got := fileSum(t, filepath.Join(out, "big.bin")); got != want {
		t.Fatal("received file differs from the sent one")
	}
	if names := listDir(t, out); !slices.Equal(names, []string{"big.bin"}) {
		t.Fatalf("out dir holds %v", names)
	}
	if !last.Done || last.Bytes != size || last.TotalBytes != size || last.TotalSize != size || last.Files != 1 || calls < 3 {
		t.Fatalf("last progress %+v after %d calls", last, calls)
	}
	// The receiver acknowledged its first write at once, and its last byte.
	if partial == 0 || allIn != 1 || !last.ReceiverAcks {
		t.Fatalf("confirmed progress: %d partial reports, %d with every byte in; last %+v", partial, allIn, last)
	}
	t.Logf("%d MiB in %v: %.1f MB/s", size>>20, last.Elapsed, float64(size)/last.Elapsed.Seconds()/1e6)
}

// Several files, one of them empty, go in one session.
func TestSeveralFiles(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	files := map[string]int64{"empty": 0, "one byte": 1, "chunk+1.bin": transfer.ChunkSize + 1, "über.dat": 300 << 10}
	sums := map[string][32]byte{}
	var paths []string
	seed := uint64(10)
	for name, size := range files {
		sums[name] = randomFile(t, src, name, size, seed)
		seed++
		paths = append(paths, filepath.Join(src, name))
	}
	var recvDone []string
	s, run := pair(t, nil, transfer.ReceiveOptions{Dir: out, Progress: func(p transfer.Progress) {
		if p.Done {
			recvDone = append(recvDone, p.Name)
		}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := s.Send(ctx, paths); err != nil {
		t.Fatalf("send: %v", err)
	}
	r := waitChan(t, run, "the receiver")
	if r.err != nil || len(r.results) != len(files) {
		t.Fatalf("receive: %+v %v", r.results, r.err)
	}
	for name := range files {
		if got := fileSum(t, filepath.Join(out, name)); got != sums[name] {
			t.Errorf("%s differs", name)
		}
	}
	if n := len(listDir(t, out)); n != len(files) {
		t.Fatalf("out dir holds %d entries, want %d", n, len(files))
	}
	if len(recvDone) != len(files) {
		t.Fatalf("receiver reported %v done", recvDone)
	}
}

// Without Overwrite an existing file is refused, early, and kept; with it, it is replaced.
func TestRefuseOverwrite(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	want := randomFile(t, src, "a.txt", 1<<20, 3)
	if err := os.WriteFile(filepath.Join(out, "a.txt"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, overwrite := range []bool{false, true} {
		s, run := pair(t, nil, transfer.ReceiveOptions{Dir: out, Overwrite: overwrite})
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		rs, err := s.Send(ctx, []string{filepath.Join(src, "a.txt")})
		cancel()
		r := waitChan(t, run, "the receiver")
		if names := listDir(t, out); !slices.Equal(names, []string{"a.txt"}) {
			t.Fatalf("overwrite %v: out dir holds %v", overwrite, names)
		}
		if overwrite {
			if err != nil || r.err != nil {
				t.Fatalf("overwrite: send %v, receive %v", err, r.err)
			}
			if fileSum(t, filepath.Join(out, "a.txt")) != want {
				t.Fatal("overwrite: file not replaced")
			}
			continue
		}
		var fe *transfer.FileError
		if !errors.As(err, &fe) || fe.Code != transfer.CodeExists || rs[0].Err == nil {
			t.Fatalf("send over an existing file: %v", err)
		}
		if !errors.As(r.err, &fe) || fe.Code != transfer.CodeExists {
			t.Fatalf("receive over an existing file: %v", r.err)
		}
		if b, _ := os.ReadFile(filepath.Join(out, "a.txt")); string(b) != "old" {
			t.Fatalf("existing file changed to %d bytes", len(b))
		}
	}
}

// A hostile sender's path names are refused one by one, nothing is written outside the
// directory (not even in a subdirectory of it), and the session goes on.
func TestPathTraversalRefused(t *testing.T) {
	parent := t.TempDir()
	out := filepath.Join(parent, "out")
	if err := os.MkdirAll(filepath.Join(out, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A symlink to outside: writing "link/x" or through it must not happen either.
	if err := os.Symlink(parent, filepath.Join(out, "link")); err != nil {
		t.Fatal(err)
	}
	h := newHostile(t, transfer.ReceiveOptions{Dir: out, Overwrite: true})
	data := []byte("hostile")
	deep := strings.Repeat("d/", transfer.MaxDepth+1) + "x"
	bad := []string{"../x", "/etc/passwd", "", ".", "..", `..\x`, "link/x", "link/a/x", "../out/x", "x\x00y", "/tmp/x",
		"a//b", "a/./b", "a/../b", "a/../../x", "a/b/", `a\b`, deep, "a/\x01", "fine.txt/x"}
	h.file("fine.txt", len(data), data, "")
	h.expect("ok", "")
	for _, name := range bad {
		h.file(name, len(data), data, "")
		if a := h.expect("error", transfer.CodeBadName); a["name"] != name {
			t.Fatalf("error answer %v for %q", a, name)
		}
	}
	// A folder's file: its path is kept, inside the directory.
	h.file("a/b/c.txt", len(data), data, "")
	h.expect("ok", "")
	h.json(map[string]any{"type": "done"})
	h.expect("done", "")
	_ = h.dc.Close() // the sender hangs up after the done
	r := waitChan(t, h.run, "the receiver")
	var fe *transfer.FileError
	if !errors.As(r.err, &fe) || fe.Code != transfer.CodeBadName || len(r.results) != len(bad)+2 {
		t.Fatalf("receive: %+v %v", r.results, r.err)
	}
	if names := listDir(t, parent); !slices.Equal(names, []string{"out"}) {
		t.Fatalf("parent holds %v", names)
	}
	if names := listDir(t, out); !slices.Equal(names, []string{"a", "fine.txt", "link"}) {
		t.Fatalf("out holds %v", names)
	}
	if names := listDir(t, filepath.Join(out, "a")); !slices.Equal(names, []string{"b"}) {
		t.Fatalf("out/a holds %v", names)
	}
	if b, err := os.ReadFile(filepath.Join(out, "a", "b", "c.txt")); err != nil || string(b) != "hostile" {
		t.Fatalf("out/a/b/c.txt: %q %v", b, err)
	}
}

// Lies about the hash or the size leave neither the file nor its .part.
func TestMismatchLeavesNothing(t *testing.T) {
	out := t.TempDir()
	h := newHostile(t, transfer.ReceiveOptions{Dir: out})
	data := []byte("hello, world")

	h.file("hash.txt", len(data), data, strings.Repeat("ab", 32))
	h.expect("error", transfer.CodeHash)
	h.file("badhex.txt", len(data), data, "not hex")
	h.expect("error", transfer.CodeHash)
	h.file("short.txt", len(data)+1, data, "")
	h.expect("error", transfer.CodeSize)
	// Too many bytes: refused as soon as they arrive; the rest of the file is ignored.
	h.json(map[string]any{"type": "file", "name": "long.txt", "size": 3})
	h.data(data)
	h.expect("error", transfer.CodeSize)
	h.data(data)
	h.json(map[string]any{"type": "end", "sha256": ""})
	h.file("fine.txt", len(data), data, "")
	h.expect("ok", "")
	h.json(map[string]any{"type": "done"})
	h.expect("done", "")
	_ = h.dc.Close() // the sender hangs up after the done
	r := waitChan(t, h.run, "the receiver")
	if r.err == nil || len(r.results) != 5 {
		t.Fatalf("receive: %+v %v", r.results, r.err)
	}
	if names := listDir(t, out); !slices.Equal(names, []string{"fine.txt"}) {
		t.Fatalf("out holds %v", names)
	}
}

// A sender that goes away in the middle of a file leaves nothing behind.
func TestInterruptedLeavesNothing(t *testing.T) {
	out := t.TempDir()
	started := make(chan struct{}, 1)
	h := newHostile(t, transfer.ReceiveOptions{Dir: out, Progress: func(transfer.Progress) {
		select {
		case started <- struct{}{}:
		default:
		}
	}})
	h.json(map[string]any{"type": "file", "name": "cut.bin", "size": 1 << 20})
	h.data(make([]byte, 1000))
	waitChan(t, started, "the file to start")
	if names := listDir(t, out); !slices.Equal(names, []string{"cut.bin.part"}) {
		t.Fatalf("while receiving, out holds %v", names)
	}
	if err := h.dc.Close(); err != nil {
		t.Fatal(err)
	}
	r := waitChan(t, h.run, "the receiver")
	if !errors.Is(r.err, transfer.ErrClosed) || len(r.results) != 1 || !errors.Is(r.results[0].Err, transfer.ErrClosed) {
		t.Fatalf("receive: %+v %v", r.results, r.err)
	}
	if names := listDir(t, out); len(names) != 0 {
		t.Fatalf("out holds %v", names)
	}
}

// The receiver gives up on messages out of place.
func TestProtocolViolations(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(h *hostile)
	}{
		{"data before file", func(h *hostile) { h.data([]byte("x")) }},
		{"end before file", func(h *hostile) { h.json(map[string]any{"type": "end", "sha256": ""}) }},
		{"not json", func(h *hostile) { _ = h.dc.SendText("{") }},
		{"no type", func(h *hostile) { h.json(map[string]any{"name": "a"}) }},
		{"negative size", func(h *hostile) { h.json(map[string]any{"type": "file", "name": "a", "size": -1}) }},
		{"fractional size", func(h *hostile) { h.json(map[string]any{"type": "file", "name": "a", "size": 1.5}) }},
		{"no size", func(h *hostile) { h.json(map[string]any{"type": "file", "name": "a"}) }},
		{"file in file", func(h *hostile) {
			h.json(map[string]any{"type": "file", "name": "a", "size": 1})
			h.json(map[string]any{"type": "file", "name": "b", "size": 1})
		}},
		{"done in file", func(h *hostile) {
			h.json(map[string]any{"type": "file", "name": "a", "size": 1})
			h.json(map[string]any{"type": "done"})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			h := newHostile(t, transfer.ReceiveOptions{Dir: out})
			tc.send(h)
			h.expect("error", transfer.CodeProtocol)
			if r := waitChan(t, h.run, "the receiver"); !errors.Is(r.err, transfer.ErrProtocol) {
				t.Fatalf("receive: %v", r.err)
			}
			if names := listDir(t, out); len(names) != 0 {
				t.Fatalf("out holds %v", names)
			}
		})
	}
}
