package main

import (
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// runCLI runs the switchboard command line in process and returns stdout, stderr and the error.
func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb strings.Builder
	err := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

// newKey runs `switchboard key new` and parses its output as the server would.
func newKey(t *testing.T) auth.Key {
	t.Helper()
	out, hint, err := runCLI(t, "key", "new")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("key new printed %q: want one line", out)
	}
	k, err := auth.ParseKey(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("key new printed %q: %v", out, err)
	}
	if strings.Count(hint, "\n") != 1 || !strings.Contains(hint, "SWITCHBOARD_API_KEYS") || !strings.Contains(hint, "--api-keys") {
		t.Fatalf("hint %q: want one line saying how to pass the key to serve", hint)
	}
	if strings.Contains(hint, string(k.Secret)) {
		t.Fatal("the hint repeats the secret")
	}
	return k
}

func TestKeyNew(t *testing.T) {
	a, b := newKey(t), newKey(t)
	if a.ID == b.ID || string(a.Secret) == string(b.Secret) {
		t.Fatal("two runs printed the same key")
	}
	if _, err := auth.ParseKeys([]string{a.Spec(), b.Spec()}); err != nil {
		t.Fatalf("two fresh keys do not make a key list: %v", err)
	}
	if _, _, err := runCLI(t, "key"); err == nil {
		t.Fatal("'key' without 'new' accepted")
	}
}

// verify checks tok with keys as the server does and returns its claims.
func verify(t *testing.T, tok string, keys ...auth.Key) *auth.Claims {
	t.Helper()
	v, err := auth.NewVerifier(keys)
	if err != nil {
		t.Fatal(err)
	}
	c, aerr := v.Verify(tok, time.Now())
	if aerr != nil {
		t.Fatalf("token %q: %v", tok, aerr)
	}
	return c
}

func TestTokenCommand(t *testing.T) {
	k := newKey(t)
	out, _, err := runCLI(t, "token", "--api-key", k.Spec(), "--room", "sales", "--identity", "alice",
		"--ttl", "90m", "--name", "Alice", "--meta", `{"team":"emea"}`)
	if err != nil {
		t.Fatal(err)
	}
	c := verify(t, strings.TrimSpace(out), k)
	if c.Subject != "alice" || c.Room != "sales" || !c.Join || !c.TURN || c.Admin || c.Name != "Alice" || string(c.Meta) != `{"team":"emea"}` {
		t.Fatalf("claims %+v", c)
	}
	if ttl := c.ExpiresAt.Sub(c.IssuedAt.Time); ttl != 90*time.Minute {
		t.Fatalf("ttl %v", ttl)
	}

	// --no-turn, --admin, a prefix grant; the key from SWITCHBOARD_API_KEYS, chosen by --key-id.
	k2 := newKey(t)
	t.Setenv("SWITCHBOARD_API_KEYS", k.Spec()+", "+k2.Spec())
	out, _, err = runCLI(t, "token", "--room", "team-*", "--identity", "bob", "--no-turn", "--admin", "--key-id", k2.ID)
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(out)
	c = verify(t, tok, k2)
	if c.TURN || !c.Admin || !c.Join || c.Room != "team-*" {
		t.Fatalf("claims %+v", c)
	}
	if h, _, err := jwt.NewParser().ParseUnverified(tok, &auth.Claims{}); err != nil || h.Header["kid"] != k2.ID {
		t.Fatalf("kid %v (%v), want %s", h.Header["kid"], err, k2.ID)
	}
	// Without --key-id, the first key signs; --admin alone is an API-only token.
	out, _, err = runCLI(t, "token", "--admin")
	if err != nil {
		t.Fatal(err)
	}
	if c = verify(t, strings.TrimSpace(out), k); !c.Admin || c.Join || c.TURN || c.Room != "" {
		t.Fatalf("admin-only claims %+v", c)
	}
}

var linkRE = regexp.MustCompile(`^http://rtc\.example\.com:8080/r/sales#token=([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\n$`)

func TestTokenLink(t *testing.T) {
	k := newKey(t)
	for _, base := range []string{"http://rtc.example.com:8080", "http://rtc.example.com:8080/"} {
		out, _, err := runCLI(t, "token", "--api-key", k.Spec(), "--room", "sales", "--identity", "alice", "--url", base)
		if err != nil {
			t.Fatal(err)
		}
		m := linkRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("link %q", out)
		}
		if c := verify(t, m[1], k); c.Room != "sales" || c.Subject != "alice" {
			t.Fatalf("claims %+v", c)
		}
	}
}

