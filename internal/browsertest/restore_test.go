package browsertest

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/internal/web"
)

// The server under two browser SDK pages dies (their connections go silent, then it stops)
// and a new one with the same resume secret starts on the same address; a is restored from
// its token first, b a moment later. Both relay numbered messages to each other all along.
// Relays the dead server had acked but never written, and relays the new one cannot tell
// apart from ones it had relayed (its memory of relay ids died with it), go again as retries;
// the receiving SDK drops those it has: every number arrives once and in order.
func TestBrowserRestoredRelaysOnce(t *testing.T) {
	requireChromium(t)
	pages := httptest.NewServer(web.Handler())
	t.Cleanup(pages.Close)
	run := func(addr string) (string, func()) {
		srv, stop := testserver.RunStoppable(t, func(c *config.Config) {
			c.Listen = addr
			c.ShutdownTimeout = time.Second
			c.ResumeSecret = "browsertest-restore-secret-0123456789abcdef"
			c.AllowedOrigins = append(c.AllowedOrigins, pages.URL)
		})
		return srv.Addr().String(), stop
	}
	addr, stop1 := run("127.0.0.1:0")
	e := &env{t: t, wsURL: "ws://" + addr + "/ws", browser: startChromium(t, 90*time.Second)}
	e.pageURL = pages.URL + "/sdk/test.html?ws=" + e.wsURL
	pa, pb := testserver.NewCutter(t, addr), testserver.NewCutter(t, addr)
	a, b := e.page("A"), e.page("B")
	room := "restore-relays"
	idA := eval[string](a, `T.join(`+js("ws://"+pa.Addr()+"/ws")+`, `+js(room)+`, "A")`)
	idB := eval[string](b, `T.join(`+js("ws://"+pb.Addr()+"/ws")+`, `+js(room)+`, "B")`)
	eval[bool](a, `T.waitConnected(`+js(idB)+`)`)
	eval[bool](b, `T.waitConnected(`+js(idA)+`)`)
	// Each page relays {n} to the other every 40 ms (at most 1000), errors counted.
	pace := func(p *page, to string) {
		eval[bool](p, `(() => {
			T.sent = 0; T.sendErrors = [];
			T.pacer = setInterval(() => {
				if (T.sent >= 1000) return clearInterval(T.pacer);
				const n = ++T.sent;
				T.peer(`+js(to)+`).send({ n }).catch((e) => T.sendErrors.push(n + ': ' + e.message));
			}, 40);
			return true;
		})()`)
	}
	pace(a, idB)
	pace(b, idA)
	waitCount := func(p *page, n int) {
		eval[bool](p, fmt.Sprintf(`T.until(() => T.messages.length >= %d, 15000, '%d relayed messages')`, n, n))
	}
	waitCount(a, 5)
	waitCount(b, 5)

	pa.Sever()
	pb.Sever()
	stop1()
	run(addr)
	pa.Cut()
	eval[map[string]any](a, `T.waitReconnect("reconnected")`)
	// a relays to b while b is away (held for it as a peer expected back).
	mark := eval[int](a, `T.sent`)
	eval[bool](a, fmt.Sprintf(`T.until(() => T.sent >= %d, 10000, 'a sending on')`, mark+5))
	pb.Cut()
	eval[map[string]any](b, `T.waitReconnect("reconnected")`)
	waitCount(b, mark+5)

	for _, p := range []*page{a, b} {
		eval[bool](p, `(clearInterval(T.pacer), true)`)
	}
	for _, c := range []struct {
		from, to *page
	}{{a, b}, {b, a}} {
		sent := eval[int](c.from, `T.sent`)
		waitCount(c.to, sent)
		got := eval[[]int](c.to, `T.messages.map((m) => m.data.n)`)
		var faults []string
		for i, n := range got {
			if n != i+1 {
				faults = append(faults, fmt.Sprintf("#%d is %d", i+1, n))
			}
		}
		if len(got) != sent || len(faults) > 0 {
			t.Fatalf("%s got %d of %s's %d relays: %s", c.to.name, len(got), c.from.name, sent, strings.Join(faults, ", "))
		}
		if errs := eval[[]string](c.from, `T.sendErrors`); len(errs) > 0 {
			t.Fatalf("%s's relays failed: %v", c.from.name, errs)
		}
	}
	for _, p := range []*page{a, b} {
		if got := eval[map[string]any](p, `T.reconnects.find((r) => r.event === "reconnected")`); got["resumed"] != true {
			t.Fatalf("%s was not restored: %v", p.name, got)
		}
		if errs := eval[[]string](p, `T.errors`); len(errs) > 0 {
			t.Fatalf("%s reported errors: %v", p.name, errs)
		}
	}
}
