package resume

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	secretA = []byte(strings.Repeat("a", 32))
	secretB = []byte(strings.Repeat("b", 40))
	t0      = time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
)

func newTokens(t testing.TB, secrets ...[]byte) *Tokens {
	t.Helper()
	tk, err := New(Config{Secrets: secrets, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func sample() Claims {
	return Claims{Room: "standup-42", Peer: "q3m8sXoLqv1yCpTtNd3h1w", Name: "Ada", Meta: []byte(`{"avatar":"🦊"}`),
		Identity: "user-42", TURN: true, Node: "n1"}
}

func TestMintVerifyRoundTrip(t *testing.T) {
	tk := newTokens(t, secretA)
	tok, minted, err := tk.Mint(sample(), t0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tk.Verify(tok, t0.Add(59*time.Minute))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := sample()
	if c.Room != want.Room || c.Peer != want.Peer || c.Name != want.Name || string(c.Meta) != string(want.Meta) ||
		c.Identity != want.Identity || !c.TURN || c.Node != "n1" || c.ID != minted.ID || len(c.ID) != 22 ||
		!c.Expires.Equal(t0.Add(time.Hour)) || !c.Issued.Equal(t0) {
		t.Errorf("claims = %+v, minted %+v", c, minted)
	}
	tok2, m2, _ := tk.Mint(sample(), t0)
	if tok2 == tok || m2.ID == minted.ID {
		t.Error("two tokens minted for the same presence are the same")
	}
}

func TestVerifyRefuses(t *testing.T) {
	tk := newTokens(t, secretA)
	good, _, _ := tk.Mint(sample(), t0)
	parts := strings.Split(good, ".")
	sign := func(method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
		tok := jwt.NewWithClaims(method, claims)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := func() jwt.MapClaims {
		return jwt.MapClaims{"jti": "abcdefghijklmnopqrstuv", "aud": Audience, "exp": t0.Add(time.Hour).Unix(), "iat": t0.Unix(),
			"room": "r", "peer": "p"}
	}
	kidA := KeyID(secretA)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	noAud := base()
	delete(noAud, "aud")
	otherAud := base()
	otherAud["aud"] = "switchboard"
	noExp := base()
	delete(noExp, "exp")
	noJTI := base()
	delete(noJTI, "jti")
	badRoom := base()
	badRoom["room"] = "no spaces"
	noPeer := base()
	delete(noPeer, "peer")
	arrayMeta := base()
	arrayMeta["meta"] = []int{1}
	futureIAT := base()
	futureIAT["iat"] = t0.Add(time.Hour).Unix()
	// Tampered: the body of another token under good's signature.
	other, _, _ := tk.Mint(Claims{Room: "other", Peer: "x"}, t0)
	tampered := parts[0] + "." + strings.Split(other, ".")[1] + "." + parts[2]
	flipped := []byte(good)
	flipped[len(flipped)-3] ^= 1
	if flipped[len(flipped)-3] == good[len(good)-3] {
		t.Fatal("no flip")
	}
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"`+kidA+`"}`)) + "." + parts[1] + "."
	tests := []struct {
		name  string
		token string
		at    time.Time
		want  error
	}{
		{"expired", good, t0.Add(time.Hour + time.Second), ErrExpired},
		{"empty", "", t0, ErrInvalid},
		{"garbage", "a.b.c", t0, ErrInvalid},
		{"too long", strings.Repeat("x", MaxTokenLen+1), t0, ErrInvalid},
		{"alg none", none, t0, ErrInvalid},
		{"HS384", sign(jwt.SigningMethodHS384, secretA, kidA, base()), t0, ErrInvalid},
		{"HS512", sign(jwt.SigningMethodHS512, secretA, kidA, base()), t0, ErrInvalid},
		{"ES256", sign(jwt.SigningMethodES256, ecKey, kidA, base()), t0, ErrInvalid},
		{"no audience", sign(jwt.SigningMethodHS256, secretA, kidA, noAud), t0, ErrInvalid},
		{"wrong audience (an access token)", sign(jwt.SigningMethodHS256, secretA, kidA, otherAud), t0, ErrInvalid},
		{"no exp", sign(jwt.SigningMethodHS256, secretA, kidA, noExp), t0, ErrInvalid},
		{"no jti", sign(jwt.SigningMethodHS256, secretA, kidA, noJTI), t0, ErrInvalid},
		{"bad room", sign(jwt.SigningMethodHS256, secretA, kidA, badRoom), t0, ErrInvalid},
		{"no peer", sign(jwt.SigningMethodHS256, secretA, kidA, noPeer), t0, ErrInvalid},
		{"meta not an object", sign(jwt.SigningMethodHS256, secretA, kidA, arrayMeta), t0, ErrInvalid},
		{"issued in the future", sign(jwt.SigningMethodHS256, secretA, kidA, futureIAT), t0, ErrInvalid},
		{"unknown kid", sign(jwt.SigningMethodHS256, secretA, "nope", base()), t0, ErrInvalid},
		{"no kid", sign(jwt.SigningMethodHS256, secretA, "", base()), t0, ErrInvalid},
		{"kid of A, signed by B", sign(jwt.SigningMethodHS256, secretB, kidA, base()), t0, ErrInvalid},
		{"tampered body", tampered, t0, ErrInvalid},
		{"flipped signature bit", string(flipped), t0, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tk.Verify(tt.token, tt.at); !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
	// The control: base() signed properly passes.
	if _, err := tk.Verify(sign(jwt.SigningMethodHS256, secretA, kidA, base()), t0); err != nil {
		t.Errorf("control token refused: %v", err)
	}
}

func TestRotation(t *testing.T) {
	old := newTokens(t, secretA)
	rotated := newTokens(t, secretB, secretA) // B signs now, A still verifies
	tokA, _, _ := old.Mint(sample(), t0)
	if _, err := rotated.Verify(tokA, t0); err != nil {
		t.Errorf("a token of the old secret is refused after rotation: %v", err)
	}
	tokB, _, _ := rotated.Mint(sample(), t0)
	if _, err := old.Verify(tokB, t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("a server without secret B took its token: %v", err)
	}
	if _, err := rotated.Verify(tokB, t0); err != nil {
		t.Errorf("Verify after rotation: %v", err)
	}
	if h, _, _ := jwt.NewParser().ParseUnverified(tokB, jwt.MapClaims{}); h.Header["kid"] != KeyID(secretB) {
		t.Errorf("signed with kid %v, want the first secret's", h.Header["kid"])
	}
}

func TestRedeemOnce(t *testing.T) {
	tk := newTokens(t, secretA)
	now := time.Now()
	tok, _, _ := tk.Mint(sample(), now)
	ctx := context.Background()
	if _, err := tk.Redeem(ctx, tok, "", now); err != nil {
		t.Fatalf("first Redeem: %v", err)
	}
	if _, err := tk.Redeem(ctx, tok, "", now); !errors.Is(err, ErrSpent) {
		t.Fatalf("second Redeem = %v, want ErrSpent", err)
	}
	// Another server with the same secret and the same ledger refuses it too.
	other, _ := New(Config{Secrets: [][]byte{secretA}, Ledger: tk.ledger})
	if _, err := other.Redeem(ctx, tok, "", now); !errors.Is(err, ErrSpent) {
		t.Fatalf("Redeem on a second Tokens sharing the ledger = %v, want ErrSpent", err)
	}
}

func TestSecrets(t *testing.T) {
	if _, err := New(Config{Secrets: [][]byte{[]byte("short")}}); !errors.Is(err, ErrBadSecret) {
		t.Errorf("short secret: %v", err)
	}
	tk, err := New(Config{})
	if err != nil || !tk.RandomSecret() || len(tk.Secrets()) != 1 || len(tk.Secrets()[0]) != MinSecretLen {
		t.Errorf("no secret: %v, random %v", err, tk.RandomSecret())
	}
	got, err := ParseSecrets(string(secretA) + " , " + string(secretB))
	if err != nil || len(got) != 2 || string(got[0]) != string(secretA) || string(got[1]) != string(secretB) {
		t.Errorf("ParseSecrets = %q, %v", got, err)
	}
	if _, err := ParseSecrets(string(secretA) + ",short"); !errors.Is(err, ErrBadSecret) {
		t.Errorf("ParseSecrets with a short one: %v", err)
	}
	if got, err := ParseSecrets(" "); got != nil || err != nil {
		t.Errorf("ParseSecrets(empty) = %q, %v", got, err)
	}
}

func TestMemoryLedger(t *testing.T) {
	l := NewMemoryLedger(2)
	now := t0
	l.now = func() time.Time { return now }
	ctx := context.Background()
	spend := func(jti string, exp time.Time) (bool, error) { return l.Spend(ctx, jti, exp) }
	if ok, err := spend("a", t0.Add(time.Minute)); !ok || err != nil {
		t.Fatalf("spend a: %v %v", ok, err)
	}
	if ok, _ := spend("a", t0.Add(time.Minute)); ok {
		t.Fatal("a spent twice")
	}
	if ok, _ := spend("b", t0.Add(2*time.Minute)); !ok {
		t.Fatal("spend b")
	}
	if ok, err := spend("c", t0.Add(time.Minute)); ok || !errors.Is(err, ErrLedgerFull) || l.Refused() != 1 {
		t.Fatalf("a third spend in a ledger of 2: %v %v (refused %d)", ok, err, l.Refused())
	}
	if ok, _ := spend("x", t0); ok {
		t.Fatal("an expired token was spent")
	}
	now = t0.Add(time.Minute) // a expires: its entry goes, the room is free again
	if ok, err := spend("c", t0.Add(3*time.Minute)); !ok || err != nil || l.Len() != 2 {
		t.Fatalf("spend c after a expired: %v %v, len %d", ok, err, l.Len())
	}
	if ok, _ := spend("b", t0.Add(2*time.Minute)); ok {
		t.Fatal("b spent twice")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Spend(cctx, "d", t0.Add(time.Hour)); err == nil {
		t.Fatal("Spend with a cancelled context succeeded")
	}
}
