package turnstest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/certs"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// certFile and keyFile are a self-signed certificate for loopback that the process trusts.
var certFile, keyFile string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "turnstest")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	c, err := certs.SelfSigned(nil)
	if err == nil {
		certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		err = certs.WritePEM(c, certFile, keyFile)
	}
	if err == nil {
		// Read once, at the first verification: nothing in this process verified yet.
		err = os.Setenv("SSL_CERT_FILE", certFile)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// TestRelayOnlyOverTURNS (issue 13): two Go SDK peers whose only ICE server is the welcome's
// turns: URL (relay-only policy) connect and move data through the embedded TURN over TLS;
// each side's selected candidate pair is a relay reached over TLS (ICE candidate stats), and
// the server's HTTPS answers during the call. Both on the HTTPS port itself and on
// --turn-tls-listen's own port.
func TestRelayOnlyOverTURNS(t *testing.T) {
	for _, mode := range []struct{ name, listen string }{{"shared HTTPS port", ""}, {"own port", "127.0.0.1:0"}} {
		t.Run(mode.name, func(t *testing.T) {
			srv := testserver.Run(t, func(c *config.Config) {
				c.TLSCert, c.TLSKey = certFile, keyFile
				c.TURN = true
				c.TURNAllowPeers = []string{"127.0.0.0/8"}
				c.TURNTLSListen = mode.listen
			})
			base := "https://" + srv.Addr().String()
			u, p := srv.TURN().Credentials("relay-test", time.Now())
			turns := []webrtc.ICEServer{{URLs: []string{"turns:" + srv.TURN().TLSURL() + "?transport=tcp"}, Username: u, Credential: p}}
			opts := func(name string, onPeer func(*sdk.Peer)) sdk.Options {
				return sdk.Options{Name: name, ICEServers: turns, ICETransportPolicy: webrtc.ICETransportPolicyRelay, OnPeer: onPeer}
			}
			echo := testserver.DialPeer(t, base, "turns", opts("echo", func(p *sdk.Peer) {
				p.OnDataChannel(func(dc *webrtc.DataChannel) {
					dc.OnMessage(func(m webrtc.DataChannelMessage) { _ = dc.SendText("echo:" + string(m.Data)) })
				})
			}), 10*time.Second)
			got := make(chan string, 16)
			offer := testserver.DialPeer(t, base, "turns", opts("offer", func(p *sdk.Peer) {
				dc, err := p.CreateDataChannel("turns", nil)
				if err != nil {
					t.Error(err)
					return
				}
				dc.OnOpen(func() {
					for i := range 5 {
						_ = dc.SendText(fmt.Sprint("ping ", i))
					}
				})
				dc.OnMessage(func(m webrtc.DataChannelMessage) { got <- string(m.Data) })
			}), 10*time.Second)
			for i := range 5 {
				select {
				case m := <-got:
					if m != fmt.Sprint("echo:ping ", i) {
						t.Fatalf("got %q", m)
					}
				case <-time.After(15 * time.Second):
					t.Fatalf("no echo %d through the relay", i)
				}
				if i == 2 {
					resp, err := http.Get(base + "/healthz") // the system roots trust the test certificate
					if err != nil || resp.StatusCode != http.StatusOK {
						t.Fatalf("https /healthz during the call: %v %v", resp, err)
					}
					resp.Body.Close()
				}
			}
			for _, c := range []*sdk.Client{offer, echo} {
				other := echo.ID()
				if c == echo {
					other = offer.ID()
				}
				checkRelayOverTLS(t, c.Peer(other).PeerConnection())
			}
			if n := srv.TURN().Allocations(); n < 2 {
				t.Errorf("%d allocations, want one per peer at least", n)
			}
		})
	}
}

// checkRelayOverTLS finds the selected candidate pair in pc's stats and checks that its local
// candidate is a relay the peer reaches over TLS.
func checkRelayOverTLS(t *testing.T, pc *webrtc.PeerConnection) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		report := pc.GetStats()
		var pairID string
		for _, s := range report {
			if tr, ok := s.(webrtc.TransportStats); ok && tr.SelectedCandidatePairID != "" {
				pairID = tr.SelectedCandidatePairID
			}
		}
		for _, s := range report {
			pair, ok := s.(webrtc.ICECandidatePairStats)
			if !ok || (pairID != "" && pair.ID != pairID) || (pairID == "" && !pair.Nominated) {
				continue
			}
			local, ok := report[pair.LocalCandidateID].(webrtc.ICECandidateStats)
			if !ok {
				continue
			}
			t.Logf("selected pair %s: local %s %s:%d via %s (%s)", pair.ID, local.CandidateType, local.IP, local.Port, local.RelayProtocol, local.URL)
			if local.CandidateType != webrtc.ICECandidateTypeRelay || local.RelayProtocol != "tls" {
				t.Errorf("selected local candidate %s over %q, want a relay over tls", local.CandidateType, local.RelayProtocol)
			}
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Error("no selected candidate pair in the stats")
}
