package resume

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// Audience is the aud of every resume token: an access token or any other JWT signed with the
// same secret is never taken for one.
const Audience = "switchboard-resume"

// MinSecretLen is the shortest secret accepted, in bytes.
const MinSecretLen = 32

// MaxTokenLen is the longest token Verify looks at, in bytes: a token carries a meta object
// of at most a few KiB.
const MaxTokenLen = 8192

// Errors returned by Verify, Spend and New.
var (
	// ErrInvalid is a token that is malformed, not HS256, of another audience, signed by no
	// configured secret, or whose claims are incomplete.
	ErrInvalid = errors.New("resume: invalid token")
	// ErrExpired is a token whose exp has passed.
	ErrExpired = errors.New("resume: token expired")
	// ErrSpent is a token that was used already.
	ErrSpent = errors.New("resume: token already used")
	// ErrBadSecret is a secret shorter than MinSecretLen.
	ErrBadSecret = errors.New("resume: secret too short")
	// ErrLedgerFull is a spend the ledger has no room to remember (it is refused).
	ErrLedgerFull = errors.New("resume: ledger full")
	// ErrClientShare is a restore refused because its client has caused its share of the
	// ledger's entries already (Config.ClientShare).
	ErrClientShare = errors.New("resume: the client's share of the ledger is used up")
)

// Claims is what a resume token says about its presence.
type Claims struct {
	// ID is the token's jti: 128 random bits, spent once.
	ID       string
	Issued   time.Time
	Expires  time.Time
	Room     string
	Peer     protocol.PeerID
	Name     string
	Meta     json.RawMessage // a JSON object or nil
	Identity string
	TURN     bool
	// Node is the id of the node that issued the token ("" on a single node).
	Node string
}

// wireClaims is the JWT body.
type wireClaims struct {
	jwt.RegisteredClaims
	Room     string          `json:"room"`
	Peer     string          `json:"peer"`
	Name     string          `json:"name,omitempty"`
	Meta     json.RawMessage `json:"meta,omitempty"`
	Identity string          `json:"identity,omitempty"`
	TURN     bool            `json:"turn,omitempty"`
	Node     string          `json:"node,omitempty"`
}

// Config configures Tokens.
type Config struct {
	// Secrets sign and verify tokens: the first signs, any verifies (rotation). Each is at
	// least MinSecretLen bytes. None: a random secret for this process (tokens then do not
	// survive a restart).
	Secrets [][]byte
	// TTL is how long a token is good for (default 1 h).
	TTL time.Duration
	// Ledger remembers spent tokens; nil means a MemoryLedger of MaxEntries entries.
	Ledger Ledger
	// MaxEntries bounds the unexpired entries this node puts into the ledger (default
	// DefaultLedgerSize); ClientShare how many of them one client may cause (default
	// DefaultClientShare). See share.go.
	MaxEntries  int
	ClientShare int
}

// Tokens mints, verifies and spends resume tokens. It is safe for concurrent use.
type Tokens struct {
	keys   []key
	byKID  map[string][]byte
	ttl    time.Duration
	ledger Ledger
	tally  *tally
	random bool
}

type key struct {
	kid    string
	secret []byte
}

// New returns Tokens for cfg.
func New(cfg Config) (*Tokens, error) {
	t := &Tokens{ttl: cfg.TTL, ledger: cfg.Ledger, byKID: make(map[string][]byte)}
	if t.ttl <= 0 {
		t.ttl = time.Hour
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultLedgerSize
	}
	if cfg.ClientShare <= 0 {
		cfg.ClientShare = DefaultClientShare
	}
	t.tally = newTally(cfg.MaxEntries, cfg.ClientShare)
	if t.ledger == nil {
		t.ledger = NewMemoryLedger(cfg.MaxEntries)
	}
	secrets := cfg.Secrets
	if len(secrets) == 0 {
		secrets = [][]byte{RandomSecret()}
		t.random = true
	}
	for _, s := range secrets {
		if len(s) < MinSecretLen {
			return nil, fmt.Errorf("%w: %d bytes, need %d", ErrBadSecret, len(s), MinSecretLen)
		}
		k := key{kid: KeyID(s), secret: append([]byte(nil), s...)}
		t.keys = append(t.keys, k)
		t.byKID[k.kid] = k.secret
	}
	return t, nil
}

// RandomSecret returns MinSecretLen random bytes.
func RandomSecret() []byte {
	b := make([]byte, MinSecretLen)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error (Go 1.24+).
	return b
}

// KeyID names a secret without revealing it: the first 9 bytes of its SHA-256, base64url.
func KeyID(secret []byte) string {
	h := sha256.Sum256(secret)
	return base64.RawURLEncoding.EncodeToString(h[:9])
}

// ParseSecrets splits a comma-separated list of secrets (the first signs), each at least
// MinSecretLen bytes. An empty string means none.
func ParseSecrets(s string) ([][]byte, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out [][]byte
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if len(p) < MinSecretLen {
			return nil, fmt.Errorf("%w: one is %d bytes, need %d", ErrBadSecret, len(p), MinSecretLen)
		}
		out = append(out, []byte(p))
	}
	return out, nil
}

