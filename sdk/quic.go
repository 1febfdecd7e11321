package sdk

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/quic-go/quic-go"
)

// QUIC between two SDK peers: a second ICE session, made for it and negotiated through the
// signaling server (quic_signal.go) in parallel with the peer connection, carries one QUIC
// connection (quic-go) whose TLS 1.3 handshake pins each side's self-signed certificate to
// the fingerprint the other sent in its hello. It moves bulk data several times cheaper per byte than the SCTP data channel
// (docs/benchmarks.md, "QUIC"); browsers have no such path and keep the data channel.

// QUICALPN is the ALPN protocol of the SDK's QUIC connections.
const QUICALPN = "switchboard-quic/1"

// Bounds of a pair's QUIC connection. The remote peer may be hostile: what it can make us
// hold is bounded here.
const (
	// QUICMaxStreamReceiveWindow is the most a stream buffers unread (flow control: the
	// sender may not send past it). 8 MiB keeps a 200 ms path at 40 MB/s.
	QUICMaxStreamReceiveWindow = 8 << 20
	// QUICMaxConnectionReceiveWindow is the most the connection buffers unread over all its
	// streams: the memory a pair's QUIC connection can hold in received data.
	QUICMaxConnectionReceiveWindow = 16 << 20
	// QUICMaxIncomingStreams is how many bidirectional streams the remote may have open at
	// once (unidirectional: the same).
	QUICMaxIncomingStreams = 4
	// QUICIdleTimeout closes a connection that heard nothing from the remote for that long;
	// each side sends a keepalive every QUICKeepAlive.
	QUICIdleTimeout = 30 * time.Second
	// QUICKeepAlive is the keepalive period of a QUIC connection.
	QUICKeepAlive = 10 * time.Second
)

// ErrQUIC is wrapped by every error of Peer.QUIC: the remote peer did not answer (no QUIC
// support, or it did not call QUIC in time), the ICE session or the handshake failed, the
// fingerprint did not match, or the peer closed. Callers fall back to a data channel.
var ErrQUIC = errors.New("sdk: no QUIC connection")

// quicState is a pair's QUIC connection and what carries it.
type quicState struct {
	once sync.Once
	done chan struct{} // closed once the setup has finished (conn or err set)
	conn *quic.Conn
	err  error
	path string // "direct" or "relay"
	own  bool   // the connection is on the pair's own socket (quic_socket.go)
	// localFP is the SHA-256 fingerprint of this side's certificate, once conn is set (the
	// remote's is read from conn: QUICFingerprints).
	localFP [32]byte

	mu     sync.Mutex // guards what Peer.close must close
	closed bool
	agent  *ice.Agent
	sock   *quicSocket     // the pair's own socket, if any (quic_socket.go)
	tr     *quic.Transport // over ice.Conn, when QUIC goes through it
	qconn  *quic.Conn
}

// QUIC returns the QUIC connection to the remote peer, setting it up on the first call;
// later calls return the same connection or the same error. Both peers of the pair must
// call it: one side controls the ICE session and accepts, the other dials as the QUIC client
// (the pair's newcomer controls, so that the handshake starts as early as it can; between
// peers of older versions, the impolite side dials and controls). The setup runs under the first call's ctx (bound it: a remote peer
// that never calls QUIC, such as a browser, leaves it waiting until ctx ends); other calls
// wait with their own ctx. Errors wrap ErrQUIC.
//
// QUIC does not wait for the peer connection: it may be called as soon as the peer is known
// (from Options.OnPeer, in a goroutine of its own), and sets up in parallel with the peer
// connection's negotiation. Its exchange (ICE credentials, certificate fingerprint,
// candidates) goes through the signaling server as the offer and answer do; a remote's hello
// that arrives before the local side calls QUIC is held (bounded) until it does.
//
// The connection runs over an ICE session of its own, made with the client's ICE servers
// (TURN included: a relay-only pair gets QUIC through the relay), its ICETransportPolicy,
// Loopback, acceptance waits and network (Options.Net). Its TLS 1.3 handshake (ALPN QUICALPN)
// authenticates both ends with certificates made for this connection, pinned to the SHA-256
// fingerprints of the hellos: exactly as trustworthy as the DTLS fingerprints of the SDP,
// which come through the same server. The connection closes when the peer does (it leaves,
// or the client closes); the caller may close it earlier. As in any TLS 1.3 handshake, the
// dialing side's handshake completes before the other side has checked its
// certificate: if the other side refuses it, the connection QUIC returned closes at once with
// that TLS alert (its Context's cause says so), and nothing sent on it was accepted.
func (p *Peer) QUIC(ctx context.Context) (*quic.Conn, error) {
	q := p.quic
	q.once.Do(func() {
		q.conn, q.path, q.err = p.setupQUIC(ctx)
		if q.err != nil {
			q.err = fmt.Errorf("%w with %s: %w", ErrQUIC, p.id, q.err)
			p.closeQUIC()
		}
		close(q.done)
	})
	select {
	case <-q.done: // always so for the call that ran the setup
		return q.conn, q.err
	default:
	}
	select {
	case <-q.done:
		return q.conn, q.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w with %s: %w", ErrQUIC, p.id, ctx.Err())
	}
}

