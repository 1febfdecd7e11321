package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// The newcomer: a legitimate client from an address the attack has not used, arriving
// while the attack is at its height. It must get everything a user needs: a native
// WebSocket that joins a room and relays a message to a second peer, a Socket.IO client
// (long-polling, as socket.io-client starts) that connects and relays a message to another
// socket, and a TURN relay allocated over UDP and over TCP with the credentials of its
// welcome. Each step is bounded; the result names the steps that failed.

// newcomerResult is the outcome of one probe.
type newcomerResult struct {
	steps []string // "ws:ok", "sio:503", "udp:486", ...
	errs  []string // what the failed steps said
	ok    bool
	took  time.Duration
}

// String is "ok" or the steps, e.g. "FAIL(ws:ok,sio:503,udp:ok,tcp:ok)".
func (r newcomerResult) String() string {
	if r.ok {
		return "ok"
	}
	return "FAIL(" + strings.Join(r.steps, ",") + ")"
}

// errNoCredentials is a newcomer that got no TURN credentials: its join failed, or the
// server runs no TURN.
var errNoCredentials = errors.New("no TURN credentials: the join failed or the server runs no TURN")

// probeNewcomer runs the probe from src against server (http://host:port).
func probeNewcomer(ctx context.Context, server string, src netip.Addr) newcomerResult {
	start := time.Now()
	res := newcomerResult{ok: true}
	var mu sync.Mutex
	step := func(name string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			res.ok = false
			res.steps = append(res.steps, name+":"+turnKey(err))
			res.errs = append(res.errs, name+": "+err.Error())
			return
		}
		res.steps = append(res.steps, name+":ok")
	}
	var wg sync.WaitGroup
	var creds turnCreds
	var haveCreds bool
	wg.Add(2)
	go func() {
		defer wg.Done()
		ws, err := newcomerWS(ctx, server, src)
		step("ws", err)
		creds, haveCreds = credsFrom(ws.ICEServers)
	}()
	go func() {
		defer wg.Done()
		step("sio", newcomerSIO(ctx, server, src))
	}()
	wg.Wait()
	if !haveCreds {
		step("turn", errNoCredentials)
	} else {
		for _, tcp := range []bool{false, true} {
			name := "udp"
			if tcp {
				name = "tcp"
			}
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			a, err := turnAllocate(actx, creds, src, tcp)
			cancel()
			step(name, err)
			if a != nil {
				a.close()
			}
		}
	}
	res.took = time.Since(start)
	return res
}

// newcomerWS joins two peers from src to a fresh room and relays one message from the
// first to the second; it returns the first's welcome.
func newcomerWS(ctx context.Context, server string, src netip.Addr) (welcome, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(server, "http") + "/ws"
	room := "newcomer-" + randHex(6)
	a, wa, err := dialNative(ctx, url, src, room)
	if err != nil {
		return welcome{}, err
	}
	defer func() { _ = a.CloseNow() }()
	b, wb, err := dialNative(ctx, url, src, room)
	if err != nil {
		return wa, err
	}
	defer func() { _ = b.CloseNow() }()
	msg := fmt.Appendf(nil, `{"type":"message","target":%q,"data":{"hello":"newcomer"}}`, wb.Peer)
	if err := a.Write(ctx, websocket.MessageText, msg); err != nil {
		return wa, fmt.Errorf("relay: %w", err)
	}
	for {
		_, p, err := b.Read(ctx)
		if err != nil {
			return wa, fmt.Errorf("wait for the relayed message: %w", err)
		}
		var m struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(p, &m) == nil && m.Type == "message" {
			_ = a.Close(websocket.StatusNormalClosure, "")
			_ = b.Close(websocket.StatusNormalClosure, "")
			return wa, nil
		}
	}
}

// newcomerSIO connects two Socket.IO sockets from src over long-polling (in the lobby) and
// relays one message from the first to the second.
func newcomerSIO(ctx context.Context, server string, src netip.Addr) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	e := newEIOClient(server, src, 4)
	defer e.close()
	sidA, _, err := e.connectSIO(ctx)
	if sidA != "" {
		defer func() { _ = e.post(context.WithoutCancel(ctx), sidA, "1") }()
	}
	if err != nil {
		return err
	}
	sidB, idB, err := e.connectSIO(ctx)
	if sidB != "" {
		defer func() { _ = e.post(context.WithoutCancel(ctx), sidB, "1") }()
	}
	if err != nil {
		return err
	}
	if err := e.post(ctx, sidA, fmt.Sprintf(`42["message",{"target":%q,"hello":"newcomer"}]`, idB)); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	for range 8 {
		pkts, err := e.get(ctx, sidB)
		if err != nil {
			return fmt.Errorf("wait for the relayed message: %w", err)
		}
		for _, p := range pkts {
			if strings.HasPrefix(p, `42["message"`) {
				return nil
			}
		}
	}
	return fmt.Errorf("no relayed message in 8 polls")
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// runNewcomer is the probe on its own, for trying a server by hand.
func runNewcomer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("newcomer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "http://127.0.0.1:8080", "the server's base URL")
	src := fs.String("src", "127.0.0.200", "the newcomer's source address")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	a, err := netip.ParseAddr(*src)
	if err != nil {
		return fmt.Errorf("--src: %w", err)
	}
	r := probeNewcomer(ctx, *server, a)
	fmt.Fprintf(stdout, "newcomer from %s: %s in %d ms (%s)\n", a, r, r.took.Milliseconds(), strings.Join(r.steps, ","))
	if !r.ok {
		return fmt.Errorf("newcomer not served")
	}
	return nil
}
