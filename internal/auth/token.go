package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// Claims are an access token's claims (docs/auth.md). Sub and exp are required; the grants
// default to nothing.
type Claims struct {
	jwt.RegisteredClaims
	// Room is the room the token grants: a room name, or a prefix ending in "*" ("team-*";
	// "*" alone: any room).
	Room string `json:"room,omitempty"`
	// Join allows joining Room.
	Join bool `json:"join,omitempty"`
	// Name and Meta are shown to the other peers as the peer's name and metadata.
	Name string          `json:"name,omitempty"`
	Meta json.RawMessage `json:"meta,omitempty"`
	// TURN makes the server hand the peer TURN credentials.
	TURN bool `json:"turn,omitempty"`
	// Admin allows the server API (/api/v1/).
	Admin bool `json:"admin,omitempty"`
}

// MaxIdentityLen is the longest sub accepted, in bytes.
const MaxIdentityLen = 256

// check validates the grants' shapes.
func (c *Claims) check() *Error {
	switch {
	case c.Subject == "" && !c.Admin:
		return refuse(protocol.CodeTokenInvalid, "the token has no sub (the user's identity)")
	case len(c.Subject) > MaxIdentityLen || !utf8.ValidString(c.Subject):
		return refuse(protocol.CodeTokenInvalid, fmt.Sprintf("sub is over %d bytes or not UTF-8", MaxIdentityLen))
	case c.Room != "" && !validGrant(c.Room):
		return refuse(protocol.CodeTokenInvalid, "room is neither a room name nor a prefix ending in *")
	case len(c.Name) > protocol.MaxNameLen || !utf8.ValidString(c.Name):
		return refuse(protocol.CodeTokenInvalid, fmt.Sprintf("name is over %d bytes or not UTF-8", protocol.MaxNameLen))
	case len(c.Meta) > 0 && string(c.Meta) != "null" && c.Meta[0] != '{':
		return refuse(protocol.CodeTokenInvalid, "meta is not a JSON object")
	case !utf8.Valid(c.Meta):
		// Raw JSON keeps bytes as signed: invalid UTF-8 would reach every peer's text frames
		// (and make browsers drop the connection).
		return refuse(protocol.CodeTokenInvalid, "meta is not valid UTF-8")
	}
	if len(c.Meta) > 0 {
		var b bytes.Buffer
		if json.Compact(&b, c.Meta) == nil {
			c.Meta = b.Bytes()
		}
	}
	return nil
}

func validGrant(room string) bool {
	if p, ok := strings.CutSuffix(room, "*"); ok {
		return p == "" || protocol.ValidRoom(p)
	}
	return protocol.ValidRoom(room)
}

// RoomFor returns the room a join asking for requested ("" for none) goes to under these
// claims: the granted room itself, or the requested one when it matches the granted prefix.
func (c *Claims) RoomFor(requested string) (string, *Error) {
	if !c.Join {
		return "", refuse(protocol.CodeJoinNotGranted, "the token does not grant join")
	}
	if c.Room == "" {
		return "", refuse(protocol.CodeRoomNotGranted, "the token grants no room")
	}
	prefix, isPrefix := strings.CutSuffix(c.Room, "*")
	if !isPrefix {
		if requested != "" && requested != c.Room {
			return "", refuse(protocol.CodeRoomNotGranted, fmt.Sprintf("the token grants room %q, not %.64q", c.Room, requested))
		}
		return c.Room, nil
	}
	switch {
	case requested == "":
		return "", refuse(protocol.CodeRoomNotGranted, fmt.Sprintf("the token grants rooms %q: name one in the join", c.Room))
	case !strings.HasPrefix(requested, prefix):
		return "", refuse(protocol.CodeRoomNotGranted, fmt.Sprintf("the token grants rooms %q, not %.64q", c.Room, requested))
	}
	return requested, nil
}

