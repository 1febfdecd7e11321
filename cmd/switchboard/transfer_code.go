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
	// maxWrongCodes is how many wrong codes a sender takes before it gives up. An attempt
	// counts from the moment the sender answers it (its y carries a MAC that tells the
	// receiver whether its code was right): unless the receiver then confirms the key, the
	// attempt is a wrong code, whether its confirm was wrong, malformed, or never came (it
	// left, or stayed silent for codeExchangeWait). The sender answers no attempt beyond
	// what remains of maxWrongCodes minus those in flight.
	maxWrongCodes = 3
	// maxCodePeers bounds the peers a side watches at once (an exchange, a timer); a peer
	// leaves the count when its exchange fails or it leaves, at the latest codeExchangeWait
	// after it came. A peer beyond the bound is not answered (it sees no answer).
	maxCodePeers = 8
	// codeExchangeWait bounds an exchange, from the moment the peer is seen until the key is
	// confirmed: a relayed round trip or two, normally milliseconds.
	codeExchangeWait = 20 * time.Second
	// bindWait bounds the wait for the other side's bind once the connection is up.
	bindWait = 15 * time.Second
	// codeRoomTries is how many codes a sender draws when it finds the room of one in use.
	codeRoomTries = 5
	// defaultCodeWait is how long recv waits for the sender of its code to show up.
	defaultCodeWait = 10 * time.Minute
)

// Errors of the exchanges, one line each.
var (
	// errWrongCode is the receiver's one-line error when its code is refused.
	errWrongCode = errors.New("the code is wrong: the sender did not accept it (check it, or ask the sender to run send again for a new one)")
	// errCodeLeft: the peer left before the exchange was over.
	errCodeLeft = errors.New("the other side left before the code was checked")
	// errCodeSlow: the exchange did not end within codeExchangeWait.
	errCodeSlow = fmt.Errorf("the other side did not finish checking the code within %v", codeExchangeWait)
	// errCodeBusy: the sender has as many attempts in flight as it may still take.
	errCodeBusy = errors.New("the sender is busy checking other attempts")
)

// pairAuth runs one command's code exchanges, one per peer.
type pairAuth struct {
	code   wormhole.Code
	role   wormhole.Role
	stderr io.Writer

	mu      sync.Mutex
	peers   map[string]*codePeer // exchanges running or confirmed, with peers still there
	pending int                  // sender: attempts answered and not yet confirmed
	wrong   int                  // sender: wrong codes so far
	gaveUp  chan struct{}        // sender: closed at maxWrongCodes
	lost    chan error           // receiver: every sender's exchange failed (the reason)
	lastErr error                // receiver: the most telling reason so far
	tested  int                  // receiver: senders' answers whose MAC failed (codes tried on it)

	wg       sync.WaitGroup // the watches of the peers
	stop     chan struct{}  // closed by close: the watches end, nothing more is printed
	stopOnce sync.Once
}

// codePeer is the exchange with one peer.
type codePeer struct {
	s        *wormhole.Session
	ready    chan struct{} // closed when both sides proved the code
	failed   chan struct{} // closed when the exchange failed (err says why)
	err      error
	over     bool              // ready or failed (under pairAuth.mu)
	answered bool              // sender: y sent, the attempt not settled yet (under pairAuth.mu)
	binds    chan wormhole.Msg // the peer's bind messages
	once     sync.Once
	role     wormhole.Role // this side's
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
		code: code, role: role, stderr: stderr, peers: make(map[string]*codePeer),
		gaveUp: make(chan struct{}), lost: make(chan error, 1), stop: make(chan struct{}),
	}
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

// watch starts the exchange with p (from OnPeer): its exchange messages go to the pairAuth;
// a receiver sends the first one. It returns nil when maxCodePeers are being watched.
func (a *pairAuth) watch(p *sdk.Peer) *codePeer {
	a.mu.Lock()
	select {
	case <-a.stop:
		a.mu.Unlock()
		return nil // the command is over
	default:
	}
	if len(a.peers) >= maxCodePeers {
		a.mu.Unlock()
		return nil
	}
	cp := &codePeer{ready: make(chan struct{}), failed: make(chan struct{}), binds: make(chan wormhole.Msg, 4), role: a.role}
	a.peers[p.ID()] = cp
	a.wg.Add(1)
	a.mu.Unlock()
	go a.watchPeer(p, cp)
	p.OnMessage(func(b json.RawMessage) {
		if !wormhole.IsMsg(b) {
			return
		}
		m, err := wormhole.DecodeMsg(b)
		if err != nil {
			a.fail(p, cp, err)
			return
		}
		a.handle(p, cp, m)
	})
	if a.role == wormhole.Receiver {
		s, x, err := wormhole.NewReceiver(a.code)
		if err != nil {
			a.fail(p, cp, err)
			return cp
		}
		a.mu.Lock()
		cp.s = s
		a.mu.Unlock()
		if err := p.SendMessage(x); err != nil {
			a.fail(p, cp, err)
		}
	}
	return cp
}

