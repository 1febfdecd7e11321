package resume

import (
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary strings to Verify: it must never panic, and what it accepts must
// carry the claims of a token this secret signed (the fuzzer cannot forge HMAC).
func FuzzVerify(f *testing.F) {
	tk, err := New(Config{Secrets: [][]byte{secretA}, TTL: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	good, minted, _ := tk.Mint(sample(), t0)
	f.Add(good)
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add(good[:len(good)-1])
	f.Fuzz(func(t *testing.T, token string) {
		c, err := tk.Verify(token, t0)
		if err != nil {
			return
		}
		// Fuzzing workers each mint their own good token (another jti), all with secretA.
		if c.Peer != minted.Peer || c.Room != minted.Room || c.Name != minted.Name || c.Identity != minted.Identity {
			t.Fatalf("forged token accepted: %q → %+v", token, c)
		}
	})
}