// MetaObject returns Meta, or nil when it is absent or null.
func (c *Claims) MetaObject() []byte {
	if len(c.Meta) == 0 || string(c.Meta) == "null" {
		return nil
	}
	return c.Meta
}

// Verifier checks access tokens against a set of API keys. It is safe for concurrent use.
type Verifier struct {
	keys map[string][]byte
}

// NewVerifier returns a Verifier that accepts tokens signed by any of keys.
func NewVerifier(keys []Key) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, ErrNoKeys
	}
	v := &Verifier{keys: make(map[string][]byte, len(keys))}
	for _, k := range keys {
		v.keys[k.ID] = k.Secret
	}
	return v, nil
}

// Verify checks token at now and returns its claims, or an *Error whose code says why it was
// refused.
func (v *Verifier) Verify(token string, now time.Time) (*Claims, *Error) {
	if token == "" {
		return nil, refuse(protocol.CodeTokenMissing, "this server needs an access token (docs/auth.md)")
	}
	if len(token) > protocol.MaxTokenLen {
		return nil, refuse(protocol.CodeTokenInvalid, fmt.Sprintf("the token is over %d bytes", protocol.MaxTokenLen))
	}
	var c Claims
	var unknownKID string
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		secret, ok := v.keys[kid]
		if !ok {
			unknownKID = kid
			return nil, errUnknownKey
		}
		return secret, nil
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil {
		if alg := headerAlg(token); alg != "" && alg != jwt.SigningMethodHS256.Alg() {
			return nil, refuse(protocol.CodeTokenInvalid, fmt.Sprintf("the token is signed %.16q; this server accepts HS256 only", alg))
		}
		return nil, classify(err, unknownKID)
	}
	if e := c.check(); e != nil {
		return nil, e
	}
	return &c, nil
}

var errUnknownKey = errors.New("unknown key")

// headerAlg returns the alg of a token's header without verifying anything, or "" when the
// header cannot be read. Only used to explain a refusal.
func headerAlg(token string) string {
	t, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil || t == nil {
		return ""
	}
	alg, _ := t.Header["alg"].(string)
	return alg
}

// classify maps a parse error to the refusal sent to the client.
func classify(err error, kid string) *Error {
	switch {
	case errors.Is(err, errUnknownKey):
		if kid == "" {
			return refuse(protocol.CodeTokenInvalid, "the token has no kid header naming an API key")
		}
		return refuse(protocol.CodeTokenInvalid, fmt.Sprintf("the token's kid %.64q is not an API key of this server", kid))
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return refuse(protocol.CodeTokenInvalid, "the token has no exp (expiry)")
	case errors.Is(err, jwt.ErrTokenExpired):
		return refuse(protocol.CodeTokenExpired, "the token has expired; ask the application for a new one")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return refuse(protocol.CodeTokenNotYetValid, "the token is not valid yet (its nbf is in the future; check the clocks)")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return refuse(protocol.CodeTokenInvalid, "the token's signature does not verify")
	case errors.Is(err, jwt.ErrTokenUnverifiable), errors.Is(err, jwt.ErrTokenInvalidClaims):
		return refuse(protocol.CodeTokenInvalid, "the token is not signed HS256 or its claims are malformed")
	}
	return refuse(protocol.CodeTokenInvalid, "the token is not a well-formed JWT")
}

// Mint signs c with k (HS256, kid = k.ID). Tokens for applications are minted by their own
// backends with any JWT library (docs/auth.md); this serves `switchboard token` and tests.
func Mint(k Key, c *Claims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	t.Header["kid"] = k.ID
	s, err := t.SignedString(k.Secret)
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	return s, nil
}

// NewClaims returns claims for identity that grant joining room (a name or a prefix ending in
// "*") with TURN, valid from now for ttl.
func NewClaims(identity, room string, now time.Time, ttl time.Duration) *Claims {
	return &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   identity,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Room: room,
		Join: true,
		TURN: true,
	}
}
