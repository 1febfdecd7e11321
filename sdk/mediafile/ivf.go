package mediafile

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strings"
	"time"

	"github.com/pion/rtp/codecs/av1/obu"
	"github.com/pion/rtp/codecs/vp9"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
)

const (
	ivfHeaderSize      = 32
	ivfFrameHeaderSize = 12
	// maxIVFFrame bounds one frame so a corrupt size field cannot make us allocate gigabytes.
	maxIVFFrame = 64 << 20
)

// ivfCodec returns the WebRTC codec for an IVF FourCC.
func ivfCodec(fourCC string) (webrtc.RTPCodecCapability, bool) {
	switch strings.ToUpper(fourCC) {
	case "VP80":
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, true
	case "VP90":
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0"}, true
	case "AV01":
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000}, true
	}
	return webrtc.RTPCodecCapability{}, false
}

// ivfFourCC returns the IVF FourCC for a WebRTC video codec.
func ivfFourCC(mimeType string) (string, bool) {
	switch strings.ToLower(mimeType) {
	case strings.ToLower(webrtc.MimeTypeVP8):
		return "VP80", true
	case strings.ToLower(webrtc.MimeTypeVP9):
		return "VP90", true
	case strings.ToLower(webrtc.MimeTypeAV1):
		return "AV01", true
	}
	return "", false
}

type ivfFrame struct {
	data []byte
	pts  uint64
}

// ivfSource reads the frames of an IVF file one ahead, so each frame's duration is known
// when it is sent. Pion's ivfreader validates the file header; the frames are read here
// because ivfreader rescales their timestamps and the exact presentation time is needed.
type ivfSource struct {
	rs       io.ReadSeeker
	br       *bufio.Reader
	header   *ivfreader.IVFFileHeader
	num, den uint64        // a pts unit lasts num/den seconds
	tick     time.Duration // one frame at the header's nominal rate
	first    uint64
	started  bool
	ahead    *ivfFrame
	lastDur  time.Duration
}

func newIVFSource(rs io.ReadSeeker) (*ivfSource, error) {
	s := &ivfSource{rs: rs, br: bufio.NewReaderSize(rs, 64<<10)}
	if err := s.rewind(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *ivfSource) rewind() error {
	if _, err := s.rs.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("mediafile: rewind: %w", err)
	}
	s.br.Reset(s.rs)
	_, h, err := ivfreader.NewWith(s.br)
	if err != nil {
		return fmt.Errorf("%w: IVF header: %w", ErrMalformed, err)
	}
	s.header = h
	s.num, s.den = uint64(h.TimebaseNumerator), uint64(h.TimebaseDenominator)
	s.tick = s.duration(1)
	s.started, s.ahead, s.lastDur = false, nil, 0
	return nil
}

// duration converts a number of pts units to a duration, exactly and without overflow.
func (s *ivfSource) duration(pts uint64) time.Duration {
	hi, lo := bits.Mul64(pts, s.num*uint64(time.Second))
	if hi >= s.den {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, s.den)
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(q)
}

// readFrame returns the next frame, or io.EOF at the end. A frame cut short by the end of the
// file (a recording that was interrupted) ends the file too.
func (s *ivfSource) readFrame() (*ivfFrame, error) {
	var h [ivfFrameHeaderSize]byte
	if _, err := io.ReadFull(s.br, h[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, io.EOF
		}
		return nil, err
	}
	size := binary.LittleEndian.Uint32(h[0:4])
	if size > maxIVFFrame {
		return nil, fmt.Errorf("%w: IVF frame of %d bytes", ErrMalformed, size)
	}
	f := &ivfFrame{data: make([]byte, size), pts: binary.LittleEndian.Uint64(h[4:12])}
	if _, err := io.ReadFull(s.br, f.data); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, err
	}
	return f, nil
}

func (s *ivfSource) next() (frame, error) {
	cur := s.ahead
	if cur == nil {
		var err error
		if cur, err = s.readFrame(); err != nil {
			return frame{}, err
		}
	}
	next, err := s.readFrame()
	if err != nil && !errors.Is(err, io.EOF) {
		return frame{}, err
	}
	s.ahead = next
	if !s.started {
		s.started, s.first = true, cur.pts
	}
	at := s.duration(sub0(cur.pts, s.first))
	dur := s.lastDur
	if next != nil {
		dur = s.duration(sub0(next.pts, s.first)) - at
		s.lastDur = dur
	} else if dur == 0 {
		dur = s.tick
	}
	return frame{data: cur.data, at: at, dur: max(dur, 0)}, nil
}

