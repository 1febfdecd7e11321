package transfer_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/internal/transfer"
	"github.com/switchboard-rtc/switchboard/sdk"
)

const wait = 30 * time.Second

// bigSize is the size of the large-file test: 64 MiB, as the issue asks, also under the race
// detector (about 20 MB/s there, so a few seconds).
// bigSize is the large file's size: 64 MiB, or 16 MiB under the race detector, which slows
// Pion's data path about fivefold (64 MiB then took up to 30 s on a loaded 2-core machine).
func bigSize() int64 {
	if raceEnabled {
		return 16 << 20
	}
	return 64 << 20
}

func dial(tb testing.TB, url, room string, opts sdk.Options) *sdk.Client {
	tb.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return testserver.DialPeer(tb, url, room, opts, wait)
}

func waitChan[T any](tb testing.TB, ch <-chan T, what string) T {
	tb.Helper()
	return testserver.Recv(tb, ch, wait, what)
}

// connect joins a receiving and a sending client to a fresh room of a fresh server. The
// sending client opens a file-transfer channel to the receiving one and hands it to onSend
// (from OnPeer: before negotiation); the receiving client hands every accepted channel to
// onRecv (from OnDataChannel: before any message).
func connect(tb testing.TB, onSend, onRecv func(*webrtc.DataChannel)) {
	tb.Helper()
	url := testserver.Start(tb, nil)
	dial(tb, url, "files", sdk.Options{Name: "recv", OnPeer: func(p *sdk.Peer) {
		p.OnDataChannel(func(dc *webrtc.DataChannel) {
			if transfer.Accept(dc) {
				onRecv(dc)
			}
		})
	}})
	dial(tb, url, "files", sdk.Options{Name: "send", OnPeer: func(p *sdk.Peer) {
		dc, err := p.CreateDataChannel(transfer.Label, transfer.DataChannelInit())
		if err != nil {
			tb.Error(err)
			return
		}
		onSend(dc)
	}})
}

// runResult is what Receiver.Run returned.
type runResult struct {
	results []transfer.Result
	err     error
}

// startReceiver runs r in a goroutine that the test's cleanup stops.
func startReceiver(tb testing.TB, r *transfer.Receiver) <-chan runResult {
	return startReceiverCtx(tb, context.Background(), r)
}

// startReceiverCtx is startReceiver with Run's context derived from parent.
func startReceiverCtx(tb testing.TB, parent context.Context, r *transfer.Receiver) <-chan runResult {
	ctx, cancel := context.WithCancel(parent)
	out := make(chan runResult, 1)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		rs, err := r.Run(ctx)
		out <- runResult{rs, err}
	}()
	tb.Cleanup(func() {
		cancel()
		<-stopped
	})
	return out
}

// pair connects a Sender to a running Receiver with ropts.
func pair(tb testing.TB, sopts *transfer.SendOptions, ropts transfer.ReceiveOptions) (*transfer.Sender, <-chan runResult) {
	tb.Helper()
	senders := make(chan *transfer.Sender, 1)
	receivers := make(chan *transfer.Receiver, 1)
	connect(tb,
		func(dc *webrtc.DataChannel) { senders <- transfer.NewSender(dc, sopts) },
		func(dc *webrtc.DataChannel) { receivers <- transfer.NewReceiver(dc, ropts) })
	s := waitChan(tb, senders, "the sender")
	r := waitChan(tb, receivers, "the receiver")
	return s, startReceiver(tb, r)
}

// hostile speaks the protocol by hand to a real Receiver.
type hostile struct {
	tb      testing.TB
	dc      *webrtc.DataChannel
	answers chan map[string]any
	run     <-chan runResult
}

func newHostile(tb testing.TB, ropts transfer.ReceiveOptions) *hostile {
	tb.Helper()
	h := &hostile{tb: tb, answers: make(chan map[string]any, 100)}
	opened := make(chan *webrtc.DataChannel, 1)
	receivers := make(chan *transfer.Receiver, 1)
	connect(tb,
		func(dc *webrtc.DataChannel) {
			dc.OnOpen(func() { opened <- dc })
			dc.OnMessage(func(m webrtc.DataChannelMessage) {
				var a map[string]any
				if err := json.Unmarshal(m.Data, &a); err != nil || !m.IsString {
					a = map[string]any{"type": "unparsable", "raw": string(m.Data)}
				}
				h.answers <- a
			})
		},
		func(dc *webrtc.DataChannel) { receivers <- transfer.NewReceiver(dc, ropts) })
	h.run = startReceiver(tb, waitChan(tb, receivers, "the receiver"))
	h.dc = waitChan(tb, opened, "the channel to open")
	return h
}

func (h *hostile) json(v any) {
	h.tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		h.tb.Fatal(err)
	}
	if err := h.dc.SendText(string(b)); err != nil {
		h.tb.Fatal(err)
	}
}

func (h *hostile) data(b []byte) {
	h.tb.Helper()
	if err := h.dc.Send(b); err != nil {
		h.tb.Fatal(err)
	}
}

// file sends a whole file: header, data in one message, end with sha (the real one when "").
func (h *hostile) file(name string, size int, data []byte, sha string) {
	h.tb.Helper()
	if sha == "" {
		sum := sha256.Sum256(data)
		sha = hex.EncodeToString(sum[:])
	}
	h.json(map[string]any{"type": "file", "name": name, "size": size})
	if len(data) > 0 {
		h.data(data)
	}
	h.json(map[string]any{"type": "end", "sha256": sha})
}

// expect waits for the next answer and checks its type, and its code when code != "".
func (h *hostile) expect(typ, code string) map[string]any {
	h.tb.Helper()
	a := waitChan(h.tb, h.answers, "an answer to "+typ)
	if a["type"] != typ || (code != "" && a["code"] != code) {
		h.tb.Fatalf("got answer %v, want type %q code %q", a, typ, code)
	}
	return a
}

// randomFile writes size pseudo-random bytes to dir/name and returns their SHA-256.
func randomFile(tb testing.TB, dir, name string, size int64, seed uint64) [32]byte {
	tb.Helper()
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	src := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	if _, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(src, size)); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

func fileSum(tb testing.TB, path string) [32]byte {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		tb.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// listDir returns the names in dir, sorted.
func listDir(tb testing.TB, dir string) []string {
	tb.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}
