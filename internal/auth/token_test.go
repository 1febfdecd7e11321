package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-rtc/switchboard/protocol"
)

var (
	testKey  = Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")}
	otherKey = Key{ID: "k2", Secret: []byte("fedcba9876543210fedcba9876543210")}
	now      = time.Unix(1_800_000_000, 0)
)

func mint(t *testing.T, k Key, c *Claims) string {
	t.Helper()
	s, err := Mint(k, c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// b64 is base64url without padding, as JWT segments are.
func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestVerifyMatrix(t *testing.T) {
	v, err := NewVerifier([]Key{testKey, otherKey})
	if err != nil {
		t.Fatal(err)
	}
	good := NewClaims("alice", "sales", now, time.Hour)
	valid := mint(t, testKey, good)
	parts := strings.Split(valid, ".")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs := jwt.NewWithClaims(jwt.SigningMethodRS256, good)
	rs.Header["kid"] = testKey.ID
	rs256, err := rs.SignedString(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(good)
	tampered := parts[0] + "." + b64(strings.Replace(string(payload), `"sales"`, `"board"`, 1)) + "." + parts[2]
	expired := NewClaims("alice", "sales", now.Add(-2*time.Hour), time.Hour)
	notYet := NewClaims("alice", "sales", now, 2*time.Hour)
	notYet.NotBefore = jwt.NewNumericDate(now.Add(time.Hour))
	noExp := NewClaims("alice", "sales", now, time.Hour)
	noExp.ExpiresAt = nil
	wrongSecret := Key{ID: testKey.ID, Secret: otherKey.Secret}
	noSub := NewClaims("", "sales", now, time.Hour)
	badRoom := NewClaims("alice", "no/slash", now, time.Hour)
	badMeta := NewClaims("alice", "sales", now, time.Hour)
	badMeta.Meta = json.RawMessage(`[1]`)

	cases := []struct {
		name  string
		token string
		code  protocol.Code
	}{
		{"missing", "", protocol.CodeTokenMissing},
		{"garbage", "not.a.jwt", protocol.CodeTokenInvalid},
		{"expired", mint(t, testKey, expired), protocol.CodeTokenExpired},
		{"not yet valid", mint(t, testKey, notYet), protocol.CodeTokenNotYetValid},
		{"no exp", mint(t, testKey, noExp), protocol.CodeTokenInvalid},
		{"wrong secret for kid", mint(t, wrongSecret, good), protocol.CodeTokenInvalid},
		{"unknown kid", mint(t, Key{ID: "nope", Secret: testKey.Secret}, good), protocol.CodeTokenInvalid},
		{"no kid", b64(`{"alg":"HS256","typ":"JWT"}`) + "." + parts[1] + "." + parts[2], protocol.CodeTokenInvalid},
		{"alg none", b64(`{"alg":"none","typ":"JWT","kid":"k1"}`) + "." + parts[1] + ".", protocol.CodeTokenInvalid},
		{"RS256", rs256, protocol.CodeTokenInvalid},
		{"tampered payload", tampered, protocol.CodeTokenInvalid},
		{"no sub", mint(t, testKey, noSub), protocol.CodeTokenInvalid},
		{"bad room grant", mint(t, testKey, badRoom), protocol.CodeTokenInvalid},
		{"meta not an object", mint(t, testKey, badMeta), protocol.CodeTokenInvalid},
		{"oversized", strings.Repeat("a", protocol.MaxTokenLen+1), protocol.CodeTokenInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, e := v.Verify(tc.token, now)
			if e == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if e.Code != tc.code {
				t.Fatalf("code %s (%s), want %s", e.Code, e.Message, tc.code)
			}
			for _, k := range []Key{testKey, otherKey} {
				if strings.Contains(e.Error(), string(k.Secret)) {
					t.Fatalf("error %q holds a secret", e)
				}
			}
		})
	}
	c, e := v.Verify(valid, now)
	if e != nil {
		t.Fatalf("valid token refused: %v", e)
	}
	if c.Subject != "alice" || c.Room != "sales" || !c.Join || !c.TURN || c.Admin {
		t.Fatalf("claims %+v", c)
	}
	// The second key verifies too: rotation.
	if _, e := v.Verify(mint(t, otherKey, good), now); e != nil {
		t.Fatalf("token of the second key refused: %v", e)
	}
}

func TestRoomFor(t *testing.T) {
	exact := NewClaims("a", "sales", now, time.Hour)
	prefix := NewClaims("a", "team-*", now, time.Hour)
	any := NewClaims("a", "*", now, time.Hour)
	noJoin := NewClaims("a", "sales", now, time.Hour)
	noJoin.Join = false
	noRoom := NewClaims("a", "", now, time.Hour)
	cases := []struct {
		c         *Claims
		requested string
		room      string
		code      protocol.Code
	}{
		{exact, "", "sales", 0},
		{exact, "sales", "sales", 0},
		{exact, "board", "", protocol.CodeRoomNotGranted},
		{prefix, "team-red", "team-red", 0},
		{prefix, "teamred", "", protocol.CodeRoomNotGranted},
		{prefix, "", "", protocol.CodeRoomNotGranted},
		{any, "whatever", "whatever", 0},
		{noJoin, "sales", "", protocol.CodeJoinNotGranted},
		{noRoom, "sales", "", protocol.CodeRoomNotGranted},
	}
	for _, tc := range cases {
		room, e := tc.c.RoomFor(tc.requested)
		switch {
		case tc.code == 0 && (e != nil || room != tc.room):
			t.Errorf("%q for %q: %q, %v; want %q", tc.c.Room, tc.requested, room, e, tc.room)
		case tc.code != 0 && (e == nil || e.Code != tc.code):
			t.Errorf("%q for %q: %q, %v; want %s", tc.c.Room, tc.requested, room, e, tc.code)
		}
	}
}

func TestKeys(t *testing.T) {
	k := NewKey()
	got, err := ParseKey(k.Spec())
	if err != nil || got.ID != k.ID || string(got.Secret) != string(k.Secret) {
		t.Fatalf("round trip: %v %v", got, err)
	}
	if strings.Contains(k.String(), string(k.Secret)) {
		t.Fatal("Key.String shows the secret")
	}
	secret := "s3cr3t-but-too-short"
	for _, spec := range []string{"nocolon", ":" + strings.Repeat("x", 40), "bad id:" + strings.Repeat("x", 40), "id:" + secret} {
		_, err := ParseKey(spec)
		if !errors.Is(err, ErrBadKey) {
			t.Errorf("%q: %v", spec, err)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("error quotes the secret: %v", err)
		}
	}
	if _, err := ParseKeys([]string{k.Spec(), k.Spec()}); err == nil {
		t.Fatal("duplicate key ids accepted")
	}
	if _, err := NewVerifier(nil); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("no keys: %v", err)
	}
}

// TestRefusalSaysWhy: an alg other than HS256 is named in the refusal.
func TestRefusalSaysWhy(t *testing.T) {
	v, _ := NewVerifier([]Key{testKey})
	good := strings.Split(mint(t, testKey, NewClaims("a", "r", now, time.Hour)), ".")
	for alg, tok := range map[string]string{
		"none":  b64(`{"alg":"none","kid":"k1"}`) + "." + good[1] + ".",
		"RS256": b64(`{"alg":"RS256","kid":"k1"}`) + "." + good[1] + "." + good[2],
	} {
		_, e := v.Verify(tok, now)
		if e == nil || !strings.Contains(e.Message, alg) || !strings.Contains(e.Message, "HS256 only") {
			t.Errorf("%s: %v", alg, e)
		}
	}
}
