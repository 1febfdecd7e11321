package sioserver

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// TestSocketIOPeerAndGoSDK: a WebRTC peer that signals over Socket.IO (Pion, speaking the
// seed's events with targets) and a Go SDK peer on /ws meet in one room and connect: the SDK
// peer's control data channel opens.
func TestSocketIOPeerAndGoSDK(t *testing.T) {
	ts := startServer(t, hub.Config{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	deadline, _ := ctx.Deadline()

	s := dialSIO(t, ts.url, nil)
	sid := s.connect()
	s.write(`420["join",{"room":"interop"}]`)
	s.expectEvent("430")

	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	connected := make(chan struct{})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			close(connected)
		}
	})

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	peers := make(chan *sdk.Peer, 1)
	client, err := sdk.Dial(ctx, ts.url, "interop", &sdk.Options{Loopback: true, Logger: quiet, OnPeer: func(p *sdk.Peer) { peers <- p }})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sdkID := client.ID()

	emit := func(event string, v any) {
		b, _ := json.Marshal(v)
		obj := `{"target":"` + sdkID + `",` + string(b[1:])
		_ = s.c.Write(ctx, websocket.MessageText, []byte(`42["`+event+`",`+obj+`]`))
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			emit("ice-candidate", c.ToJSON())
		}
	})
	// The side with the smaller id offers (the SDK's rule); play whichever part is ours.
	if sid < sdkID {
		if _, err := pc.CreateDataChannel("x", nil); err != nil {
			t.Fatal(err)
		}
		offer, err := pc.CreateOffer(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := pc.SetLocalDescription(offer); err != nil {
			t.Fatal(err)
		}
		emit("offer", offer)
	}

	// The socket's reader: signals from the SDK peer, with "from" stamped.
	readerDone := make(chan error, 1)
	go func() {
		readerDone <- func() error {
			// Candidates may overtake the description they belong to (the SDK sends them as
			// Pion finds them): keep them until the remote description is set, as the SDK does.
			var early []webrtc.ICECandidateInit
			for {
				msg, err := s.readErr(time.Until(deadline))
				if err != nil {
					return err
				}
				if !strings.HasPrefix(msg, "42[") {
					continue
				}
				var args []json.RawMessage
				if err := json.Unmarshal([]byte(msg[2:]), &args); err != nil {
					return err
				}
				var name string
				_ = json.Unmarshal(args[0], &name)
				var from struct{ From string }
				_ = json.Unmarshal(args[len(args)-2], &from) // then its offset
				if (name == "offer" || name == "answer" || name == "ice-candidate") && from.From != sdkID {
					t.Errorf("%s from %q, want %q", name, from.From, sdkID)
				}
				switch name {
				case "offer", "answer":
					var d webrtc.SessionDescription
					if err := json.Unmarshal(args[1], &d); err != nil {
						return err
					}
					if err := pc.SetRemoteDescription(d); err != nil {
						return err
					}
					for _, c := range early {
						if err := pc.AddICECandidate(c); err != nil {
							return err
						}
					}
					early = nil
					if d.Type == webrtc.SDPTypeOffer {
						ans, err := pc.CreateAnswer(nil)
						if err != nil {
							return err
						}
						if err := pc.SetLocalDescription(ans); err != nil {
							return err
						}
						emit("answer", ans)
					}
				case "ice-candidate":
					var c webrtc.ICECandidateInit
					if err := json.Unmarshal(args[1], &c); err != nil {
						return err
					}
					if pc.RemoteDescription() == nil {
						early = append(early, c)
					} else if err := pc.AddICECandidate(c); err != nil {
						return err
					}
				}
			}
		}()
	}()
	readerEnded := false
	defer func() {
		_ = s.c.CloseNow()
		if !readerEnded {
			<-readerDone
		}
	}()

	var p *sdk.Peer
	select {
	case p = <-peers:
	case <-ctx.Done():
		t.Fatal("the SDK never saw the Socket.IO peer")
	}
	if p.ID() != sid {
		t.Fatalf("SDK peer id %q, want the socket id %q", p.ID(), sid)
	}
	for _, ch := range []<-chan struct{}{p.Connected(), connected} {
		select {
		case <-ch:
		case err := <-readerDone:
			readerEnded = true
			t.Fatalf("socket reader ended: %v", err)
		case <-ctx.Done():
			t.Fatal("the pair never connected")
		}
	}
}