// QUICPath returns how the pair's QUIC connection goes: "direct", "relay" (through a TURN
// server), or "" while there is none.
func (p *Peer) QUICPath() string {
	select {
	case <-p.quic.done:
		return p.quic.path
	default:
		return ""
	}
}

// setupQUIC runs the exchange, the ICE session and the QUIC handshake. The QUIC state keeps
// what it makes, so that closing the peer meanwhile stops it.
func (p *Peer) setupQUIC(ctx context.Context) (*quic.Conn, string, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	watching := make(chan struct{})
	go func() { // the peer closing ends the setup
		defer close(watching)
		select {
		case <-p.quit:
			cancel(ErrPeerClosed)
		case <-ctx.Done():
		}
	}()
	var feeding <-chan struct{}
	defer func() { // whatever the outcome, nothing of the setup runs on
		cancel(nil)
		<-watching
		if feeding != nil {
			<-feeding
		}
	}()
	cert, fp, err := quicCertificate()
	if err != nil {
		return nil, "", err
	}
	var sock *quicSocket
	if p.c.ownQUICSocket() {
		if sock, err = p.c.newQUICSocket(); err != nil {
			return nil, "", err
		}
		if !p.quic.keep(func(q *quicState) { q.sock = sock }) {
			sock.close()
			return nil, "", ErrPeerClosed
		}
	}
	agent, err := p.c.newQUICAgent(sock)
	if err != nil {
		return nil, "", err
	}
	if !p.quic.keep(func(q *quicState) { q.agent = agent }) {
		_ = agent.Close()
		return nil, "", ErrPeerClosed
	}
	ufrag, pwd, err := agent.GetLocalUserCredentials()
	if err != nil {
		return nil, "", fmt.Errorf("ice credentials: %w", err)
	}
	hello := quicMsg{Quic: quicHello, V: quicVersion, Ufrag: ufrag, Pwd: pwd, FP: hex.EncodeToString(fp[:]), New: newFlag(p.newcomer)}
	if hook := quicHelloHook.Load(); hook != nil {
		(*hook)(p.newcomer, &hello)
	}
	if err := p.sendQUIC(hello); err != nil {
		return nil, "", err
	}
	// Candidates follow the hello: relays from one sender to one target keep their order.
	if err := agent.OnCandidate(func(c ice.Candidate) {
		m := quicMsg{Quic: quicEOC}
		if c != nil {
			m = quicMsg{Quic: quicCand, Cand: c.Marshal()}
		}
		if hook := quicCandHook.Load(); hook != nil {
			(*hook)(p, m.Cand)
		}
		if err := p.sendQUIC(m); err != nil {
			p.c.log.Debug("quic candidate", "peer", p.id, "err", err)
		}
	}); err != nil {
		return nil, "", fmt.Errorf("ice: %w", err)
	}
	if err := agent.GatherCandidates(); err != nil {
		return nil, "", fmt.Errorf("ice gathering: %w", err)
	}
	remote, fed, err := p.exchange(ctx, cancel, agent)
	feeding = fed
	if err != nil {
		return nil, "", err
	}
	want, err := hex.DecodeString(remote.FP)
	if err != nil {
		return nil, "", fmt.Errorf("fingerprint: %w", err)
	}
	controlling, dials := quicRoles(p.polite, hello.New, remote.New)
	// The server listens on its own socket before ICE ends: the client dials as soon as its
	// side has selected the pair, which may be before ours has.
	var early *quicServer
	if sock != nil && !dials {
		if early, err = listenQUIC(ctx, sock.tr, agent, cert, want); err != nil {
			return nil, "", err
		}
		defer early.close()
	}
	var iceConn *ice.Conn
	if controlling {
		iceConn, err = agent.Dial(ctx, remote.Ufrag, remote.Pwd)
	} else {
		iceConn, err = agent.Accept(ctx, remote.Ufrag, remote.Pwd)
	}
	if err != nil {
		select {
		case <-p.quit:
			// The peer closed: closing it closes the agent too, which may end the checks
			// ("the agent is closed") before the watch above has cancelled ctx.
			return nil, "", ErrPeerClosed
		default:
		}
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return nil, "", fmt.Errorf("ice: no path to the peer: %w", err)
	}
	if hook := quicSelectedHook.Load(); hook != nil {
		(*hook)(p.newcomer)
	}
	path := "direct"
	if relayed(agent) {
		path = "relay"
	}
	route := p.quicPath(sock, agent, iceConn)
	if !route.shared && !p.quic.keep(func(q *quicState) { q.tr = route.tr }) {
		return nil, "", ErrPeerClosed
	}
	var conn *quic.Conn
	switch {
	case dials:
		conn, err = dialQUIC(ctx, route, cert, want)
	case route.shared:
		conn, err = early.accept()
	default:
		var srv *quicServer
		if srv, err = listenQUIC(ctx, route.tr, nil, cert, want); err == nil {
			conn, err = srv.accept()
		}
	}
	if err != nil {
		return nil, "", err
	}
	if !p.quic.keep(func(q *quicState) { q.qconn = conn }) {
		_ = conn.CloseWithError(0, "peer closed")
		return nil, "", ErrPeerClosed
	}
	p.quic.own = route.shared // before done is closed
	p.quic.localFP = fp
	return conn, path, nil
}

