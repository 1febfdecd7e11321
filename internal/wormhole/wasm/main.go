//go:build js && wasm

// Command wasm is internal/wormhole for browsers: built with GOOS=js GOARCH=wasm (go
// generate ./internal/web writes internal/web/static/wormhole.wasm.gz, served at
// /sdk/wormhole.wasm), it puts the code phrases, the PAKE sessions and the Pair that counts
// attempts on globalThis.switchboardWormhole, for /sdk/wormhole.js to drive over the browser
// SDK exactly as cmd/switchboard drives them over the Go SDK. Every call is synchronous;
// messages go in as JSON text and come out as plain objects, ready for Peer.send.
//
// The API (errors are {kind, message}; kinds: bad-code, wrong-code, left, slow, busy,
// sender-left, bad-message, binding, error):
//
//	parseCode(text)                  {code, room} or {error}
//	newCode()                        {code, room}
//	newPair(role, code)              a handle (role "send" or "recv"; a sender's code may be "")
//	setCode(h, code)                 null or {error}
//	add(h, peer)                     a step, or null when the peer is not taken (too many)
//	message(h, peer, json)           a step ({} for a message not of the exchange)
//	fail(h, peer, reason)            a step ("slow", "left", or what went wrong relaying)
//	left(h, peer)                    a step
//	ready(h, peer)                   whether the peer proved the code
//	bind(h, peer, path, local, remote)             the bind message, or {error}
//	checkBind(h, peer, json, path, local, remote)  null, or {error}
//	close(h)
//
// A step is {reply?, ready?, error?, bind?, report?, gaveUp?, lost?}: reply goes to the
// peer, bind is the peer's bind message (for checkBind), report a line for the user, lost
// the receiver's reason to stop. Fingerprints are SHA-256 in hex, with or without colons.
package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall/js"

	"github.com/switchboard-rtc/switchboard/internal/wormhole"
)

// pairs are the Pairs JavaScript holds, by handle.
var (
	pairs = map[int]*wormhole.Pair{}
	next  = 0
)

func main() {
	api := map[string]any{
		"version":        1,
		"maxWrongCodes":  wormhole.MaxWrongCodes,
		"exchangeWaitMs": wormhole.ExchangeWait.Milliseconds(),
		"bindWaitMs":     wormhole.BindWait.Milliseconds(),
		"parseCode": fn(func(a []js.Value) any {
			c, err := wormhole.ParseCode(str(a, 0))
			if err != nil {
				return errValue(err)
			}
			return codeValue(c)
		}),
		"newCode": fn(func([]js.Value) any {
			c, err := wormhole.NewCode()
			if err != nil {
				return errValue(err)
			}
			return codeValue(c)
		}),
		"newPair": fn(func(a []js.Value) any {
			role := wormhole.Receiver
			switch str(a, 0) {
			case "send":
				role = wormhole.Sender
			case "recv":
			default:
				return errValue(fmt.Errorf("a role is send or recv, not %q", str(a, 0)))
			}
			var c wormhole.Code
			if s := str(a, 1); s != "" {
				var err error
				if c, err = wormhole.ParseCode(s); err != nil {
					return errValue(err)
				}
			}
			next++
			pairs[next] = wormhole.NewPair(role, c)
			return next
		}),
		"setCode": onPair(func(p *wormhole.Pair, a []js.Value) any {
			c, err := wormhole.ParseCode(str(a, 1))
			if err != nil {
				return errValue(err)
			}
			p.SetCode(c)
			return nil
		}),
		"add": onPair(func(p *wormhole.Pair, a []js.Value) any {
			st, ok := p.Add(str(a, 1))
			if !ok {
				return nil
			}
			return stepValue(st)
		}),
		"message": onPair(func(p *wormhole.Pair, a []js.Value) any {
			return stepValue(p.Message(str(a, 1), []byte(str(a, 2))))
		}),
		"fail": onPair(func(p *wormhole.Pair, a []js.Value) any {
			var err error
			switch r := str(a, 2); r {
			case "slow":
				err = wormhole.ErrSlow
			case "left":
				err = wormhole.ErrLeft
			default:
				err = errors.New(r)
			}
			return stepValue(p.Fail(str(a, 1), err))
		}),
		"left": onPair(func(p *wormhole.Pair, a []js.Value) any {
			return stepValue(p.Left(str(a, 1)))
		}),
		"ready": onPair(func(p *wormhole.Pair, a []js.Value) any {
			return p.Ready(str(a, 1))
		}),
		"bind": onPair(func(p *wormhole.Pair, a []js.Value) any {
			s := p.Session(str(a, 1))
			if s == nil {
				return errValue(fmt.Errorf("%w: bind before the key is confirmed", wormhole.ErrMsg))
			}
			local, remote, err := fingerprints(str(a, 3), str(a, 4))
			if err != nil {
				return errValue(err)
			}
			m, err := s.Bind(str(a, 2), local, remote)
			if err != nil {
				return errValue(err)
			}
			return msgValue(m)
		}),
		"checkBind": onPair(func(p *wormhole.Pair, a []js.Value) any {
			s := p.Session(str(a, 1))
			if s == nil {
				return errValue(fmt.Errorf("%w: bind before the key is confirmed", wormhole.ErrMsg))
			}
			m, err := wormhole.DecodeMsg([]byte(str(a, 2)))
			if err != nil {
				return errValue(err)
			}
			local, remote, err := fingerprints(str(a, 4), str(a, 5))
			if err != nil {
				return errValue(err)
			}
			if err := s.CheckBind(m, str(a, 3), local, remote); err != nil {
				return errValue(err)
			}
			return nil
		}),
		"close": fn(func(a []js.Value) any {
			if len(a) > 0 && a[0].Type() == js.TypeNumber {
				delete(pairs, a[0].Int())
			}
			return nil
		}),
	}
	js.Global().Set("switchboardWormhole", js.ValueOf(api))
	select {} // the functions live as long as the page
}

