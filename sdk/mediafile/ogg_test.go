package mediafile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
)

func TestOpusSamples(t *testing.T) {
	for _, tc := range []struct {
		pkt  []byte
		want int
	}{
		{[]byte{0 << 3}, 480},        // SILK NB 10 ms
		{[]byte{3 << 3}, 2880},       // SILK NB 60 ms
		{[]byte{13 << 3}, 960},       // Hybrid 20 ms
		{[]byte{16 << 3}, 120},       // CELT 2.5 ms
		{[]byte{31<<3 | 0x04}, 960},  // CELT 20 ms stereo
		{[]byte{31<<3 | 1}, 1920},    // two frames
		{[]byte{31<<3 | 2, 0}, 1920}, // two frames, different sizes
		{[]byte{31<<3 | 3, 6}, 5760}, // six 20 ms frames: 120 ms, the most allowed
		{[]byte{3<<3 | 3, 3}, 0},     // three 60 ms frames: too long
		{[]byte{31<<3 | 3, 0}, 0},    // code 3 with no frames
		{[]byte{31<<3 | 3}, 0},       // code 3 without its count byte
		{nil, 0},
	} {
		got, err := opusSamples(tc.pkt)
		if tc.want == 0 {
			if err == nil {
				t.Errorf("%x: %d samples, want an error", tc.pkt, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%x: %d, %v; want %d", tc.pkt, got, err, tc.want)
		}
	}
}

// TestOggSourceSplitsPages reads a hand-made file the way encoders write them: many packets
// per page, a packet of exactly 510 bytes (a 0 lacing value ends it), a packet continued on
// the next page, a malformed packet, and a second logical stream interleaved.
func TestOggSourceSplitsPages(t *testing.T) {
	p := []([]byte){
		opusPacket(1, 100, false),
		opusPacket(2, 300, true),
		opusPacket(3, 510, false),
		opusPacket(4, 600, false),
		opusPacket(5, 40, false),
	}
	const serial, other = 7, 99
	tags := append([]byte("OpusTags"), make([]byte, 8)...)
	var f []byte
	f = append(f, oggPage(oggBOS, 0, serial, 0, lace(19), opusHead(2))...)
	f = append(f, oggPage(oggBOS, 0, other, 0, lace(5), []byte("Other"))...)
	f = append(f, oggPage(0, 0, serial, 1, lace(len(tags)), tags)...)
	var lacing, body []byte
	for _, pk := range p[:3] {
		lacing = append(lacing, lace(len(pk))...)
		body = append(body, pk...)
	}
	lacing = append(lacing, 255, 255) // packet 4 starts here and goes on
	body = append(body, p[3][:510]...)
	f = append(f, oggPage(0, 960*4, serial, 2, lacing, body)...)
	f = append(f, oggPage(0, 0, other, 1, lace(3), []byte{1, 2, 3})...)
	lacing = append(lace(90), lace(1)...) // the rest of packet 4, a malformed packet (no frames)
	lacing = append(lacing, lace(len(p[4]))...)
	body = append(append(append([]byte{}, p[3][510:]...), 31<<3|3), p[4]...)
	f = append(f, oggPage(oggContinued|oggEOS, 960*6, serial, 3, lacing, body)...)

	src, err := newOggSource(bytes.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	if src.head.Channels != 2 {
		t.Fatalf("head %+v", src.head)
	}
	var at time.Duration
	durs := []time.Duration{20, 40, 20, 20, 20}
	for i, want := range p {
		fr, err := src.next()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !bytes.Equal(fr.data, want) || fr.at != at || fr.dur != durs[i]*time.Millisecond {
			t.Fatalf("packet %d: %d bytes at %v for %v; want %d bytes at %v for %v",
				i, len(fr.data), fr.at, fr.dur, len(want), at, durs[i]*time.Millisecond)
		}
		at += fr.dur
	}
	if _, err := src.next(); err != io.EOF {
		t.Fatalf("after the last packet: %v", err)
	}
	if err := src.rewind(); err != nil {
		t.Fatal(err)
	}
	if fr, err := src.next(); err != nil || !bytes.Equal(fr.data, p[0]) || fr.at != 0 {
		t.Fatalf("after rewind: %v", err)
	}
}

func TestOggRejects(t *testing.T) {
	surround := opusHead(6)
	surround[18] = 1 // mapping family 1
	surround = append(surround, 4, 2, 0, 4, 1, 2, 3, 5)
	for name, data := range map[string][]byte{
		"multistream": oggPage(oggBOS, 0, 1, 0, lace(len(surround)), surround),
		"not opus":    oggPage(oggBOS, 0, 1, 0, lace(8), []byte("\x01vorbis\x00")),
		"no BOS":      oggPage(0, 0, 1, 0, lace(19), opusHead(2)),
	} {
		if _, err := NewPlayer(bytes.NewReader(data), nil); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
}

func TestOggRoundTrip(t *testing.T) {
	var packets [][]byte
	for i := range 60 {
		packets = append(packets, opusPacket(i, 60+i*3, i%5 == 0))
	}
	src, err := newOggSource(bytes.NewReader(writeOgg(t, packets)))
	if err != nil {
		t.Fatal(err)
	}
	pkts := packetize(t, src, &codecs.OpusPayloader{}, 48000)
	if len(pkts) != len(packets) {
		t.Fatalf("%d RTP packets for %d Opus packets", len(pkts), len(packets))
	}
	for i := 1; i < len(pkts); i++ {
		n, _ := opusSamples(packets[i-1])
		if d := pkts[i].Timestamp - pkts[i-1].Timestamp; d != uint32(n) {
			t.Fatalf("RTP timestamp step %d after packet %d, want %d", d, i-1, n)
		}
	}
	path := filepath.Join(t.TempDir(), "a.ogg")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _, err := record(feed(t, pkts), webrtc.RTPCodecParameters{RTPCodecCapability: opusCodec}, 0x1234, f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	head, got := readOgg(t, data)
	if head.Channels != 2 || head.SampleRate != 48000 {
		t.Fatalf("head %+v", head)
	}
	if st.Frames != int64(len(packets)) || len(got) != len(packets) {
		t.Fatalf("stats %+v, %d packets read back, want %d", st, len(got), len(packets))
	}
	for i := range packets {
		if !bytes.Equal(got[i], packets[i]) {
			t.Fatalf("packet %d differs", i)
		}
	}
}
