package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/sdk"
	"github.com/switchboard-rtc/switchboard/sdk/mediafile"
)

const streamUsage = `Usage: switchboard stream FILE --room R [--loop] [--server URL]

Join the room and send FILE as a media track to every peer in it, present and later, at the
file's own pace. FILE is IVF (VP8, VP9 or AV1, from the header's FourCC) or Ogg Opus, told
apart by its content. Playing starts when the first peer connects and stops at the end of the
file (never with --loop) or on Ctrl-C; a peer that joins later sees it from there on (video
from the file's next keyframe).

Flags (before or after FILE):
`

const recordUsage = `Usage: switchboard record --room R [--out DIR] [--server URL]

Join the room and save every media track the peers send to DIR, one file per track named
PEER-TRACK.ivf (VP8, VP9, AV1) or PEER-TRACK.ogg (Opus); an existing file is never
overwritten (-2, -3, ... is added instead). Tracks in other codecs (H.264, G.711, ...) are
skipped with a message. Video is saved from its first keyframe. A line with the frames
written is printed as each track ends; Ctrl-C ends them all.

Flags:
`

const echoUsage = `Usage: switchboard echo --room R [--server URL]

Join the room as a bot that sends each peer its own media tracks back (same codec, on a new
track of the same connection) and answers every data channel message with the same message on
the same channel. Runs until Ctrl-C.

Flags:
`

// mediaDialTimeout bounds joining the room.
const mediaDialTimeout = 15 * time.Second

// streamLinger is how long stream stays after the file ends: closing at once makes the
// receivers drop the packets they have not read yet.
const streamLinger = 250 * time.Millisecond

// mediaFlags are the flags every media command takes: the peer flags and a room.
type mediaFlags struct {
	peerFlags
	room string
}

// newMediaFlagSet returns a flag set with the common flags that prints usage, then the
// flags, to stderr.
func newMediaFlagSet(name, usage string, stderr io.Writer) (*flag.FlagSet, *mediaFlags) {
	fs := newFlagSet("switchboard "+name, usage, stderr)
	f := &mediaFlags{}
	f.register(fs)
	fs.StringVar(&f.room, "room", "", "room to join (required unless --token names it)")
	return fs, f
}

// parseMediaFlags parses args, allowing flags after positional arguments, and checks that
// there are exactly npos positional arguments and a room.
func parseMediaFlags(fs *flag.FlagSet, f *mediaFlags, args []string, npos int) ([]string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	switch {
	case len(pos) != npos && npos == 0:
		fs.Usage()
		return nil, fmt.Errorf("%s: unexpected argument %q", fs.Name(), pos[0])
	case len(pos) != npos:
		fs.Usage()
		return nil, fmt.Errorf("%s: want %d file, got %d", fs.Name(), npos, len(pos))
	case f.room == "" && f.tokenFor() == "":
		fs.Usage()
		return nil, fmt.Errorf("%s: --room is required (or --token for the token's room)", fs.Name())
	}
	return pos, nil
}

// dial joins the room with the common options.
func (f *mediaFlags) dial(ctx context.Context, role string, stderr io.Writer, opts sdk.Options) (*sdk.Client, error) {
	f.fill(&opts, role, stderr)
	opts.OnError = func(p *sdk.Peer, err error) {
		if p != nil {
			fmt.Fprintf(stderr, "%s: peer %s: %v\n", role, p.ID(), err)
		}
	}
	dctx, cancel := context.WithTimeout(ctx, mediaDialTimeout)
	defer cancel()
	c, err := dialPeer(dctx, f.server, f.room, &opts)
	if err != nil {
		return nil, fmt.Errorf("%s: join %q at %s: %w", role, f.room, f.server, err)
	}
	f.room = c.Room() // the token's, when it named the room
	return c, nil
}

// mediaWait blocks until ctx is done (Ctrl-C: not an error) or the client stops (the
// server went away: its error).
func mediaWait(ctx context.Context, c *sdk.Client) error {
	select {
	case <-ctx.Done():
		return nil
	case <-c.Done():
		return c.Err()
	}
}

// mediaTasks tracks a command's goroutines, including the SDK's OnTrack handlers, so the
// command returns only after all of them: once closed, it admits no more.
type mediaTasks struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// enter admits one more task, or reports false once closed; a true must be paired with leave.
func (g *mediaTasks) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	return true
}

func (g *mediaTasks) leave() { g.wg.Done() }

// run starts f on its own goroutine unless closed.
func (g *mediaTasks) run(f func()) {
	if !g.enter() {
		return
	}
	go func() {
		defer g.leave()
		f()
	}()
}

// closeAndWait admits no more tasks and waits for the running ones. The caller must first
// make them stop (closing the client ends every peer and track).
func (g *mediaTasks) closeAndWait() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}

