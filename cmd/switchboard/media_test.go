package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/sdk"
	"github.com/switchboard-rtc/switchboard/sdk/mediafile"
)

const mediaWaitFor = 20 * time.Second

// mediaLines is an io.Writer that hands out what is written line by line.
type mediaLines struct {
	mu      sync.Mutex
	partial []byte
	all     strings.Builder
	ch      chan string
}

func newMediaLines() *mediaLines { return &mediaLines{ch: make(chan string, 1000)} }

func (l *mediaLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(p)
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		select {
		case l.ch <- string(l.partial[:i]):
		default:
		}
		l.partial = l.partial[i+1:]
	}
}

func (l *mediaLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

// waitFor returns the next line containing s.
func (l *mediaLines) waitFor(t *testing.T, s string) string {
	t.Helper()
	deadline := time.After(mediaWaitFor)
	for {
		select {
		case line := <-l.ch:
			if strings.Contains(line, s) {
				return line
			}
		case <-deadline:
			t.Fatalf("no line with %q in:\n%s", s, l.String())
		}
	}
}

// mediaRun is a media command running in the test process.
type mediaRun struct {
	stdout, stderr *mediaLines
	cancel         context.CancelFunc
	done           chan error
}

func runMedia(t *testing.T, f func(context.Context, []string, io.Writer, io.Writer) error, args ...string) *mediaRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &mediaRun{stdout: newMediaLines(), stderr: newMediaLines(), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- f(ctx, args, r.stdout, r.stderr) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

func (r *mediaRun) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for Cleanup
		return err
	case <-time.After(mediaWaitFor):
		t.Fatalf("command did not return; stderr:\n%s", r.stderr.String())
		return nil
	}
}

// testIVF writes n VP8 keyframes at 30 fps (Pion does not decode: a valid frame tag and
// start code are enough).
func testIVF(t *testing.T, n int) string {
	t.Helper()
	var b bytes.Buffer
	h := make([]byte, 32)
	copy(h, "DKIF")
	binary.LittleEndian.PutUint16(h[6:], 32)
	copy(h[8:], "VP80")
	binary.LittleEndian.PutUint16(h[12:], 320)
	binary.LittleEndian.PutUint16(h[14:], 180)
	binary.LittleEndian.PutUint32(h[16:], 30)
	binary.LittleEndian.PutUint32(h[20:], 1)
	binary.LittleEndian.PutUint32(h[24:], uint32(n))
	b.Write(h)
	for i := range n {
		f := vp8Keyframe(i, 300+(i*577)%2500)
		var fh [12]byte
		binary.LittleEndian.PutUint32(fh[0:], uint32(len(f)))
		binary.LittleEndian.PutUint64(fh[4:], uint64(i))
		b.Write(fh[:])
		b.Write(f)
	}
	path := filepath.Join(t.TempDir(), "clip.ivf")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func vp8Keyframe(i, size int) []byte {
	f := bytes.Repeat([]byte{byte(i)}, size)
	copy(f, []byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00})
	return f
}

