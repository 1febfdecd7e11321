package mitmtest_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/mitmtest"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/sdk"
)

const wait = 10 * time.Second

// TestProxy: two SDK peers through the proxy. Relaying, their DTLS connection is one, end
// to end (each one's remote certificate is the other's own). Terminating, each one's
// connection ends at the proxy (certificates that differ), and still a data channel carries
// text and binary messages both ways, unchanged, and its closing; the label and protocol
// are the opener's. With StripQUIC the peers see each other's meta without "quic".
func TestProxy(t *testing.T) {
	for _, o := range []mitmtest.Options{{}, {Terminate: true, StripQUIC: true}} {
		name := "relay"
		if o.Terminate {
			name = "terminate"
		}
		t.Run(name, func(t *testing.T) {
			px := mitmtest.Start(t, testserver.Start(t, nil), o)
			closedAtA := make(chan struct{})
			a := testserver.DialPeer(t, px.URL(), "r", sdk.Options{Meta: map[string]any{"role": "recv", "quic": 1}, OnPeer: func(p *sdk.Peer) {
				p.OnDataChannel(func(dc *webrtc.DataChannel) {
					if dc.Label() != "file" || dc.Protocol() != "file/1" {
						t.Errorf("channel %q protocol %q", dc.Label(), dc.Protocol())
					}
					dc.OnMessage(func(m webrtc.DataChannelMessage) {
						if m.IsString {
							_ = dc.SendText(string(m.Data))
						} else {
							_ = dc.Send(m.Data)
						}
					})
					dc.OnClose(func() { close(closedAtA) })
				})
			}}, wait)
			blob := make([]byte, 200<<10)
			rand.NewChaCha8([32]byte{1}).Read(blob)
			echoes := make(chan webrtc.DataChannelMessage, 4)
			opened := make(chan *webrtc.DataChannel, 1)
			b := testserver.DialPeer(t, px.URL(), "r", sdk.Options{Meta: map[string]any{"role": "send", "quic": 1}, OnPeer: func(p *sdk.Peer) {
				proto := "file/1"
				dc, err := p.CreateDataChannel("file", &webrtc.DataChannelInit{Protocol: &proto})
				if err != nil {
					t.Error(err)
					return
				}
				dc.OnOpen(func() {
					_ = dc.SendText("hello")
					_ = dc.Send(blob)
					opened <- dc
				})
				dc.OnMessage(func(m webrtc.DataChannelMessage) { echoes <- m })
			}}, wait)
			dc := testserver.Recv(t, opened, wait, "the channel to open")
			if m := testserver.Recv(t, echoes, wait, "the text echo"); !m.IsString || string(m.Data) != "hello" {
				t.Fatalf("text came back as %q (text %v)", m.Data, m.IsString)
			}
			if m := testserver.Recv(t, echoes, wait, "the binary echo"); m.IsString || !bytes.Equal(m.Data, blob) {
				t.Fatalf("binary came back as %d bytes (text %v), want the %d sent", len(m.Data), m.IsString, len(blob))
			}
			_ = dc.Close()
			testserver.Recv(t, closedAtA, wait, "the close to reach a")

			pa, pb := a.Peer(b.ID()), b.Peer(a.ID())
			aLocal, aRemote, err := pa.DTLSFingerprints()
			if err != nil {
				t.Fatal(err)
			}
			bLocal, bRemote, err := pb.DTLSFingerprints()
			if err != nil {
				t.Fatal(err)
			}
			end2end := aRemote == bLocal && bRemote == aLocal
			if end2end == o.Terminate {
				t.Fatalf("terminate %v, but the connection is end to end: %v", o.Terminate, end2end)
			}
			var meta map[string]any
			if err := json.Unmarshal(pa.Meta(), &meta); err != nil {
				t.Fatal(err)
			}
			if _, has := meta["quic"]; has == o.StripQUIC {
				t.Fatalf("strip %v, but b's meta at a is %v", o.StripQUIC, meta)
			}

			s := px.Stats()
			if s.Joins != 2 {
				t.Fatalf("the proxy relayed %d joins, want 2", s.Joins)
			}
			if o.Terminate {
				if s.Pairs != 1 || !slices.Contains(s.Channels, "file") || s.Bytes < 2*int64(len(blob)) {
					t.Fatalf("stats %+v: want 1 pair, the channel file and both ways of %d bytes", s, len(blob))
				}
			} else if s.Pairs != 0 || s.Bytes != 0 {
				t.Fatalf("relaying, the proxy terminated something: %+v", s)
			}
			if errs := px.Errors(); len(errs) > 0 {
				t.Fatalf("proxy errors: %v", errs)
			}
		})
	}
}
