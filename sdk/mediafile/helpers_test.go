package mediafile

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs/av1/obu"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
)

// fill returns n bytes that depend on seed, so frames differ and corruption shows.
func fill(n, seed int) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// vp8Frame is a VP8 frame with a valid frame tag (RFC 6386, 9.1): a keyframe carries the start
// code and a 320x180 size. Pion does not decode, so the rest is filler.
func vp8Frame(i, size int, key bool) []byte {
	b := fill(size, i)
	if key {
		b[0], b[1], b[2] = 0x10, 0x02, 0x00 // keyframe, version 0, shown
		copy(b[3:], []byte{0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00})
	} else {
		b[0], b[1], b[2] = 0x11, 0x02, 0x00
	}
	return b
}

type bitWriter struct {
	buf []byte
	n   int
}

func (w *bitWriter) put(v uint64, bits int) {
	for i := bits - 1; i >= 0; i-- {
		if w.n%8 == 0 {
			w.buf = append(w.buf, 0)
		}
		if v>>uint(i)&1 == 1 {
			w.buf[len(w.buf)-1] |= 0x80 >> uint(w.n%8)
		}
		w.n++
	}
}

// vp9Frame is a VP9 profile 0 frame whose uncompressed header Pion's payloader can parse: a
// keyframe has the sync code, color config and a 320x180 size.
func vp9Frame(i, size int, key bool) []byte {
	var w bitWriter
	w.put(2, 2) // frame marker
	w.put(0, 2) // profile 0
	w.put(0, 1) // show_existing_frame
	if key {
		w.put(0, 1) // key frame
		w.put(1, 1) // show_frame
		w.put(0, 1) // error_resilient_mode
		w.put(0x498342, 24)
		w.put(2, 3) // color space BT.709
		w.put(0, 1) // color range
		w.put(319, 16)
		w.put(179, 16)
	} else {
		w.put(1, 1)
		w.put(1, 1)
		w.put(0, 1)
	}
	return append(w.buf, fill(size, i)...)
}

// av1OBU is an OBU with a size field.
func av1OBU(typ obu.Type, payload []byte) []byte {
	h := obu.Header{Type: typ, HasSizeField: true}
	b := append(h.Marshal(), obu.WriteToLeb128(uint(len(payload)))...)
	return append(b, payload...)
}

// av1Frame is an AV1 temporal unit as IVF files hold them: a temporal delimiter, then a
// sequence header on keyframes, then a frame OBU.
func av1Frame(i, size int, key bool) []byte {
	tu := av1OBU(obu.OBUTemporalDelimiter, nil)
	if key {
		tu = append(tu, av1OBU(obu.OBUSequenceHeader, fill(12, -i))...)
	}
	return append(tu, av1OBU(obu.OBUFrame, fill(size, i))...)
}

// writeIVF writes an IVF file: frame k has timestamp pts[k] in units of num/den seconds.
func writeIVF(t *testing.T, fourCC string, den, num uint32, frames [][]byte, pts []uint64) []byte {
	t.Helper()
	var b bytes.Buffer
	h := make([]byte, 32)
	copy(h, "DKIF")
	binary.LittleEndian.PutUint16(h[6:], 32)
	copy(h[8:], fourCC)
	binary.LittleEndian.PutUint16(h[12:], 320)
	binary.LittleEndian.PutUint16(h[14:], 180)
	binary.LittleEndian.PutUint32(h[16:], den)
	binary.LittleEndian.PutUint32(h[20:], num)
	binary.LittleEndian.PutUint32(h[24:], uint32(len(frames)))
	b.Write(h)
	for k, f := range frames {
		var fh [12]byte
		binary.LittleEndian.PutUint32(fh[0:], uint32(len(f)))
		binary.LittleEndian.PutUint64(fh[4:], pts[k])
		b.Write(fh[:])
		b.Write(f)
	}
	return b.Bytes()
}

// readIVF parses an IVF with Pion's reader.
func readIVF(t *testing.T, data []byte) (*ivfreader.IVFFileHeader, [][]byte) {
	t.Helper()
	r, h, err := ivfreader.NewWith(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("recorded IVF: %v", err)
	}
	var frames [][]byte
	for {
		f, _, err := r.ParseNextFrame()
		if err == io.EOF {
			return h, frames
		}
		if err != nil {
			t.Fatalf("recorded IVF frame %d: %v", len(frames), err)
		}
		frames = append(frames, f)
	}
}

// opusPacket is an Opus packet with a valid TOC: CELT fullband stereo, 20 ms per frame, one
// frame (code 0) or two equal frames (code 1, 40 ms).
func opusPacket(i, size int, double bool) []byte {
	b := fill(size, i)
	b[0] = 31<<3 | 0x04
	if double {
		b[0] |= 1
	}
	return b
}

// writeOgg writes Opus packets with Pion's oggwriter (one packet per page).
func writeOgg(t *testing.T, packets [][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := oggwriter.NewWith(&b, 48000, 2)
	if err != nil {
		t.Fatal(err)
	}
	var ts uint32
	for _, p := range packets {
		if err := w.WriteRTP(&rtp.Packet{Header: rtp.Header{Timestamp: ts}, Payload: p}); err != nil {
			t.Fatal(err)
		}
		n, _ := opusSamples(p)
		ts += uint32(n)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// readOgg returns the packets of an Ogg Opus file written one per page (as oggwriter does),
// read with Pion's reader, which checks every page's CRC.
func readOgg(t *testing.T, data []byte) (*oggreader.OggHeader, [][]byte) {
	t.Helper()
	r, h, err := oggreader.NewWith(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("recorded Ogg: %v", err)
	}
	var packets [][]byte
	for {
		p, _, err := r.ParseNextPage()
		if err == io.EOF {
			return h, packets
		}
		if err != nil {
			t.Fatalf("recorded Ogg page: %v", err)
		}
		if len(p) == 0 || bytes.HasPrefix(p, opusTagsMagic) {
			continue
		}
		packets = append(packets, p)
	}
}

var oggCRC = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

// oggPage builds one Ogg page with a valid CRC.
func oggPage(typ byte, granule uint64, serial, seq uint32, lacing, body []byte) []byte {
	b := make([]byte, 27, 27+len(lacing)+len(body))
	copy(b, "OggS")
	b[5] = typ
	binary.LittleEndian.PutUint64(b[6:], granule)
	binary.LittleEndian.PutUint32(b[14:], serial)
	binary.LittleEndian.PutUint32(b[18:], seq)
	b[26] = byte(len(lacing))
	b = append(append(b, lacing...), body...)
	var crc uint32
	for _, c := range b {
		crc = crc<<8 ^ oggCRC[byte(crc>>24)^c]
	}
	binary.LittleEndian.PutUint32(b[22:], crc)
	return b
}

// opusHead is an OpusHead packet.
func opusHead(channels byte) []byte {
	h := make([]byte, 19)
	copy(h, "OpusHead")
	h[8], h[9] = 1, channels
	binary.LittleEndian.PutUint16(h[10:], 3840)
	binary.LittleEndian.PutUint32(h[12:], 48000)
	return h
}

// lace returns the lacing values for one whole packet of n bytes.
func lace(n int) []byte {
	l := bytes.Repeat([]byte{255}, n/255)
	return append(l, byte(n%255))
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
