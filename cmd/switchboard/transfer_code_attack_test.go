package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/testenv"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/internal/transfer"
	"github.com/switchboard-rtc/switchboard/internal/wormhole"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// Hostile peers in a code's room (issue 16's review): a guesser that tests a code without
// ever confirming it, idle peers that hold the sender's exchange slots, and a third peer
// that poses as a sender to the receiver.

// rogue is a peer in a code's room that the test drives by hand: role is the role it
// announces; onPeer runs for each peer it meets.
func rogue(t *testing.T, ctx context.Context, url string, code wormhole.Code, role string, onPeer func(*sdk.Peer)) *sdk.Client {
	t.Helper()
	logs := &testenv.Buffer{}
	c, err := sdk.Dial(ctx, url, code.Room(), &sdk.Options{
		Name:     role,
		Meta:     transferMeta(role, false),
		Loopback: true,
		OnPeer:   onPeer,
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatalf("rogue %s: %v", role, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// guess runs the receiver's first step of the exchange on guess with the sender of code's
// room and returns what the sender answered: its y (nil: it answered none within wait, or
// refused). The guesser leaves without confirming anything. ok reports whether y proved the
// guess right (the sender's confirmation MAC checked): a guesser that can learn this without
// the sender counting the attempt has a free guess.
func guess(t *testing.T, ctx context.Context, url string, code, g wormhole.Code, wait time.Duration) (answered, right bool) {
	t.Helper()
	got := make(chan wormhole.Msg, 4)
	s, x, err := wormhole.NewReceiver(g)
	if err != nil {
		t.Fatalf("guess: %v", err)
	}
	c := rogue(t, ctx, url, code, "recv", func(p *sdk.Peer) {
		if roleOf(p) != "send" {
			return
		}
		p.OnMessage(func(b json.RawMessage) {
			if m, err := wormhole.DecodeMsg(b); err == nil {
				select {
				case got <- m:
				default:
				}
			}
		})
		_ = p.SendMessage(x)
	})
	defer c.Close()
	timeout := time.After(wait)
	for {
		select {
		case m := <-got:
			switch m.Kind {
			case wormhole.KindY:
				_, _, herr := s.Handle(m)
				return true, herr == nil && s.Ready()
			case wormhole.KindRefused:
				return false, false
			}
		case <-timeout:
			return false, false
		}
	}
}

// TestCodeGuessWithoutConfirmIsCounted: a guesser that reads the sender's y (whose MAC
// tells it whether its guess was right) and leaves without sending its confirm has spent a
// guess all the same: the sender counts it, answers at most maxWrongCodes such attempts, and
// gives up at the third.
func TestCodeGuessWithoutConfirmIsCounted(t *testing.T) {
	url := testserver.Start(t, nil)
	src := t.TempDir()
	writeRandom(t, filepath.Join(src, "x.dat"), 10<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 2*transferWait)
	defer cancel()
	send, code, _ := startCodeSend(t, ctx, url, filepath.Join(src, "x.dat"), "--no-quic")
	wrong, _ := wormhole.ParseCode(wrongCode(code))
	answered := 0
	for i := range maxWrongCodes + 2 {
		g := wrong
		if i == maxWrongCodes+1 {
			g = code // the last one guesses right: would the sender tell it?
		}
		a, right := guess(t, ctx, url, code, g, 5*time.Second)
		if a {
			answered++
		}
		if right {
			t.Errorf("guess %d: the guesser learned the code without the sender counting it", i+1)
		}
	}
	if answered > maxWrongCodes {
		t.Errorf("the sender answered %d guesses, at most %d allowed", answered, maxWrongCodes)
	}
	err := send.wait(t, "send")
	if err == nil || !strings.Contains(err.Error(), "wrong codes: giving up") {
		t.Fatalf("send: %v, want it to give up\n%s", err, send.stderr.String())
	}
	if !strings.Contains(send.stderr.String(), "someone tried a code and left without confirming it: a wrong code (1 of 3)") {
		t.Fatalf("send did not say why it counted:\n%s", send.stderr.String())
	}
	t.Logf("send:\n%s", send.stderr.String())
}

// TestCodeIdlePeersDoNotLockOut: peers that join the code's room and leave without any
// exchange (web app visitors, a scanner) do not use up the sender's exchange slots: the
// receiver with the right code that comes after them still gets the file.
func TestCodeIdlePeersDoNotLockOut(t *testing.T) {
	url := testserver.Start(t, nil)
	src, out := t.TempDir(), t.TempDir()
	want := writeRandom(t, filepath.Join(src, "x.dat"), 10<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 2*transferWait)
	defer cancel()
	send, code, _ := startCodeSend(t, ctx, url, filepath.Join(src, "x.dat"), "--no-quic")
	for range maxCodePeers + 1 {
		met := make(chan struct{}, 1)
		c := rogue(t, ctx, url, code, "viewer", func(p *sdk.Peer) {
			select {
			case met <- struct{}{}:
			default:
			}
		})
		select {
		case <-met:
		case <-ctx.Done():
			t.Fatal("the idle peer met nobody")
		}
		_ = c.Close()
	}
	recv := start(t, ctx, recvFiles, code.String(), "--server", url, "--loopback", "--out", out, "--wait", "20s")
	if err := recv.wait(t, "recv"); err != nil {
		t.Fatalf("recv after idle peers: %v\n%s\nsend:\n%s", err, recv.stderr.String(), send.stderr.String())
	}
	if err := send.wait(t, "send"); err != nil {
		t.Fatalf("send: %v\n%s", err, send.stderr.String())
	}
	if sumFile(t, filepath.Join(out, "x.dat")) != want {
		t.Fatal("x.dat differs")
	}
}

// TestCodeThirdPeerPosingAsSender: a third peer in the room that announces itself as a
// sender cannot end the receiver's run nor take the real sender's place, whether it refuses
// the receiver's code at once or stays silent and opens a transfer channel (with data on it)
// as soon as it is connected: the receiver gets the real sender's file, and only it.
func TestCodeThirdPeerPosingAsSender(t *testing.T) {
	for _, fake := range []string{"refuses", "opens a channel"} {
		t.Run(fake, func(t *testing.T) {
			url := testserver.Start(t, nil)
			src, out := t.TempDir(), t.TempDir()
			want := writeRandom(t, filepath.Join(src, "x.dat"), 10<<10)
			ctx, cancel := context.WithTimeout(context.Background(), 2*transferWait)
			defer cancel()
			send, code, _ := startCodeSend(t, ctx, url, filepath.Join(src, "x.dat"), "--no-quic")
			var wg sync.WaitGroup
			defer wg.Wait()
			rogue(t, ctx, url, code, "send", func(p *sdk.Peer) {
				if roleOf(p) != "recv" {
					return
				}
				if fake == "refuses" {
					p.OnMessage(func(b json.RawMessage) {
						if m, err := wormhole.DecodeMsg(b); err == nil && m.Kind == wormhole.KindX {
							_ = p.SendMessage(wormhole.Msg{Switchboard: "pake", Kind: wormhole.KindRefused})
						}
					})
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					select {
					case <-p.Connected():
					case <-p.Closed():
						return
					case <-ctx.Done():
						return
					}
					dc, err := p.CreateDataChannel(transfer.Label, transfer.DataChannelInit())
					if err != nil {
						return
					}
					dc.OnOpen(func() { _ = dc.SendText(`{"type":"file","name":"evil.txt","size":4}`) })
				}()
			})
			recv := start(t, ctx, recvFiles, code.String(), "--server", url, "--loopback", "--out", out, "--wait", "20s", "--no-quic")
			if err := recv.wait(t, "recv"); err != nil {
				t.Fatalf("recv with a fake sender in the room: %v\n%s", err, recv.stderr.String())
			}
			if err := send.wait(t, "send"); err != nil {
				t.Fatalf("send: %v\n%s", err, send.stderr.String())
			}
			if sumFile(t, filepath.Join(out, "x.dat")) != want {
				t.Fatal("x.dat differs")
			}
			if entries, _ := os.ReadDir(out); len(entries) != 1 {
				t.Fatalf("files in out: %v", entries)
			}
		})
	}
}

// TestCodeFakeSendersGuessBounded: peers posing as senders each answer the receiver's x
// with a y made on a guessed code; the receiver's verdict (confirm or refused) tells each
// whether its guess was right. The receiver checks at most maxWrongCodes such answers per
// run, then gives up with the wrong-code error, as the sender does.
func TestCodeFakeSendersGuessBounded(t *testing.T) {
	url := testserver.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*transferWait)
	defer cancel()
	code, err := wormhole.NewCode()
	if err != nil {
		t.Fatal(err)
	}
	guessCode, _ := wormhole.ParseCode(wrongCode(code))
	verdicts := make(chan string, 16)
	left := make(chan struct{}, 16) // a fake saw the receiver leave: its verdicts are in
	for range maxWrongCodes + 2 {
		rogue(t, ctx, url, code, "send", func(p *sdk.Peer) {
			if roleOf(p) != "recv" {
				return
			}
			s, err := wormhole.NewSender(guessCode)
			if err != nil {
				t.Error(err)
				return
			}
			go func() {
				select {
				case <-p.Closed():
					left <- struct{}{}
				case <-ctx.Done():
				}
			}()
			var mu sync.Mutex
			p.OnMessage(func(b json.RawMessage) {
				m, err := wormhole.DecodeMsg(b)
				if err != nil {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				switch m.Kind {
				case wormhole.KindX:
					if y, ok, err := s.Handle(m); err == nil && ok {
						_ = p.SendMessage(y)
					}
				case wormhole.KindConfirm, wormhole.KindRefused:
					verdicts <- m.Kind
				}
			})
		})
	}
	recv := start(t, ctx, recvFiles, code.String(), "--server", url, "--loopback", "--out", t.TempDir(), "--no-quic")
	err = recv.wait(t, "recv")
	if err == nil || !strings.Contains(err.Error(), "the code is wrong") {
		t.Fatalf("recv among fake senders: %v\n%s", err, recv.stderr.String())
	}
	for range maxWrongCodes + 2 {
		select {
		case <-left:
		case <-ctx.Done():
			t.Fatal("the fakes did not see the receiver leave")
		}
	}
	if n := len(verdicts); n > maxWrongCodes {
		t.Fatalf("the receiver gave a verdict on %d guesses, at most %d allowed", n, maxWrongCodes)
	}
}
