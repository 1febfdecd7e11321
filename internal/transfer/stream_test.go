package transfer

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

func TestFrames(t *testing.T) {
	var b []byte
	b = appendFrame(b, frameOpen, []byte(Protocol))
	b = appendFrame(b, frameText, []byte(`{"type":"done"}`))
	b = appendFrame(b, frameBinary, nil)
	b = appendFrame(b, frameBinary, bytes.Repeat([]byte{7}, ChunkSize))
	r := bufio.NewReader(bytes.NewReader(b))
	for i, want := range []struct {
		kind byte
		n    int
	}{{frameOpen, len(Protocol)}, {frameText, 15}, {frameBinary, 0}, {frameBinary, ChunkSize}} {
		kind, p, _, err := readFrame(r, false)
		if err != nil || kind != want.kind || len(p) != want.n {
			t.Fatalf("frame %d: kind %d, %d bytes, %v; want kind %d, %d bytes", i, kind, len(p), err, want.kind, want.n)
		}
	}
	if _, _, _, err := readFrame(r, false); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
	for name, bad := range map[string][]byte{
		"unknown kind":   {9, 0, 0, 0, 0},
		"too long":       {frameBinary, 0, 0x10, 0, 1},
		"binary > chunk": appendFrame(nil, frameBinary, make([]byte, ChunkSize+1)),
		"text > max":     appendFrame(nil, frameText, make([]byte, MaxTextFrame+1)),
		"open > max":     appendFrame(nil, frameOpen, make([]byte, MaxTextFrame+1)),
		"cut header":     {frameText, 0},
		"cut payload":    {frameText, 0, 0, 0, 4, 'a'},
	} {
		if _, _, _, err := readFrame(bufio.NewReader(bytes.NewReader(bad)), false); !errors.Is(err, ErrFrame) {
			t.Errorf("%s: %v, want ErrFrame", name, err)
		}
	}
}

// TestFrameLimitBeforeAllocation: a header claiming a huge payload is refused before
// anything of its size is allocated.
func TestFrameLimitBeforeAllocation(t *testing.T) {
	h := []byte{frameBinary, 0x40, 0, 0, 0} // 1 GiB
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, _, err := readFrame(bufio.NewReader(bytes.NewReader(h)), true)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrFrame) {
		t.Fatalf("a 1 GiB frame: %v, want ErrFrame", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("reading a refused header allocated %d bytes", grew)
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add(appendFrame(nil, frameOpen, []byte(Protocol)))
	f.Add(appendFrame(appendFrame(nil, frameText, []byte(`{"type":"end"}`)), frameBinary, []byte{1, 2, 3}))
	f.Add([]byte{frameBinary, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		var total int
		for {
			kind, p, pooled, err := readFrame(r, true)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrFrame) {
					t.Fatalf("error %v is neither io.EOF nor ErrFrame", err)
				}
				return
			}
			if kind > frameBinary || len(p) > maxPayload(kind) {
				t.Fatalf("accepted kind %d with %d bytes", kind, len(p))
			}
			total += frameHeader + len(p)
			if total > len(b) {
				t.Fatalf("read %d bytes of frames from %d", total, len(b))
			}
			if (pooled != nil) != (kind == frameBinary && len(p) > 0) {
				t.Fatalf("a frame of kind %d with %d bytes pooled: %v", kind, len(p), pooled != nil)
			}
			if pooled != nil {
				framePool.Put(pooled)
			}
		}
	})
}
