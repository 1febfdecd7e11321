// Tests of Switchboard's patches (PATCHES.md); each fails without its patch. Run from
// Switchboard's root: go test -race -count=1 -run '^TestPatch' github.com/pion/turn/v5/...

package proto

import (
	"bytes"
	"net"
	"runtime"
	"testing"
	"time"
)

// TestPatchSTUNConnReadsWithoutAllocating (patch 3): ChannelData frames read from a TCP
// connection come out whole and in order, and reading them allocates nothing once the
// connection's buffer has grown.
func TestPatchSTUNConnReadsWithoutAllocating(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	writer, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = writer.Close() }()
	reader, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = reader.Close() }()

	// Frames of odd sizes (padded on the wire), sent ahead in one stream: reads of 1,600
	// bytes then end inside frames.
	const frames = 700
	sizes := []int{1201, 37, 1, 1200, 803}
	var stream []byte
	for i := range frames {
		cd := &ChannelData{Number: MinChannelNumber + ChannelNumber(i%7), Data: bytes.Repeat([]byte{byte(i)}, sizes[i%len(sizes)])}
		cd.Encode()
		stream = append(stream, cd.Raw...)
	}
	go func() { _, _ = writer.Write(stream) }()

	conn := NewSTUNConn(reader)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1600)
	next := 0
	read := func() {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			t.Fatalf("frame %d: %v", next, err)
		}
		cd := ChannelData{Raw: buf[:n]}
		err = cd.Decode()
		if err != nil || cd.Number != MinChannelNumber+ChannelNumber(next%7) || len(cd.Data) != sizes[next%len(sizes)] ||
			bytes.Count(cd.Data, []byte{byte(next)}) != len(cd.Data) {
			t.Fatalf("frame %d: %d bytes, channel %v, %d of data (%v)", next, n, cd.Number, len(cd.Data), err)
		}
		next++
	}
	for range 50 {
		read()
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for next < frames {
		read()
	}
	runtime.ReadMemStats(&after)
	// Upstream allocated on most reads (a copy of the bytes read, and a new array each time
	// buff, whose start moved on with every frame, ran out of room): hundreds here.
	if n := after.Mallocs - before.Mallocs; n > 10 {
		t.Errorf("%d allocations (%d bytes) reading %d frames, want none", n, after.TotalAlloc-before.TotalAlloc, frames-50)
	}
}