// quicRoles returns whether this side controls the QUIC session's ICE and whether it dials
// QUIC, from the pair's politeness and whether each hello says its sender is the pair's
// newcomer (it found the other in the room when it joined). The newcomer has the other's
// hello first (it came with the welcome) and starts the checks first, so it controls ICE; the
// other side then selects the pair first (the nomination reaches it half a round trip before
// the controller hears back), so it dials: the handshake starts a round trip sooner than
// with both roles on one side. Without exactly one newcomer (a race), or when the remote's
// hello has no "new" (an older peer, which always takes its roles from politeness), the
// impolite side does both.
func quicRoles(polite bool, mine, theirs *bool) (controlling, dials bool) {
	if mine != nil && theirs != nil && *mine != *theirs {
		return *mine, !*mine
	}
	return !polite, !polite
}

// exchange waits for the remote's hello (it may have come before QUIC was called: the inbox
// holds it), feeding its candidates to the agent meanwhile, and keeps feeding them until ctx
// ends (the setup's end). A bad message (the inbox checks their order and count) cancels ctx
// with ErrQUICSignal as its cause. It returns the hello and a channel closed once the feeding
// has stopped.
func (p *Peer) exchange(ctx context.Context, fail context.CancelCauseFunc, agent *ice.Agent) (quicMsg, <-chan struct{}, error) {
	hello := make(chan quicMsg, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			msgs, err := p.inbox.take()
			for _, m := range msgs {
				if err != nil {
					break
				}
				switch m.Quic {
				case quicHello: // once, first: the inbox sees to it
					hello <- m
				case quicCand:
					c, cerr := ice.UnmarshalCandidate(m.Cand)
					if cerr == nil {
						cerr = agent.AddRemoteCandidate(c)
					}
					if cerr != nil {
						err = fmt.Errorf("%w: candidate: %w", ErrQUICSignal, cerr)
					}
				}
			}
			if err != nil {
				fail(err)
				return
			}
			select {
			case <-p.inbox.notify:
			case <-ctx.Done():
				return
			}
		}
	}()
	select {
	case m := <-hello:
		return m, done, nil
	case <-ctx.Done():
		if err := context.Cause(ctx); errors.Is(err, ErrQUICSignal) || errors.Is(err, ErrPeerClosed) {
			return quicMsg{}, done, err
		}
		return quicMsg{}, done, fmt.Errorf("the peer sent no QUIC offer (no QUIC support, or it did not ask in time): %w", ctx.Err())
	}
}

