package sdk_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/quic-go/quic-go"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// Strangers at the pair's own QUIC socket (sdk/quic_socket.go): anyone may send to it, so
// its listener must give no handshake to, and let no refusal of, anyone but the peer end the
// pair's setup.

// gate is a channel closed once (by open or by the test's end).
type gate struct {
	once sync.Once
	ch   chan struct{}
}

func newGate(t *testing.T) *gate {
	g := &gate{ch: make(chan struct{})}
	t.Cleanup(g.open) // before the hooks are restored and the clients closed (LIFO)
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// candAddr returns the address of a candidate line.
func candAddr(t *testing.T, line string) *net.UDPAddr {
	t.Helper()
	c, err := ice.UnmarshalCandidate(line)
	if err != nil {
		t.Errorf("candidate %q: %v", line, err)
		return nil
	}
	return &net.UDPAddr{IP: net.ParseIP(c.Address()), Port: c.Port()}
}

// strangerTLS is a client TLS configuration with a certificate of its own, verifying nothing.
func strangerTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "stranger"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		Certificates:       []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		NextProtos:         []string{sdk.QUICALPN},
		ServerName:         "switchboard",
		InsecureSkipVerify: true, //nolint:gosec // a stranger trusts anyone
		MinVersion:         tls.VersionTLS13,
	}
}

