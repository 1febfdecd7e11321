package transfer_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/transfer"
)

// onDisk returns how many bytes of name the receiver has written into dir: its .part while
// it is being received, the file once in place.
func onDisk(tb testing.TB, dir, name string) int64 {
	tb.Helper()
	for _, n := range []string{name + ".part", name} {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err == nil {
			return fi.Size()
		}
		if !errors.Is(err, fs.ErrNotExist) {
			tb.Error(err)
		}
	}
	return 0
}

// The sender reports only what the receiver has written. The receiver is held (its Progress
// hook blocks) at the start of the first file while the sender queues a part of it, which
// fits in the channel's buffer: a sender that reported queued bytes shows them then, while
// nothing is on disk. Every sender report is compared with the bytes on disk at that moment:
// the receiver writes before it confirms, so confirmed bytes are on disk by the time the
// sender hears of them. (The test uses only the fields Progress had before acknowledgements,
// so that it runs against a sender that reports queued bytes, and fails there.)
func TestSenderReportsConfirmedBytes(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	sizes := []int64{2 << 20, 0, 3<<20 + 5}
	var paths []string
	var total int64
	for i, size := range sizes {
		name := []string{"first.bin", "empty", "third.bin"}[i]
		randomFile(t, src, name, size, uint64(20+i))
		paths = append(paths, filepath.Join(src, name))
		total += size
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	stalled, release := make(chan struct{}), make(chan struct{})
	held := false
	recvHook := func(p transfer.Progress) { // on Run's goroutine
		if held {
			return
		}
		held = true
		close(stalled)
		select { // hold the receiver: it reads nothing more meanwhile
		case <-release:
		case <-ctx.Done():
		}
	}
	var reports []transfer.Progress
	var tooMuch []string
	phase, calls := 0, 0
	sendHook := func(p transfer.Progress) { // on Send's goroutine
		if got := onDisk(t, out, p.Name); p.Bytes > got {
			tooMuch = append(tooMuch, p.Name+": reported "+itoa(p.Bytes)+", on disk "+itoa(got))
		}
		reports = append(reports, p)
		switch phase {
		case 0: // the first file's header is out: wait until the receiver holds
			phase = 1
			select {
			case <-stalled:
			case <-ctx.Done():
			}
		case 1: // the sender queues while the receiver is held: a few reports, then go on
			if calls++; calls == 4 {
				phase = 2
				close(release)
			}
		}
	}
	s, run := pair(t,
		&transfer.SendOptions{Progress: sendHook, ProgressInterval: time.Nanosecond},
		transfer.ReceiveOptions{Dir: out, Progress: recvHook, ProgressInterval: time.Nanosecond})
	if _, err := s.Send(ctx, paths); err != nil {
		t.Fatalf("send: %v", err)
	}
	if r := waitChan(t, run, "the receiver"); r.err != nil {
		t.Fatalf("receive: %v", r.err)
	}
	if phase != 2 {
		t.Fatalf("the receiver was never released (phase %d, %d reports)", phase, len(reports))
	}
	if len(tooMuch) > 0 {
		t.Fatalf("the sender reported bytes the receiver did not have: %v", tooMuch)
	}
	var doneFiles []int
	var prev int64
	for _, p := range reports {
		if p.TotalBytes < prev || p.Bytes > p.Size || p.TotalBytes > total {
			t.Fatalf("report %+v after total %d", p, prev)
		}
		prev = p.TotalBytes
		if p.Done {
			doneFiles = append(doneFiles, p.File)
		}
	}
	last := reports[len(reports)-1]
	if !last.Done || last.File != 3 || last.Bytes != last.Size || last.TotalBytes != total || last.TotalSize != total {
		t.Fatalf("last report %+v", last)
	}
	if len(doneFiles) != 3 || doneFiles[0] != 1 || doneFiles[1] != 2 || doneFiles[2] != 3 {
		t.Fatalf("done reports for files %v", doneFiles)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// fakeReceiver takes the file channel of a real Sender and answers by hand: on(msg) runs on
// Pion's goroutine for each message and replies through dc.
func fakeReceiver(tb testing.TB, sopts *transfer.SendOptions, on func(dc *webrtc.DataChannel, m webrtc.DataChannelMessage)) *transfer.Sender {
	tb.Helper()
	senders := make(chan *transfer.Sender, 1)
	connect(tb,
		func(dc *webrtc.DataChannel) { senders <- transfer.NewSender(dc, sopts) },
		func(dc *webrtc.DataChannel) {
			dc.OnMessage(func(m webrtc.DataChannelMessage) { on(dc, m) })
		})
	return waitChan(tb, senders, "the sender")
}

// v1Receiver answers like a receiver of protocol version 1 before acknowledgements: ok at
// each end (it checks nothing), done at done, no got. It records whether the file
// messages asked for acknowledgements.
type v1Receiver struct {
	mu     sync.Mutex // the test reads what Pion's goroutine wrote: no sync through sockets
	name   string
	asked  bool
	got    int64
	extras func(dc *webrtc.DataChannel, name string, got int64) // after each data message
}

func (v *v1Receiver) on(dc *webrtc.DataChannel, m webrtc.DataChannelMessage) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !m.IsString {
		v.got += int64(len(m.Data))
		if v.extras != nil {
			v.extras(dc, v.name, v.got)
		}
		return
	}
	var msg struct {
		Type string `json:"type"`
		Name string `json:"name"`
		Acks bool   `json:"acks"`
	}
	_ = json.Unmarshal(m.Data, &msg)
	reply := func(v any) { b, _ := json.Marshal(v); _ = dc.SendText(string(b)) }
	switch msg.Type {
	case "file":
		v.name, v.got, v.asked = msg.Name, 0, msg.Acks
	case "end":
		reply(map[string]any{"type": "ok", "name": v.name})
	case "done":
		reply(map[string]any{"type": "done"})
	}
}

// A receiver that sends no acknowledgements (protocol v1) still gets the files; the sender
// reports no confirmed bytes until each file is answered, and says how far it has sent.
func TestSenderToReceiverWithoutAcks(t *testing.T) {
	src := t.TempDir()
	const size = 1<<20 + 3
	randomFile(t, src, "a.bin", size, 30)
	var reports []transfer.Progress
	v := &v1Receiver{}
	s := fakeReceiver(t, &transfer.SendOptions{
		Progress: func(p transfer.Progress) { reports = append(reports, p) }, ProgressInterval: time.Nanosecond,
	}, v.on)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	rs, err := s.Send(ctx, []string{filepath.Join(src, "a.bin")})
	if err != nil || len(rs) != 1 || rs[0].Err != nil {
		t.Fatalf("send: %v %+v", err, rs)
	}
	v.mu.Lock()
	asked, got := v.asked, v.got
	v.mu.Unlock()
	if !asked || got != size {
		t.Fatalf("receiver: asked for acks %v, got %d bytes", asked, got)
	}
	var maxSent int64
	for _, p := range reports[:len(reports)-1] {
		if p.Done || p.Bytes != 0 || p.TotalBytes != 0 || p.ReceiverAcks || p.Sent < maxSent {
			t.Fatalf("report %+v before the answer", p)
		}
		maxSent = p.Sent
	}
	if maxSent == 0 {
		t.Fatalf("no report said what was sent: %+v", reports)
	}
	if last := reports[len(reports)-1]; !last.Done || last.Bytes != size || last.TotalBytes != size || last.Sent != size || last.ReceiverAcks {
		t.Fatalf("last report %+v", last)
	}
}

// A receiver's acknowledgements that cannot be true stop the transfer with a protocol error:
// more than the size (or than was sent), fewer than before, for another file, malformed.
func TestSenderRefusesBadAcks(t *testing.T) {
	const size = 1 << 20
	src := t.TempDir()
	randomFile(t, src, "a.bin", size, 31)
	for _, tc := range []struct {
		name string
		acks []string // sent after the first data message, in order
	}{
		{"more than the size", []string{`{"type":"got","name":"a.bin","bytes":1048577}`}},
		{"far more", []string{`{"type":"got","name":"a.bin","bytes":9007199254740991}`}},
		{"decreasing", []string{`{"type":"got","name":"a.bin","bytes":65536}`, `{"type":"got","name":"a.bin","bytes":1000}`}},
		{"negative", []string{`{"type":"got","name":"a.bin","bytes":-1}`}},
		{"another file", []string{`{"type":"got","name":"b.bin","bytes":10}`}},
		{"no name", []string{`{"type":"got","bytes":10}`}},
		{"no bytes", []string{`{"type":"got","name":"a.bin"}`}},
		{"fractional", []string{`{"type":"got","name":"a.bin","bytes":1.5}`}},
		{"a string", []string{`{"type":"got","name":"a.bin","bytes":"10"}`}},
		{"after the answer", []string{`{"type":"error","name":"a.bin","code":"io","message":"disk full"}`, `{"type":"got","name":"a.bin","bytes":65536}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var over []transfer.Progress
			sent := false
			v := &v1Receiver{}
			v.extras = func(dc *webrtc.DataChannel, name string, got int64) {
				if sent {
					return
				}
				sent = true
				for _, a := range tc.acks {
					_ = dc.SendText(a)
				}
			}
			s := fakeReceiver(t, &transfer.SendOptions{
				Progress: func(p transfer.Progress) {
					if p.Bytes > 65536 || p.Bytes > p.Sent || p.Done { // 65536: the one true ack above
						over = append(over, p)
					}
				},
				ProgressInterval: time.Nanosecond,
			}, v.on)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_, err := s.Send(ctx, []string{filepath.Join(src, "a.bin")})
			if !errors.Is(err, transfer.ErrProtocol) {
				t.Fatalf("send: %v, want a protocol error", err)
			}
			t.Log(err)
			if len(over) > 0 {
				t.Fatalf("reports %+v", over)
			}
		})
	}
}