// sub0 returns a-b, or 0 if b > a.
func sub0(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

// ivfSink writes depacketized video frames to an IVF stream.
type ivfSink struct {
	out     io.Writer
	start   int64 // offset of the header in out, when out is a file
	bw      *bufio.Writer
	header  [ivfHeaderSize]byte
	mime    string
	started bool
	lastTS  uint32
	pts     int64
	frames  uint32
	width   uint16
	height  uint16
}

func newIVFSink(out io.Writer, mimeType string, clockRate uint32) (*ivfSink, error) {
	fourCC, ok := ivfFourCC(mimeType)
	if !ok {
		return nil, fmt.Errorf("%w: %s in IVF", ErrUnsupported, mimeType)
	}
	if clockRate == 0 {
		clockRate = 90000
	}
	s := &ivfSink{out: out, bw: bufio.NewWriterSize(out, 64<<10), mime: strings.ToLower(mimeType), start: -1}
	if f, ok := out.(fileLike); ok {
		if off, err := f.Seek(0, io.SeekCurrent); err == nil {
			s.start = off
		}
	}
	h := s.header[:]
	copy(h[0:4], "DKIF")
	binary.LittleEndian.PutUint16(h[4:], 0)  // version
	binary.LittleEndian.PutUint16(h[6:], 32) // header size
	copy(h[8:12], fourCC)
	// Timestamps are RTP timestamps: the time base is 1/clock rate.
	binary.LittleEndian.PutUint32(h[16:], clockRate)
	binary.LittleEndian.PutUint32(h[20:], 1)
	if _, err := s.bw.Write(h); err != nil {
		return nil, fmt.Errorf("mediafile: write IVF header: %w", err)
	}
	return s, nil
}

// write appends one frame; it reports false for a frame left out (video before the first
// keyframe).
func (s *ivfSink) write(data []byte, ts uint32) (bool, error) {
	key, w, h := ivfKeyframe(s.mime, data)
	if !s.started {
		if !key {
			return false, nil
		}
		s.started, s.lastTS = true, ts
	}
	if key && w != 0 && s.width == 0 {
		s.width, s.height = w, h
	}
	s.pts += int64(int32(ts - s.lastTS)) // unwraps the 32-bit RTP clock
	s.lastTS = ts
	if s.mime == strings.ToLower(webrtc.MimeTypeAV1) {
		// An IVF AV1 frame is a temporal unit, which starts with a temporal delimiter; the
		// RTP payload format drops it (AV1 RTP spec, section 5).
		// 0x12 0x00: OBU_TEMPORAL_DELIMITER with has_size_field, size 0.
		data = append([]byte{0x12, 0x00}, data...)
	}
	var fh [ivfFrameHeaderSize]byte
	binary.LittleEndian.PutUint32(fh[0:], uint32(len(data)))
	binary.LittleEndian.PutUint64(fh[4:], uint64(max(s.pts, 0)))
	if _, err := s.bw.Write(fh[:]); err != nil {
		return false, fmt.Errorf("mediafile: write IVF frame: %w", err)
	}
	if _, err := s.bw.Write(data); err != nil {
		return false, fmt.Errorf("mediafile: write IVF frame: %w", err)
	}
	s.frames++
	return true, nil
}

// close flushes and, if the output allows it, fills in the frame count and picture size.
func (s *ivfSink) close() error {
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("mediafile: write IVF: %w", err)
	}
	f, ok := s.out.(fileLike)
	if !ok || s.start < 0 {
		return nil
	}
	binary.LittleEndian.PutUint16(s.header[12:], s.width)
	binary.LittleEndian.PutUint16(s.header[14:], s.height)
	binary.LittleEndian.PutUint32(s.header[24:], s.frames)
	if _, err := f.WriteAt(s.header[:], s.start); err != nil {
		return fmt.Errorf("mediafile: update IVF header: %w", err)
	}
	return nil
}

// fileLike is an output whose earlier bytes can be rewritten, such as *os.File.
type fileLike interface {
	io.Seeker
	io.WriterAt
}

// ivfKeyframe reports whether a depacketized frame is a keyframe, and its picture size when
// the bitstream says so cheaply (VP8, VP9).
func ivfKeyframe(mime string, data []byte) (key bool, width, height uint16) {
	switch mime {
	case strings.ToLower(webrtc.MimeTypeVP8):
		// RFC 6386, section 9.1: bit 0 of the frame tag is 0 on keyframes, which carry a
		// start code and the size after the 3-byte tag.
		if len(data) == 0 || data[0]&0x01 != 0 {
			return false, 0, 0
		}
		if len(data) >= 10 && data[3] == 0x9d && data[4] == 0x01 && data[5] == 0x2a {
			width = binary.LittleEndian.Uint16(data[6:]) & 0x3fff
			height = binary.LittleEndian.Uint16(data[8:]) & 0x3fff
		}
		return true, width, height
	case strings.ToLower(webrtc.MimeTypeVP9):
		var h vp9.Header
		if h.Unmarshal(data) != nil || h.ShowExistingFrame || h.NonKeyFrame {
			return false, 0, 0
		}
		return true, h.Width(), h.Height()
	case strings.ToLower(webrtc.MimeTypeAV1):
		// A keyframe comes with a sequence header (the random access point of the AV1 spec).
		for len(data) > 0 {
			oh, err := obu.ParseOBUHeader(data)
			if err != nil {
				return false, 0, 0
			}
			if oh.Type == obu.OBUSequenceHeader {
				return true, 0, 0
			}
			if !oh.HasSizeField {
				return false, 0, 0
			}
			size, n, err := obu.ReadLeb128(data[oh.Size():])
			if err != nil || uint64(size) > uint64(len(data)) {
				return false, 0, 0
			}
			end := oh.Size() + int(n) + int(size)
			if end > len(data) {
				return false, 0, 0
			}
			data = data[end:]
		}
	}
	return false, 0, 0
}
