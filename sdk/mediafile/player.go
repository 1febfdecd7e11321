package mediafile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/pion/rtp/codecs/vp9"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// Options configure the track of a Player. A nil *Options means defaults.
type Options struct {
	// TrackID is the track's id (default "video" or "audio").
	TrackID string
	// StreamID groups tracks into one media stream at the receiver (default "switchboard").
	StreamID string
}

// Info describes a media file.
type Info struct {
	// Container is "ivf" or "ogg".
	Container string
	// Codec is what the track sends.
	Codec webrtc.RTPCodecCapability
	// Width and Height are the picture size from the IVF header (0 for Ogg).
	Width, Height uint16
	// Channels is the Opus channel count from the OpusHead (0 for IVF).
	Channels uint8
}

// Stats count what a Player sent or a recording wrote.
type Stats struct {
	// Frames is the number of video frames or Opus packets.
	Frames int64
	// Bytes is their size, without container or RTP overhead.
	Bytes int64
	// Skipped counts frames left out: malformed ones, and when recording, video frames before
	// the first keyframe.
	Skipped int64
	// LostPackets counts RTP packets a recording gave up waiting for (recording only); the
	// frames they belonged to are not written.
	LostPackets int64
}

// frame is one unit to send: a video frame or an Opus packet, due at `at` after the start.
type frame struct {
	data []byte
	at   time.Duration
	dur  time.Duration
}

type source interface {
	// rewind goes back to the first frame.
	rewind() error
	// next returns the next frame, or io.EOF after the last one.
	next() (frame, error)
}

// Player sends a media file into a track at the file's own pace. Its methods are safe for
// concurrent use, but only one Play runs at a time.
type Player struct {
	info    Info
	track   *webrtc.TrackLocalStaticSample
	src     source
	closer  io.Closer
	playing atomic.Bool
	frames  atomic.Int64
	bytes   atomic.Int64
	skipped atomic.Int64
}

// OpenTrack opens the IVF (VP8, VP9, AV1) or Ogg Opus file at path and returns a track to add
// to peer connections and the Player that feeds it. Close the Player when done.
func OpenTrack(path string, opts *Options) (*webrtc.TrackLocalStaticSample, *Player, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("mediafile: %w", err)
	}
	p, err := NewPlayer(f, opts)
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("%s: %w", path, err), f.Close())
	}
	p.closer = f
	return p.track, p, nil
}

// NewPlayer reads the header of an IVF or Ogg Opus stream and makes its track. The Player
// reads r only from Play, and seeks it to the start at every Play and every loop.
func NewPlayer(r io.ReadSeeker, opts *Options) (*Player, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	var magic [4]byte
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("mediafile: seek: %w", err)
	}
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, fmt.Errorf("%w: too short to be IVF or Ogg: %w", ErrUnsupported, err)
	}
	p := &Player{}
	switch string(magic[:]) {
	case "DKIF":
		s, err := newIVFSource(r)
		if err != nil {
			return nil, err
		}
		c, ok := ivfCodec(s.header.FourCC)
		if !ok {
			return nil, fmt.Errorf("%w: IVF FourCC %q (want VP80, VP90 or AV01)", ErrUnsupported, s.header.FourCC)
		}
		if c.MimeType == webrtc.MimeTypeVP9 {
			if c.SDPFmtpLine, err = vp9Profile(s); err != nil {
				return nil, err
			}
		}
		p.src = s
		p.info = Info{Container: "ivf", Codec: c, Width: s.header.Width, Height: s.header.Height}
	case "OggS":
		s, err := newOggSource(r)
		if err != nil {
			return nil, err
		}
		s.skipped = &p.skipped
		p.src = s
		p.info = Info{Container: "ogg", Codec: opusCodec, Channels: s.head.Channels}
	default:
		return nil, fmt.Errorf("%w: not an IVF or Ogg file (starts with %q)", ErrUnsupported, magic[:])
	}
	if o.TrackID == "" {
		o.TrackID = "video"
		if p.info.Container == "ogg" {
			o.TrackID = "audio"
		}
	}
	if o.StreamID == "" {
		o.StreamID = "switchboard"
	}
	track, err := webrtc.NewTrackLocalStaticSample(p.info.Codec, o.TrackID, o.StreamID)
	if err != nil {
		return nil, fmt.Errorf("mediafile: new track: %w", err)
	}
	p.track = track
	return p, nil
}

// vp9Profile reads the first frame's profile: the SDP must announce it, and WebRTC has
// profiles 0 (8-bit 4:2:0) and 2 (10-bit 4:2:0).
func vp9Profile(s *ivfSource) (string, error) {
	f, err := s.next()
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	if err := s.rewind(); err != nil {
		return "", err
	}
	var h vp9.Header
	if f.data == nil || h.Unmarshal(f.data) != nil {
		return "profile-id=0", nil // an empty or odd file: the default profile
	}
	switch h.Profile {
	case 0, 2:
		return fmt.Sprintf("profile-id=%d", h.Profile), nil
	}
	return "", fmt.Errorf("%w: VP9 profile %d", ErrUnsupported, h.Profile)
}

// Track returns the track the Player writes to.
func (p *Player) Track() *webrtc.TrackLocalStaticSample { return p.track }

// Info describes the file.
func (p *Player) Info() Info { return p.info }

// Stats returns what has been sent so far, over all Plays.
func (p *Player) Stats() Stats {
	return Stats{Frames: p.frames.Load(), Bytes: p.bytes.Load(), Skipped: p.skipped.Load()}
}

// Play sends the file from its start into the track, each frame when it is due, until the
// file ends (it returns nil), or forever when loop is set, or until ctx is done (it returns
// ctx.Err()). The RTP timestamps go on across loops. Frames written before any peer
// connection has bound the track go nowhere; a write that fails for one receiver (its
// connection closing) does not stop the others.
func (p *Player) Play(ctx context.Context, loop bool) error {
	if !p.playing.CompareAndSwap(false, true) {
		return ErrPlaying
	}
	defer p.playing.Store(false)
	if err := p.src.rewind(); err != nil {
		return err
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := time.Now()
	var base, end time.Duration // where this pass starts on the timeline, and its end
	sent := 0                   // frames sent in this pass
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := p.src.next()
		if errors.Is(err, io.EOF) {
			if !loop || sent == 0 {
				return nil
			}
			base, end, sent = base+end, 0, 0
			if err := p.src.rewind(); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("mediafile: read: %w", err)
		}
		sent++
		end = max(end, f.at+f.dur)
		if wait := time.Until(start.Add(base + f.at)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-timer.C:
			}
		}
		// Errors concern single receivers whose connections are going away (see above).
		_ = p.track.WriteSample(media.Sample{Data: f.data, Duration: f.dur})
		p.frames.Add(1)
		p.bytes.Add(int64(len(f.data)))
	}
}

// Close closes the file OpenTrack opened. Stop Play first.
func (p *Player) Close() error {
	if p.closer == nil {
		return nil
	}
	if err := p.closer.Close(); err != nil {
		return fmt.Errorf("mediafile: close: %w", err)
	}
	return nil
}