// syncWriter serializes writes from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// drainRemote reads a track nobody wants so Pion's buffers keep moving.
func drainRemote(t *webrtc.TrackRemote) {
	buf := make([]byte, 1<<16)
	for {
		if _, _, err := t.Read(buf); err != nil {
			return
		}
	}
}

// streamMedia runs `switchboard stream`.
func streamMedia(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newMediaFlagSet("stream", streamUsage, stderr)
	loop := fs.Bool("loop", false, "play the file again and again until Ctrl-C")
	pos, err := parseMediaFlags(fs, f, args, 1)
	if err != nil {
		return err
	}
	file := pos[0]
	track, player, err := mediafile.OpenTrack(file, nil)
	if err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	defer player.Close()

	errw := &syncWriter{w: stderr}
	var tasks mediaTasks
	first := make(chan struct{})
	var firstOnce sync.Once
	client, err := f.dial(ctx, "stream", errw, sdk.Options{OnPeer: func(p *sdk.Peer) {
		if _, err := p.AddTrack(track); err != nil {
			fmt.Fprintf(errw, "stream: peer %s: %v\n", p.ID(), err)
			return
		}
		tasks.run(func() {
			select {
			case <-p.Connected():
				firstOnce.Do(func() { close(first) })
				fmt.Fprintf(errw, "stream: sending to %s\n", peerLabel(p))
			case <-p.Closed():
			}
		})
	}})
	if err != nil {
		return err
	}
	playCtx, stop := context.WithCancel(ctx)
	defer func() {
		stop()
		client.Close()
		tasks.closeAndWait()
	}()
	tasks.run(func() { // the server going away stops the player
		select {
		case <-client.Done():
			stop()
		case <-playCtx.Done():
		}
	})

	info := player.Info()
	fmt.Fprintf(errw, "stream: %s (%s) in room %q as %s; waiting for a peer\n", file, describeMedia(info), f.room, client.ID())
	select {
	case <-first:
	case <-playCtx.Done():
		return client.Err()
	}
	start := time.Now()
	err = player.Play(playCtx, *loop)
	st := player.Stats()
	fmt.Fprintf(stdout, "%s: sent %d frames, %d bytes in %v\n", file, st.Frames, st.Bytes, time.Since(start).Round(time.Millisecond))
	if err == nil {
		linger := time.NewTimer(streamLinger)
		select {
		case <-linger.C:
		case <-playCtx.Done():
			linger.Stop()
		}
	}
	if cerr := client.Err(); cerr != nil {
		return cerr
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("stream: %w", err)
	}
	return nil
}

func describeMedia(in mediafile.Info) string {
	codec := strings.TrimPrefix(strings.TrimPrefix(in.Codec.MimeType, "video/"), "audio/")
	switch {
	case in.Container == "ivf" && in.Width > 0:
		return fmt.Sprintf("%s %dx%d", codec, in.Width, in.Height)
	case in.Channels > 0:
		return fmt.Sprintf("%s, %d channels", codec, in.Channels)
	}
	return codec
}

func peerLabel(p *sdk.Peer) string {
	if p.Name() != "" {
		return fmt.Sprintf("%s (%s)", p.Name(), p.ID())
	}
	return p.ID()
}

// recordMedia runs `switchboard record`.
func recordMedia(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newMediaFlagSet("record", recordUsage, stderr)
	dir := fs.String("out", ".", "directory for the recordings (created if missing)")
	if _, err := parseMediaFlags(fs, f, args, 0); err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	out, errw := &syncWriter{w: stdout}, &syncWriter{w: stderr}
	names := &recordNames{dir: *dir, used: map[string]bool{}}
	var tasks mediaTasks
	client, err := f.dial(ctx, "record", errw, sdk.Options{OnPeer: func(p *sdk.Peer) {
		p.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			if !tasks.enter() {
				return // closing: the connection is going away with the track
			}
			defer tasks.leave()
			recordTrack(ctx, p, t, names, out, errw)
		})
	}})
	if err != nil {
		return err
	}
	fmt.Fprintf(errw, "record: recording room %q into %s as %s\n", f.room, *dir, client.ID())
	err = mediaWait(ctx, client)
	client.Close() // ends every track: each recording finishes its file and prints its line
	tasks.closeAndWait()
	return err
}

func recordTrack(ctx context.Context, p *sdk.Peer, t *webrtc.TrackRemote, names *recordNames, out, errw io.Writer) {
	mime := t.Codec().MimeType
	ext, ok := mediafile.Extension(mime)
	if !ok {
		fmt.Fprintf(errw, "record: skipping track %q from %s: %s cannot be recorded (VP8, VP9, AV1 go to IVF, Opus to Ogg)\n",
			t.ID(), peerLabel(p), mime)
		drainRemote(t)
		return
	}
	id := t.ID()
	if id == "" {
		id = fmt.Sprint(t.SSRC())
	}
	path, err := names.claim(safeFileName(p.ID())+"-"+safeFileName(id), ext)
	if err != nil {
		fmt.Fprintf(errw, "record: track %q from %s: %v\n", t.ID(), peerLabel(p), err)
		drainRemote(t)
		return
	}
	fmt.Fprintf(errw, "record: %s from %s to %s\n", mime, peerLabel(p), path)
	st, err := mediafile.RecordFile(ctx, t, path)
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(errw, "record: %s: %v\n", path, err)
	}
	line := fmt.Sprintf("%s: %d frames, %d bytes", path, st.Frames, st.Bytes)
	if st.LostPackets > 0 {
		line += fmt.Sprintf(", %d packets lost", st.LostPackets)
	}
	fmt.Fprintln(out, line)
}