// testOgg writes n 20 ms Opus packets (a valid TOC byte and filler) with Pion's oggwriter.
func testOgg(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "clip.ogg")
	w, err := oggwriter.New(path, 48000, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		p := append([]byte{31<<3 | 0x04}, bytes.Repeat([]byte{byte(i)}, 60)...)
		if err := w.WriteRTP(&rtp.Packet{Header: rtp.Header{Timestamp: uint32(i * 960)}, Payload: p}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

var framesRE = regexp.MustCompile(`^(.+): (\d+) frames`)

// recordedLine returns the path and frame count of a record output line.
func recordedLine(t *testing.T, line string) (string, int) {
	t.Helper()
	m := framesRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("bad record line %q", line)
	}
	n, _ := strconv.Atoi(m[2])
	return m[1], n
}

// The stream command plays an IVF, then an Ogg file, into a room; the record command saves
// both; the files hold what was sent.
func TestStreamAndRecordCommands(t *testing.T) {
	url := testserver.Start(t, nil)
	dir := filepath.Join(t.TempDir(), "out")
	rec := runMedia(t, recordMedia, "--room", "cli", "--out", dir, "--server", url, "--loopback")
	rec.stderr.waitFor(t, "recording room")

	const frames, packets, tolerance = 45, 60, 3
	s := runMedia(t, streamMedia, testIVF(t, frames), "--room", "cli", "--server", url, "--loopback")
	if err := s.wait(t); err != nil {
		t.Fatalf("stream: %v\n%s", err, s.stderr.String())
	}
	if out := s.stdout.String(); !strings.Contains(out, "sent 45 frames") {
		t.Fatalf("stream printed %q", out)
	}
	ivfPath, n := recordedLine(t, rec.stdout.waitFor(t, ".ivf: "))
	if n < frames-tolerance || n > frames {
		t.Fatalf("recorded %d of %d frames", n, frames)
	}
	data, err := os.ReadFile(ivfPath)
	if err != nil {
		t.Fatal(err)
	}
	r, h, err := ivfreader.NewWith(bytes.NewReader(data))
	if err != nil || h.FourCC != "VP80" || int(h.NumFrames) != n {
		t.Fatalf("recorded IVF: %+v, %v", h, err)
	}
	for i := range n {
		if _, _, err := r.ParseNextFrame(); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if !strings.HasSuffix(ivfPath, "-video.ivf") || filepath.Dir(ivfPath) != dir {
		t.Fatalf("recorded to %s", ivfPath)
	}

	s = runMedia(t, streamMedia, "--room", "cli", "--server", url, "--loopback", testOgg(t, packets))
	if err := s.wait(t); err != nil {
		t.Fatalf("stream: %v\n%s", err, s.stderr.String())
	}
	oggPath, n := recordedLine(t, rec.stdout.waitFor(t, ".ogg: "))
	if n < packets-tolerance || n > packets {
		t.Fatalf("recorded %d of %d packets", n, packets)
	}
	f, err := os.Open(oggPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	or, head, err := oggreader.NewWith(f)
	if err != nil || head.Channels != 2 {
		t.Fatalf("recorded Ogg: %+v, %v", head, err)
	}
	pages := 0
	for {
		if _, _, err := or.ParseNextPage(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
		pages++
	}
	if pages != n+1 { // OpusTags, then one page per packet
		t.Fatalf("%d pages for %d packets", pages, n)
	}

	rec.cancel()
	if err := rec.wait(t); err != nil {
		t.Fatalf("record: %v", err)
	}
	if left := mediaGoroutines(); left != "" {
		t.Fatalf("goroutines left after record returned:\n%s", left)
	}
}

// mediaGoroutines returns the stacks of goroutines running the media commands' code. The
// commands wait for all of theirs, so none may be left once they return.
func mediaGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, f := range []string{"main.echoTrack", "main.relayKeyframeRequests", "main.recordTrack", "main.drainRemote",
			"main.streamMedia", "main.recordMedia", "main.echoBot", "sdk/mediafile."} {
			if strings.Contains(g, f) {
				out = append(out, g)
				break
			}
		}
	}
	return strings.Join(out, "\n\n")
}

// A peer sends a VP8 track and data channel messages to the echo bot and gets them back.
func TestEchoCommand(t *testing.T) {
	url := testserver.Start(t, nil)
	bot := runMedia(t, echoBot, "--room", "echo", "--server", url, "--loopback")
	bot.stderr.waitFor(t, "in room")

	type echoed struct {
		mime, stream string
		packets      int
	}
	tracks := make(chan echoed, 1)
	messages := make(chan webrtc.DataChannelMessage, 10)
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "cam", "me")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var feeders sync.WaitGroup
	t.Cleanup(func() { // after the client's Close (cleanups run last first)
		cancel()
		feeders.Wait()
	})
	opts := &sdk.Options{Loopback: true, OnPeer: func(p *sdk.Peer) {
		if p.Name() != "echo" {
			return
		}
		if _, err := p.AddTrack(track); err != nil {
			t.Error(err)
			return
		}
		dc, err := p.CreateDataChannel("chat", nil)
		if err != nil {
			t.Error(err)
			return
		}
		dc.OnOpen(func() {
			_ = dc.SendText("ping")
			_ = dc.Send([]byte{0, 1, 2, 255})
		})
		dc.OnMessage(func(m webrtc.DataChannelMessage) { messages <- m })
		p.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			n := 0
			for ; n < 20; n++ {
				if _, _, err := tr.ReadRTP(); err != nil {
					break
				}
			}
			tracks <- echoed{tr.Codec().MimeType, tr.StreamID(), n}
		})
		feeders.Add(1)
		go func() { // 30 fps of VP8 keyframes until the test ends
			defer feeders.Done()
			tick := time.NewTicker(33 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-p.Closed():
					return
				case <-tick.C:
				}
				_ = track.WriteSample(media.Sample{Data: vp8Keyframe(i, 1500), Duration: 33 * time.Millisecond})
			}
		}()
	}}
	dctx, dcancel := context.WithTimeout(context.Background(), mediaWaitFor)
	defer dcancel()
	client, err := sdk.Dial(dctx, url, "echo", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })

	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case m := <-messages:
			got[strconv.Quote(string(m.Data))+strconv.FormatBool(m.IsString)] = true
		case <-time.After(mediaWaitFor):
			t.Fatalf("echoed messages: %v", got)
		}
	}
	if !got[`"ping"true`] || !got[`"\x00\x01\x02\xff"false`] {
		t.Fatalf("echoed messages: %v", got)
	}
	select {
	case e := <-tracks:
		if e.mime != webrtc.MimeTypeVP8 || e.stream != "echo-me" || e.packets != 20 {
			t.Fatalf("echoed track: %+v", e)
		}
	case <-time.After(mediaWaitFor):
		t.Fatalf("no track echoed; bot said:\n%s", bot.stderr.String())
	}
	bot.cancel()
	if err := bot.wait(t); err != nil {
		t.Fatalf("echo: %v", err)
	}
	if left := mediaGoroutines(); left != "" {
		t.Fatalf("goroutines left after echo returned:\n%s", left)
	}
}