// fn makes f a JavaScript function. A panic becomes an error value: the Go program must
// outlive any input (a panic left to itself would end it, and every later call would fail).
func fn(f func(args []js.Value) any) js.Func {
	return js.FuncOf(func(_ js.Value, args []js.Value) (v any) {
		defer func() {
			if r := recover(); r != nil {
				v = errValue(fmt.Errorf("internal error: %v", r))
			}
		}()
		return f(args)
	})
}

// onPair is fn for the functions whose first argument is a Pair's handle.
func onPair(f func(p *wormhole.Pair, args []js.Value) any) js.Func {
	return fn(func(a []js.Value) any {
		if len(a) == 0 || a[0].Type() != js.TypeNumber || pairs[a[0].Int()] == nil {
			return errValue(errors.New("no such exchange (closed?)"))
		}
		return f(pairs[a[0].Int()], a)
	})
}

// str returns argument i as a string ("" when missing or not a string).
func str(a []js.Value, i int) string {
	if i >= len(a) || a[i].Type() != js.TypeString {
		return ""
	}
	return a[i].String()
}

func codeValue(c wormhole.Code) any {
	return map[string]any{"code": c.String(), "room": c.Room()}
}

// jsonValue turns v into a plain JavaScript object through JSON (the shape the Go SDK sends).
func jsonValue(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return errValue(err)
	}
	return js.Global().Get("JSON").Call("parse", string(b))
}

func msgValue(m wormhole.Msg) any { return jsonValue(m) }

func stepValue(st wormhole.Step) any {
	v := map[string]any{}
	if st.Reply != nil {
		v["reply"] = msgValue(*st.Reply)
	}
	if st.Ready {
		v["ready"] = true
	}
	if st.Err != nil {
		v["error"] = errObject(st.Err)
	}
	if st.Bind != nil {
		v["bind"] = msgValue(*st.Bind)
	}
	if st.Report != "" {
		v["report"] = st.Report
	}
	if st.GaveUp {
		v["gaveUp"] = true
	}
	if st.Lost != nil {
		v["lost"] = errObject(st.Lost)
	}
	return v
}

func errValue(err error) any { return map[string]any{"error": errObject(err)} }

func errObject(err error) map[string]any {
	return map[string]any{"kind": kind(err), "message": err.Error()}
}

// kind names what went wrong, for the page to say it its way.
func kind(err error) string {
	for _, k := range []struct {
		err  error
		kind string
	}{
		{wormhole.ErrCode, "bad-code"},
		{wormhole.ErrWrongCode, "wrong-code"},
		{wormhole.ErrSenderLeft, "sender-left"},
		{wormhole.ErrLeft, "left"},
		{wormhole.ErrSlow, "slow"},
		{wormhole.ErrBusy, "busy"},
		{wormhole.ErrBinding, "binding"},
		{wormhole.ErrMsg, "bad-message"},
	} {
		if errors.Is(err, k.err) {
			return k.kind
		}
	}
	return "error"
}

// fingerprints decodes two SHA-256 fingerprints ("AB:CD:..." as in SDP, or plain hex).
func fingerprints(local, remote string) (l, r []byte, err error) {
	if l, err = fingerprint(local); err != nil {
		return nil, nil, fmt.Errorf("local certificate: %w", err)
	}
	if r, err = fingerprint(remote); err != nil {
		return nil, nil, fmt.Errorf("remote certificate: %w", err)
	}
	return l, r, nil
}

func fingerprint(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("%q is not a SHA-256 fingerprint", s)
	}
	return b, nil
}
