package transfer_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/internal/transfer"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// quicConns connects two SDK peers and returns the sending and the receiving side's QUIC
// connection to each other.
func quicConns(tb testing.TB) (send, recv *quic.Conn) {
	tb.Helper()
	url := testserver.Start(tb, nil)
	peers := make(chan *sdk.Peer, 2)
	onPeer := func(p *sdk.Peer) { peers <- p }
	dial(tb, url, "files", sdk.Options{Name: "recv", OnPeer: onPeer})
	dial(tb, url, "files", sdk.Options{Name: "send", OnPeer: onPeer})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var wg sync.WaitGroup
	conns := map[string]*quic.Conn{}
	var mu sync.Mutex
	for range 2 {
		p := waitChan(tb, peers, "a peer")
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := p.QUIC(ctx)
			if err != nil {
				tb.Error(err)
				return
			}
			mu.Lock()
			conns[p.Name()] = c // the name of the remote: c is this side's conn to it
			mu.Unlock()
		}()
	}
	wg.Wait()
	if tb.Failed() {
		tb.FailNow()
	}
	return conns["recv"], conns["send"]
}

// quicPair is pair over a QUIC stream.
func quicPair(tb testing.TB, sopts *transfer.SendOptions, ropts transfer.ReceiveOptions) (*transfer.Sender, <-chan runResult) {
	tb.Helper()
	sc, rc := quicConns(tb)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	accepted := make(chan transfer.Channel, 1)
	go func() {
		ch, err := transfer.AcceptStream(ctx, rc)
		if err != nil {
			tb.Error(err)
		}
		accepted <- ch
	}()
	ch, err := transfer.OpenStream(ctx, sc)
	if err != nil {
		tb.Fatal(err)
	}
	s := transfer.NewSenderOn(ch, sopts)
	rch := waitChan(tb, accepted, "the stream")
	if rch == nil {
		tb.FailNow()
	}
	return s, startReceiver(tb, transfer.NewReceiverOn(rch, ropts))
}

// TestOverQUIC: files (a large one, an empty one) go over a QUIC stream with the same
// protocol, intact, with the receiver's progress acknowledgements.
func TestOverQUIC(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	size := bigSize()
	want := randomFile(t, src, "big.bin", size, 3)
	randomFile(t, src, "empty", 0, 4)
	var last transfer.Progress
	var partial int
	s, run := quicPair(t, &transfer.SendOptions{Progress: func(p transfer.Progress) {
		last = p
		if p.ReceiverAcks && p.Bytes > 0 && p.Bytes < p.Size {
			partial++
		}
	}, ProgressInterval: time.Nanosecond}, transfer.ReceiveOptions{Dir: out})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	rs, err := s.Send(ctx, []string{filepath.Join(src, "big.bin"), filepath.Join(src, "empty")})
	if err != nil || len(rs) != 2 {
		t.Fatalf("send: %+v %v", rs, err)
	}
	r := waitChan(t, run, "the receiver")
	if r.err != nil || len(r.results) != 2 {
		t.Fatalf("receive: %+v %v", r.results, r.err)
	}
	if got := fileSum(t, filepath.Join(out, "big.bin")); got != want {
		t.Fatal("received file differs from the sent one")
	}
	if names := listDir(t, out); !slices.Equal(names, []string{"big.bin", "empty"}) {
		t.Fatalf("out dir holds %v", names)
	}
	if !last.Done || !last.ReceiverAcks || partial == 0 {
		t.Fatalf("progress: last %+v, %d partial confirmed reports", last, partial)
	}
	t.Logf("%d MiB in %v: %.1f MB/s", size>>20, last.Elapsed, float64(size)/last.Elapsed.Seconds()/1e6)
}

// TestAcceptStreamRefusesOtherProtocol: a stream that does not open with the protocol is
// refused with ErrProtocol.
func TestAcceptStreamRefusesOtherProtocol(t *testing.T) {
	sc, rc := quicConns(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := sc.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte{1, 0, 0, 0, 2, '{', '}'}); err != nil { // a text frame first
		t.Fatal(err)
	}
	if _, err := transfer.AcceptStream(ctx, rc); !errors.Is(err, transfer.ErrProtocol) {
		t.Fatalf("AcceptStream: %v, want ErrProtocol", err)
	}
}

