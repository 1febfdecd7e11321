package wormhole

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/schollz/pake/v3"
)

// The exchange, relayed by the signaling server as messages of the pair
// ({"switchboard":"pake",...}):
//
//	receiver -> sender   x        the PAKE's first message
//	sender   -> receiver y        the PAKE's answer and the sender's confirmation MAC
//	receiver -> sender   confirm  the receiver's confirmation MAC (a wrong one: a wrong code)
//	each     -> other    bind     a MAC over the certificates of the connection it uses
//	either   -> other    refused  the other side's code was wrong (no body)
//
// The receiver starts, so that a sender waiting in its room answers whoever comes; the sender
// learns that a code was wrong at its first attempt (confirm), and counts the attempts.

// Message kinds.
const (
	KindX       = "x"
	KindY       = "y"
	KindConfirm = "confirm"
	KindBind    = "bind"
	KindRefused = "refused"
)

// MaxMsg bounds an exchange message as relayed (JSON): a PAKE message on P-256 is about 400
// bytes.
const MaxMsg = 4096

// curve is the PAKE's: NIST P-256, Go's constant-time implementation.
const curve = "p256"

// Errors of the exchange.
var (
	// ErrWrongCode means the other side ran the exchange on another code.
	ErrWrongCode = errors.New("the code does not match")
	// ErrBinding means the connection is not the one the other side authenticated: its
	// certificates differ (someone between the peers, such as the server, substituted them).
	ErrBinding = errors.New("the connection is not the one the code authenticated")
	// ErrMsg means a message of the exchange is malformed or out of order.
	ErrMsg = errors.New("bad code exchange message")
)

// Msg is one message of the exchange.
type Msg struct {
	Switchboard string `json:"switchboard"` // always "pake"
	Kind        string `json:"pake"`
	Body        []byte `json:"body,omitempty"` // the PAKE's message (x, y)
	MAC         []byte `json:"mac,omitempty"`  // y, confirm, bind
	Path        string `json:"path,omitempty"` // bind: "quic" or "dtls"
}

const msgTag = "pake"

// IsMsg reports whether a relayed message belongs to the exchange.
func IsMsg(b []byte) bool {
	var m struct {
		Switchboard string `json:"switchboard"`
	}
	return len(b) <= MaxMsg && json.Unmarshal(b, &m) == nil && m.Switchboard == msgTag
}

// DecodeMsg decodes and checks one message of the exchange.
func DecodeMsg(b []byte) (Msg, error) {
	var m Msg
	if len(b) > MaxMsg {
		return m, fmt.Errorf("%w: %d bytes (at most %d)", ErrMsg, len(b), MaxMsg)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: %w", ErrMsg, err)
	}
	if m.Switchboard != msgTag {
		return m, fmt.Errorf("%w: not an exchange message", ErrMsg)
	}
	switch m.Kind {
	case KindX:
		if len(m.Body) == 0 {
			return m, fmt.Errorf("%w: x without a body", ErrMsg)
		}
	case KindY:
		if len(m.Body) == 0 || len(m.MAC) != sha256.Size {
			return m, fmt.Errorf("%w: y without a body or its MAC", ErrMsg)
		}
	case KindConfirm:
		if len(m.MAC) != sha256.Size {
			return m, fmt.Errorf("%w: confirm without its MAC", ErrMsg)
		}
	case KindBind:
		if len(m.MAC) != sha256.Size || (m.Path != PathQUIC && m.Path != PathDTLS) {
			return m, fmt.Errorf("%w: bind without its MAC or path", ErrMsg)
		}
	case KindRefused:
	default:
		return m, fmt.Errorf("%w: unknown kind %.20q", ErrMsg, m.Kind)
	}
	return m, nil
}

// Paths a bind names.
const (
	PathQUIC = "quic"
	PathDTLS = "dtls"
)

// Role is a side of the exchange.
type Role byte

// The two roles.
const (
	Receiver Role = 'r'
	Sender   Role = 's'
)

func (r Role) other() Role {
	if r == Sender {
		return Receiver
	}
	return Sender
}

// Session is one side's exchange with one peer. It is not safe for concurrent use.
type Session struct {
	role   Role
	p      *pake.Pake
	x, y   []byte // the PAKE's messages, for the confirmation MACs
	conf   []byte // key of the confirmation MACs
	bind   []byte // key of the bind MACs
	ready  bool   // the key is confirmed
	stage  string // the kind expected next
	failed bool
}

// NewReceiver starts the receiver's side of an exchange on code and returns the first
// message to send.
func NewReceiver(code Code) (*Session, Msg, error) {
	p, err := pake.InitCurve(code.secret(), 0, curve)
	if err != nil {
		return nil, Msg{}, fmt.Errorf("wormhole: %w", err)
	}
	s := &Session{role: Receiver, p: p, x: p.Bytes(), stage: KindY}
	return s, Msg{Switchboard: msgTag, Kind: KindX, Body: s.x}, nil
}

// NewSender starts the sender's side of an exchange on code; it waits for the receiver's x.
func NewSender(code Code) (*Session, error) {
	p, err := pake.InitCurve(code.secret(), 1, curve)
	if err != nil {
		return nil, fmt.Errorf("wormhole: %w", err)
	}
	return &Session{role: Sender, p: p, stage: KindX}, nil
}

// Ready reports whether both sides proved the same code.
func (s *Session) Ready() bool { return s.ready }

