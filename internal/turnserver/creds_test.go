package turnserver

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
)

func TestMintMatchesCoturnFormula(t *testing.T) {
	// pion's own TURN REST minting implements the same coturn use-auth-secret formula.
	u, p, err := turn.GenerateLongTermTURNRESTCredentials("s3cret", "peer", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	exp, user, err := ParseUsername(u)
	if err != nil || user != "peer" {
		t.Fatalf("ParseUsername(%q) = %v, %q, %v", u, exp, user, err)
	}
	u2, p2 := Mint([]byte("s3cret"), "peer", exp)
	if u2 != u || p2 != p {
		t.Errorf("Mint = %q/%q, pion = %q/%q", u2, p2, u, p)
	}
	// A fixed vector, computed independently (Python hmac): base64(HMAC-SHA1("secret", "1700000000:alice")).
	if got := Password([]byte("secret"), "1700000000:alice"); got != "d8soP47RbdIKLDUOpnJPVQyq5Ts=" {
		t.Errorf("Password = %q", got)
	}
}

func TestParseUsername(t *testing.T) {
	good := []struct {
		in   string
		exp  int64
		user string
	}{
		{"1700000000:peer", 1700000000, "peer"},
		{"0:x", 0, "x"},
		{"1:a:b", 1, "a:b"},
		{"99:héllo", 99, "héllo"},
	}
	for _, tt := range good {
		exp, user, err := ParseUsername(tt.in)
		if err != nil || exp.Unix() != tt.exp || user != tt.user {
			t.Errorf("ParseUsername(%q) = %d, %q, %v; want %d, %q", tt.in, exp.Unix(), user, err, tt.exp, tt.user)
		}
	}
	bad := []string{"", "peer", ":peer", "1700000000:", "01:x", "-1:x", "+1:x", "1e9:x", "1 :x",
		"1234567890123:x", "1:a\x00b", "1:a\nb", "1:\xff", "1:" + string(make([]byte, 600))}
	for _, in := range bad {
		if _, _, err := ParseUsername(in); !errors.Is(err, ErrBadUsername) {
			t.Errorf("ParseUsername(%q) error = %v, want ErrBadUsername", in, err)
		}
	}
}

// FuzzParseUsername: never panics, and whatever parses is exactly what Mint would write.
func FuzzParseUsername(f *testing.F) {
	for _, s := range []string{"1700000000:peer", "0:x", "1:a:b", "01:x", "", ":", "9999999999999:x", "1:\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		exp, user, err := ParseUsername(s)
		if err != nil {
			return
		}
		if got := strconv.FormatInt(exp.Unix(), 10) + ":" + user; got != s {
			t.Fatalf("ParseUsername(%q) = %v, %q: not canonical (%q)", s, exp.Unix(), user, got)
		}
		if u, _ := Mint([]byte("k"), user, exp); u != s {
			t.Fatalf("Mint round trip %q != %q", u, s)
		}
	})
}

func TestAuthHandler(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := &Server{cfg: Config{Realm: "switchboard", Secret: []byte("k"), Grace: time.Hour, Now: func() time.Time { return now }}, log: discard()}
	user := func(exp time.Time) string { u, _ := Mint(s.cfg.Secret, "peer", exp); return u }
	tests := []struct {
		name     string
		username string
		realm    string
		method   stun.Method
		ok       bool
	}{
		{"allocate in time", user(now.Add(time.Minute)), "switchboard", stun.MethodAllocate, true},
		{"allocate at expiry", user(now), "switchboard", stun.MethodAllocate, false},
		{"allocate expired", user(now.Add(-time.Second)), "switchboard", stun.MethodAllocate, false},
		{"refresh expired within grace", user(now.Add(-59 * time.Minute)), "switchboard", stun.MethodRefresh, true},
		{"permission expired within grace", user(now.Add(-time.Minute)), "switchboard", stun.MethodCreatePermission, true},
		{"refresh past grace", user(now.Add(-61 * time.Minute)), "switchboard", stun.MethodRefresh, false},
		{"channel bind past grace", user(now.Add(-2 * time.Hour)), "switchboard", stun.MethodChannelBind, false},
		{"wrong realm", user(now.Add(time.Minute)), "other", stun.MethodAllocate, false},
		{"empty realm", user(now.Add(time.Minute)), "", stun.MethodAllocate, false},
		{"expiry beyond the cap", user(now.Add(MaxTTL + 2*time.Minute)), "switchboard", stun.MethodAllocate, false},
		{"no expiry", "peer", "switchboard", stun.MethodAllocate, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uid, key, ok := s.auth(&turn.RequestAttributes{Username: tt.username, Realm: tt.realm, Method: tt.method})
			if ok != tt.ok {
				t.Fatalf("auth ok = %v, want %v", ok, tt.ok)
			}
			if ok && (uid != "peer" || string(key) != string(turn.GenerateAuthKey(tt.username, "switchboard", Password(s.cfg.Secret, tt.username)))) {
				t.Errorf("auth = %q, %x", uid, key)
			}
		})
	}
}
