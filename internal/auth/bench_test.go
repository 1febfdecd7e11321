package auth

import (
	"testing"
	"time"
)

// BenchmarkVerify is the cost every join pays on a server with API keys.
func BenchmarkVerify(b *testing.B) {
	v, _ := NewVerifier([]Key{testKey, otherKey})
	c := NewClaims("user-42", "sales", time.Now(), time.Hour)
	c.Name = "Alice"
	tok, _ := Mint(testKey, c)
	b.ReportAllocs()
	for b.Loop() {
		if _, e := v.Verify(tok, time.Now()); e != nil {
			b.Fatal(e)
		}
	}
}
