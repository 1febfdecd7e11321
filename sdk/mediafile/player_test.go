package mediafile

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// tenFrames is an IVF of 10 VP8 frames at 50 fps: the last is due 180 ms after the first.
func tenFrames(t *testing.T) []byte {
	t.Helper()
	var frames [][]byte
	var pts []uint64
	for i := range 10 {
		frames = append(frames, vp8Frame(i, 100, true))
		pts = append(pts, uint64(i))
	}
	return writeIVF(t, "VP80", 50, 1, frames, pts)
}

func TestPlayKeepsThePace(t *testing.T) {
	track, p, err := OpenTrack(writeTemp(t, "v.ivf", tenFrames(t)), &Options{TrackID: "cam", StreamID: "me"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if track.ID() != "cam" || track.StreamID() != "me" || track.Codec().MimeType != webrtc.MimeTypeVP8 {
		t.Fatalf("track %s/%s %v", track.StreamID(), track.ID(), track.Codec())
	}
	if in := p.Info(); in.Container != "ivf" || in.Width != 320 || in.Height != 180 {
		t.Fatalf("info %+v", in)
	}
	start := time.Now()
	if err := p.Play(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 180*time.Millisecond || el > 3*time.Second {
		t.Fatalf("10 frames at 50 fps took %v", el)
	}
	if st := p.Stats(); st.Frames != 10 || st.Bytes != 1000 {
		t.Fatalf("stats %+v", st)
	}
	// Play again from the start.
	if err := p.Play(context.Background(), false); err != nil || p.Stats().Frames != 20 {
		t.Fatalf("second play: %v, %+v", err, p.Stats())
	}
}

func TestPlayLoopsUntilCanceled(t *testing.T) {
	p, err := NewPlayer(bytes.NewReader(tenFrames(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Track().ID() != "video" || p.Track().StreamID() != "switchboard" {
		t.Fatalf("default ids %s/%s", p.Track().StreamID(), p.Track().ID())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := p.Play(ctx, true); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("looping play: %v", err)
	}
	// 500 ms at 50 fps is about 25 frames: more than one pass, and not sent in a rush.
	if n := p.Stats().Frames; n < 15 || n > 30 {
		t.Fatalf("%d frames in 500 ms at 50 fps", n)
	}
}

func TestOnePlayAtATime(t *testing.T) {
	p, err := NewPlayer(bytes.NewReader(tenFrames(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	p.playing.Store(true) // as if another Play were running
	if err := p.Play(context.Background(), false); !errors.Is(err, ErrPlaying) {
		t.Fatalf("got %v, want ErrPlaying", err)
	}
}

func TestNewPlayerUnsupported(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":    nil,
		"text":     []byte("hello, world"),
		"h264 ivf": writeIVF(t, "H264", 30, 1, nil, nil),
	} {
		if _, err := NewPlayer(bytes.NewReader(data), nil); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
	bad := tenFrames(t)
	bad[16] = 0 // time base denominator 0
	if _, err := NewPlayer(bytes.NewReader(bad), nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("zero time base: %v, want ErrMalformed", err)
	}
	if _, _, err := OpenTrack("/does/not/exist.ivf", nil); err == nil {
		t.Error("missing file opened")
	}
}

func TestVP9ProfileFromFirstFrame(t *testing.T) {
	p, err := NewPlayer(bytes.NewReader(writeIVF(t, "VP90", 30, 1, [][]byte{vp9Frame(0, 10, true)}, []uint64{0})), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := p.Info().Codec; c.MimeType != webrtc.MimeTypeVP9 || c.SDPFmtpLine != "profile-id=0" {
		t.Fatalf("codec %+v", c)
	}
}