// TestQUICReceiverGone: the sender learns that the receiver's side went away (its client
// closed) as a closed channel, not a hang.
func TestQUICReceiverGone(t *testing.T) {
	src := t.TempDir()
	randomFile(t, src, "f", 4<<20, 5)
	sc, rc := quicConns(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	go func() {
		ch, err := transfer.AcceptStream(ctx, rc)
		if err == nil {
			_ = ch.Close() // hangs up at once
		}
	}()
	ch, err := transfer.OpenStream(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = transfer.NewSenderOn(ch, nil).Send(ctx, []string{filepath.Join(src, "f")})
	if !errors.Is(err, transfer.ErrClosed) {
		t.Fatalf("send to a receiver that hung up: %v, want ErrClosed", err)
	}
}

// rawFrame is one frame for a hand-written stream: kind, then the payload length (which
// may claim more than follows), then payload.
func rawFrame(kind byte, n uint32, payload []byte) []byte {
	return append([]byte{kind, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, payload...)
}

// rawAnswer reads the receiver's frames on s until a text frame, and returns it.
func rawAnswer(tb testing.TB, s *quic.Stream) string {
	tb.Helper()
	_ = s.SetReadDeadline(time.Now().Add(wait))
	for {
		var h [5]byte
		if _, err := io.ReadFull(s, h[:]); err != nil {
			tb.Fatalf("reading the receiver's answer: %v", err)
		}
		p := make([]byte, binary.BigEndian.Uint32(h[1:]))
		if _, err := io.ReadFull(s, p); err != nil {
			tb.Fatalf("reading the receiver's answer: %v", err)
		}
		if h[0] == 1 {
			return string(p)
		}
	}
}

// rawQUICSender opens a stream from sc, writes b on it, and returns a receiver running on
// the stream rc accepted. closeConn closes rc as soon as Run returns, as a command's client
// does when it exits.
func rawQUICSender(tb testing.TB, b []byte) (*quic.Stream, <-chan runResult) {
	return rawQUICSenderOn(tb, b, false)
}

// wrappedChannel stands for a command's wrapper of the transfer's channel (cmd/switchboard's
// heardChannel): the transfer reaches the stream through Unwrap.
type wrappedChannel struct{ transfer.Channel }

func (c *wrappedChannel) Unwrap() transfer.Channel { return c.Channel }

// rawQUICSenderOn is rawQUICSender, the receiver's channel wrapped when wrap is set.
func rawQUICSenderOn(tb testing.TB, b []byte, wrap bool) (*quic.Stream, <-chan runResult) {
	tb.Helper()
	sc, rc := quicConns(tb)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := sc.OpenStreamSync(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := s.Write(append(rawFrame(0, uint32(len(transfer.Protocol)), []byte(transfer.Protocol)), b...)); err != nil {
		tb.Fatal(err)
	}
	ch, err := transfer.AcceptStream(ctx, rc)
	if err != nil {
		tb.Fatal(err)
	}
	if wrap {
		ch = &wrappedChannel{ch}
	}
	run := startReceiver(tb, transfer.NewReceiverOn(ch, transfer.ReceiveOptions{Dir: tb.TempDir()}))
	done := make(chan runResult, 1)
	go func() {
		r := <-run
		_ = rc.CloseWithError(0, "closed") // what the command's exit does right away
		done <- r
	}()
	return s, done
}

// TestQUICOversizeFrame: a frame longer than its kind allows (binary: ChunkSize; text:
// MaxTextFrame) ends the transfer with a protocol error naming it, and the sender is told.
func TestQUICOversizeFrame(t *testing.T) {
	for name, f := range map[string][]byte{
		"binary": rawFrame(2, transfer.MaxFrame+1, nil),
		"text":   rawFrame(1, transfer.MaxTextFrame+1, nil),
		"huge":   rawFrame(2, 1<<31, nil),
	} {
		for _, wrap := range []bool{false, true} { // wrapped: as the commands run it
			t.Run(fmt.Sprintf("%s/wrapped=%v", name, wrap), func(t *testing.T) {
				s, run := rawQUICSenderOn(t, f, wrap)
				answer := rawAnswer(t, s)
				if !strings.Contains(answer, `"protocol"`) || !strings.Contains(answer, "frame") {
					t.Errorf("the receiver's answer %s does not name the bad frame", answer)
				}
				_ = s.Close()
				r := waitChan(t, run, "the receiver")
				if !errors.Is(r.err, transfer.ErrProtocol) || !errors.Is(r.err, transfer.ErrFrame) {
					t.Fatalf("receive: %v, want ErrProtocol and ErrFrame", r.err)
				}
			})
		}
	}
}

// TestQUICReasonArrives: a receiver that gives up (data outside a file) and whose side then
// closes the connection at once still gets its reason to the sender: closing the stream
// waits for the remote to have it.
func TestQUICReasonArrives(t *testing.T) {
	s, run := rawQUICSender(t, rawFrame(2, 3, []byte{1, 2, 3}))
	answer := rawAnswer(t, s)
	if !strings.Contains(answer, "data outside a file") {
		t.Errorf("answer %s, want the receiver's reason", answer)
	}
	_ = s.Close()
	if r := waitChan(t, run, "the receiver"); !errors.Is(r.err, transfer.ErrProtocol) {
		t.Fatalf("receive: %v, want ErrProtocol", r.err)
	}
}