func TestTokenCommandErrors(t *testing.T) {
	k := newKey(t)
	t.Setenv("SWITCHBOARD_API_KEYS", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--room", "sales"}, "--identity is required"},
		{[]string{"--identity", "a"}, "--room is required"},
		{[]string{"--room", "sales", "--identity", "a"}, "no API key"},
		{[]string{"--room", "sales", "--identity", "a", "--api-key", "id:short"}, "at least 32"},
		{[]string{"--room", "sales", "--identity", "a", "--api-key", k.Spec(), "--ttl", "0s"}, "--ttl must be positive"},
		{[]string{"--room", "bad room", "--identity", "a", "--api-key", k.Spec()}, "want a room name"},
		{[]string{"--room", "sales", "--identity", "a", "--api-key", k.Spec(), "--meta", "[1]"}, "not a JSON object"},
		{[]string{"--room", "sales-*", "--identity", "a", "--api-key", k.Spec(), "--url", "http://h"}, "needs one room"},
		{[]string{"--room", "sales", "--identity", "a", "--api-key", k.Spec(), "--url", "h:8080"}, "http://"},
		{[]string{"--room", "sales", "--identity", "a", "--api-key", k.Spec(), "--key-id", "other"}, "does not match"},
	} {
		_, _, err := runCLI(t, append([]string{"token"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.want)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "\n") || strings.Contains(msg, string(k.Secret)) {
			t.Errorf("%q: error %q: want one line without the secret", tc.args, msg)
		}
	}
}

// The peer commands join with --token (or SWITCHBOARD_TOKEN) and take the room from it; without
// a token a server with keys refuses them with a hint.
func TestPeerCommandsWithToken(t *testing.T) {
	k := newKey(t)
	url := testserver.Start(t, func(c *config.Config) { c.APIKeys = []string{k.Spec()} })
	mint := func(identity string) string {
		out, _, err := runCLI(t, "token", "--api-key", k.Spec(), "--room", "drop", "--identity", identity)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	src, out := t.TempDir(), t.TempDir()
	want := writeRandom(t, filepath.Join(src, "x.dat"), 200<<10)
	ctx, cancel := context.WithTimeout(context.Background(), transferWait)
	defer cancel()

	// No token: refused at once, with the code and a hint, and no retry loop.
	t.Setenv("SWITCHBOARD_TOKEN", "")
	err := recvFiles(ctx, []string{"--room", "drop", "--server", url, "--loopback", "--out", out}, &lineBuf{}, &lineBuf{})
	if err == nil || !strings.Contains(err.Error(), "token-missing") || !strings.Contains(err.Error(), "--token") {
		t.Fatalf("recv without a token: %v", err)
	}

	t.Setenv("SWITCHBOARD_TOKEN", mint("receiver")) // recv takes it from the environment
	recv := start(t, ctx, recvFiles, "--server", url, "--loopback", "--out", out)
	send := start(t, ctx, sendFiles, "--token", mint("sender"), "--server", url, "--loopback", filepath.Join(src, "x.dat"))
	if err := send.wait(t, "send"); err != nil {
		t.Fatalf("send: %v\n%s", err, send.stderr.String())
	}
	if err := recv.wait(t, "recv"); err != nil {
		t.Fatalf("recv: %v\n%s", err, recv.stderr.String())
	}
	if sumFile(t, filepath.Join(out, "x.dat")) != want {
		t.Fatal("x.dat differs")
	}
	if s := recv.stderr.String(); !strings.Contains(s, "room drop") {
		t.Errorf("recv did not name the token's room:\n%s", s)
	}
	if s := send.stdout.String(); strings.Contains(s, "switchboard recv") {
		t.Errorf("send made up a room although the token names one:\n%s", s)
	}

	// An expired token: the command fails at once with the code.
	expired, err := auth.Mint(k, auth.NewClaims("late", "drop", time.Now().Add(-2*time.Hour), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	err = recvFiles(ctx, []string{"--token", expired, "--server", url, "--loopback", "--out", out, "--overwrite"}, &lineBuf{}, &lineBuf{})
	if err == nil || !strings.Contains(err.Error(), "token-expired") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("recv with an expired token: %v", err)
	}
	if !errors.Is(err, sdk.ErrTokenExpired) {
		t.Fatalf("error %v does not carry the SDK's typed error", err)
	}
}
