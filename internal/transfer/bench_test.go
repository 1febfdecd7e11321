package transfer_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/internal/transfer"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// BenchmarkFileVsRaw measures, in each iteration and over the same peer connection, the raw
// rate of a data channel driven by an sdk.ChannelWriter (the writer and message size the
// file protocol uses, no framing, no hashing, no disk) and the end-to-end rate of sending a
// file of the same size with the file protocol (read, hash, send, receive, hash, write, sync,
// rename, confirmation). It reports both in MB/s (10^6 bytes per second) and their ratio.
//
//	go test -run '^$' -bench FileVsRaw -benchtime 3x ./internal/transfer
func BenchmarkFileVsRaw(b *testing.B) {
	size := int64(32 << 20)
	if raceEnabled {
		size = 8 << 20
	}
	src, out := b.TempDir(), b.TempDir()
	randomFile(b, src, "bench.bin", size, 7)
	path := filepath.Join(src, "bench.bin")

	// Raw channels count their bytes at the receiver and report when size have arrived.
	rawDone := make(chan struct{}, 1)
	receivers := make(chan *transfer.Receiver, 1)
	peers := make(chan *sdk.Peer, 1)
	url := testserver.Start(b, nil)
	dial(b, url, "bench", sdk.Options{OnPeer: func(p *sdk.Peer) {
		p.OnDataChannel(func(dc *webrtc.DataChannel) {
			if transfer.Accept(dc) {
				receivers <- transfer.NewReceiver(dc, transfer.ReceiveOptions{Dir: out, Overwrite: true})
				return
			}
			var n atomic.Int64
			dc.OnMessage(func(m webrtc.DataChannelMessage) {
				if n.Add(int64(len(m.Data))) == size {
					rawDone <- struct{}{}
				}
			})
		})
	}})
	dial(b, url, "bench", sdk.Options{OnPeer: func(p *sdk.Peer) { peers <- p }})
	peer := waitChan(b, peers, "the peer")
	waitChan(b, peer.Connected(), "connected")

	chunk := make([]byte, transfer.ChunkSize)
	iter := 0
	// raw sends n bytes on a new channel and returns the time until they have all arrived.
	raw := func(ctx context.Context, n int64) time.Duration {
		iter++
		opened := make(chan struct{})
		dc, err := peer.CreateDataChannel(fmt.Sprintf("raw-%d", iter), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer dc.Close()
		dc.OnOpen(func() { close(opened) })
		waitChan(b, opened, "the raw channel")
		w := sdk.NewChannelWriter(dc, &sdk.ChannelWriterOptions{MessageSize: transfer.ChunkSize})
		start := time.Now()
		for sent := int64(0); sent < n; {
			k := min(int64(len(chunk)), n-sent)
			if err := w.Send(ctx, chunk[:k]); err != nil {
				b.Fatal(err)
			}
			sent += k
		}
		waitChan(b, rawDone, "the raw bytes")
		return time.Since(start)
	}
	// file sends the file on a new channel and returns the time until it is confirmed.
	file := func(ctx context.Context) time.Duration {
		dc, err := peer.CreateDataChannel(transfer.Label, transfer.DataChannelInit())
		if err != nil {
			b.Fatal(err)
		}
		defer dc.Close()
		sender := transfer.NewSender(dc, nil)
		receiver := waitChan(b, receivers, "the file receiver")
		run := make(chan error, 1)
		go func() {
			_, err := receiver.Run(ctx)
			run <- err
		}()
		start := time.Now()
		_, err = sender.Send(ctx, []string{path})
		d := time.Since(start)
		if rerr := waitChan(b, run, "the receiver"); err != nil || rerr != nil {
			b.Fatalf("send: %v, receive: %v", err, rerr)
		}
		return d
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*wait)
	defer cancel()
	raw(ctx, size) // warm up: the association's congestion window, the page cache
	var rawTime, fileTime time.Duration
	n := 0
	for b.Loop() {
		// Alternate the order: the first transfer of an iteration sometimes runs faster.
		if n%2 == 0 {
			rawTime += raw(ctx, size)
			fileTime += file(ctx)
		} else {
			fileTime += file(ctx)
			rawTime += raw(ctx, size)
		}
		n++
	}
	mb := float64(size) * float64(n) / 1e6
	rawRate, fileRate := mb/rawTime.Seconds(), mb/fileTime.Seconds()
	b.ReportMetric(rawRate, "raw-MB/s")
	b.ReportMetric(fileRate, "file-MB/s")
	b.ReportMetric(fileRate/rawRate, "file/raw")
}