// quicRoute is where a pair's QUIC connection goes: a transport and the remote's address on it.
type quicRoute struct {
	tr     *quic.Transport
	remote net.Addr
	shared bool // tr is the pair's own socket's: its listener takes only remote
}

// quicPath returns the route of the QUIC connection once ICE has selected a pair: the pair's
// own socket straight to the selected remote when the pair's local candidate is on it, else
// a transport over ice.Conn.
func (p *Peer) quicPath(sock *quicSocket, agent *ice.Agent, iceConn *ice.Conn) quicRoute {
	if sock != nil {
		if ra := selectedRemote(agent); ra != nil {
			return quicRoute{tr: sock.tr, remote: ra, shared: true}
		}
	}
	pc := newICEPacketConn(iceConn)
	return quicRoute{tr: &quic.Transport{Conn: pc}, remote: pc.remote}
}

// errNotThePeer refuses a QUIC client on the pair's own socket whose address has not proven
// the remote's ICE credentials.
var errNotThePeer = errors.New("sdk: quic: a handshake from an address that is not the peer's")

// quicServer is the listening side's QUIC server: its TLS configuration refuses any
// certificate but the pinned one, and the first refusal ends the wait (quic-go's listener
// drops a connection whose handshake failed and goes on waiting) with the pin's reason.
type quicServer struct {
	ln      *quic.Listener
	ctx     context.Context //nolint:containedctx // the accept's: cancelled with the pin's reason
	refused context.CancelCauseFunc
}

// listenQUIC starts the QUIC server on tr. On the pair's own socket (agent set) only an
// address that has proven the remote's ICE credentials (iceProven) gets a handshake: anyone
// may send to the socket, and so only the remote's failed pin ends the wait. The remote's
// candidate addresses alone are not enough: a host candidate such as 192.168.1.10 may be,
// on our network, another host, which our checks to it tell our socket's address.
func listenQUIC(ctx context.Context, tr *quic.Transport, agent *ice.Agent, cert tls.Certificate, want []byte) (*quicServer, error) {
	actx, refused := context.WithCancelCause(ctx)
	tc := quicTLS(cert, want)
	pin := tc.VerifyPeerCertificate
	tc.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
		err := pin(raw, chains)
		if err != nil {
			refused(err)
		}
		return err
	}
	tc.ClientAuth = tls.RequireAnyClientCert
	if agent != nil {
		tc.GetConfigForClient = func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			if chi.Conn == nil || !iceProven(agent, chi.Conn.RemoteAddr()) {
				return nil, errNotThePeer
			}
			return nil, nil
		}
	}
	ln, err := tr.Listen(tc, quicConfig())
	if err != nil {
		refused(nil)
		return nil, fmt.Errorf("quic listen: %w", err)
	}
	return &quicServer{ln: ln, ctx: actx, refused: refused}, nil
}

// accept waits for the one connection of the pair and stops listening.
func (s *quicServer) accept() (*quic.Conn, error) {
	defer s.close()
	conn, err := s.ln.Accept(s.ctx)
	if err != nil {
		if s.ctx.Err() != nil {
			err = context.Cause(s.ctx) // the peer left, a bad exchange message, the pin, the deadline
		}
		return nil, fmt.Errorf("quic accept: %w", err)
	}
	return conn, nil
}

// close stops listening (a connection accepted stays).
func (s *quicServer) close() {
	_ = s.ln.Close()
	s.refused(nil)
}

