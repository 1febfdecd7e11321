package mediafile

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
)

const (
	oggPageHeaderSize = 27
	oggContinued      = 0x01 // the page starts with the rest of a packet
	oggBOS            = 0x02 // first page of a logical stream
	oggEOS            = 0x04 // last page of a logical stream
	opusRate          = 48000
	maxOpusSamples    = opusRate * 120 / 1000 // RFC 6716: a packet holds at most 120 ms
)

var (
	opusHeadMagic = []byte("OpusHead")
	opusTagsMagic = []byte("OpusTags")
	errBadOpus    = errors.New("mediafile: malformed Opus packet")
)

// opusCodec is the capability Pion registers for Opus.
var opusCodec = webrtc.RTPCodecCapability{
	MimeType: webrtc.MimeTypeOpus, ClockRate: opusRate, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1",
}

// opusSamples returns how many 48 kHz samples an Opus packet holds, from its TOC byte and
// frame count (RFC 6716, section 3.1).
func opusSamples(pkt []byte) (int, error) {
	if len(pkt) == 0 {
		return 0, errBadOpus
	}
	toc := pkt[0]
	config := toc >> 3
	var perFrame int // in 48 kHz samples
	switch {
	case config < 12: // SILK: 10, 20, 40, 60 ms
		perFrame = []int{480, 960, 1920, 2880}[config%4]
	case config < 16: // Hybrid: 10, 20 ms
		perFrame = []int{480, 960}[config%2]
	default: // CELT: 2.5, 5, 10, 20 ms
		perFrame = []int{120, 240, 480, 960}[config%4]
	}
	frames := 1
	switch toc & 0x03 {
	case 1, 2:
		frames = 2
	case 3:
		if len(pkt) < 2 || pkt[1]&0x3f == 0 {
			return 0, errBadOpus
		}
		frames = int(pkt[1] & 0x3f)
	}
	if n := perFrame * frames; n <= maxOpusSamples {
		return n, nil
	}
	return 0, errBadOpus
}

func samplesToDuration(n int64) time.Duration {
	return time.Duration(n) * time.Second / opusRate
}

// oggSource reads the Opus packets of an Ogg file one by one. Pion's oggreader returns a
// whole page at a time with its packet boundaries lost, so the pages are split here; the
// OpusHead header is parsed with oggreader.ParseOpusHead.
type oggSource struct {
	rs      io.ReadSeeker
	br      *bufio.Reader
	head    *oggreader.OggHeader
	serial  uint32
	ended   bool     // our logical stream had its EOS page: a chained stream may follow
	queue   [][]byte // complete packets of the current page
	partial []byte   // a packet continued on the next page
	pos     int64    // 48 kHz samples sent since the start
	skipped *atomic.Int64
	header  [oggPageHeaderSize + 255]byte
	page    [255 * 255]byte
}

func newOggSource(rs io.ReadSeeker) (*oggSource, error) {
	s := &oggSource{rs: rs, br: bufio.NewReaderSize(rs, 64<<10)}
	if err := s.rewind(); err != nil {
		return nil, err
	}
	if s.head.Channels > 2 || (s.head.ChannelMap != 0 && s.head.StreamCount != 1) {
		return nil, fmt.Errorf("%w: Ogg Opus with %d channels in %d streams (WebRTC carries mono or stereo)",
			ErrUnsupported, s.head.Channels, s.head.StreamCount)
	}
	return s, nil
}

func (s *oggSource) rewind() error {
	if _, err := s.rs.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("mediafile: rewind: %w", err)
	}
	s.br.Reset(s.rs)
	s.queue, s.partial, s.pos, s.ended = nil, nil, 0, false
	typ, serial, body, err := s.readPage()
	if err != nil {
		return fmt.Errorf("%w: Ogg: first page: %w", ErrMalformed, err)
	}
	if typ&oggBOS == 0 || !bytes.HasPrefix(body, opusHeadMagic) {
		return fmt.Errorf("%w: Ogg without an Opus stream first", ErrUnsupported)
	}
	head, err := oggreader.ParseOpusHead(body)
	if err != nil {
		return fmt.Errorf("%w: OpusHead: %w", ErrMalformed, err)
	}
	s.head, s.serial = head, serial
	return nil
}

