package mediafile_test

import (
	"context"
	"fmt"
	"log"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/sdk"
	"github.com/switchboard-rtc/switchboard/sdk/mediafile"
)

// Send a video file to every peer of a room, now or later, at its own pace.
func ExampleOpenTrack() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	track, player, err := mediafile.OpenTrack("movie.ivf", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer player.Close()
	client, err := sdk.Dial(ctx, "http://localhost:8080", "cinema", &sdk.Options{
		OnPeer: func(p *sdk.Peer) {
			if _, err := p.AddTrack(track); err != nil {
				log.Print(err)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	if err := player.Play(ctx, false); err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
	fmt.Printf("sent %d frames\n", player.Stats().Frames)
}

// Record every track the peers of a room send, each to its own file.
func ExampleRecordFile() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	client, err := sdk.Dial(ctx, "http://localhost:8080", "cinema", &sdk.Options{
		OnPeer: func(p *sdk.Peer) {
			p.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
				ext, ok := mediafile.Extension(t.Codec().MimeType)
				if !ok {
					return // the SDK drops what nobody reads
				}
				path := filepath.Join("recordings", p.ID()+"-"+t.ID()+ext)
				st, err := mediafile.RecordFile(ctx, t, path)
				fmt.Printf("%s: %d frames, %v\n", path, st.Frames, err)
			})
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	<-ctx.Done()
}

func ExampleExtension() {
	for _, codec := range []string{webrtc.MimeTypeVP8, webrtc.MimeTypeAV1, webrtc.MimeTypeOpus, webrtc.MimeTypeH264} {
		ext, ok := mediafile.Extension(codec)
		fmt.Println(codec, ext, ok)
	}
	// Output:
	// video/VP8 .ivf true
	// video/AV1 .ivf true
	// audio/opus .ogg true
	// video/H264  false
}
