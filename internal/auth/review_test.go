package auth

// Review attack tests (wt-review). Run: go test -count=1 -run Review -v ./internal/auth/

import (
	"crypto/hmac"
	"crypto/sha256"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// signRaw signs header.payload (raw JSON strings) with HS256 and k's secret: a token whose
// exact bytes the test controls.
func signRaw(k Key, header, payload string) string {
	in := b64(header) + "." + b64(payload)
	mac := hmac.New(sha256.New, k.Secret)
	mac.Write([]byte(in))
	return in + "." + strings.TrimRight(b64(string(mac.Sum(nil))), "=")
}

func TestReviewVerifyEdges(t *testing.T) {
	v, err := NewVerifier([]Key{testKey})
	if err != nil {
		t.Fatal(err)
	}
	exp := now.Add(time.Hour).Unix()
	hdr := `{"alg":"HS256","kid":"k1"}`
	base := func(extra string) string {
		return `{"sub":"alice","room":"sales","join":true,"exp":` + itoa(exp) + extra + `}`
	}
	hs512 := jwt.NewWithClaims(jwt.SigningMethodHS512, NewClaims("alice", "sales", now, time.Hour))
	hs512.Header["kid"] = testKey.ID
	hs512s, _ := hs512.SignedString(testKey.Secret)

	refused := []struct{ name, token string }{
		{"HS512 same secret", hs512s},
		{"kid is a number", signRaw(testKey, `{"alg":"HS256","kid":1}`, base(""))},
		{"kid differs in case", signRaw(Key{ID: "K1", Secret: testKey.Secret}, `{"alg":"HS256","kid":"K1"}`, base(""))},
		{"sub is a number", signRaw(testKey, hdr, `{"sub":42,"room":"sales","join":true,"exp":`+itoa(exp)+`}`)},
		{"meta is a string", signRaw(testKey, hdr, base(`,"meta":"{}"`))},
		{"meta is an array", signRaw(testKey, hdr, base(`,"meta":[{}]`))},
		{"room a*b", signRaw(testKey, hdr, `{"sub":"a","room":"a*b","join":true,"exp":`+itoa(exp)+`}`)},
		{"room **", signRaw(testKey, hdr, `{"sub":"a","room":"**","join":true,"exp":`+itoa(exp)+`}`)},
		{"exp huge float (overflows int64)", signRaw(testKey, hdr, `{"sub":"a","room":"r","join":true,"exp":1e300}`)},
		{"exp null", signRaw(testKey, hdr, `{"sub":"a","room":"r","join":true,"exp":null}`)},
		{"join as string", signRaw(testKey, hdr, `{"sub":"a","room":"r","join":"true","exp":`+itoa(exp)+`}`)},
		{"token over MaxTokenLen", signRaw(testKey, hdr, base(`,"pad":"`+strings.Repeat("x", 5000)+`"`))},
		// Invalid UTF-8 bytes inside meta: json.RawMessage copies them verbatim and check()
		// never validates; they would be sent in peer-joined text frames (browsers close 1007).
		{"meta with invalid UTF-8", signRaw(testKey, hdr, base(`,"meta":{"n":"`+"\xff\xfe"+`"}`))},
	}
	for _, c := range refused {
		t.Run("refused/"+c.name, func(t *testing.T) {
			cl, e := v.Verify(c.token, now)
			if e == nil {
				meta := ""
				if cl.Meta != nil {
					meta = string(cl.Meta)
				}
				t.Errorf("accepted: sub=%q room=%q join=%v meta=%q (meta valid UTF-8: %v)", cl.Subject, cl.Room, cl.Join, meta, utf8.ValidString(meta))
				return
			}
			if strings.Contains(e.Message, string(testKey.Secret)) {
				t.Errorf("message leaks the secret: %s", e.Message)
			}
		})
	}

	// Accepted but worth knowing: lenient decoding of signed claims (not bypasses, since the
	// signature covers them; listed so a change in behaviour is noticed).
	lenient := []struct{ name, token string }{
		{"exp as a numeric string", signRaw(testKey, hdr, `{"sub":"a","room":"r","join":true,"exp":"`+itoa(exp)+`"}`)},
		{"claim names in other case (ROOM, JOIN, ADMIN)", signRaw(testKey, hdr, `{"sub":"a","ROOM":"*","JOIN":true,"ADMIN":true,"exp":`+itoa(exp)+`}`)},
		{"crit header with unknown extension", signRaw(testKey, `{"alg":"HS256","kid":"k1","crit":["exp-ext"],"exp-ext":1}`, base(""))},
		{"duplicate room (last wins)", signRaw(testKey, hdr, `{"sub":"a","room":"sales","join":true,"exp":`+itoa(exp)+`,"room":"*"}`)},
	}
	for _, c := range lenient {
		cl, e := v.Verify(c.token, now)
		if e == nil {
			t.Logf("LENIENT accepted %-50s room=%q join=%v admin=%v", c.name, cl.Room, cl.Join, cl.Admin)
		} else {
			t.Logf("lenient case refused %-40s %s", c.name, e.Code)
		}
	}
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
