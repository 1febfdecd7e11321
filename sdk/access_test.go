package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/server"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/protocol"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// authServer is a real server with API keys, and its hub for the server-side operations.
type authServer struct {
	url string
	srv *server.Server
	key auth.Key
}

// startAuth runs a server whose only API key is a fresh one, changed by mod if not nil, until
// the test ends.
func startAuth(t *testing.T, mod func(*config.Config)) *authServer {
	t.Helper()
	key := auth.NewKey()
	srv := testserver.Run(t, func(c *config.Config) {
		c.APIKeys = []string{key.Spec()}
		if mod != nil {
			mod(c)
		}
	})
	return &authServer{url: "http://" + srv.Addr().String(), srv: srv, key: key}
}

// mint signs a token for identity in room, valid for ttl from now (negative: expired).
func mint(t *testing.T, k auth.Key, identity, room string, ttl time.Duration, edit func(*auth.Claims)) string {
	t.Helper()
	now := time.Now()
	c := auth.NewClaims(identity, room, now, ttl)
	if ttl < 0 {
		c = auth.NewClaims(identity, room, now.Add(2*ttl), -ttl) // issued before, expired ttl ago
	}
	if edit != nil {
		edit(c)
	}
	tok, err := auth.Mint(k, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func tryDial(url, room string, o sdk.Options) (*sdk.Client, error) {
	o.Loopback = true
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return sdk.Dial(ctx, url, room, &o)
}

// A valid token joins the room it names (Dial's room may be empty); the others see the
// token's identity, name and meta, not what the client asked for.
func TestTokenJoins(t *testing.T) {
	s := startAuth(t, nil)
	tokA := mint(t, s.key, "alice", "sales", time.Hour, func(c *auth.Claims) {
		c.Name = "Alice A."
		c.Meta = json.RawMessage(`{"role":"host"}`)
	})
	a := dial(t, s.url, "", sdk.Options{Token: tokA, Name: "not-from-the-token", OnPeer: echoOnChannels})
	if a.Room() != "sales" {
		t.Fatalf("room %q, want the token's sales", a.Room())
	}
	var calls atomic.Int32
	b := dial(t, s.url, "sales", sdk.Options{TokenFunc: func(context.Context) (string, error) {
		calls.Add(1)
		return mint(t, s.key, "bob", "sales", time.Hour, nil), nil
	}})
	if n := calls.Load(); n != 1 {
		t.Fatalf("TokenFunc called %d times for the first join, want 1", n)
	}
	pa := b.Peer(a.ID())
	if pa == nil {
		t.Fatal("b does not see a")
	}
	if pa.Identity() != "alice" || pa.Name() != "Alice A." || string(pa.Meta()) != `{"role":"host"}` {
		t.Fatalf("b sees a as identity %q name %q meta %s", pa.Identity(), pa.Name(), pa.Meta())
	}
	waitChan(t, pa.Connected(), "a and b connected")
}

// Refused tokens fail Dial with a typed error carrying the code, in one line.
func TestTokenRefused(t *testing.T) {
	s := startAuth(t, nil)
	other := auth.NewKey()
	for _, tc := range []struct {
		name, room, token string
		want              error
	}{
		{"missing", "sales", "", sdk.ErrTokenMissing},
		{"expired", "sales", mint(t, s.key, "alice", "sales", -time.Minute, nil), sdk.ErrTokenExpired},
		{"wrong key", "sales", mint(t, other, "alice", "sales", time.Hour, nil), sdk.ErrTokenInvalid},
		{"other room", "support", mint(t, s.key, "alice", "sales", time.Hour, nil), sdk.ErrRoomNotGranted},
		{"no join grant", "sales", mint(t, s.key, "alice", "sales", time.Hour, func(c *auth.Claims) { c.Join = false }), sdk.ErrJoinNotGranted},
		{"not yet valid", "sales", mint(t, s.key, "alice", "sales", time.Hour, func(c *auth.Claims) {
			c.NotBefore = c.ExpiresAt
		}), sdk.ErrTokenNotYetValid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reconnecting atomic.Int32
			c, err := tryDial(s.url, tc.room, sdk.Options{
				Token:          tc.token,
				OnReconnecting: func(int, error) { reconnecting.Add(1) },
			})
			if err == nil {
				c.Close()
				t.Fatal("joined")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			var se *sdk.ServerError
			if !errors.As(err, &se) || !se.Final() || sdk.ErrorCode(err) != se.Code {
				t.Fatalf("error %#v: want a final *sdk.ServerError", err)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, se.Code) || len(msg) > 200 {
				t.Fatalf("message %q: want one line naming the code", msg)
			}
			if strings.Contains(err.Error(), string(s.key.Secret)) {
				t.Fatal("the error quotes the secret")
			}
			if n := reconnecting.Load(); n != 0 {
				t.Fatalf("%d reconnect attempts after a refused join", n)
			}
		})
	}
}

// A resumed presence needs no token: TokenFunc is not called again.
func TestTokenFuncNotCalledOnResume(t *testing.T) {
	s := startAuth(t, nil)
	proxy := testserver.NewCutter(t, strings.TrimPrefix(s.url, "http://"))
	var calls atomic.Int32
	reconnected := make(chan bool, 2)
	a := dial(t, "http://"+proxy.Addr(), "sales", sdk.Options{
		TokenFunc: func(context.Context) (string, error) {
			calls.Add(1)
			return mint(t, s.key, "alice", "sales", time.Hour, nil), nil
		},
		Reconnect:     sdk.ReconnectOptions{MinDelay: 10 * time.Millisecond},
		OnReconnected: func(resumed bool) { reconnected <- resumed },
	})
	id := a.ID()
	proxy.Cut()
	if !waitChan(t, reconnected, "a reconnected") {
		t.Fatal("a joined anew; want resumed")
	}
	if a.ID() != id || calls.Load() != 1 {
		t.Fatalf("id %s → %s, TokenFunc calls %d; want the same id and 1 call", id, a.ID(), calls.Load())
	}
}

// peersSeen returns an OnPeer that sends every peer to the channel it also returns.
func peersSeen() (func(*sdk.Peer), chan *sdk.Peer) {
	ch := make(chan *sdk.Peer, 16)
	return func(p *sdk.Peer) { ch <- p }, ch
}

// waitPeer waits for the peer with id among those seen.
func waitPeer(t *testing.T, seen <-chan *sdk.Peer, id string) *sdk.Peer {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case p := <-seen:
			if p.ID() == id {
				return p
			}
		case <-deadline:
			t.Fatalf("peer %s never seen", id)
		}
	}
}

