package sioserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/wsserver"
)

// FuzzConnectAuth: a CONNECT ("0" + the input: a namespace, an auth payload) on a server
// that needs tokens never panics, and is answered with exactly one of: the CONNECT answer then
// the welcome; CONNECT_ERROR {message (one line), data.code} then the close; CONNECT_ERROR for
// another namespace; nothing (a protocol error that closes the session). No socket is left in
// a room once its session is closed.
func FuzzConnectAuth(f *testing.F) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC) // tokens in the corpus stay valid
	valid := func(room string, mod func(*auth.Claims)) string {
		c := auth.NewClaims("fuzz", room, at, time.Hour)
		if mod != nil {
			mod(c)
		}
		tok, err := auth.Mint(testKey, c)
		if err != nil {
			f.Fatal(err)
		}
		return tok
	}
	tok := valid("r", nil)
	for _, s := range []string{
		"", "{}", `{"token":null}`, `{"token":""}`, `{"token":5}`, `{"token":["a"]}`, `{"token":"a.b.c"}`,
		`{"token":"` + tok + `"}`, `{"token":"` + tok + `","room":"r"}`, `{"token":"` + tok + `","room":"s"}`,
		`{"token":"` + tok + `","room":5}`, `{"token":"` + tok + `","room":"a b"}`, `{"room":"r","token":"` + tok + `"}`,
		`{"token":"` + valid("team-*", nil) + `","room":"team-x"}`, `{"token":"` + valid("r", func(c *auth.Claims) { c.Join = false }) + `"}`,
		`{"token":"` + valid("r", func(c *auth.Claims) { c.Meta = json.RawMessage(`{"k":[1,2]}`); c.Name = "N" }) + `"}`,
		`{"token":"\u0041` + tok[1:] + `"}`, `{"token":"` + tok + `","token":"x"}`,
		`"` + tok + `"`, `["` + tok + `"]`, "null", "1", `{"token":`, `{"token":"` + tok,
		`/admin,{"token":"` + tok + `"}`, "/x,", "{\"token\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := hub.New(hub.Config{Authorize: testAuthorizer(f, func() time.Time { return at }), Logger: log})
	if err != nil {
		f.Fatal(err)
	}
	ws, err := wsserver.New(wsserver.Config{Hub: h, Logger: log})
	if err != nil {
		f.Fatal(err)
	}
	defer ws.Close()
	srv, err := New(Config{Hub: h, WS: ws, Logger: log})
	if err != nil {
		f.Fatal(err)
	}
	defer srv.Close()
	f.Fuzz(func(t *testing.T, in []byte) {
		now := time.Now()
		ss := newSess(srv, now)
		if ss == nil {
			t.Fatal("session table full: sessions are not removed")
		}
		defer srv.removeSession(ss)
		ss.in.Lock()
		err := ss.packet(eioPacket{typ: eioMessage, data: append([]byte{sioConnect}, in...)}, now)
		ss.in.Unlock()
		ss.mu.Lock()
		out := string(ss.queue)
		ss.mu.Unlock()
		pkts := strings.Split(out, "\x1e")
		var refused *errClose
		switch {
		case errors.As(err, &refused):
			var ce struct {
				Message string
				Data    struct{ Code string }
			}
			if len(pkts) != 1 || !strings.HasPrefix(out, "44{") || json.Unmarshal([]byte(out[2:]), &ce) != nil ||
				ce.Message == "" || strings.ContainsAny(ce.Message, "\r\n") || ce.Data.Code != refused.reason {
				t.Fatalf("%q: answered %q", in, out)
			}
		case err != nil:
			if out != "" {
				t.Fatalf("%q: refused (%v) but answered %q", in, err, out)
			}
		case strings.HasPrefix(out, "44/"):
			if len(pkts) != 1 || !strings.HasSuffix(out, `,{"message":"Invalid namespace"}`) {
				t.Fatalf("%q: answered %q", in, out)
			}
		case strings.HasPrefix(out, "40{"):
			var c struct{ SID string }
			if len(pkts) != 2 || json.Unmarshal([]byte(pkts[0][2:]), &c) != nil || c.SID != string(ss.id) ||
				!strings.HasPrefix(pkts[1], `42["welcome",{"type":"welcome","v":1,"peer":"`+c.SID+`"`) || !json.Valid([]byte(pkts[1][2:])) {
				t.Fatalf("%q: answered %q", in, out)
			}
		default:
			t.Fatalf("%q: answered %q (err %v)", in, out, err)
		}
		ss.close("left")
		if rooms, _ := h.Rooms(context.Background()); len(rooms) != 0 {
			t.Fatalf("%q: rooms %v left after the session closed", in, rooms)
		}
	})
}
