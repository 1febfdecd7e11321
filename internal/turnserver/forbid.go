package turnserver

import (
	"net"
	"sync"

	"github.com/pion/stun/v4"
)

// pion/turn v5.1.3 answers a ChannelBind whose peer its PermissionHandler refuses with 401
// Unauthorized (internal/server/turn.go, handleChannelBindRequest: the GrantPermission error
// branch builds stun.CodeUnauthorized), where CreatePermission gets 403 Forbidden; it has no
// hook to choose the code. A client that sees 401 takes its credentials for wrong, which they
// are not. So the listeners rewrite that one answer on its way out: a ChannelBind error
// response with code 401 that carries MESSAGE-INTEGRITY can only be that refusal (pion's
// credential failures carry a NONCE and no integrity), and becomes 403, signed again with the
// key the request was checked with. auth remembers that key per client address for the
// ChannelBind in flight.

// channelBindError is the STUN message type of a ChannelBind error response (0x0119);
// channelBindSuccess that of its success response.
var (
	channelBindError   = stun.NewType(stun.MethodChannelBind, stun.ClassErrorResponse)
	channelBindSuccess = stun.NewType(stun.MethodChannelBind, stun.ClassSuccessResponse)
	dataIndication     = stun.NewType(stun.MethodData, stun.ClassIndication)
)

// maxBindKeys bounds the keys remembered for ChannelBinds in flight (one per client address;
// a request pion drops without an answer leaves its key until the next reset).
const maxBindKeys = 4096

// bindKeys holds, per client address, the key of its last authenticated ChannelBind until
// the answer goes out. The zero value is ready to use.
type bindKeys struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (b *bindKeys) put(a net.Addr, key []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil || len(b.m) >= maxBindKeys {
		b.m = make(map[string][]byte)
	}
	b.m[a.String()] = key
}

func (b *bindKeys) take(a net.Addr) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	k, ok := b.m[a.String()]
	if ok {
		delete(b.m, a.String())
	}
	return k
}

// isType reports whether p starts like a STUN message of type t (a cheap test before decoding).
func isType(p []byte, t stun.MessageType) bool {
	v := t.Value()
	return len(p) >= 20 && p[0] == byte(v>>8) && p[1] == byte(v)
}

// forbidDenied returns nil, or, when p is pion's 401 to a ChannelBind whose peer was refused,
// the same answer as 403 Forbidden. It is called for every message the server writes to a
// client at to.
func (s *Server) forbidDenied(p []byte, to net.Addr) []byte {
	if isType(p, channelBindSuccess) {
		s.binds.take(to)
		return nil
	}
	if !isType(p, channelBindError) {
		return nil
	}
	key := s.binds.take(to)
	if key == nil {
		return nil
	}
	m := &stun.Message{Raw: append([]byte(nil), p...)}
	if err := m.Decode(); err != nil {
		return nil
	}
	var code stun.ErrorCodeAttribute
	if code.GetFrom(m) != nil || code.Code != stun.CodeUnauthorized || !m.Contains(stun.AttrMessageIntegrity) {
		return nil
	}
	setters := []stun.Setter{&stun.Message{TransactionID: m.TransactionID}, m.Type,
		&stun.ErrorCodeAttribute{Code: stun.CodeForbidden, Reason: []byte("Forbidden")}, stun.MessageIntegrity(key)}
	if m.Contains(stun.AttrFingerprint) {
		setters = append(setters, stun.Fingerprint)
	}
	out, err := stun.Build(setters...)
	if err != nil {
		return nil
	}
	return out.Raw
}