// watchPeer ends the exchange with p when p leaves or codeExchangeWait has passed, and
// forgets p once its exchange failed or p left.
func (a *pairAuth) watchPeer(p *sdk.Peer, cp *codePeer) {
	defer a.wg.Done()
	t := time.NewTimer(codeExchangeWait)
	defer t.Stop()
	select {
	case <-cp.ready:
		select { // a confirmed peer stays until it leaves
		case <-p.Closed():
			a.mu.Lock()
			if a.peers[p.ID()] == cp {
				delete(a.peers, p.ID())
			}
			if a.role == wormhole.Receiver {
				a.lostLocked(errors.New("the sender left"))
			}
			a.mu.Unlock()
		case <-a.stop:
		}
		return
	case <-cp.failed:
	case <-p.Closed():
		a.fail(p, cp, errCodeLeft)
	case <-t.C:
		a.fail(p, cp, errCodeSlow)
	case <-a.stop:
		return
	}
	a.mu.Lock()
	if a.peers[p.ID()] == cp {
		delete(a.peers, p.ID())
	}
	a.mu.Unlock()
}

// handle takes one exchange message from p (on the signaling reader's goroutine).
func (a *pairAuth) handle(p *sdk.Peer, cp *codePeer, m wormhole.Msg) {
	if m.Kind == wormhole.KindBind {
		select {
		case cp.binds <- m:
		default: // a peer that floods binds: the first ones are kept
		}
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if cp.over {
		return // the exchange is over: nothing the peer says changes it
	}
	if cp.s == nil && a.role == wormhole.Sender && m.Kind == wormhole.KindX && len(a.code.Words) > 0 {
		if a.wrong+a.pending >= maxWrongCodes {
			// Answering would give a guess beyond what is left: not answered, not counted.
			a.failLocked(p, cp, errCodeBusy)
			return
		}
		s, err := wormhole.NewSender(a.code)
		if err != nil {
			a.failLocked(p, cp, err)
			return
		}
		cp.s = s
	}
	if cp.s == nil {
		a.failLocked(p, cp, fmt.Errorf("%w: %s before the exchange began", wormhole.ErrMsg, m.Kind))
		return
	}
	if a.role == wormhole.Receiver && m.Kind == wormhole.KindY && a.tested >= maxWrongCodes {
		a.failLocked(p, cp, errWrongCode) // checking it would test one more code
		return
	}
	reply, ok, err := cp.s.Handle(m)
	if err == nil && cp.s.Ready() {
		// Before the reply: a receiver's confirm lets the sender open the transfer's
		// channel, which this side takes only from a peer that proved the code.
		a.settleLocked(cp)
		cp.over = true
		cp.once.Do(func() { close(cp.ready) })
	}
	if ok {
		if a.role == wormhole.Sender && reply.Kind == wormhole.KindY {
			cp.answered = true // an attempt from here on: it settles confirmed, or wrong
			a.pending++
		}
		_ = p.SendMessage(reply)
	}
	if err != nil {
		if a.role == wormhole.Receiver && m.Kind == wormhole.KindY && errors.Is(err, wormhole.ErrWrongCode) {
			a.tested++ // a y whose MAC failed: the peer tried a code against this side's x
		}
		a.failLocked(p, cp, err)
	}
}

// settleLocked takes a sender's answered attempt out of the ones in flight; it reports
// whether there was one.
func (a *pairAuth) settleLocked(cp *codePeer) bool {
	if !cp.answered {
		return false
	}
	cp.answered = false
	a.pending--
	return true
}

func (a *pairAuth) fail(p *sdk.Peer, cp *codePeer, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failLocked(p, cp, err)
}

// failLocked ends the exchange with p. A sender counts it as a wrong code if it had
// answered it (the other side could check its code against the answer); a receiver reports
// on lost once no sender's exchange is left.
func (a *pairAuth) failLocked(p *sdk.Peer, cp *codePeer, err error) {
	if cp.over {
		return
	}
	cp.over = true
	cp.once.Do(func() {
		cp.err = err
		close(cp.failed)
	})
	if a.peers[p.ID()] == cp {
		delete(a.peers, p.ID())
	}
	if a.role == wormhole.Receiver {
		a.lostLocked(err)
		return
	}
	if !a.settleLocked(cp) {
		return // not answered: no code was tried
	}
	a.wrong++
	select {
	case <-a.stop:
		return // the command is over
	default:
	}
	what := "someone tried a wrong code"
	switch {
	case errors.Is(err, wormhole.ErrWrongCode):
	case errors.Is(err, errCodeLeft):
		what = "someone tried a code and left without confirming it: a wrong code"
	case errors.Is(err, errCodeSlow):
		what = "someone tried a code and did not confirm it in time: a wrong code"
	default:
		what = "someone tried a code and answered with a malformed message: a wrong code"
	}
	if a.wrong >= maxWrongCodes {
		fmt.Fprintf(a.stderr, "%s (%d of %d): giving up\n", what, a.wrong, maxWrongCodes)
		select {
		case <-a.gaveUp:
		default:
			close(a.gaveUp)
		}
		return
	}
	fmt.Fprintf(a.stderr, "%s (%d of %d); still waiting for the receiver with the right one\n", what, a.wrong, maxWrongCodes)
}

// lostLocked records why a receiver's exchange with a sender failed and, when no other
// sender's exchange runs or has succeeded, reports the most telling reason on lost: a third
// peer posing as a sender must not end the run while the real one may still answer. But
// each sender's answer that failed its MAC was a code tried against this side: at
// maxWrongCodes of them the receiver gives up as the sender would.
func (a *pairAuth) lostLocked(err error) {
	if errors.Is(err, wormhole.ErrWrongCode) {
		err = errWrongCode
	}
	if a.lastErr == nil || !errors.Is(a.lastErr, errWrongCode) {
		a.lastErr = err
	}
	if len(a.peers) > 0 && a.tested < maxWrongCodes {
		return
	}
	select {
	case a.lost <- a.lastErr:
	default:
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
	a.code = c
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
