package server_test

// Attack tests from the review of issue 11.

import (
	"crypto/hmac"
	"crypto/sha256"
	"strconv"
	"strings"
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

// TestReviewTokenMetaInvalidUTF8: a token whose meta holds bytes that are not UTF-8 (raw JSON
// keeps them as signed) is refused: relayed in peer-joined text frames it would make every
// browser in the room drop its connection (1007). The room hears nothing of it: bob's next
// frame is the next valid joiner.
func TestReviewTokenMetaInvalidUTF8(t *testing.T) {
	ts := startAuthServer(t, nil)
	b := dialRaw(t, ts, 0)
	b.sendText(`{"type":"join","token":"` + token(t, key1, "bob", "sales", nil) + `"}`)
	b.expectText("welcome")

	exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	evil := reviewSignRaw(`{"sub":"mallory","room":"sales","join":true,"exp":` + exp + `,"meta":{"x":"` + "\xff\xfe" + `"}}`)
	a := dialRaw(t, ts, 0)
	a.sendText(`{"type":"join","token":"` + evil + `"}`)
	if m := a.expectText("error"); m.Code != "token-invalid" {
		t.Fatalf("mallory: %s, want token-invalid", m.Raw)
	}
	c := dialRaw(t, ts, 0)
	c.sendText(`{"type":"join","token":"` + token(t, key1, "carol", "sales", nil) + `"}`)
	c.expectText("welcome")
	op, p, err := b.readFrame()
	if err != nil || op != 0x1 || !utf8.Valid(p) || !strings.Contains(string(p), `"identity":"carol"`) {
		t.Fatalf("bob's next frame: %x %q %v, want carol's peer-joined", op, p, err)
	}
}