// quicTLS is the TLS configuration of both sides, pinned to the remote's fingerprint want.
func quicTLS(cert tls.Certificate, want []byte) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{QUICALPN},
		// Certificate pinning: the chain is not verified against roots, the leaf must be the
		// one whose fingerprint came in the remote's hello. crypto/tls still checks that
		// the remote holds its key (CertificateVerify).
		InsecureSkipVerify:    true, //nolint:gosec // pinned by VerifyPeerCertificate
		VerifyPeerCertificate: pinned(want),
		// A resumed TLS session skips VerifyPeerCertificate: no resumption, ever.
		SessionTicketsDisabled: true,
	}
}

// dialQUIC runs the client's handshake on route.
func dialQUIC(ctx context.Context, route quicRoute, cert tls.Certificate, want []byte) (*quic.Conn, error) {
	tc := quicTLS(cert, want)
	tc.ServerName = "switchboard"
	conn, err := route.tr.Dial(ctx, route.remote, tc, quicConfig())
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, context.Cause(ctx)) {
			err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
		}
		return nil, fmt.Errorf("quic handshake: %w", err)
	}
	return conn, nil
}

// quicConfig is the QUIC configuration of both sides.
func quicConfig() *quic.Config {
	return &quic.Config{
		MaxStreamReceiveWindow:     QUICMaxStreamReceiveWindow,
		MaxConnectionReceiveWindow: QUICMaxConnectionReceiveWindow,
		MaxIncomingStreams:         QUICMaxIncomingStreams,
		MaxIncomingUniStreams:      QUICMaxIncomingStreams,
		MaxIdleTimeout:             QUICIdleTimeout,
		KeepAlivePeriod:            QUICKeepAlive,
	}
}

// pinned returns a VerifyPeerCertificate that accepts only the leaf whose SHA-256 is want.
func pinned(want []byte) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("sdk: quic: the peer sent no certificate")
		}
		got := sha256.Sum256(raw[0])
		if subtle.ConstantTimeCompare(got[:], want) != 1 {
			return errors.New("sdk: quic: the peer's certificate does not match the fingerprint it sent over the call")
		}
		return nil
	}
}

// quicCertificate makes a self-signed ECDSA P-256 certificate for one connection and returns
// it with the SHA-256 of its DER encoding.
func quicCertificate() (tls.Certificate, [32]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, [32]byte{}, fmt.Errorf("sdk: quic: key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, [32]byte{}, fmt.Errorf("sdk: quic: serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "switchboard"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(30 * 24 * time.Hour), // not checked: the pin is what counts
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, [32]byte{}, fmt.Errorf("sdk: quic: certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, sha256.Sum256(der), nil
}

// keep records a resource under the state's lock, unless the peer has closed (false).
func (q *quicState) keep(f func(*quicState)) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	f(q)
	return true
}

// closeQUIC closes the pair's QUIC connection, its transport and its ICE session, and
// waits for the goroutines of all three.
func (p *Peer) closeQUIC() {
	q := p.quic
	q.mu.Lock()
	q.closed = true
	conn, tr, agent, sock := q.qconn, q.tr, q.agent, q.sock
	q.qconn, q.tr, q.agent, q.sock = nil, nil, nil, nil
	q.mu.Unlock()
	if conn != nil {
		_ = conn.CloseWithError(0, "closed")
	}
	if tr != nil {
		_ = tr.Close()
	}
	if agent != nil {
		_ = agent.GracefulClose()
	}
	if sock != nil {
		sock.close() // after the agent: it writes its last packets through the mux
	}
}

// quicHelloHook, when set (tests), may alter each hello before it is sent; newcomer tells
// which side of the pair sends it.
var quicHelloHook atomic.Pointer[func(newcomer bool, m *quicMsg)]

// quicCandHook, when set (tests), is called with each candidate line before it is sent ("":
// end-of-candidates), in the agent's candidate goroutine.
var quicCandHook atomic.Pointer[func(p *Peer, cand string)]

// quicSelectedHook, when set (tests), is called once ICE has selected the pair, before the
// QUIC handshake is dialed or accepted; newcomer tells which side of the pair it is.
var quicSelectedHook atomic.Pointer[func(newcomer bool)]

// icePacketConn must stay a net.PacketConn.
var _ net.PacketConn = (*icePacketConn)(nil)