// When the resume fails (the grace passed), the client joins anew: with TokenFunc it gets a
// fresh token for it, with a static Token it sends that one along. When the fresh token is
// refused, the client stops after that one attempt with the code, and never loops.
func TestJoinAnewAfterFailedResume(t *testing.T) {
	for _, mode := range []string{"TokenFunc", "TokenFunc expired", "static Token"} {
		t.Run(mode, func(t *testing.T) {
			s := startAuth(t, func(c *config.Config) { c.ResumeGrace = 100 * time.Millisecond })
			proxy := testserver.NewCutter(t, strings.TrimPrefix(s.url, "http://"))
			bLeft := make(chan string, 4)
			onPeer, seen := peersSeen()
			dial(t, s.url, "sales", sdk.Options{
				Token:      mint(t, s.key, "bob", "sales", time.Hour, nil),
				OnPeer:     onPeer,
				OnPeerLeft: func(p *sdk.Peer, reason string) { bLeft <- p.ID() },
			})
			var calls, attempts atomic.Int32
			reconnected := make(chan bool, 2)
			errs := newErrs()
			var oldA atomic.Value
			o := sdk.Options{
				Reconnect: sdk.ReconnectOptions{MinDelay: 10 * time.Millisecond, MaxDelay: 20 * time.Millisecond},
				OnReconnecting: func(int, error) {
					if attempts.Add(1) > 1 {
						return
					}
					// Hold the reconnect until the server gave the presence up.
					select {
					case id := <-bLeft:
						if id != oldA.Load() {
							t.Errorf("b saw %s leave, want a (%s)", id, oldA.Load())
						}
					case <-time.After(wait):
						t.Error("b never saw a's lost presence end")
					}
				},
				OnReconnected: func(resumed bool) { reconnected <- resumed },
				OnError:       errs.on,
			}
			if mode == "static Token" {
				o.Token = mint(t, s.key, "alice", "sales", time.Hour, nil)
			} else {
				o.TokenFunc = func(context.Context) (string, error) {
					if calls.Add(1) > 1 && mode == "TokenFunc expired" {
						return mint(t, s.key, "alice", "sales", -time.Minute, nil), nil
					}
					return mint(t, s.key, "alice", "sales", time.Hour, nil), nil
				}
			}
			a := dial(t, "http://"+proxy.Addr(), "sales", o)
			oldA.Store(a.ID())
			waitChan(t, waitPeer(t, seen, a.ID()).Connected(), "a and b connected")
			proxy.Cut()
			if mode == "TokenFunc expired" {
				waitChan(t, a.Done(), "a stops")
				if !errors.Is(a.Err(), sdk.ErrTokenExpired) {
					t.Fatalf("a stopped with %v, want token-expired", a.Err())
				}
				if n := attempts.Load(); n != 1 {
					t.Fatalf("%d reconnect attempts; want 1 (no loop after a refused token)", n)
				}
				if !errors.Is(waitChan(t, errs.ch, "OnError"), sdk.ErrTokenExpired) {
					t.Fatal("OnError did not get token-expired")
				}
				return
			}
			if waitChan(t, reconnected, "a reconnected") {
				t.Fatal("a resumed after the grace")
			}
			if want := map[string]int32{"TokenFunc": 2, "static Token": 0}[mode]; calls.Load() != want {
				t.Fatalf("TokenFunc called %d times, want %d", calls.Load(), want)
			}
			if a.ID() == oldA.Load() || a.Room() != "sales" {
				t.Fatalf("a is %s in %q after joining anew", a.ID(), a.Room())
			}
			waitChan(t, waitPeer(t, seen, a.ID()).Connected(), "new pair connected")
		})
	}
}

