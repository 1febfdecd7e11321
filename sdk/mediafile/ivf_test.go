package mediafile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
)

// packetize turns a source's frames into RTP packets the way TrackLocalStaticSample does.
func packetize(t *testing.T, src source, pay rtp.Payloader, clock uint32) []*rtp.Packet {
	t.Helper()
	p := rtp.NewPacketizer(1200, 96, 0x1234, pay, rtp.NewFixedSequencer(65500), clock) // wraps
	var out []*rtp.Packet
	for {
		f, err := src.next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		ticks := uint32(f.dur.Seconds()*float64(clock) + 0.5)
		out = append(out, p.Packetize(f.data, ticks)...)
	}
}

// feed returns a read function that hands out packets, swapping neighbours every 7 packets so
// the recorder has to put them back in order.
func feed(t *testing.T, pkts []*rtp.Packet) func([]byte) (int, error) {
	t.Helper()
	order := make([]*rtp.Packet, len(pkts))
	copy(order, pkts)
	for i := 5; i+1 < len(order); i += 7 {
		order[i], order[i+1] = order[i+1], order[i]
	}
	return func(b []byte) (int, error) {
		if len(order) == 0 {
			return 0, io.EOF
		}
		raw, err := order[0].Marshal()
		if err != nil {
			t.Fatal(err)
		}
		order = order[1:]
		return copy(b, raw), nil
	}
}

func TestIVFRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		fourCC string
		mime   string
		frame  func(i, size int, key bool) []byte
		pay    rtp.Payloader
	}{
		{"VP80", webrtc.MimeTypeVP8, vp8Frame, &codecs.VP8Payloader{EnablePictureID: true}},
		{"VP90", webrtc.MimeTypeVP9, vp9Frame, &codecs.VP9Payloader{}},
		{"AV01", webrtc.MimeTypeAV1, av1Frame, &codecs.AV1Payloader{}},
	} {
		t.Run(tc.fourCC, func(t *testing.T) {
			// Frame 0 is an inter frame (a recording must start at a keyframe), keyframes
			// every 10, sizes from one to four packets, 30 fps.
			var frames [][]byte
			var pts []uint64
			for i := range 40 {
				frames = append(frames, tc.frame(i, 200+(i*397)%4000, i%10 == 1))
				pts = append(pts, uint64(i))
			}
			src, err := newIVFSource(bytes.NewReader(writeIVF(t, tc.fourCC, 30, 1, frames, pts)))
			if err != nil {
				t.Fatal(err)
			}
			pkts := packetize(t, src, tc.pay, 90000)
			if len(pkts) <= len(frames) {
				t.Fatalf("%d packets for %d frames: nothing was fragmented", len(pkts), len(frames))
			}
			var out bytes.Buffer
			st, ended, err := record(feed(t, pkts), webrtc.RTPCodecParameters{
				RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: tc.mime, ClockRate: 90000},
			}, 0x1234, &out)
			if err != nil || ended != io.EOF {
				t.Fatalf("record: %v (ended by %v)", err, ended)
			}
			h, got := readIVF(t, out.Bytes())
			if h.FourCC != tc.fourCC || h.TimebaseDenominator != 90000 || h.TimebaseNumerator != 1 {
				t.Fatalf("header %+v", h)
			}
			want := frames[1:] // from the first keyframe on
			if st.Frames != int64(len(want)) || st.Skipped != 1 || len(got) != len(want) {
				t.Fatalf("stats %+v, %d frames read back; want %d frames, 1 skipped", st, len(got), len(want))
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("frame %d differs: %d bytes, want %d", i, len(got[i]), len(want[i]))
				}
			}
			// Timestamps are RTP ticks from the first frame written: 3000 per frame.
			s, err := newIVFSource(bytes.NewReader(out.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				f, err := s.next()
				if err != nil {
					t.Fatal(err)
				}
				if wantAt := time.Duration(i) * time.Second / 30; f.at != wantAt {
					t.Fatalf("frame %d at %v, want %v", i, f.at, wantAt)
				}
			}
		})
	}
}

