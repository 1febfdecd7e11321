package auth

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify feeds arbitrary strings to Verify: it must never panic, and whatever it accepts
// must have been signed with a configured key (the fuzzer cannot forge HMAC).
func FuzzVerify(f *testing.F) {
	v, err := NewVerifier([]Key{testKey})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := Mint(testKey, NewClaims("alice", "sales", now, time.Hour))
	f.Add(good)
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, token string) {
		c, e := v.Verify(token, now)
		if e == nil && token != good {
			// Only a re-encoding of the good token can pass (e.g. the same segments).
			if c.Subject != "alice" {
				t.Fatalf("forged token accepted: %q → %+v", token, c)
			}
		}
	})
}

// FuzzClaims signs arbitrary claim sets with a real key: Verify and RoomFor must never panic,
// and an accepted token's grants must be well-formed.
func FuzzClaims(f *testing.F) {
	v, err := NewVerifier([]Key{testKey})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"sub":"a","exp":1900000000,"room":"sales","join":true}`), "sales")
	f.Add([]byte(`{"sub":"a","exp":1900000000,"room":"t-*","join":true,"meta":{"x":1}}`), "t-1")
	f.Add([]byte(`{"sub":1,"exp":"x"}`), "")
	f.Add([]byte(`{"exp":1900000000,"nbf":1e300,"room":"*"}`), "r")
	f.Fuzz(func(t *testing.T, claims []byte, room string) {
		var raw map[string]any
		if json.Unmarshal(claims, &raw) != nil {
			return
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(raw))
		tok.Header["kid"] = testKey.ID
		token, err := tok.SignedString(testKey.Secret)
		if err != nil {
			return
		}
		c, e := v.Verify(token, now)
		if e != nil {
			return
		}
		if c.ExpiresAt == nil {
			t.Fatal("accepted without exp")
		}
		if r, e := c.RoomFor(room); e == nil && r == "" {
			t.Fatal("granted an empty room")
		}
	})
}
