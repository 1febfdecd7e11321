package resume

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// Socket.IO pids: the session id of a Socket.IO socket's connection state recovery
// (internal/sioserver). socket.io-client sends its pid back unchanged for the socket's whole
// life and counts the socket recovered only when the server answers with that same pid, so a
// pid cannot be single use or expire. It is an HS256 JWT signed with the resume secrets
// (rotation as for resume tokens), of audience PIDAudience, whose subject is the socket id and
// whose jti makes each pid of a socket distinct: any node of a cluster can tell which socket a
// pid names without asking anyone, and nobody without the secret can make one. A valid pid
// proves nothing about the socket's being still held: the node holding it checks that.

// PIDAudience is the aud of every Socket.IO pid: neither a resume token nor an access token is
// ever taken for one, nor a pid for them.
const PIDAudience = "switchboard-sio-pid"

// MaxPIDLen is the longest pid VerifyPID looks at, in bytes (ours are about 170).
const MaxPIDLen = 512

// ErrBadPID is a pid that is malformed, not HS256, of another audience, signed by no
// configured secret, or whose claims are incomplete.
var ErrBadPID = errors.New("resume: invalid socket pid")

// MintPID returns a new pid naming socket sid.
func (t *Tokens) MintPID(sid protocol.PeerID) (string, error) {
	var id [12]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never returns an error (Go 1.24+).
	c := jwt.RegisteredClaims{
		ID:       base64.RawURLEncoding.EncodeToString(id[:]),
		Subject:  string(sid),
		Audience: jwt.ClaimStrings{PIDAudience},
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, &c)
	tok.Header["kid"] = t.keys[0].kid
	s, err := tok.SignedString(t.keys[0].secret)
	if err != nil {
		return "", fmt.Errorf("resume: sign pid: %w", err)
	}
	return s, nil
}

// VerifyPID checks pid's signature and audience and returns the socket id it names. Errors
// wrap ErrBadPID.
func (t *Tokens) VerifyPID(pid string) (protocol.PeerID, error) {
	if pid == "" || len(pid) > MaxPIDLen {
		return "", fmt.Errorf("%w: %d bytes", ErrBadPID, len(pid))
	}
	var c jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(pid, &c, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		if s, ok := t.byKID[kid]; ok {
			return s, nil
		}
		return nil, errors.New("unknown kid")
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithAudience(PIDAudience))
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadPID, err)
	}
	if c.ID == "" || len(c.ID) > 64 || c.Subject == "" || len(c.Subject) > 64 {
		return "", fmt.Errorf("%w: incomplete claims", ErrBadPID)
	}
	return protocol.PeerID(c.Subject), nil
}
