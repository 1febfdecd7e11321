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
	// maxWrongCodes is how many wrong codes a sender takes before it gives up.
	maxWrongCodes = 3
	// maxCodePeers bounds the exchanges a sender runs at once (each is a few ms of curve
	// arithmetic on the signaling reader); more receivers wait their turn or are ignored.
	maxCodePeers = 8
	// bindWait bounds the wait for the other side's bind once the connection is up.
	bindWait = 15 * time.Second
	// codeRoomTries is how many codes a sender draws when it finds the room of one in use.
	codeRoomTries = 5
	// defaultCodeWait is how long recv waits for the sender of its code to show up.
	defaultCodeWait = 10 * time.Minute
)

// errWrongCode is the receiver's one-line error when its code is refused.
var errWrongCode = errors.New("the code is wrong: the sender did not accept it (check it, or ask the sender to run send again for a new one)")

// pairAuth runs one command's code exchanges, one per peer.
type pairAuth struct {
	code   wormhole.Code
	role   wormhole.Role
	stderr io.Writer

	mu     sync.Mutex
	peers  map[string]*codePeer
	wrong  int           // sender: wrong codes so far
	gaveUp chan struct{} // sender: closed at maxWrongCodes
}

// codePeer is the exchange with one peer.
type codePeer struct {
	s      *wormhole.Session
	ready  chan struct{} // closed when both sides proved the code
	failed chan struct{} // closed when the exchange failed (err says why)
	err    error
	binds  chan wormhole.Msg // the peer's bind messages
	once   sync.Once
	role   wormhole.Role // this side's
}

// alterBind, when set (tests), changes the fingerprints a side binds before it binds them:
// what a man in the middle makes each side see.
var alterBind func(role wormhole.Role, local, remote *[32]byte)

func newPairAuth(code wormhole.Code, role wormhole.Role, stderr io.Writer) *pairAuth {
	return &pairAuth{code: code, role: role, stderr: stderr, peers: make(map[string]*codePeer), gaveUp: make(chan struct{})}
}

// watch starts the exchange with p (from OnPeer): its exchange messages go to the pairAuth;
// a receiver sends the first one. It returns nil when the sender runs maxCodePeers already.
func (a *pairAuth) watch(p *sdk.Peer) *codePeer {
	a.mu.Lock()
	if len(a.peers) >= maxCodePeers {
		a.mu.Unlock()
		return nil
	}
	cp := &codePeer{ready: make(chan struct{}), failed: make(chan struct{}), binds: make(chan wormhole.Msg, 4), role: a.role}
	a.peers[p.ID()] = cp
	a.mu.Unlock()
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
	if cp.s == nil && a.role == wormhole.Sender && m.Kind == wormhole.KindX && len(a.code.Words) > 0 {
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
	reply, ok, err := cp.s.Handle(m)
	if ok {
		_ = p.SendMessage(reply)
	}
	switch {
	case err != nil:
		a.failLocked(p, cp, err)
	case cp.s.Ready():
		cp.once.Do(func() { close(cp.ready) })
	}
}

func (a *pairAuth) fail(p *sdk.Peer, cp *codePeer, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failLocked(p, cp, err)
}

// failLocked ends the exchange with p; a sender counts a wrong code.
func (a *pairAuth) failLocked(p *sdk.Peer, cp *codePeer, err error) {
	done := false
	cp.once.Do(func() {
		cp.err = err
		close(cp.failed)
		done = true
	})
	if !done || a.role != wormhole.Sender {
		return
	}
	if errors.Is(err, wormhole.ErrWrongCode) || errors.Is(err, wormhole.ErrMsg) {
		a.wrong++
		if a.wrong >= maxWrongCodes {
			fmt.Fprintf(a.stderr, "someone tried a wrong code (%d of %d): giving up\n", a.wrong, maxWrongCodes)
			select {
			case <-a.gaveUp:
			default:
				close(a.gaveUp)
			}
			return
		}
		fmt.Fprintf(a.stderr, "someone tried a wrong code (%d of %d); still waiting for the receiver with the right one\n", a.wrong, maxWrongCodes)
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
// in use (someone is in it), and returns the client and the code. dial gets the code before
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
		if len(client.Peers()) == 0 {
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

// watchCode reports the failure of a receiver's exchange with a sender on failed (one
// report: a wrong code ends recv); the watch ends with the exchange or when p leaves.
func watchCode(p *sdk.Peer, cp *codePeer, failed chan<- error) {
	go func() {
		select {
		case <-cp.ready:
		case <-p.Closed():
		case <-cp.failed:
			err := cp.err
			if errors.Is(err, wormhole.ErrWrongCode) {
				err = errWrongCode
			}
			select {
			case failed <- err:
			default:
			}
		}
	}()
}

// bindSource waits until the sender p proved the code and binds the connection its transfer
// came on (path): nothing of it is read before.
func (a *pairAuth) bindSource(ctx context.Context, p *sdk.Peer, path string) error {
	a.mu.Lock()
	cp := a.peers[p.ID()]
	a.mu.Unlock()
	if cp == nil {
		return errors.New("a transfer from a peer that ran no code exchange")
	}
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