// TTL returns how long minted tokens are good for.
func (t *Tokens) TTL() time.Duration { return t.ttl }

// RandomSecret reports whether the tokens are signed with a secret made up for this process.
func (t *Tokens) RandomSecret() bool { return t.random }

// Secrets returns the configured secrets, the signing one first (for a state file).
func (t *Tokens) Secrets() [][]byte {
	out := make([][]byte, len(t.keys))
	for i, k := range t.keys {
		out[i] = append([]byte(nil), k.secret...)
	}
	return out
}

// Mint signs a token for c at now, with a fresh jti and exp = now + TTL (c's own ID, Issued
// and Expires are ignored). It returns the token and the claims it carries.
func (t *Tokens) Mint(c Claims, now time.Time) (string, Claims, error) {
	var id [16]byte
	_, _ = rand.Read(id[:])
	c.ID = base64.RawURLEncoding.EncodeToString(id[:])
	c.Issued = now.Truncate(time.Second)
	c.Expires = now.Add(t.ttl).Truncate(time.Second)
	w := wireClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			ID:        c.ID,
			Audience:  jwt.ClaimStrings{Audience},
			IssuedAt:  jwt.NewNumericDate(c.Issued),
			ExpiresAt: jwt.NewNumericDate(c.Expires),
		},
		Room: c.Room, Peer: string(c.Peer), Name: c.Name, Meta: c.Meta, Identity: c.Identity, TURN: c.TURN, Node: c.Node,
	}
	if len(w.Meta) == 0 {
		w.Meta = nil
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, &w)
	tok.Header["kid"] = t.keys[0].kid
	s, err := tok.SignedString(t.keys[0].secret)
	if err != nil {
		return "", Claims{}, fmt.Errorf("resume: sign token: %w", err)
	}
	return s, c, nil
}

// Verify checks token's signature, audience and expiry at now and returns its claims. It does
// not spend it (Spend). Errors wrap ErrInvalid or ErrExpired.
func (t *Tokens) Verify(token string, now time.Time) (Claims, error) {
	if token == "" || len(token) > MaxTokenLen {
		return Claims{}, fmt.Errorf("%w: %d bytes", ErrInvalid, len(token))
	}
	var w wireClaims
	_, err := jwt.ParseWithClaims(token, &w, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		if s, ok := t.byKID[kid]; ok {
			return s, nil
		}
		return nil, errors.New("unknown kid")
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithAudience(Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return Claims{}, fmt.Errorf("%w: %w", ErrExpired, err)
		}
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(w.ID) == 0 || len(w.ID) > 64 || !protocol.ValidRoom(w.Room) || w.Peer == "" || len(w.Peer) > 64 ||
		len(w.Name) > protocol.MaxNameLen || (len(w.Meta) > 0 && w.Meta[0] != '{') {
		return Claims{}, fmt.Errorf("%w: incomplete or malformed claims", ErrInvalid)
	}
	c := Claims{
		ID: w.ID, Room: w.Room, Peer: protocol.PeerID(w.Peer), Name: w.Name, Identity: w.Identity,
		TURN: w.TURN, Node: w.Node, Expires: w.ExpiresAt.Time,
	}
	if len(w.Meta) > 0 {
		c.Meta = w.Meta
	}
	if w.IssuedAt != nil {
		c.Issued = w.IssuedAt.Time
	}
	return c, nil
}

// Spend marks c's token used, as an entry client caused (a client key; "" for none) for
// kind. It returns ErrSpent if it was used already, ErrClientShare or ErrLedgerFull when the
// tally refuses it (share.go), or the ledger's error (ErrLedgerFull).
func (t *Tokens) Spend(ctx context.Context, c Claims, client string, kind SpendKind) error {
	e, err := t.tally.reserve(client, c.Expires, kind)
	if err != nil {
		return err
	}
	ok, err := t.ledger.Spend(ctx, c.ID, c.Expires)
	switch {
	case err != nil:
		t.tally.cancel(e)
		if errors.Is(err, ErrLedgerFull) {
			t.tally.full.Add(1)
		}
		return fmt.Errorf("resume: spend: %w", err)
	case !ok:
		t.tally.cancel(e)
		return ErrSpent
	}
	return nil
}

// Redeem verifies token at now and spends it for a restore by client: the claims of a token
// good for one restore.
func (t *Tokens) Redeem(ctx context.Context, token, client string, now time.Time) (Claims, error) {
	c, err := t.Verify(token, now)
	if err != nil {
		return Claims{}, err
	}
	if err := t.Spend(ctx, c, client, Restore); err != nil {
		return Claims{}, err
	}
	return c, nil
}

// LedgerEntries returns how many unexpired entries this node put into the ledger.
func (t *Tokens) LedgerEntries() int { return t.tally.entries() }

// ClientEntries returns how many of them client caused.
func (t *Tokens) ClientEntries(client string) int { return t.tally.of(client) }

// LedgerRefused returns how many spends were refused because the ledger was full, and how
// many restores because their client's share was used up.
func (t *Tokens) LedgerRefused() (full, share uint64) {
	return t.tally.full.Load(), t.tally.shares.Load()
}
