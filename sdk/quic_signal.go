package sdk

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
)

// The QUIC exchange (docs/protocol.md, "QUIC between SDK peers") travels through the signaling
// server as the SDK's own `message` relays, {"switchboard":"quic",...}, beside the offers,
// answers and candidates of the peer connection: it does not wait for the peer connection, so
// the QUIC path sets up in parallel with it. It is exactly as trustworthy as the SDP's DTLS
// fingerprints, which come through the same server: a server that can rewrite one can rewrite
// the other. Peers that do not know these messages (older SDKs) pass them to OnMessage; the
// browser SDK drops them.

// ErrQUICSignal means the remote peer sent a QUIC exchange message that is malformed, too big,
// out of place, or one too many.
var ErrQUICSignal = errors.New("sdk: bad QUIC exchange message from peer")

// Bounds on what a remote peer can make us hold for its QUIC exchange, whether or not the
// local side has called QUIC yet: one hello, then candidates and an end-of-candidates, each
// at most maxQUICMsg bytes, maxQUICInbox messages in all. The inbox goes with the peer.
const (
	// maxQUICMsg is the largest exchange message accepted (a candidate line is ~100 bytes).
	maxQUICMsg = 2048
	// maxQUICInbox is how many exchange messages a pair accepts: a hello, up to 30
	// candidates, end-of-candidates. An SDK peer gathers a host candidate per address and
	// network type plus a reflexive and a relay one per server: well under 30 on most hosts;
	// more would only multiply the checks a remote can point at addresses it chooses.
	maxQUICInbox = 32
	// quicVersion is the exchange's version, in hello.
	quicVersion = 1
	// quicSwitchboard is the "switchboard" field of the exchange's relays.
	quicSwitchboard = "quic"
)

// Exchange message kinds (the "quic" field).
const (
	quicHello = "hello" // ICE credentials and certificate fingerprint
	quicCand  = "cand"  // one trickled ICE candidate
	quicEOC   = "eoc"   // no more candidates
)

// quicMsg is one message of the QUIC exchange, the data of a `message` relay.
type quicMsg struct {
	Switchboard string `json:"switchboard"` // always "quic"
	Quic        string `json:"quic"`
	V           int    `json:"v,omitempty"`
	Ufrag       string `json:"ufrag,omitempty"`
	Pwd         string `json:"pwd,omitempty"`
	FP          string `json:"fp,omitempty"` // SHA-256 of the DER certificate, 64 hex digits
	Cand        string `json:"cand,omitempty"`
	// New (hello): whether the sender joined after the other side (found it in the room):
	// the pair's roles follow from it (quicRoles). Always sent, true or false: a hello
	// without it (nil) is an older peer's, which takes its roles from politeness alone.
	New *bool `json:"new,omitempty"`
}

// newFlag returns a hello's "new" field.
func newFlag(b bool) *bool { return &b }

// isQUICMsg reports whether a relayed message is the SDK's QUIC exchange (its "switchboard"
// field is "quic"), whatever else it holds.
func isQUICMsg(b []byte) bool {
	var m struct {
		Switchboard string `json:"switchboard"`
	}
	return json.Unmarshal(b, &m) == nil && m.Switchboard == quicSwitchboard
}

