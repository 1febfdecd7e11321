package resume

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestPIDRoundTrip(t *testing.T) {
	tk := newTokens(t, secretA)
	a, err := tk.MintPID("sock-1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := tk.MintPID("sock-1")
	if a == b {
		t.Fatal("two pids of one socket are the same: a gap's fresh pid would look recovered")
	}
	for _, p := range []string{a, b} {
		if sid, err := tk.VerifyPID(p); err != nil || sid != "sock-1" {
			t.Fatalf("VerifyPID = %q, %v; want sock-1", sid, err)
		}
	}
	// Another node of the cluster (same secret) and a rotation (old secret still verifying).
	if sid, err := newTokens(t, secretA).VerifyPID(a); err != nil || sid != "sock-1" {
		t.Fatalf("other node: %q, %v", sid, err)
	}
	if sid, err := newTokens(t, secretB, secretA).VerifyPID(a); err != nil || sid != "sock-1" {
		t.Fatalf("after rotation: %q, %v", sid, err)
	}
}

func TestPIDRefused(t *testing.T) {
	tk := newTokens(t, secretA)
	good, _ := tk.MintPID("sock-1")
	tok, _, _ := tk.Mint(sample(), time.Now())
	parts := strings.Split(good, ".")
	hs := func(c jwt.Claims, secret []byte, kid string) string {
		j := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
		j.Header["kid"] = kid
		s, err := j.SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for name, pid := range map[string]string{
		"empty":            "",
		"random":           "NDk2ZjQ0ZTY3ZjBhNDk",
		"too long":         good + strings.Repeat("a", MaxPIDLen),
		"other secret":     func() string { p, _ := newTokens(t, secretB).MintPID("sock-1"); return p }(),
		"tampered subject": parts[0] + "." + strings.TrimRight(parts[1], "=") + "x." + parts[2],
		"resume token":     tok,
		"no subject":       hs(&jwt.RegisteredClaims{ID: "x", Audience: jwt.ClaimStrings{PIDAudience}}, secretA, KeyID(secretA)),
		"no jti":           hs(&jwt.RegisteredClaims{Subject: "s", Audience: jwt.ClaimStrings{PIDAudience}}, secretA, KeyID(secretA)),
		"other audience":   hs(&jwt.RegisteredClaims{ID: "x", Subject: "s", Audience: jwt.ClaimStrings{Audience}}, secretA, KeyID(secretA)),
		"unknown kid":      hs(&jwt.RegisteredClaims{ID: "x", Subject: "s", Audience: jwt.ClaimStrings{PIDAudience}}, secretA, "nope"),
		"alg none":         "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJzIiwianRpIjoieCIsImF1ZCI6WyJzd2l0Y2hib2FyZC1zaW8tcGlkIl19.",
	} {
		if sid, err := tk.VerifyPID(pid); !errors.Is(err, ErrBadPID) {
			t.Errorf("%s: VerifyPID = %q, %v; want ErrBadPID", name, sid, err)
		}
	}
	// A pid is not a resume token either.
	if _, err := tk.Verify(good, time.Now()); err == nil {
		t.Error("a pid was taken for a resume token")
	}
}

// FuzzVerifyPID feeds arbitrary strings to VerifyPID: it must never panic, and what it accepts
// must name the socket a pid signed with this secret named (the fuzzer cannot forge HMAC).
func FuzzVerifyPID(f *testing.F) {
	tk, err := New(Config{Secrets: [][]byte{secretA}})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := tk.MintPID("sock-1")
	f.Add(good)
	f.Add("")
	f.Add("a.b.c")
	f.Add(good[:len(good)-1])
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, pid string) {
		sid, err := tk.VerifyPID(pid)
		if err == nil && sid != "sock-1" {
			t.Fatalf("forged pid accepted: %q → %q", pid, sid)
		}
	})
}
