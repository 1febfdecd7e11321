package sdk

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"
)

// The QUIC exchange (docs/protocol.md, "QUIC between SDK peers") travels on the pair's control
// channel "switchboard": a data channel of the peer connection, so DTLS protects it as it does
// the call, and the certificate fingerprints in it are as trustworthy as the call itself.
// Every SDK pair has that channel (the offering side opens it); peers that do not know these
// messages (the browser SDK, older SDKs) ignore them. A fresh negotiated channel would not do:
// Pion's acceptor takes a message on a stream it does not know yet (the other side has not
// created its channel) for a DCEP open, fails, and stops accepting data channels on the
// connection for good.

// ErrQUICSignal means the remote peer sent a QUIC exchange message that is malformed, too big,
// out of place, or one too many.
var ErrQUICSignal = errors.New("sdk: bad QUIC exchange message from peer")

// Bounds on what a remote peer can make us hold for its QUIC exchange.
const (
	// maxQUICMsg is the largest exchange message accepted (a candidate line is ~100 bytes).
	maxQUICMsg = 2048
	// maxQUICInbox is how many exchange messages wait for QUIC to be called or for the
	// setup to take them: a hello, candidates, end-of-candidates.
	maxQUICInbox = 64
	// quicVersion is the exchange's version, in hello.
	quicVersion = 1
)

// Exchange message kinds (the "quic" field).
const (
	quicHello = "hello" // ICE credentials and certificate fingerprint
	quicCand  = "cand"  // one trickled ICE candidate
	quicEOC   = "eoc"   // no more candidates
)

// quicMsg is one message of the QUIC exchange, a JSON object on the control channel.
type quicMsg struct {
	Quic  string `json:"quic"`
	V     int    `json:"v,omitempty"`
	Ufrag string `json:"ufrag,omitempty"`
	Pwd   string `json:"pwd,omitempty"`
	FP    string `json:"fp,omitempty"` // SHA-256 of the DER certificate, 64 lowercase hex digits
	Cand  string `json:"cand,omitempty"`
}

// decodeQUICMsg decodes and checks one exchange message. ok is false for a control-channel
// message that is not part of the exchange (no "quic" field): it is ignored.
func decodeQUICMsg(b []byte) (m quicMsg, ok bool, err error) {
	if len(b) > maxQUICMsg {
		return m, true, fmt.Errorf("%w: %d bytes (at most %d)", ErrQUICSignal, len(b), maxQUICMsg)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, true, fmt.Errorf("%w: %w", ErrQUICSignal, err)
	}
	switch m.Quic {
	case "":
		return m, false, nil
	case quicHello:
		if m.V != quicVersion {
			return m, true, fmt.Errorf("%w: hello version %d (want %d)", ErrQUICSignal, m.V, quicVersion)
		}
		// RFC 8445 5.3: ufrag at least 4 characters, pwd at least 22; 256 at most for both.
		if len(m.Ufrag) < 4 || len(m.Ufrag) > 256 || len(m.Pwd) < 22 || len(m.Pwd) > 256 {
			return m, true, fmt.Errorf("%w: hello with bad ICE credentials", ErrQUICSignal)
		}
		if fp, err := hex.DecodeString(m.FP); err != nil || len(fp) != 32 {
			return m, true, fmt.Errorf("%w: hello fingerprint %q is not 64 hex digits", ErrQUICSignal, m.FP)
		}
	case quicCand:
		if m.Cand == "" {
			return m, true, fmt.Errorf("%w: empty candidate", ErrQUICSignal)
		}
	case quicEOC:
	default:
		return m, true, fmt.Errorf("%w: unknown kind %q", ErrQUICSignal, m.Quic)
	}
	return m, true, nil
}

// quicInbox holds the exchange messages from the remote peer until the setup takes them.
type quicInbox struct {
	mu     sync.Mutex
	msgs   []quicMsg
	err    error         // the first bad message or overflow; later messages are dropped
	notify chan struct{} // 1-buffered: something arrived
}

func newQUICInbox() *quicInbox { return &quicInbox{notify: make(chan struct{}, 1)} }

// put queues a control-channel message if it belongs to the exchange.
func (in *quicInbox) put(b []byte) {
	m, ok, err := decodeQUICMsg(b)
	if !ok {
		return
	}
	in.mu.Lock()
	switch {
	case in.err != nil:
	case err != nil:
		in.err = err
	case len(in.msgs) >= maxQUICInbox:
		in.err = fmt.Errorf("%w: more than %d messages", ErrQUICSignal, maxQUICInbox)
	default:
		in.msgs = append(in.msgs, m)
	}
	in.mu.Unlock()
	select {
	case in.notify <- struct{}{}:
	default:
	}
}

// take returns the queued messages and the inbox's error, emptying it.
func (in *quicInbox) take() ([]quicMsg, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	msgs := in.msgs
	in.msgs = nil
	return msgs, in.err
}

// watchControl keeps the pair's control channel: it marks it open, feeds its messages to
// the QUIC inbox and, with SettingEngine.DetachDataChannels, detaches it and reads it.
func (p *Peer) watchControl(dc *webrtc.DataChannel) {
	p.mu.Lock()
	p.control = dc
	p.mu.Unlock()
	dc.OnMessage(func(m webrtc.DataChannelMessage) { p.inbox.put(m.Data) })
	dc.OnOpen(func() {
		if rwc, err := dc.Detach(); err == nil {
			p.readDetachedControl(rwc)
		}
		p.openOnce.Do(func() { close(p.controlOpen) })
	})
}

// readDetachedControl reads a detached control channel until the connection closes.
func (p *Peer) readDetachedControl(rwc datachannel.ReadWriteCloser) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.detachedClosed {
		_ = rwc.Close()
		return
	}
	p.detached = rwc
	p.detachedWG.Add(1)
	go func() {
		defer p.detachedWG.Done()
		buf := make([]byte, maxQUICMsg+1)
		for {
			n, _, err := rwc.ReadDataChannel(buf)
			switch {
			case errors.Is(err, io.ErrShortBuffer): // a message bigger than buf, dropped
				p.inbox.put(buf) // refused for its size
			case err != nil:
				return // the connection closed
			default:
				p.inbox.put(buf[:n])
			}
		}
	}()
}

// stopDetachedControl ends the detached control reader; the connection is closed already.
func (p *Peer) stopDetachedControl() {
	p.mu.Lock()
	p.detachedClosed = true
	rwc := p.detached
	p.mu.Unlock()
	if rwc != nil {
		_ = rwc.Close()
	}
	p.detachedWG.Wait()
}

// sendControl sends one exchange message on the control channel.
func (p *Peer) sendControl(m quicMsg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("sdk: quic: %w", err)
	}
	p.mu.Lock()
	dc, rwc := p.control, p.detached
	p.mu.Unlock()
	switch {
	case rwc != nil:
		_, err = rwc.WriteDataChannel(b, true)
	case dc != nil:
		err = dc.SendText(string(b))
	default:
		err = errors.New("no control channel")
	}
	if err != nil {
		return fmt.Errorf("sdk: quic: send on the control channel: %w", err)
	}
	return nil
}