func TestMediaCommandsUsage(t *testing.T) {
	text := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(text, []byte("not media"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"stream": streamMedia, "record": recordMedia, "echo": echoBot,
	}
	for name, f := range cmds {
		var out, errb bytes.Buffer
		if err := f(context.Background(), []string{"--help"}, &out, &errb); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s --help: %v", name, err)
		}
		for _, want := range []string{"Usage: switchboard " + name, "-room", "-server", "SWITCHBOARD_SERVER", "-loopback"} {
			if !strings.Contains(errb.String(), want) {
				t.Errorf("%s --help lacks %q:\n%s", name, want, errb.String())
			}
		}
	}
	for _, tc := range []struct {
		name string
		f    func(context.Context, []string, io.Writer, io.Writer) error
		args []string
		want string
	}{
		{"stream without a room", streamMedia, []string{text}, "--room is required"},
		{"stream without a file", streamMedia, []string{"--room", "r"}, "want 1 file"},
		{"stream with two files", streamMedia, []string{"--room", "r", text, text}, "want 1 file"},
		{"stream of a missing file", streamMedia, []string{"--room", "r", "/no/such.ivf"}, "no such file"},
		{"stream of a text file", streamMedia, []string{"--room", "r", text}, "unsupported"},
		{"record without a room", recordMedia, nil, "--room is required"},
		{"record with a file", recordMedia, []string{"--room", "r", text}, "unexpected argument"},
		{"echo with a bad flag", echoBot, []string{"--room", "r", "--bogus"}, "bogus"},
		{"echo to no server", echoBot, []string{"--room", "r", "--server", "http://127.0.0.1:1"}, "join"},
	} {
		var out, errb bytes.Buffer
		err := tc.f(context.Background(), tc.args, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	var out, errb bytes.Buffer
	if err := streamMedia(context.Background(), []string{"--room", "r", text}, &out, &errb); !errors.Is(err, mediafile.ErrUnsupported) {
		t.Errorf("text file: %v, want mediafile.ErrUnsupported", err)
	}
}

func TestMediaServerFromEnvironment(t *testing.T) {
	t.Setenv("SWITCHBOARD_SERVER", "https://rtc.example.com")
	_, f := newMediaFlagSet("echo", echoUsage, io.Discard)
	if f.server != "https://rtc.example.com" {
		t.Fatalf("server %q", f.server)
	}
	t.Setenv("SWITCHBOARD_SERVER", "")
	if _, f := newMediaFlagSet("echo", echoUsage, io.Discard); f.server != "http://localhost:8080" {
		t.Fatalf("default server %q", f.server)
	}
}

func TestRecordFileNames(t *testing.T) {
	for in, want := range map[string]string{
		"{3f2a-11}":              "_3f2a-11_",
		"../../etc":              "_.._etc",
		"":                       "track",
		"a b/c":                  "a_b_c",
		strings.Repeat("x", 100): strings.Repeat("x", 64),
	} {
		if got := safeFileName(in); got != want {
			t.Errorf("safeFileName(%q) = %q, want %q", in, got, want)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p-v.ivf"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	n := &recordNames{dir: dir, used: map[string]bool{}}
	for _, want := range []string{"p-v-2.ivf", "p-v-3.ivf", "p-a.ogg"} {
		ext := filepath.Ext(want)
		base := "p-v"
		if ext == ".ogg" {
			base = "p-a"
		}
		got, err := n.claim(base, ext)
		if err != nil || got != filepath.Join(dir, want) {
			t.Errorf("claim(%s%s) = %s, %v; want %s", base, ext, got, err, want)
		}
	}
}
