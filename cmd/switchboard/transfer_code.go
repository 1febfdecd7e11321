package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/wormhole"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// Code phrases (docs/file-transfer.md, "Code phrases"). Without --room or --token, send makes
// a code ("7-gravity-lemon-orbit"), joins the room its channel number names, and prints
// `switchboard recv CODE`; recv joins that room. Each receiver that comes runs the code's
// PAKE with the sender over relayed messages (internal/wormhole): a wrong code shows at its
// first attempt, on both sides; the sender counts them and gives up at maxWrongCodes. The pair
// then binds the connection it uses (the certificates of its QUIC or DTLS handshake) with
// MACs under the key, each side checking the other's before a byte of a file moves: a server
// that substituted the fingerprints in the SDP or the QUIC hello is caught there.

const (
	// maxWrongCodes is how many wrong codes a sender takes before it gives up (how attempts
	// count: wormhole.Pair).
	maxWrongCodes = wormhole.MaxWrongCodes
	// maxCodePeers bounds the peers a side watches at once (an exchange, a timer); a peer
	// leaves the count when its exchange fails or it leaves, at the latest codeExchangeWait
	// after it came. A peer beyond the bound is not answered (it sees no answer).
	maxCodePeers = wormhole.MaxPeers
	// codeExchangeWait bounds an exchange, from the moment the peer is seen until the key is
	// confirmed: a relayed round trip or two, normally milliseconds.
	codeExchangeWait = wormhole.ExchangeWait
	// bindWait bounds the wait for the other side's bind once the connection is up.
	bindWait = wormhole.BindWait
	// codeRoomTries is how many codes a sender draws when it finds the room of one in use.
	codeRoomTries = 5
	// defaultCodeWait is how long recv waits for the sender of its code to show up.
	defaultCodeWait = 10 * time.Minute
)

// errWrongCode is the receiver's one-line error when its code is refused.
var errWrongCode = errors.New("the code is wrong: the sender did not accept it (check it, or ask the sender to run send again for a new one)")

// pairAuth runs one command's code exchanges, one per peer, over a wormhole.Pair (which
// counts the attempts): it relays the Pair's messages, runs each exchange's timer, and
// turns the Pair's news into channels and lines on stderr.
type pairAuth struct {
	role   wormhole.Role
	stderr io.Writer

	mu     sync.Mutex
	pair   *wormhole.Pair
	gaveUp chan struct{} // sender: closed at maxWrongCodes
	lost   chan error    // receiver: every sender's exchange failed (the reason)

	wg       sync.WaitGroup // the watches of the peers
	stop     chan struct{}  // closed by close: the watches end, nothing more is printed
	stopOnce sync.Once
}

// codePeer is the exchange with one peer.
type codePeer struct {
	s      *wormhole.Session // once ready (under pairAuth.mu until then)
	ready  chan struct{}     // closed when both sides proved the code
	failed chan struct{}     // closed when the exchange failed (err says why)
	err    error
	binds  chan wormhole.Msg // the peer's bind messages
	once   sync.Once
	role   wormhole.Role // this side's
}

// isReady reports whether the peer proved the code.
func (cp *codePeer) isReady() bool {
	select {
	case <-cp.ready:
		return true
	default:
		return false
	}
}

// alterBind, when set (tests), changes the fingerprints a side binds before it binds them:
// what a man in the middle makes each side see.
var alterBind func(role wormhole.Role, local, remote *[32]byte)

func newPairAuth(code wormhole.Code, role wormhole.Role, stderr io.Writer) *pairAuth {
	return &pairAuth{
		role: role, stderr: stderr, pair: wormhole.NewPair(role, code),
		gaveUp: make(chan struct{}), lost: make(chan error, 1), stop: make(chan struct{}),
	}
}

// code returns the code the exchanges run on.
func (a *pairAuth) code() wormhole.Code {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pair.Code()
}

// close ends the watches and waits for them; from then on nothing is counted or printed
// (the peers closing with the client are not attempts). It may be called more than once.
func (a *pairAuth) close() {
	if a == nil {
		return
	}
	a.stopOnce.Do(func() {
		a.mu.Lock() // watch adds to wg under it, only before stop is closed
		close(a.stop)
		a.mu.Unlock()
	})
	a.wg.Wait()
}