// recordNames hands out file names in the output directory, never one used before.
type recordNames struct {
	dir  string
	mu   sync.Mutex
	used map[string]bool
}

func (n *recordNames) claim(base, ext string) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := 1; i < 1000; i++ {
		name := base + ext
		if i > 1 {
			name = fmt.Sprintf("%s-%d%s", base, i, ext)
		}
		path := filepath.Join(n.dir, name)
		if n.used[path] {
			continue
		}
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			continue
		}
		n.used[path] = true
		return path, nil
	}
	return "", fmt.Errorf("no free file name for %s%s in %s", base, ext, n.dir)
}

// safeFileName keeps letters, digits, '.', '_' and '-' of a peer or track id (browsers use
// UUIDs, sometimes in braces), and at most 64 of them.
func safeFileName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	s = strings.TrimLeft(string(b), ".")
	if len(s) > 64 {
		s = s[:64]
	}
	if s == "" {
		s = "track"
	}
	return s
}

// echoBot runs `switchboard echo`.
func echoBot(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := newMediaFlagSet("echo", echoUsage, stderr)
	if _, err := parseMediaFlags(fs, f, args, 0); err != nil {
		return err
	}
	errw := &syncWriter{w: stderr}
	var tasks mediaTasks
	client, err := f.dial(ctx, "echo", errw, sdk.Options{OnPeer: func(p *sdk.Peer) {
		p.OnDataChannel(func(dc *webrtc.DataChannel) {
			dc.OnMessage(func(m webrtc.DataChannelMessage) {
				var err error
				if m.IsString {
					err = dc.SendText(string(m.Data))
				} else {
					err = dc.Send(m.Data)
				}
				if err != nil {
					fmt.Fprintf(errw, "echo: %s: channel %q: %v\n", peerLabel(p), dc.Label(), err)
				}
			})
		})
		p.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			if !tasks.enter() {
				return
			}
			defer tasks.leave()
			echoTrack(p, t, &tasks, errw)
		})
	}})
	if err != nil {
		return err
	}
	fmt.Fprintf(errw, "echo: in room %q as %s, sending every peer its own tracks and messages back\n", f.room, client.ID())
	err = mediaWait(ctx, client)
	client.Close() // ends every track and with it every echo
	tasks.closeAndWait()
	return err
}

// echoTrack sends the RTP of a peer's track back to it on a new track of the same
// connection (adding it renegotiates), until the track ends; then it takes the echo away.
func echoTrack(p *sdk.Peer, t *webrtc.TrackRemote, tasks *mediaTasks, errw io.Writer) {
	local, err := webrtc.NewTrackLocalStaticRTP(t.Codec().RTPCodecCapability, t.ID(), "echo-"+t.StreamID())
	if err != nil {
		fmt.Fprintf(errw, "echo: %s: track %q: %v\n", peerLabel(p), t.ID(), err)
		drainRemote(t)
		return
	}
	pc := p.PeerConnection()
	sender, err := pc.AddTrack(local)
	if err != nil {
		fmt.Fprintf(errw, "echo: %s: track %q: %v\n", peerLabel(p), t.ID(), err)
		drainRemote(t)
		return
	}
	fmt.Fprintf(errw, "echo: %s: sending %s track %q back\n", peerLabel(p), t.Codec().MimeType, t.ID())
	tasks.run(func() { relayKeyframeRequests(pc, sender, t.SSRC()) })
	buf := make([]byte, 1<<16)
	var pkt rtp.Packet
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			break
		}
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		// Header extension ids were negotiated for the other direction: drop them (Pion's
		// interceptors add their own).
		pkt.Header.Extension, pkt.Header.Extensions, pkt.Header.ExtensionProfile = false, nil, 0
		_ = local.WriteRTP(&pkt) // fails only while the connection is going away
	}
	if pc.ConnectionState() != webrtc.PeerConnectionStateClosed {
		_ = pc.RemoveTrack(sender) // the peer stopped sending this track
	}
}

// relayKeyframeRequests passes the peer's requests for a keyframe of the echo on to the
// peer's own sender of the original, until the echo's sender stops.
func relayKeyframeRequests(pc *webrtc.PeerConnection, s *webrtc.RTPSender, source webrtc.SSRC) {
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				_ = pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(source)}})
			}
		}
	}
}
