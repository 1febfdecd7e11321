package mediafile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
)

const (
	// videoWindow and audioWindow are how many packets are held while a missing one is
	// waited for (about a second of HD video; a second of 20 ms audio packets).
	videoWindow = 1024
	audioWindow = 64
	// maxDelay bounds the wait for a missing packet in media time.
	maxDelay = time.Second
	// readBufferSize holds any RTP packet Pion hands out.
	readBufferSize = 1 << 16
)

// Extension returns the file extension a track with this codec (a MIME type such as
// webrtc.MimeTypeVP8) is recorded to: ".ivf" for VP8, VP9 and AV1, ".ogg" for Opus. ok is
// false for any other codec.
func Extension(mimeType string) (ext string, ok bool) {
	if _, ok := ivfFourCC(mimeType); ok {
		return ".ivf", true
	}
	if strings.EqualFold(mimeType, webrtc.MimeTypeOpus) {
		return ".ogg", true
	}
	return "", false
}

// RecordFile creates the file at path (see Extension for the right kind) and records track
// into it like Record. The file is complete when RecordFile returns, whatever stopped it.
func RecordFile(ctx context.Context, track *webrtc.TrackRemote, path string) (Stats, error) {
	if _, ok := Extension(track.Codec().MimeType); !ok {
		return Stats{}, fmt.Errorf("%w: cannot record %s", ErrUnsupported, track.Codec().MimeType)
	}
	f, err := os.Create(path)
	if err != nil {
		return Stats{}, fmt.Errorf("mediafile: %w", err)
	}
	st, err := Record(ctx, track, f)
	if cerr := f.Close(); cerr != nil && (err == nil || errors.Is(err, ctx.Err())) {
		err = fmt.Errorf("mediafile: close %s: %w", path, cerr)
	}
	return st, err
}

// Record writes track to w as IVF (VP8, VP9, AV1) or Ogg Opus until the track ends (it
// returns nil) or ctx is done (it returns ctx.Err()); the stream is complete either way. It
// reads the track itself: nothing else may read it meanwhile. When w is also an io.WriterAt
// and an io.Seeker (a file), the IVF header's frame count and size are filled in at the end
// and the last Ogg page is marked end-of-stream.
func Record(ctx context.Context, track *webrtc.TrackRemote, w io.Writer) (Stats, error) {
	stop := context.AfterFunc(ctx, func() { _ = track.SetReadDeadline(time.Now()) })
	defer stop()
	read := func(b []byte) (int, error) {
		n, _, err := track.Read(b)
		return n, err
	}
	st, ended, err := record(read, track.Codec(), uint32(track.SSRC()), w)
	switch {
	case err != nil:
		return st, err
	case ctx.Err() != nil:
		return st, ctx.Err() // the read deadline ended the loop
	case isEnd(ended):
		return st, nil
	}
	return st, fmt.Errorf("mediafile: read track: %w", ended)
}

// sink is a container writer fed with whole frames.
type sink interface {
	// write appends a frame; false means it was left out (not an error).
	write(data []byte, rtpTimestamp uint32) (bool, error)
	close() error
}

// record is Record's loop over packets from read. It stops at read's first error, which it
// returns as ended; err is for failures to write.
func record(read func([]byte) (int, error), codec webrtc.RTPCodecParameters, ssrc uint32, w io.Writer) (st Stats, ended, err error) {
	var (
		s      sink
		newDep func() rtp.Depacketizer
		audio  bool
	)
	switch strings.ToLower(codec.MimeType) {
	case strings.ToLower(webrtc.MimeTypeVP8):
		newDep = func() rtp.Depacketizer { return &codecs.VP8Packet{} }
	case strings.ToLower(webrtc.MimeTypeVP9):
		newDep = func() rtp.Depacketizer { return &codecs.VP9Packet{} }
	case strings.ToLower(webrtc.MimeTypeAV1):
		newDep = func() rtp.Depacketizer { return &codecs.AV1Depacketizer{} }
	case strings.ToLower(webrtc.MimeTypeOpus):
		newDep, audio = func() rtp.Depacketizer { return &codecs.OpusPacket{} }, true
	default:
		return st, nil, fmt.Errorf("%w: cannot record %s", ErrUnsupported, codec.MimeType)
	}
	window := videoWindow
	if audio {
		window = audioWindow
		s, err = newOggSink(w, codec.Channels, ssrc)
	} else {
		s, err = newIVFSink(w, codec.MimeType, codec.ClockRate)
	}
	if err != nil {
		return st, nil, err
	}
	clock := codec.ClockRate
	if clock == 0 {
		clock = 90000
	}
	asm := newAssembler(newDep, window, uint32(maxDelay.Seconds()*float64(clock)), func(frame []byte, ts uint32) error {
		ok, err := s.write(frame, ts)
		switch {
		case err != nil:
			return err
		case ok:
			st.Frames++
			st.Bytes += int64(len(frame))
		default:
			st.Skipped++
		}
		return nil
	})
	buf := make([]byte, readBufferSize)
	for {
		n, err := read(buf)
		if err != nil {
			ended = err
			break
		}
		pkt := &rtp.Packet{}
		if err := pkt.Unmarshal(append([]byte(nil), buf[:n]...)); err != nil {
			continue // the assembler may hold packets: each gets its own buffer
		}
		if err := asm.push(pkt); err != nil {
			st.LostPackets = asm.lost
			return st, nil, errors.Join(err, s.close())
		}
	}
	err = asm.flush()
	st.LostPackets = asm.lost
	if err != nil {
		return st, ended, errors.Join(err, s.close())
	}
	return st, ended, s.close()
}

// isEnd reports whether a read error means the track has ended.
func isEnd(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, net.ErrClosed)
}