// stopped reports whether close was called.
func (a *pairAuth) stopped() bool {
	select {
	case <-a.stop:
		return true
	default:
		return false
	}
}

// watch starts the exchange with p (from OnPeer): its exchange messages go to the Pair; a
// receiver sends the first one. It returns nil when maxCodePeers are being watched.
func (a *pairAuth) watch(p *sdk.Peer) *codePeer {
	a.mu.Lock()
	if a.stopped() {
		a.mu.Unlock()
		return nil // the command is over
	}
	st, ok := a.pair.Add(p.ID())
	if !ok {
		a.mu.Unlock()
		return nil
	}
	cp := &codePeer{ready: make(chan struct{}), failed: make(chan struct{}), binds: make(chan wormhole.Msg, 4), role: a.role}
	a.wg.Add(1)
	a.mu.Unlock()
	go a.watchPeer(p, cp)
	p.OnMessage(func(b json.RawMessage) {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.applyLocked(p, cp, a.pair.Message(p.ID(), b))
	})
	a.mu.Lock()
	a.applyLocked(p, cp, st) // a receiver's x
	a.mu.Unlock()
	return cp
}

// applyLocked does what a step of the Pair says: settle cp, relay the reply, report.
func (a *pairAuth) applyLocked(p *sdk.Peer, cp *codePeer, st wormhole.Step) {
	if st.Bind != nil {
		select {
		case cp.binds <- *st.Bind:
		default: // a peer that floods binds: the first ones are kept
		}
	}
	if st.Ready {
		// Before the reply: a receiver's confirm lets the sender open the transfer's
		// channel, which this side takes only from a peer that proved the code.
		cp.s = a.pair.Session(p.ID())
		cp.once.Do(func() { close(cp.ready) })
	}
	if st.Reply != nil {
		if err := p.SendMessage(*st.Reply); err != nil && st.Reply.Kind == wormhole.KindX {
			a.applyLocked(p, cp, a.pair.Fail(p.ID(), err)) // the exchange cannot begin
		}
	}
	if st.Err != nil {
		cp.once.Do(func() {
			cp.err = st.Err
			close(cp.failed)
		})
	}
	if st.Lost != nil {
		if errors.Is(st.Lost, wormhole.ErrWrongCode) {
			st.Lost = errWrongCode
		}
		select {
		case a.lost <- st.Lost:
		default:
		}
	}
	if st.Report == "" || a.stopped() {
		return // nothing counted, or the command is over
	}
	fmt.Fprintln(a.stderr, st.Report)
	if st.GaveUp {
		select {
		case <-a.gaveUp:
		default:
			close(a.gaveUp)
		}
	}
}

// watchPeer ends the exchange with p when p leaves or codeExchangeWait has passed.
func (a *pairAuth) watchPeer(p *sdk.Peer, cp *codePeer) {
	defer a.wg.Done()
	t := time.NewTimer(codeExchangeWait)
	defer t.Stop()
	select {
	case <-cp.ready:
		select { // a confirmed peer stays until it leaves
		case <-p.Closed():
			a.left(p, cp)
		case <-a.stop:
		}
		return
	case <-cp.failed:
	case <-p.Closed():
		a.left(p, cp)
	case <-t.C:
		a.mu.Lock()
		a.applyLocked(p, cp, a.pair.Fail(p.ID(), wormhole.ErrSlow))
		a.mu.Unlock()
	case <-a.stop:
	}
}

// left tells the Pair that p left, unless the command is over (the peers closing with the
// client are not attempts).
func (a *pairAuth) left(p *sdk.Peer, cp *codePeer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.stopped() {
		a.applyLocked(p, cp, a.pair.Left(p.ID()))
	}
}

// bindPath is the wormhole path of a transfer channel described by how.
func bindPath(how string) string {
	if strings.HasPrefix(how, "over QUIC") {
		return wormhole.PathQUIC
	}
	return wormhole.PathDTLS
}

