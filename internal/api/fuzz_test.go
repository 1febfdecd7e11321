package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzAPIHandler sends arbitrary methods, paths, content types, tokens and bodies to the API over
// a hub with a peer in it, and checks that it never panics, never fails inside (500), and
// answers every refusal with a JSON error of a known status.
func FuzzAPIHandler(f *testing.F) {
	fx := newFixture(f)
	const id = "AAAAAAAAAAAAAAAAAAAAAA"
	nonAdmin := fx.token(f, false, time.Hour)
	seeds := []struct {
		method      byte
		path, ctype string
		authz       byte
		body        string
	}{
		{0, "rooms", "", 0, ""},
		{0, "rooms/sales", "", 0, ""},
		{0, "rooms/sales/peers/" + id, "", 0, ""},
		{1, "rooms/sales/messages", "application/json", 0, `{"data":{"a":[1,2,{"b":null}]}}`},
		{1, "rooms/sales/messages", "application/json", 0, `{"data":"x","peer":"` + id + `"}`},
		{2, "rooms/sales/peers/" + id, "application/json", 0, `{"meta":{"role":"host"}}`},
		{2, "rooms/sales/peers/" + id, "application/json", 0, `{"meta":null}`},
		{3, "rooms/sales/peers/" + id, "", 0, ""},
		{3, "rooms/sales", "", 0, ""},
		{2, "rooms/sales/peers/" + id, "application/json; charset=utf-8", 0, `{"meta":{"k":"\ud800"}}`},
		{1, "rooms/sales/messages", "application/json", 0, `{"data":1} [`},
		{1, "rooms/sales/messages", "application/json", 0, strings.Repeat("[", 20000)},
		{0, "rooms/%2e%2e/peers/x", "", 0, ""},
		{0, "rooms/sales/../rooms", "", 0, ""},
		{4, "rooms/sales", "application/json", 0, "{}"},
		{0, "rooms", "", 1, ""},
		{0, "rooms", "", 2, ""},
		{0, "rooms", "", 3, ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.ctype, s.authz, []byte(s.body))
	}
	methods := []string{"GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS", "CONNECT", "get", ""}
	known := map[int]bool{200: true, 204: true, 400: true, 401: true, 403: true, 404: true, 405: true, 413: true, 415: true}
	f.Fuzz(func(t *testing.T, m byte, path, ctype string, authz byte, body []byte) {
		// Keep the peer the seeds name in the room, whatever the last input did.
		if _, err := fx.hub.Peers(t.Context(), "sales"); err != nil {
			fx.join(t, "sales", id, "Ada")
		}
		u, err := url.ParseRequestURI("/api/v1/" + path)
		if err != nil {
			return // not a request line net/http would hand a handler
		}
		r := &http.Request{
			Method:     methods[int(m)%len(methods)],
			URL:        u,
			RequestURI: u.RequestURI(),
			Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:        http.Header{},
			Body:          io.NopCloser(bytes.NewReader(body)),
			ContentLength: int64(len(body)),
			Host:          "127.0.0.1",
		}
		r = r.WithContext(t.Context())
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		switch authz % 4 {
		case 0:
			r.Header.Set("Authorization", "Bearer "+fx.admin)
		case 1:
			r.Header.Set("Authorization", "Bearer "+nonAdmin)
		case 2:
			r.Header.Set("Authorization", "Bearer "+string(body))
		}
		w := httptest.NewRecorder()
		fx.api.ServeHTTP(w, r)
		switch {
		case w.Code == http.StatusMovedPermanently || w.Code == http.StatusTemporaryRedirect || w.Code == http.StatusPermanentRedirect:
			return // the mux cleaning a path ("..", "//"); the server's own mux does it first
		case !known[w.Code]:
			t.Fatalf("%s %q: status %d: %s", r.Method, path, w.Code, w.Body)
		case w.Code >= 400:
			var eb struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" ||
				strings.ContainsAny(eb.Error.Message, "\r\n") {
				t.Fatalf("%s %q: %d with %q", r.Method, path, w.Code, w.Body)
			}
		case w.Code == 200 && (!json.Valid(w.Body.Bytes()) || !utf8.Valid(w.Body.Bytes())):
			t.Fatalf("%s %q: 200 with invalid JSON %q", r.Method, path, w.Body)
		}
	})
}