// Handle takes the peer's next message of the key exchange and returns the message to send
// back, if any (ok false: none). A sender's ErrWrongCode means the receiver's code was
// wrong (tell it KindRefused and count the attempt); a receiver's, that the sender's was
// (or the sender refused it).
func (s *Session) Handle(m Msg) (reply Msg, ok bool, err error) {
	if s.failed {
		return Msg{}, false, fmt.Errorf("%w: the exchange has failed", ErrMsg)
	}
	reply, ok, err = s.handle(m)
	if err != nil {
		s.failed = true
	}
	return reply, ok, err
}

func (s *Session) handle(m Msg) (Msg, bool, error) {
	if m.Kind == KindRefused {
		return Msg{}, false, ErrWrongCode
	}
	if m.Kind != s.stage {
		return Msg{}, false, fmt.Errorf("%w: %s where %s was due", ErrMsg, m.Kind, s.stage)
	}
	switch m.Kind {
	case KindX: // sender
		if err := update(s.p, m.Body); err != nil {
			return Msg{}, false, err
		}
		s.x, s.y = m.Body, s.p.Bytes()
		if err := s.derive(); err != nil {
			return Msg{}, false, err
		}
		s.stage = KindConfirm
		return Msg{Switchboard: msgTag, Kind: KindY, Body: s.y, MAC: s.confirmMAC(Sender)}, true, nil
	case KindY: // receiver
		if err := update(s.p, m.Body); err != nil {
			return Msg{}, false, err
		}
		s.y = m.Body
		if err := s.derive(); err != nil {
			return Msg{}, false, err
		}
		if !hmac.Equal(m.MAC, s.confirmMAC(Sender)) {
			return Msg{Switchboard: msgTag, Kind: KindRefused}, true, ErrWrongCode
		}
		s.ready, s.stage = true, KindBind
		return Msg{Switchboard: msgTag, Kind: KindConfirm, MAC: s.confirmMAC(Receiver)}, true, nil
	case KindConfirm: // sender
		if !hmac.Equal(m.MAC, s.confirmMAC(Receiver)) {
			return Msg{Switchboard: msgTag, Kind: KindRefused}, true, ErrWrongCode
		}
		s.ready, s.stage = true, KindBind
		return Msg{}, false, nil
	}
	return Msg{}, false, fmt.Errorf("%w: %s is not part of the key exchange", ErrMsg, m.Kind)
}

// update runs the PAKE library's Update on a peer's message, which may be hostile: the
// library decodes it with encoding/json into big integers and may panic on what it did not
// expect (a missing point).
func update(p *pake.Pake, body []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: the PAKE message is not a point of the curve", ErrMsg)
		}
	}()
	if err := p.Update(body); err != nil {
		return fmt.Errorf("%w: %w", ErrMsg, err)
	}
	if !p.HaveSessionKey() {
		return fmt.Errorf("%w: no key from the PAKE message", ErrMsg)
	}
	return nil
}

// derive makes the confirmation and bind keys from the PAKE's key.
func (s *Session) derive() error {
	k, err := s.p.SessionKey()
	if err != nil {
		return fmt.Errorf("wormhole: %w", err)
	}
	if s.conf, err = hkdf.Key(sha256.New, k, nil, "switchboard code v1 confirm", 32); err != nil {
		return fmt.Errorf("wormhole: %w", err)
	}
	if s.bind, err = hkdf.Key(sha256.New, k, nil, "switchboard code v1 bind", 32); err != nil {
		return fmt.Errorf("wormhole: %w", err)
	}
	return nil
}

// confirmMAC is the confirmation MAC of role over the PAKE's two messages.
func (s *Session) confirmMAC(r Role) []byte {
	h := hmac.New(sha256.New, s.conf)
	h.Write([]byte{byte(r)})
	writeField(h, s.x)
	writeField(h, s.y)
	return h.Sum(nil)
}

// Bind returns the message that binds this side's connection to the key: path and the
// SHA-256 fingerprints of its own certificate (local) and of the one the peer presented
// (remote). Only once Ready.
func (s *Session) Bind(path string, local, remote []byte) (Msg, error) {
	if !s.ready {
		return Msg{}, fmt.Errorf("%w: bind before the key is confirmed", ErrMsg)
	}
	return Msg{Switchboard: msgTag, Kind: KindBind, Path: path, MAC: s.bindMAC(s.role, path, local, remote)}, nil
}

// CheckBind checks the peer's bind message against this side's view of the connection:
// path, and local and remote as this side sees them (the peer's remote is our local).
func (s *Session) CheckBind(m Msg, path string, local, remote []byte) error {
	if !s.ready {
		return fmt.Errorf("%w: bind before the key is confirmed", ErrMsg)
	}
	if m.Kind != KindBind {
		return fmt.Errorf("%w: %s where bind was due", ErrMsg, m.Kind)
	}
	if m.Path != path {
		return fmt.Errorf("%w: the peer bound its %s connection, this side uses %s", ErrBinding, m.Path, path)
	}
	if !hmac.Equal(m.MAC, s.bindMAC(s.role.other(), path, remote, local)) {
		return ErrBinding
	}
	return nil
}

func (s *Session) bindMAC(r Role, path string, local, remote []byte) []byte {
	h := hmac.New(sha256.New, s.bind)
	h.Write([]byte{byte(r)})
	writeField(h, []byte(path))
	writeField(h, local)
	writeField(h, remote)
	return h.Sum(nil)
}

// writeField writes b with its length first, so that fields cannot run into each other.
func writeField(h interface{ Write([]byte) (int, error) }, b []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b))) //nolint:gosec // small
	h.Write(n[:])
	h.Write(b)
}
