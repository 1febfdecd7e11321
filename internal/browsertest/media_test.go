package browsertest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/sdk"
	"github.com/switchboard-rtc/switchboard/sdk/mediafile"
)

// TestMediaInterop records a page's fake camera with sdk/mediafile, as `switchboard record`
// does, into a VP8 IVF, then streams that recording with mediafile's Player, as
// `switchboard stream` does, into a second page, which must decode it.
func TestMediaInterop(t *testing.T) {
	e := setup(t, 60*time.Second)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	path := filepath.Join(t.TempDir(), "camera.ivf")

	// (a) Page camera → Go recording.
	ctx, cancel := context.WithTimeout(e.browser, 25*time.Second)
	defer cancel()
	type rec struct {
		mime  string
		stats mediafile.Stats
		err   error
	}
	recorded := make(chan rec, 1)
	cam := e.page("camera")
	idCam := eval[string](cam, `T.join(null, "media-record", "camera")`)
	recorder, err := sdk.Dial(ctx, e.wsURL, "media-record", &sdk.Options{
		Name: "recorder", Meta: map[string]string{"role": "record"}, Loopback: true, Logger: quiet,
		OnPeer: func(p *sdk.Peer) {
			p.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
				if tr.Kind() != webrtc.RTPCodecTypeVideo {
					return
				}
				rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
				defer rcancel()
				st, err := mediafile.RecordFile(rctx, tr, path)
				if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
					err = nil // stopped on purpose
				}
				select {
				case recorded <- rec{tr.Codec().MimeType, st, err}:
				default:
				}
			})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = recorder.Close() }()
	eval[bool](cam, `T.waitConnected(`+js(recorder.ID())+`)`)
	eval[bool](cam, `T.startVideo(`+js(recorder.ID())+`)`)
	var r rec
	select {
	case r = <-recorded:
	case <-ctx.Done():
		t.Fatalf("no recording\npage log:\n%s", cam.log())
	}
	if r.err != nil {
		t.Fatalf("record %s: %v", r.mime, r.err)
	}
	if r.mime != webrtc.MimeTypeVP8 {
		t.Fatalf("the camera came as %s, want %s", r.mime, webrtc.MimeTypeVP8)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 32 || string(b[0:4]) != "DKIF" || string(b[8:12]) != "VP80" {
		t.Fatalf("not a VP8 IVF: % x", b[:min(len(b), 32)])
	}
	if r.stats.Frames <= 0 {
		t.Fatalf("no frames recorded: %+v", r.stats)
	}
	t.Logf("recorded page %s's camera: %+v, %d bytes", idCam, r.stats, len(b))
	if errs := cam.errors(); len(errs) > 0 {
		t.Errorf("camera page reported errors: %v", errs)
	}
	_ = recorder.Close()

	// (b) The recording → a second page, through mediafile's Player.
	track, player, err := mediafile.OpenTrack(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = player.Close() }()
	if info := player.Info(); info.Codec.MimeType != webrtc.MimeTypeVP8 || info.Width == 0 {
		t.Fatalf("player info %+v", info)
	}
	pctx, pcancel := context.WithTimeout(e.browser, 25*time.Second)
	defer pcancel()
	peers := make(chan *sdk.Peer, 1)
	streamer, err := sdk.Dial(pctx, e.wsURL, "media-stream", &sdk.Options{
		Name: "streamer", Meta: map[string]string{"role": "stream"}, Loopback: true, Logger: quiet,
		OnPeer: func(p *sdk.Peer) {
			select {
			case peers <- p:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = streamer.Close() }()
	viewer := e.page("viewer")
	eval[string](viewer, `T.join(null, "media-stream", "viewer")`)
	var p *sdk.Peer
	select {
	case p = <-peers:
	case <-pctx.Done():
		t.Fatal("the streamer never saw the viewer")
	}
	select {
	case <-p.Connected():
	case <-pctx.Done():
		t.Fatalf("not connected\npage log:\n%s", viewer.log())
	}
	if _, err := p.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	playErr := make(chan error, 1)
	go func() { playErr <- player.Play(pctx, true) }()
	v := eval[map[string]float64](viewer, `T.waitVideo(`+js(streamer.ID())+`)`)
	if v["framesDecoded"] <= 0 || v["width"] <= 0 {
		t.Fatalf("viewer decoded nothing: %v", v)
	}
	// Keep going: more than the first keyframe decodes.
	v = eval[map[string]float64](viewer, `(async () => {
		for (const end = Date.now() + 10000; ; await new Promise((r) => setTimeout(r, 100))) {
			const v = await T.waitVideo(`+js(streamer.ID())+`);
			if (v.framesDecoded >= 10 || Date.now() > end) return v;
		}
	})()`)
	if v["framesDecoded"] < 10 {
		t.Fatalf("viewer decoded fewer than 10 frames in 10 s: %v", v)
	}
	t.Logf("viewer decoded the recording: %vx%v, %v frames (player %+v)", v["width"], v["height"], v["framesDecoded"], player.Stats())
	if errs := viewer.errors(); len(errs) > 0 {
		t.Errorf("viewer page reported errors: %v", errs)
	}
	pcancel()
	if err := <-playErr; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("play: %v", err)
	}
}
