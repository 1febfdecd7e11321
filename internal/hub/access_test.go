package hub

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/protocol"
)

var testKey = auth.Key{ID: "k", Secret: []byte(strings.Repeat("s", 32))}

// authHub returns a hub whose joins need tokens signed by testKey.
func authHub(t testing.TB) *Hub {
	v, err := auth.NewVerifier([]auth.Key{testKey})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Logger: quietLogger(), Authorize: func(token, room string, now time.Time) (Grant, *protocol.Error) {
		c, e := v.Verify(token, now)
		if e != nil {
			return Grant{}, e.Protocol()
		}
		r, e := c.RoomFor(room)
		if e != nil {
			return Grant{}, e.Protocol()
		}
		return Grant{Identity: c.Subject, Room: r, Name: c.Name, Meta: c.MetaObject(), TURN: c.TURN}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// FuzzAuthorizedJoin sends arbitrary frames, with or without a valid token spliced in, to a hub
// that requires tokens: it never panics, a welcome only ever follows a frame that carried the
// valid token, and every refusal of a token closes the connection.
func FuzzAuthorizedJoin(f *testing.F) {
	good, err := auth.Mint(testKey, auth.NewClaims("alice", "team-*", time.Now(), time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	h := authHub(f)
	f.Add(`{"type":"join","room":"team-1","token":"TOKEN"}`)
	f.Add(`{"type":"join","token":"TOKEN"}`)
	f.Add(`{"type":"join","room":"other","token":"TOKEN"}`)
	f.Add(`{"type":"join","room":"team-1","token":"x.y.z"}`)
	f.Add(`{"type":"join","room":"team-1"}`)
	f.Add(`{"type":"join","room":"team-1","token":"TOKEN","resume":"abc","meta":{"a":1},"name":"n"}`)
	f.Fuzz(func(t *testing.T, frame string) {
		frame = strings.ReplaceAll(frame, "TOKEN", good)
		sink := &recorder{}
		s := h.Connect(sink, time.Now())
		err := s.HandleFrame([]byte(frame), time.Now())
		defer s.Leave("closed")
		for _, e := range sink.got {
			if e.Type == protocol.TypeWelcome && !strings.Contains(frame, good) {
				t.Fatalf("welcome without the token: %q", frame)
			}
			if e.Type == protocol.TypeError && closesConnection(e.Err.Code) && err == nil {
				t.Fatalf("%s without a close: %q", e.Err.Code, frame)
			}
		}
	})
}