// decodeQUICMsg decodes and checks one exchange message. ok is false for a message that is
// not part of the exchange (its "switchboard" field is not "quic"): it is not ours.
func decodeQUICMsg(b []byte) (m quicMsg, ok bool, err error) {
	if len(b) > maxQUICMsg {
		return m, true, fmt.Errorf("%w: %d bytes (at most %d)", ErrQUICSignal, len(b), maxQUICMsg)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, true, fmt.Errorf("%w: %w", ErrQUICSignal, err)
	}
	if m.Switchboard != quicSwitchboard {
		return m, false, nil
	}
	switch m.Quic {
	case quicHello:
		if m.V != quicVersion {
			return m, true, fmt.Errorf("%w: hello version %d (want %d)", ErrQUICSignal, m.V, quicVersion)
		}
		// RFC 8445 5.3: ufrag at least 4 characters, pwd at least 22; 256 at most for both.
		if len(m.Ufrag) < 4 || len(m.Ufrag) > 256 || len(m.Pwd) < 22 || len(m.Pwd) > 256 {
			return m, true, fmt.Errorf("%w: hello with bad ICE credentials", ErrQUICSignal)
		}
		if fp, err := hex.DecodeString(m.FP); err != nil || len(fp) != 32 {
			return m, true, fmt.Errorf("%w: hello fingerprint %.80q is not 64 hex digits", ErrQUICSignal, m.FP)
		}
	case quicCand:
		if m.Cand == "" {
			return m, true, fmt.Errorf("%w: empty candidate", ErrQUICSignal)
		}
	case quicEOC:
	default:
		return m, true, fmt.Errorf("%w: unknown kind %.40q", ErrQUICSignal, m.Quic)
	}
	return m, true, nil
}

// quicInbox holds the exchange messages from the remote peer until the setup takes them;
// they may arrive before the local side calls QUIC. It checks their order as they come (one
// hello, first; nothing after end-of-candidates) and counts them: at most maxQUICInbox.
type quicInbox struct {
	mu     sync.Mutex
	msgs   []quicMsg
	n      int  // messages accepted, taken or not
	hello  bool // the hello came
	eoc    bool // end-of-candidates came
	err    error
	notify chan struct{} // 1-buffered: something arrived
}

func newQUICInbox() *quicInbox { return &quicInbox{notify: make(chan struct{}, 1)} }

// put queues an exchange message. It returns the error the message caused (malformed, out
// of order, one too many), once: the inbox then holds that error and drops what follows.
func (in *quicInbox) put(b []byte) error {
	m, ok, err := decodeQUICMsg(b)
	if !ok {
		return nil
	}
	in.mu.Lock()
	defer func() {
		in.mu.Unlock()
		select {
		case in.notify <- struct{}{}:
		default:
		}
	}()
	switch {
	case in.err != nil:
		return nil // reported already
	case err != nil:
	case in.n >= maxQUICInbox:
		err = fmt.Errorf("%w: more than %d messages", ErrQUICSignal, maxQUICInbox)
	case m.Quic == quicHello && in.hello:
		err = fmt.Errorf("%w: a second hello", ErrQUICSignal)
	case m.Quic != quicHello && !in.hello:
		err = fmt.Errorf("%w: %s before hello", ErrQUICSignal, m.Quic)
	case in.eoc:
		err = fmt.Errorf("%w: %s after end-of-candidates", ErrQUICSignal, m.Quic)
	}
	if err != nil {
		in.err = err
		in.msgs = nil
		return err
	}
	in.n++
	in.hello = in.hello || m.Quic == quicHello
	in.eoc = m.Quic == quicEOC
	in.msgs = append(in.msgs, m)
	return nil
}

// take returns the queued messages and the inbox's error, emptying it.
func (in *quicInbox) take() ([]quicMsg, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	msgs := in.msgs
	in.msgs = nil
	return msgs, in.err
}

// quicMessage takes a relayed message of the exchange from the remote peer. A broadcast is
// no part of it (a pair's exchange is addressed) and is dropped; a bad message fails the
// pair's QUIC setup and is reported to Options.OnError.
func (p *Peer) quicMessage(data []byte, broadcast bool) {
	if broadcast {
		p.c.log.Debug("quic exchange message broadcast, dropped", "peer", p.id)
		return
	}
	if err := p.inbox.put(data); err != nil {
		p.c.report(p, fmt.Errorf("%w (from %s)", err, p.id))
	}
}

// sendQUIC relays one exchange message to the remote peer through the server.
func (p *Peer) sendQUIC(m quicMsg) error {
	m.Switchboard = quicSwitchboard
	if err := p.c.send("message", p.id, m); err != nil {
		return fmt.Errorf("sdk: quic: send through the server: %w", err)
	}
	return nil
}
