package server_test

// Review attack tests (wt-review). Run: go test -count=1 -run Review -v ./internal/server/

import (
	"crypto/hmac"
	"crypto/sha256"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"
)

// reviewSignRaw signs a raw JSON payload (bytes the test controls, even invalid UTF-8) with
// key1, HS256.
func reviewSignRaw(payload string) string {
	in := b64url(`{"alg":"HS256","typ":"JWT","kid":"`+key1.ID+`"}`) + "." + b64url(payload)
	mac := hmac.New(sha256.New, key1.Secret)
	mac.Write([]byte(in))
	return in + "." + b64url(string(mac.Sum(nil)))
}

// TestReviewTokenMetaInvalidUTF8: a token whose meta holds bytes that are not UTF-8 is
// accepted (json.RawMessage copies them; Claims.check never looks) and the bytes are relayed
// verbatim in the peer-joined TEXT frame every other peer of the room receives — browsers fail
// such a WebSocket (close 1007), so one such token disconnects the whole room; the welcome of
// every later joiner carries it too. The server API (compactJSON) refuses the same meta.
func TestReviewTokenMetaInvalidUTF8(t *testing.T) {
	ts := startAuthServer(t, nil)
	b := dialRaw(t, ts, 0)
	b.sendText(`{"type":"join","token":"` + token(t, key1, "bob", "sales", nil) + `"}`)
	b.expectText("welcome")

	exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	evil := reviewSignRaw(`{"sub":"mallory","room":"sales","join":true,"exp":` + exp + `,"meta":{"x":"` + "\xff\xfe" + `"}}`)
	a := dialRaw(t, ts, 0)
	a.sendText(`{"type":"join","token":"` + evil + `"}`)
	for {
		op, p, err := b.readFrame()
		if err != nil {
			t.Fatalf("bob: %v", err)
		}
		if op != 0x1 {
			continue
		}
		if !utf8.Valid(p) {
			t.Fatalf("bob received a text frame that is not UTF-8 (a browser closes with 1007): %q", p)
		}
		t.Logf("bob got %s", p)
		return
	}
}