// bind binds the connection of p the transfer runs on (path) to the code's key: it sends
// this side's bind and checks the peer's, waiting at most bindWait.
func (cp *codePeer) bind(ctx context.Context, p *sdk.Peer, path string) error {
	var local, remote [32]byte
	var err error
	if path == wormhole.PathQUIC {
		local, remote, err = p.QUICFingerprints()
	} else {
		local, remote, err = p.DTLSFingerprints()
	}
	if err != nil {
		return fmt.Errorf("the connection has no certificate to check: %w", err)
	}
	if alterBind != nil {
		alterBind(cp.role, &local, &remote)
	}
	m, err := cp.s.Bind(path, local[:], remote[:])
	if err != nil {
		return err
	}
	if err := p.SendMessage(m); err != nil {
		return fmt.Errorf("send the connection check: %w", err)
	}
	timer := time.NewTimer(bindWait)
	defer timer.Stop()
	for {
		select {
		case got := <-cp.binds:
			if got.Path != path {
				continue // a bind of a path abandoned since (QUIC, before the data channel)
			}
			if err := cp.s.CheckBind(got, path, local[:], remote[:]); err != nil {
				return errBinding
			}
			return nil
		case <-timer.C:
			return errors.New("the other side did not confirm the connection within 15 s")
		case <-p.Closed():
			return errors.New("the other side left")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// errBinding is the one-line error of a connection the code does not vouch for.
var errBinding = errors.New("the connection is not the one the code authenticated: something between the two sides (the server?) substituted it; nothing was transferred")

// waitReady waits until the exchange with p proved the code, failed, or p left.
func (cp *codePeer) waitReady(ctx context.Context, p *sdk.Peer) error {
	select {
	case <-cp.ready:
		return nil
	case <-cp.failed:
		return cp.err
	case <-p.Closed():
		return errors.New("left before proving the code")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// joinCodeRoom joins the room of a new code with dial, drawing another code when the room is
// in use (a sender is in it: peers that are not cannot hold rooms against us, each gets a
// counted guess at most), and returns the client and the code. dial gets the code before
// it joins: a receiver may come as soon as it has.
func joinCodeRoom(ctx context.Context, dial func(code wormhole.Code) (*sdk.Client, error)) (*sdk.Client, wormhole.Code, error) {
	for try := 0; ; try++ {
		code, err := wormhole.NewCode()
		if err != nil {
			return nil, wormhole.Code{}, err
		}
		client, err := dial(code)
		if err != nil {
			return nil, wormhole.Code{}, err
		}
		if !hasSender(client) { // a room with other peers but no sender is ours: they get a guess each, counted
			return client, code, nil
		}
		client.Close()
		if try+1 == codeRoomTries {
			return nil, wormhole.Code{}, fmt.Errorf("the rooms of %d codes in a row were in use on the server; try again", codeRoomTries)
		}
		if ctx.Err() != nil {
			return nil, wormhole.Code{}, ctx.Err()
		}
	}
}

// setCode sets the code the exchanges run on (the sender's, once drawn).
func (a *pairAuth) setCode(c wormhole.Code) {
	a.mu.Lock()
	a.pair.SetCode(c)
	a.mu.Unlock()
}

// gaveUp returns a channel closed when the sender has had maxWrongCodes wrong codes (nil,
// never, without code mode).
func gaveUp(a *pairAuth) <-chan struct{} {
	if a == nil {
		return nil
	}
	return a.gaveUp
}

// printRecvHint prints the command the receiving side runs, once the sender is in its room.
func printRecvHint(w io.Writer, code string, pf peerFlags) {
	cmd := "switchboard recv " + code
	if pf.server != defaultServer {
		cmd += " --server " + pf.server
	}
	if pf.loopback {
		cmd += " --loopback"
	}
	fmt.Fprintf(w, "On the receiving side, run:\n\n    %s\n\n", cmd)
}

// bindSource waits until the sender proved the code (cp, its exchange) and binds the
// connection its transfer came on (path): nothing of it is read before.
func bindSource(ctx context.Context, cp *codePeer, p *sdk.Peer, path string) error {
	wctx, cancel := context.WithTimeout(ctx, bindWait)
	defer cancel()
	if err := cp.waitReady(wctx, p); err != nil {
		if errors.Is(err, wormhole.ErrWrongCode) {
			return errWrongCode
		}
		return fmt.Errorf("the sender did not prove the code: %w", err)
	}
	return cp.bind(ctx, p, path)
}

// hasSender reports whether a sender is in the client's room.
func hasSender(c *sdk.Client) bool {
	for _, p := range c.Peers() {
		if roleOf(p) == "send" {
			return true
		}
	}
	return false
}