func TestIVFRecordingHeaderFilledIn(t *testing.T) {
	frames := [][]byte{vp8Frame(0, 500, true), vp8Frame(1, 500, false), vp8Frame(2, 500, false)}
	src, err := newIVFSource(bytes.NewReader(writeIVF(t, "VP80", 30, 1, frames, []uint64{0, 1, 2})))
	if err != nil {
		t.Fatal(err)
	}
	pkts := packetize(t, src, &codecs.VP8Payloader{}, 90000)
	path := filepath.Join(t.TempDir(), "x.ivf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const prefix = "something else first\n" // the IVF need not start the file
	if _, err := f.WriteString(prefix); err != nil {
		t.Fatal(err)
	}
	codec := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}}
	if _, _, err := record(feed(t, pkts), codec, 1, f); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data[:len(prefix)]) != prefix {
		t.Fatalf("the bytes before the IVF changed: %q", data[:len(prefix)])
	}
	h, got := readIVF(t, data[len(prefix):])
	if h.NumFrames != 3 || len(got) != 3 || h.Width != 320 || h.Height != 180 {
		t.Fatalf("header %+v with %d frames", h, len(got))
	}
}

func TestIVFSourceTiming(t *testing.T) {
	// Millisecond time base, irregular gaps, a first frame that is not at 0.
	frames := [][]byte{{1}, {2}, {3}, {4}}
	src, err := newIVFSource(bytes.NewReader(writeIVF(t, "VP80", 1000, 1, frames, []uint64{500, 520, 560, 561})))
	if err != nil {
		t.Fatal(err)
	}
	ms := time.Millisecond
	for i, want := range []frame{{at: 0, dur: 20 * ms}, {at: 20 * ms, dur: 40 * ms}, {at: 60 * ms, dur: ms}, {at: 61 * ms, dur: ms}} {
		f, err := src.next()
		if err != nil {
			t.Fatal(err)
		}
		if f.at != want.at || f.dur != want.dur || f.data[0] != frames[i][0] {
			t.Fatalf("frame %d: at %v dur %v, want at %v dur %v", i, f.at, f.dur, want.at, want.dur)
		}
	}
	if _, err := src.next(); err != io.EOF {
		t.Fatalf("after the last frame: %v", err)
	}
	// A time base that is not a whole number of nanoseconds per unit stays exact.
	s := &ivfSource{num: 1001, den: 30000}
	if got, want := s.duration(30000), 1001*time.Second; got != want {
		t.Fatalf("duration: %v, want %v", got, want)
	}
	if got := s.duration(1 << 62); got <= 0 {
		t.Fatalf("huge pts overflowed to %v", got)
	}
}

func TestIVFTruncatedLastFrameEndsTheFile(t *testing.T) {
	data := writeIVF(t, "VP80", 30, 1, [][]byte{vp8Frame(0, 100, true), vp8Frame(1, 100, false)}, []uint64{0, 1})
	src, err := newIVFSource(bytes.NewReader(data[:len(data)-10]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.next(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.next(); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
}

func TestIVFKeyframeDetection(t *testing.T) {
	for _, tc := range []struct {
		mime string
		data []byte
		key  bool
		w, h uint16
	}{
		{webrtc.MimeTypeVP8, vp8Frame(0, 50, true), true, 320, 180},
		{webrtc.MimeTypeVP8, vp8Frame(0, 50, false), false, 0, 0},
		{webrtc.MimeTypeVP9, vp9Frame(0, 50, true), true, 320, 180},
		{webrtc.MimeTypeVP9, vp9Frame(0, 50, false), false, 0, 0},
		{webrtc.MimeTypeAV1, av1Frame(0, 50, true)[2:], true, 0, 0},
		{webrtc.MimeTypeAV1, av1Frame(0, 50, false)[2:], false, 0, 0},
		{webrtc.MimeTypeAV1, []byte{0x32, 0x7f}, false, 0, 0}, // size past the end
		{webrtc.MimeTypeVP8, nil, false, 0, 0},
	} {
		key, w, h := ivfKeyframe(strings.ToLower(tc.mime), tc.data)
		if key != tc.key || w != tc.w || h != tc.h {
			t.Errorf("%s %x...: key %v %dx%d, want %v %dx%d", tc.mime, head(tc.data), key, w, h, tc.key, tc.w, tc.h)
		}
	}
}

func head(b []byte) []byte { return b[:min(len(b), 4)] }