// endedClient joins room with a token for identity and records how it ends.
type endedClient struct {
	*sdk.Client
	reconnects atomic.Int32
	errs       *errs
}

func joinAs(t *testing.T, s *authServer, identity string, o sdk.Options) *endedClient {
	t.Helper()
	e := &endedClient{errs: newErrs()}
	o.Token = mint(t, s.key, identity, "sales", time.Hour, nil)
	o.OnReconnecting = func(int, error) { e.reconnects.Add(1) }
	o.OnError = e.errs.on
	e.Client = dial(t, s.url, "", o)
	return e
}

// stoppedWith waits for the client to stop and checks it stopped with want, without trying
// to reconnect.
func (e *endedClient) stoppedWith(t *testing.T, want error) {
	t.Helper()
	waitChan(t, e.Done(), "the client stops")
	if !errors.Is(e.Err(), want) {
		t.Fatalf("stopped with %v, want %v", e.Err(), want)
	}
	if n := e.reconnects.Load(); n != 0 {
		t.Fatalf("%d reconnect attempts after %v", n, want)
	}
	for {
		err := waitChan(t, e.errs.ch, "OnError reports "+want.Error())
		if errors.Is(err, want) {
			return
		}
		t.Logf("OnError before: %v", err) // a pair's trouble as the room empties
	}
}

