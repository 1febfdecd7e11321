package auth

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
)

// MinSecretLen is the shortest secret accepted: HS256 with a short secret can be brute-forced
// offline from any token.
const MinSecretLen = 32

// MaxKeyIDLen is the longest key id accepted.
const MaxKeyIDLen = 64

// Key is one API key: an id, public (tokens name it in their kid header), and a secret.
type Key struct {
	ID     string
	Secret []byte
}

// String returns the key id only, so a Key printed by mistake shows no secret.
func (k Key) String() string { return "api key " + k.ID }

// Spec returns the KEY_ID:SECRET form that --api-keys takes.
func (k Key) Spec() string { return k.ID + ":" + string(k.Secret) }

// NewKey returns a fresh key: an id of 12 random characters after "SB", and a secret of 256
// random bits, both base64url.
func NewKey() Key {
	var id [9]byte
	var secret [32]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never returns an error (Go 1.24+).
	_, _ = rand.Read(secret[:])
	return Key{
		ID:     "SB" + base64.RawURLEncoding.EncodeToString(id[:]),
		Secret: []byte(base64.RawURLEncoding.EncodeToString(secret[:])),
	}
}

// validKeyID reports whether id is 1-MaxKeyIDLen characters of A-Z a-z 0-9 _ - and '.'.
func validKeyID(id string) bool {
	if id == "" || len(id) > MaxKeyIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// ParseKey parses one KEY_ID:SECRET. Its errors never quote the secret.
func ParseKey(spec string) (Key, error) {
	id, secret, ok := strings.Cut(strings.TrimSpace(spec), ":")
	switch {
	case !ok:
		return Key{}, fmt.Errorf("%w: want KEY_ID:SECRET (run 'switchboard key new' for one)", ErrBadKey)
	case !validKeyID(id):
		return Key{}, fmt.Errorf("%w: key id %.64q: want 1-%d characters of A-Z a-z 0-9 _ - .", ErrBadKey, id, MaxKeyIDLen)
	case len(secret) < MinSecretLen:
		return Key{}, fmt.Errorf("%w: the secret of key %s is %d characters; at least %d are needed (run 'switchboard key new')", ErrBadKey, id, len(secret), MinSecretLen)
	}
	return Key{ID: id, Secret: []byte(secret)}, nil
}

// ParseKeys parses KEY_ID:SECRET specs; key ids must be distinct.
func ParseKeys(specs []string) ([]Key, error) {
	keys := make([]Key, 0, len(specs))
	seen := map[string]bool{}
	for i, s := range specs {
		k, err := ParseKey(s)
		if err != nil {
			return nil, fmt.Errorf("api key %d: %w", i+1, err)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("api key %d: %w: key id %s given twice", i+1, ErrBadKey, k.ID)
		}
		seen[k.ID] = true
		keys = append(keys, k)
	}
	return keys, nil
}
