package browsertest

import (
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/config"
)

// relayJoin joins room from the page with iceTransportPolicy "relay", echoing every
// data-channel message, and returns the page's peer id. R.peer is the remote peer.
const relayJoin = `(async (ws, room) => {
	const m = await import('./switchboard.js');
	window.R = { peer: null, got: [] };
	const client = await m.join(ws, room, {
		iceTransportPolicy: 'relay',
		onPeer(peer) {
			window.R.peer = peer;
			peer.onDataChannel = (ch) => { ch.onmessage = (ev) => ch.send('echo:' + ev.data); };
		},
	});
	window.R.client = client;
	return client.id;
})`

// relayPair waits for the connection and returns the selected candidate pair's types and
// addresses from getStats.
const relayPair = `(async () => {
	const end = Date.now() + 15000;
	while (!(R.peer && R.peer.connectionState === 'connected')) {
		if (Date.now() > end) throw new Error('not connected: ' + (R.peer && R.peer.connectionState));
		await new Promise((r) => setTimeout(r, 20));
	}
	const stats = await R.peer.pc.getStats();
	let pairId = null;
	stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
	const pair = stats.get(pairId);
	const local = stats.get(pair.localCandidateId), remote = stats.get(pair.remoteCandidateId);
	return { local: local.candidateType, remote: remote.candidateType,
		localAddr: local.address + ':' + local.port + '/' + (local.relayProtocol || local.protocol),
		remoteAddr: remote.address + ':' + remote.port };
})()`

// turnEnv is setupWith the embedded TURN on, relaying to loopback (the relay addresses are
// 127.0.0.1), with the defaults further changed by mod.
func turnEnv(t *testing.T, mod func(*config.Config)) *env {
	t.Helper()
	return setupWith(t, 45*time.Second, func(c *config.Config) {
		c.TURN = true
		c.TURNAllowPeers = []string{"127.0.0.0/8"}
		if mod != nil {
			mod(c)
		}
	})
}

// TestBrowserRelayOnly: two Chromium pages with iceTransportPolicy "relay" connect through the
// embedded TURN with the credentials from their welcomes, exchange data, and getStats shows a
// relay ↔ relay selected pair.
func TestBrowserRelayOnly(t *testing.T) {
	e := turnEnv(t, nil)
	a, b := e.page("A"), e.page("B")
	t0 := time.Now()
	eval[string](a, relayJoin+`(`+js(e.wsURL)+`, "relay-room")`)
	eval[string](b, relayJoin+`(`+js(e.wsURL)+`, "relay-room")`)
	pairs := map[string]map[string]string{}
	for _, p := range []*page{a, b} {
		pairs[p.name] = eval[map[string]string](p, relayPair)
	}
	t.Logf("connected through TURN in %v", time.Since(t0).Round(time.Millisecond))
	got := eval[string](b, `(async () => {
		const ch = R.peer.createDataChannel('relay-chat');
		return await new Promise((resolve, reject) => {
			ch.onopen = () => ch.send('over the relay');
			ch.onmessage = (ev) => resolve(String(ev.data));
			setTimeout(() => reject(new Error('no echo')), 10000);
		});
	})()`)
	if got != "echo:over the relay" {
		t.Fatalf("B got %q", got)
	}
	for name, p := range pairs {
		t.Logf("%s selected pair: local %s %s, remote %s %s", name, p["local"], p["localAddr"], p["remote"], p["remoteAddr"])
		if p["local"] != "relay" || p["remote"] != "relay" {
			t.Errorf("%s: selected pair %s ↔ %s, want relay ↔ relay", name, p["local"], p["remote"])
		}
	}
}

// TestBrowserRefreshesTURNCredentials: a relay-only page stays in the room past the TTL of the
// credentials in its welcome; the SDK refreshes them (ice-servers request) halfway to expiry,
// so when a second relay-only page joins after they expired, both allocate relays and connect.
func TestBrowserRefreshesTURNCredentials(t *testing.T) {
	e := turnEnv(t, func(c *config.Config) {
		c.TURNTTL = 3 * time.Second // whole seconds on the wire: 1 s would leave no margin
	})
	a, b := e.page("A"), e.page("B")
	eval[string](a, relayJoin+`(`+js(e.wsURL)+`, "late")`)
	// Wait, in the page, until the welcome's credentials have expired and been replaced: this
	// test is about the passage of time.
	got := eval[map[string]float64](a, `(async () => {
		const exp = (c) => Math.min(...c.iceServers.filter((s) => s.username).map((s) => Number(s.username.split(':')[0])));
		const first = exp(R.client);
		const end = Date.now() + 15000;
		while (Date.now() < first * 1000 + 1100 || exp(R.client) <= first) {
			if (Date.now() > end) throw new Error('credentials not refreshed: ' + JSON.stringify(R.client.iceServers));
			await new Promise((r) => setTimeout(r, 100));
		}
		return { first, now: exp(R.client) };
	})()`)
	t.Logf("credentials refreshed: expiry %v → %v", got["first"], got["now"])
	eval[string](b, relayJoin+`(`+js(e.wsURL)+`, "late")`)
	if got := eval[string](b, `(async () => {
		const end = Date.now() + 15000;
		while (!R.peer) { if (Date.now() > end) throw new Error('no peer'); await new Promise((r) => setTimeout(r, 20)); }
		const ch = R.peer.createDataChannel('late');
		return await new Promise((resolve, reject) => {
			ch.onopen = () => ch.send('after expiry');
			ch.onmessage = (ev) => resolve(String(ev.data));
			setTimeout(() => reject(new Error('no echo: ' + R.peer.connectionState)), 15000);
		});
	})()`); got != "echo:after expiry" {
		t.Fatalf("B got %q", got)
	}
	if p := eval[map[string]string](a, relayPair); p["local"] != "relay" || p["remote"] != "relay" {
		t.Fatalf("A's pair %v, want relay ↔ relay", p)
	}
}
