package mediafile

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// vp8Stream is 10 VP8 frames of 1-3 packets each, 3000 ticks apart, with sequence numbers
// that wrap; frame k is 3 packets when k is even.
func vp8Stream(t *testing.T, startSeq uint16) (frames [][]byte, pkts []*rtp.Packet) {
	t.Helper()
	p := rtp.NewPacketizer(1200, 96, 1, &codecs.VP8Payloader{EnablePictureID: true}, rtp.NewFixedSequencer(startSeq), 90000)
	for k := range 10 {
		size := 500
		if k%2 == 0 {
			size = 3000
		}
		f := vp8Frame(k, size, true)
		frames = append(frames, f)
		pkts = append(pkts, p.Packetize(f, 3000)...)
	}
	return frames, pkts
}

// framesOf returns the index of the frame each packet belongs to.
func framesOf(pkts []*rtp.Packet) []int {
	var idx []int
	k := 0
	for i, p := range pkts {
		if i > 0 && p.Timestamp != pkts[i-1].Timestamp {
			k++
		}
		idx = append(idx, k)
	}
	return idx
}

func assemble(t *testing.T, window int, maxWait uint32, pkts []*rtp.Packet, flush bool) ([][]byte, int64) {
	t.Helper()
	var out [][]byte
	a := newAssembler(func() rtp.Depacketizer { return &codecs.VP8Packet{} }, window, maxWait, func(f []byte, _ uint32) error {
		out = append(out, slices.Clone(f))
		return nil
	})
	for _, p := range pkts {
		if err := a.push(p); err != nil {
			t.Fatal(err)
		}
	}
	if flush {
		if err := a.flush(); err != nil {
			t.Fatal(err)
		}
	}
	return out, a.lost
}

func TestAssembler(t *testing.T) {
	frames, pkts := vp8Stream(t, 65530)
	of := framesOf(pkts)
	first := func(k int) int { return slices.Index(of, k) }
	last := func(k int) int { return first(k) + 2 } // even frames have 3 packets
	without := func(drop ...int) []*rtp.Packet {
		var out []*rtp.Packet
		for i, p := range pkts {
			if !slices.Contains(drop, i) {
				out = append(out, p)
			}
		}
		return out
	}
	all := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	allBut := func(k ...int) []int {
		var out []int
		for _, i := range all {
			if !slices.Contains(k, i) {
				out = append(out, i)
			}
		}
		return out
	}
	swapped := slices.Clone(pkts)
	for i := 1; i+1 < len(swapped); i += 3 {
		swapped[i], swapped[i+1] = swapped[i+1], swapped[i]
	}
	var dups []*rtp.Packet
	for _, p := range pkts {
		dups = append(dups, p, p)
	}
	// Padding: an empty payload with its own sequence number, between frames, as browsers
	// send it; every packet after it moves up by one.
	var padded []*rtp.Packet
	for i, p := range pkts {
		q := p.Clone()
		if i >= 4 {
			q.SequenceNumber++
		}
		padded = append(padded, q)
		if i == 3 && p.Marker {
			padded = append(padded, &rtp.Packet{Header: rtp.Header{SequenceNumber: p.SequenceNumber + 1, Timestamp: p.Timestamp, Padding: true}})
		}
	}
	if len(padded) != len(pkts)+1 {
		t.Fatal("no padding packet inserted")
	}
	_, restarted := vp8Stream(t, 1000) // the sender starts over with other sequence numbers
	for _, p := range restarted {
		p.Timestamp += 1 << 20
	}

	for _, tc := range []struct {
		name   string
		window int
		pkts   []*rtp.Packet
		flush  bool
		want   []int
		lost   int64
	}{
		{"in order", 64, pkts, true, all, 0},
		{"reordered", 64, swapped, true, all, 0},
		{"duplicated", 64, dups, true, all, 0},
		{"padding", 64, padded, true, all, 0},
		{"middle packet lost", 64, without(first(2) + 1), true, allBut(2), 1},
		{"marker packet lost", 64, without(last(4)), true, allBut(4), 1},
		{"head packet lost", 64, without(first(6)), true, allBut(6), 1},
		{"two frames lost", 64, without(first(1), first(8)+1), true, allBut(1, 8), 2},
		{"ends inside a frame", 64, pkts[:last(8)], true, allBut(8, 9), 0},
		{"frames larger than the window", 2, pkts, true, all, 0},
		{"loss with a small window", 2, without(first(2) + 1), true, allBut(2), 1},
		// A frame is out as soon as its last packet is in (samplebuilder waits for the
		// next one), and a gap holds the frames behind it no longer than maxWait.
		{"no flush", 64, pkts, false, all, 0},
		{"no flush, gap", 64, without(first(2) + 1), false, allBut(2), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, lost := assemble(t, tc.window, 9000, tc.pkts, tc.flush) // three frames
			var want [][]byte
			for _, k := range tc.want {
				want = append(want, frames[k])
			}
			if !framesEqual(got, want) || lost != tc.lost {
				t.Fatalf("got %s, lost %d; want frames %v, lost %d", describe(got, frames), lost, tc.want, tc.lost)
			}
		})
	}

	t.Run("sender restart", func(t *testing.T) {
		got, _ := assemble(t, 64, 9000, append(slices.Clone(pkts), restarted...), true)
		if len(got) != 20 || !framesEqual(got[:10], frames) || !framesEqual(got[10:], frames) {
			t.Fatalf("got %s", describe(got, frames))
		}
	})

	t.Run("a gap is waited for only maxWait", func(t *testing.T) {
		// A long maxWait holds every frame after the gap (until a flush).
		got, _ := assemble(t, 64, 90000, without(first(2)+1), false)
		if !framesEqual(got, [][]byte{frames[0], frames[1]}) {
			t.Fatalf("got %s", describe(got, frames))
		}
	})
}

func framesEqual(a, b [][]byte) bool {
	return slices.EqualFunc(a, b, bytes.Equal)
}

func describe(got, frames [][]byte) string {
	var idx []string
	for _, g := range got {
		k := slices.IndexFunc(frames, func(f []byte) bool { return bytes.Equal(f, g) })
		idx = append(idx, fmt.Sprint(k))
	}
	return fmt.Sprintf("frames %v", idx)
}