// A second connection of the same identity takes over: the first is told "replaced" and
// stops without reconnecting; the room sees the first leave and the second join.
func TestIdentityTakeover(t *testing.T) {
	s := startAuth(t, nil)
	left := make(chan string, 4)
	onPeer, seen := peersSeen()
	joinAs(t, s, "carol", sdk.Options{OnPeer: onPeer, OnPeerLeft: func(p *sdk.Peer, reason string) { left <- p.ID() + " " + reason }})
	first := joinAs(t, s, "alice", sdk.Options{})
	firstID := first.ID()
	second := joinAs(t, s, "alice", sdk.Options{})
	first.stoppedWith(t, sdk.ErrReplaced)
	if got := waitChan(t, left, "watcher sees the first leave"); !strings.HasPrefix(got, firstID+" ") {
		t.Fatalf("watcher saw %q", got)
	}
	p := waitPeer(t, seen, second.ID())
	if p.Identity() != "alice" {
		t.Fatalf("second's identity %q", p.Identity())
	}
	select {
	case <-second.Done():
		t.Fatalf("the second stopped: %v", second.Err())
	default:
	}
}

// The server API's remove and close end a presence for good: the client stops with the code.
func TestRemovedAndRoomClosed(t *testing.T) {
	s := startAuth(t, nil)
	ctx := context.Background()
	a := joinAs(t, s, "alice", sdk.Options{})
	b := joinAs(t, s, "bob", sdk.Options{})
	if err := s.srv.Hub().Remove(ctx, "sales", protocol.PeerID(a.ID())); err != nil {
		t.Fatal(err)
	}
	a.stoppedWith(t, sdk.ErrRemoved)
	if _, err := s.srv.Hub().CloseRoom(ctx, "sales"); err != nil {
		t.Fatal(err)
	}
	b.stoppedWith(t, sdk.ErrRoomClosed)
}

// Server messages reach the room or one peer; a meta update reaches the others as
// peer-updated and changes Peer.Meta.
func TestServerMessageAndPeerUpdated(t *testing.T) {
	s := startAuth(t, nil)
	ctx := context.Background()
	type msg struct{ to, data string }
	msgs := make(chan msg, 8)
	updated := make(chan *sdk.Peer, 4)
	a := joinAs(t, s, "alice", sdk.Options{
		OnServerMessage: func(d json.RawMessage) { msgs <- msg{"a", string(d)} },
	})
	b := joinAs(t, s, "bob", sdk.Options{
		OnServerMessage: func(d json.RawMessage) { msgs <- msg{"b", string(d)} },
		OnPeerUpdated:   func(p *sdk.Peer) { updated <- p },
	})
	hub := s.srv.Hub()
	if err := hub.Notify(ctx, "sales", "", []byte(`{"all":1}`)); err != nil {
		t.Fatal(err)
	}
	got := map[msg]bool{waitChan(t, msgs, "room message"): true, waitChan(t, msgs, "room message"): true}
	if !got[msg{"a", `{"all":1}`}] || !got[msg{"b", `{"all":1}`}] {
		t.Fatalf("room message: %v", got)
	}
	if err := hub.Notify(ctx, "sales", protocol.PeerID(b.ID()), []byte(`"just b"`)); err != nil {
		t.Fatal(err)
	}
	if m := waitChan(t, msgs, "peer message"); m != (msg{"b", `"just b"`}) {
		t.Fatalf("peer message: %v", m)
	}
	if err := hub.UpdateMeta(ctx, "sales", protocol.PeerID(a.ID()), []byte(`{"hand":"up"}`)); err != nil {
		t.Fatal(err)
	}
	p := waitChan(t, updated, "peer-updated")
	if p.ID() != a.ID() || string(p.Meta()) != `{"hand":"up"}` || p.Identity() != "alice" {
		t.Fatalf("updated %s identity %q meta %s", p.ID(), p.Identity(), p.Meta())
	}
	select {
	case m := <-msgs:
		t.Fatalf("unexpected message %v", m)
	default:
	}
}