// readPage reads one page; body is valid until the next call.
func (s *oggSource) readPage() (typ byte, serial uint32, body []byte, err error) {
	h := s.header[:]
	if _, err := io.ReadFull(s.br, h[:oggPageHeaderSize]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF // a page cut short ends the file
		}
		return 0, 0, nil, err
	}
	if string(h[0:4]) != "OggS" || h[4] != 0 {
		return 0, 0, nil, fmt.Errorf("%w: bad Ogg page signature", ErrMalformed)
	}
	typ, serial = h[5], binary.LittleEndian.Uint32(h[14:18])
	nseg := int(h[26])
	lacing := h[oggPageHeaderSize : oggPageHeaderSize+nseg]
	if _, err := io.ReadFull(s.br, lacing); err != nil {
		return 0, 0, nil, io.EOF
	}
	size := 0
	for _, l := range lacing {
		size += int(l)
	}
	body = s.page[:size]
	if _, err := io.ReadFull(s.br, body); err != nil {
		return 0, 0, nil, io.EOF
	}
	// Split the body into packets: a lacing value below 255 ends a packet.
	if serial == s.serial && !s.ended {
		// The rest of a packet whose start we never saw is dropped; so is a packet left open
		// on the previous page when this one does not continue it.
		drop := typ&oggContinued != 0 && s.partial == nil
		if typ&oggContinued == 0 {
			s.partial = nil
		}
		off := 0
		for _, l := range lacing {
			if !drop {
				s.partial = append(s.partial, body[off:off+int(l)]...) // copies: body is reused
			}
			off += int(l)
			if l < 255 {
				if !drop {
					s.queue = append(s.queue, s.partial)
				}
				s.partial, drop = nil, false
			}
		}
		if typ&oggEOS != 0 {
			s.ended = true
		}
	}
	return typ, serial, body, nil
}

func (s *oggSource) next() (frame, error) {
	for {
		for len(s.queue) == 0 {
			typ, serial, body, err := s.readPage()
			if err != nil {
				return frame{}, err
			}
			if s.ended && typ&oggBOS != 0 && bytes.HasPrefix(body, opusHeadMagic) {
				s.serial, s.ended = serial, false // a chained Opus stream follows ours
			}
		}
		pkt := s.queue[0]
		s.queue = s.queue[1:]
		if bytes.HasPrefix(pkt, opusHeadMagic) || bytes.HasPrefix(pkt, opusTagsMagic) {
			continue
		}
		n, err := opusSamples(pkt)
		if err != nil {
			if s.skipped != nil {
				s.skipped.Add(1)
			}
			continue
		}
		f := frame{data: pkt, at: samplesToDuration(s.pos), dur: samplesToDuration(int64(n))}
		s.pos += int64(n)
		return f, nil
	}
}

// oggSink writes Opus packets to an Ogg stream with Pion's oggwriter.
type oggSink struct {
	w    *oggwriter.Writer
	t    *oggwriter.Track
	ssrc uint32
}

func newOggSink(out io.Writer, channels uint16, ssrc uint32) (*oggSink, error) {
	if channels == 0 || channels > 2 {
		channels = 2
	}
	opts := []oggwriter.WriterOption{oggwriter.WithSampleRate(opusRate), oggwriter.WithChannelCount(channels)}
	if ws, ok := out.(fileLike); ok {
		opts = append(opts, oggwriter.WithSeekableOutput(ws)) // lets Close mark the last page EOS
	}
	// The writer closes an io.Closer output in Close; the caller owns out, so hide it.
	w, err := oggwriter.NewWriter(struct{ io.Writer }{out}, opts...)
	if err != nil {
		return nil, fmt.Errorf("mediafile: Ogg writer: %w", err)
	}
	t, err := w.NewTrack(ssrc)
	if err != nil {
		return nil, fmt.Errorf("mediafile: Ogg track: %w", err)
	}
	return &oggSink{w: w, t: t, ssrc: ssrc}, nil
}

func (s *oggSink) write(data []byte, ts uint32) (bool, error) {
	if _, err := opusSamples(data); err != nil {
		return false, nil
	}
	p := &rtp.Packet{Header: rtp.Header{SSRC: s.ssrc, Timestamp: ts}, Payload: data}
	if err := s.t.WriteRTP(p); err != nil {
		return false, fmt.Errorf("mediafile: write Ogg: %w", err)
	}
	return true, nil
}

func (s *oggSink) close() error {
	if err := s.w.Close(); err != nil {
		return fmt.Errorf("mediafile: close Ogg: %w", err)
	}
	return nil
}
