package mediafile

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/sdk"
)

const wait = 15 * time.Second

func dial(t *testing.T, url, room string, opts sdk.Options) *sdk.Client {
	t.Helper()
	return testserver.DialPeer(t, url, room, opts, wait)
}

func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	return testserver.Recv(t, ch, wait, what)
}

type recorded struct {
	path  string
	mime  string
	stats Stats
	err   error
}

// streamAndRecord plays file from one SDK peer and records it on another, and returns what
// the recorder wrote once the player has finished and left.
func streamAndRecord(t *testing.T, file string) recorded {
	t.Helper()
	url := testserver.Start(t, nil)
	dir := t.TempDir()
	got := make(chan recorded, 1)
	dial(t, url, "media", sdk.Options{Name: "recorder", OnPeer: func(p *sdk.Peer) {
		p.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			ext, ok := Extension(tr.Codec().MimeType)
			if !ok {
				got <- recorded{mime: tr.Codec().MimeType}
				return
			}
			path := filepath.Join(dir, "rec"+ext)
			st, err := RecordFile(context.Background(), tr, path)
			got <- recorded{path, tr.Codec().MimeType, st, err}
		})
	}})

	track, player, err := OpenTrack(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer player.Close()
	connected := make(chan struct{}, 1)
	streamer := dial(t, url, "media", sdk.Options{Name: "streamer", OnPeer: func(p *sdk.Peer) {
		if _, err := p.AddTrack(track); err != nil {
			t.Error(err)
		}
		go func() { // ends when the peer connects or goes away
			select {
			case <-p.Connected():
				connected <- struct{}{}
			case <-p.Closed():
			}
		}()
	}})
	waitFor(t, connected, "the streamer's connection")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := player.Play(ctx, false); err != nil {
		t.Fatalf("play: %v", err)
	}
	streamer.Close() // the recorder's track ends
	r := waitFor(t, got, "the recording")
	if r.err != nil {
		t.Fatalf("record %s: %v", r.mime, r.err)
	}
	t.Logf("sent %+v, recorded %+v", player.Stats(), r.stats)
	return r
}

// tolerance is how many frames the start and end of a live stream may miss: the first ones
// can go out while the receiver's DTLS is still finishing, the last while it hangs up.
const tolerance = 3

func TestStreamAndRecordIVF(t *testing.T) {
	const n = 45 // 1.5 s at 30 fps
	var frames [][]byte
	var pts []uint64
	for i := range n {
		frames = append(frames, vp8Frame(i, 300+(i*211)%2500, true))
		pts = append(pts, uint64(i))
	}
	r := streamAndRecord(t, writeTemp(t, "src.ivf", writeIVF(t, "VP80", 30, 1, frames, pts)))
	data, err := os.ReadFile(r.path)
	if err != nil {
		t.Fatal(err)
	}
	h, got := readIVF(t, data)
	if h.FourCC != "VP80" || h.Width != 320 || h.Height != 180 || int(h.NumFrames) != len(got) {
		t.Fatalf("header %+v, %d frames", h, len(got))
	}
	if len(got) < n-tolerance || len(got) > n || r.stats.Frames != int64(len(got)) {
		t.Fatalf("recorded %d frames (stats %+v) of %d", len(got), r.stats, n)
	}
	// What arrived is a run of the source, byte for byte.
	start := -1
	for i, f := range frames {
		if bytes.Equal(f, got[0]) {
			start = i
		}
	}
	if start < 0 || start > tolerance {
		t.Fatalf("first recorded frame is not among the first source frames")
	}
	for i, f := range got {
		if !bytes.Equal(f, frames[start+i]) {
			t.Fatalf("recorded frame %d differs from source frame %d", i, start+i)
		}
	}
}

func TestStreamAndRecordOgg(t *testing.T) {
	const n = 60 // 1.2 s of 20 ms packets
	var packets [][]byte
	for i := range n {
		packets = append(packets, opusPacket(i, 80+i%40, false))
	}
	r := streamAndRecord(t, writeTemp(t, "src.ogg", writeOgg(t, packets)))
	if r.mime != webrtc.MimeTypeOpus {
		t.Fatalf("codec %s", r.mime)
	}
	data, err := os.ReadFile(r.path)
	if err != nil {
		t.Fatal(err)
	}
	head, got := readOgg(t, data)
	if head.SampleRate != 48000 || head.Channels != 2 {
		t.Fatalf("head %+v", head)
	}
	if len(got) < n-tolerance || len(got) > n || r.stats.Frames != int64(len(got)) {
		t.Fatalf("recorded %d packets (stats %+v) of %d", len(got), r.stats, n)
	}
	start := -1
	for i, p := range packets {
		if bytes.Equal(p, got[0]) {
			start = i
		}
	}
	if start < 0 || start > tolerance {
		t.Fatalf("first recorded packet is not among the first source packets")
	}
	for i, p := range got {
		if !bytes.Equal(p, packets[start+i]) {
			t.Fatalf("recorded packet %d differs from source packet %d", i, start+i)
		}
	}
}

func TestRecordStopsWithContext(t *testing.T) {
	url := testserver.Start(t, nil)
	type result struct {
		st  Stats
		err error
	}
	got := make(chan result, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	var out bytes.Buffer
	dial(t, url, "stop", sdk.Options{OnPeer: func(p *sdk.Peer) {
		p.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			close(started)
			st, err := Record(ctx, tr, &out)
			got <- result{st, err}
		})
	}})
	var frames [][]byte
	var pts []uint64
	for i := range 300 {
		frames = append(frames, vp8Frame(i, 100, true))
		pts = append(pts, uint64(i))
	}
	track, player, err := OpenTrack(writeTemp(t, "long.ivf", writeIVF(t, "VP80", 30, 1, frames, pts)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer player.Close()
	dial(t, url, "stop", sdk.Options{OnPeer: func(p *sdk.Peer) {
		if _, err := p.AddTrack(track); err != nil {
			t.Error(err)
		}
	}})
	playCtx, stopPlay := context.WithCancel(context.Background())
	played := make(chan error, 1)
	go func() { played <- player.Play(playCtx, true) }()
	defer func() {
		stopPlay()
		<-played
	}()
	waitFor(t, started, "the track")
	cancel()
	r := waitFor(t, got, "Record to stop")
	if r.err != context.Canceled {
		t.Fatalf("Record returned %v, want context.Canceled", r.err)
	}
	if _, frames := readIVF(t, out.Bytes()); len(frames) != int(r.st.Frames) {
		t.Fatalf("%d frames in the output, stats say %d", len(frames), r.st.Frames)
	}
}