// strangerDial runs a QUIC handshake from conn to to with a certificate of its own. It
// returns nil only if the stranger got a connection that stayed up (it waits, bounded, for
// a connection the server refuses after the handshake — TLS 1.3's client finishes first —
// to be closed). idle bounds a handshake that gets no answer.
func strangerDial(t *testing.T, conn *net.UDPConn, to *net.UDPAddr, idle time.Duration) error {
	t.Helper()
	tr := &quic.Transport{Conn: conn}
	defer func() { _ = tr.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	qc, err := tr.Dial(ctx, to, strangerTLS(t), &quic.Config{HandshakeIdleTimeout: idle})
	if err != nil {
		return err
	}
	defer func() { _ = qc.CloseWithError(0, "stranger done") }()
	select {
	case <-qc.Context().Done():
		return fmt.Errorf("closed after the handshake: %w", context.Cause(qc.Context()))
	case <-time.After(2 * time.Second):
		return nil
	}
}

// listenStranger opens a UDP socket on 127.0.0.2 (not the peers' 127.0.0.1).
func listenStranger(t *testing.T) *net.UDPConn {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatalf("a socket on 127.0.0.2: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// refusedByListener fails t unless err is the accepting side's refusal (a QUIC transport
// error: the listener answered), not a connection or a handshake that got no answer.
func refusedByListener(t *testing.T, when string, err error) {
	t.Helper()
	var te *quic.TransportError
	if err == nil {
		t.Fatalf("%s: a stranger got a QUIC connection to the pair's socket", when)
	}
	if !errors.As(err, &te) {
		t.Fatalf("%s: the stranger's handshake: %v; want the listener's refusal", when, err)
	}
}

// TestQUICStrangerRefused: a UDP sender at 127.0.0.2, which is none of the peer's addresses,
// sends QUIC handshakes to the accepting side's socket while it listens before ICE has a
// pair, again once ICE has selected the pair (before the real handshake is accepted), and
// once the connection is up. Each is refused (or unanswered), none ends the pair's setup,
// and the pair's connection works.
func TestQUICStrangerRefused(t *testing.T) {
	url := testserver.Start(t, nil)
	pa, pb, _, _ := quicPair(t, url, "quic-stranger", sdk.Options{})
	// b joined second: the pair's newcomer, it accepts.
	cands := newGate(t) // no candidate goes out before it opens: no check, no pair
	accepted := newGate(t)
	bAddr := make(chan *net.UDPAddr, 1)
	selected := make(chan struct{}, 1)
	defer sdk.SetQUICCandidateHook(func(_ *sdk.Peer, newcomer bool, cand string) {
		if newcomer && cand != "" {
			select {
			case bAddr <- candAddr(t, cand):
			default:
			}
		}
		<-cands.ch
	})()
	defer sdk.SetQUICSelectedHook(func(newcomer bool) {
		if newcomer {
			selected <- struct{}{}
			<-accepted.ch
		}
	})()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	type result struct {
		ca, cb *quic.Conn
		ea, eb error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		r.ca, r.cb, r.ea, r.eb = bothQUIC(ctx, pa, pb)
		done <- r
	}()
	to := waitChan(t, bAddr, "b's QUIC candidate")
	// Before ICE: b listens once it has a's hello; no candidate has gone either way.
	refusedByListener(t, "before ICE", strangerDial(t, listenStranger(t), to, 5*time.Second))
	cands.open()
	waitChan(t, selected, "b's ICE selecting the pair")
	refusedByListener(t, "after ICE selected", strangerDial(t, listenStranger(t), to, 5*time.Second))
	accepted.open()
	r := waitChan(t, done, "both QUIC calls")
	if r.ea != nil || r.eb != nil {
		t.Fatalf("QUIC with a stranger at the socket: %v / %v", r.ea, r.eb)
	}
	if !sdk.QUICOwnSocket(pb) {
		t.Fatal("b's QUIC is not on its own socket: the stranger tested nothing")
	}
	// Once the connection is up, the socket has no listener: the stranger's Initial goes
	// unanswered.
	if err := strangerDial(t, listenStranger(t), to, 500*time.Millisecond); err == nil {
		t.Fatal("after the setup: a stranger got a QUIC connection to the pair's socket")
	}
	roundTrip(t, r.ca, r.cb, 256<<10)
}

// TestQUICSquatterOnPeerCandidate: the peer advertises a host candidate that, on the
// accepting side's network, is someone else's address (two private networks with the same
// range: common). That host gets the accepting side's connectivity checks, so it learns the
// socket's address, and it sends a QUIC handshake from the candidate's address with a
// certificate of its own. It must neither get a connection nor end the pair's setup: only
// an address that has proven the peer's ICE credentials gets a handshake.
func TestQUICSquatterOnPeerCandidate(t *testing.T) {
	url := testserver.Start(t, nil)
	pa, pb, _, _ := quicPair(t, url, "quic-squatter", sdk.Options{})
	squatter := listenStranger(t)
	sq := squatter.LocalAddr().(*net.UDPAddr)
	extra := fmt.Sprintf("candidate:9 1 udp 2130706431 %s %d typ host", sq.IP, sq.Port)
	var once sync.Once
	accepted := newGate(t)
	bAddr := make(chan *net.UDPAddr, 1)
	defer sdk.SetQUICCandidateHook(func(p *sdk.Peer, newcomer bool, cand string) {
		if newcomer {
			if cand != "" {
				select {
				case bAddr <- candAddr(t, cand):
				default:
				}
			}
			return
		}
		once.Do(func() { // a, before its first candidate: the squatter's address, as a's own
			if err := sdk.SendQUICCandidate(p, extra); err != nil {
				t.Errorf("send the extra candidate: %v", err)
			}
		})
	})()
	defer sdk.SetQUICSelectedHook(func(newcomer bool) {
		if newcomer {
			<-accepted.ch // b waits to accept until the squatter has had its try
		}
	})()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	type result struct {
		ca, cb *quic.Conn
		ea, eb error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		r.ca, r.cb, r.ea, r.eb = bothQUIC(ctx, pa, pb)
		done <- r
	}()
	// The squatter knows b's socket: b's checks to the advertised address would tell it (b
	// may have selected the pair before it tries that one, so here b's candidate does).
	to := waitChan(t, bAddr, "b's QUIC candidate")
	err := strangerDial(t, squatter, to, 5*time.Second)
	t.Logf("squatter from %v to %v: %v", squatter.LocalAddr(), to, err)
	if err == nil {
		t.Error("the squatter got a QUIC connection to b's socket")
	}
	accepted.open()
	r := waitChan(t, done, "both QUIC calls")
	if r.ea != nil || r.eb != nil {
		t.Fatalf("QUIC with a squatter on a's candidate: %v / %v", r.ea, r.eb)
	}
	roundTrip(t, r.ca, r.cb, 64<<10)
}

// TestQUICRolesFromPoliteness: when the hellos do not name exactly one newcomer (both say
// the same, as in a join race, or one says nothing, as an older peer's), the impolite side
// controls ICE and dials, the polite side accepts on its own socket, and the pair gets its
// connection: the accepting side's listener takes the dialer, whose address has proven
// itself the other way round (it sent the nomination).
func TestQUICRolesFromPoliteness(t *testing.T) {
	f, tr := false, true
	for name, flag := range map[string]func(newcomer bool) *bool{
		"both not new":        func(bool) *bool { return &f },
		"both new":            func(bool) *bool { return &tr },
		"older newcomer":      func(n bool) *bool { return map[bool]*bool{true: nil, false: &f}[n] },
		"older first in room": func(n bool) *bool { return map[bool]*bool{true: &tr, false: nil}[n] },
	} {
		t.Run(name, func(t *testing.T) {
			url := testserver.Start(t, nil)
			pa, pb, _, _ := quicPair(t, url, "quic-polite", sdk.Options{})
			defer sdk.SetQUICHelloNew(flag)()
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			ca, cb, ea, eb := bothQUIC(ctx, pa, pb)
			if ea != nil || eb != nil {
				t.Fatalf("QUIC: %v / %v", ea, eb)
			}
			if !sdk.QUICOwnSocket(pa) || !sdk.QUICOwnSocket(pb) {
				t.Fatal("not on the pair's own sockets")
			}
			roundTrip(t, ca, cb, 64<<10)
		})
	}
}
