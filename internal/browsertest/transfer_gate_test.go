package browsertest

import (
	"testing"
	"time"
)

// A receiver whose gate has not opened (the binds of a code transfer not checked yet) keeps
// what the channel brings only up to a bound: a sender that floods it before the check (two
// RTCPeerConnections in the page, 2 MiB sent) ends the transfer with a protocol error instead
// of filling the page's memory.
func TestTransferGateBoundsHeld(t *testing.T) {
	e := setup(t, 30*time.Second)
	pg := e.page("gate")
	got := eval[string](pg, `(async () => {
		const { receiveOverChannel, LABEL, PROTOCOL } = await import(new URL('transfer.js', location.href).href);
		const a = new RTCPeerConnection(), b = new RTCPeerConnection();
		a.onicecandidate = (ev) => ev.candidate && b.addIceCandidate(ev.candidate);
		b.onicecandidate = (ev) => ev.candidate && a.addIceCandidate(ev.candidate);
		const ch = a.createDataChannel(LABEL, { protocol: PROTOCOL });
		const theirs = new Promise((res) => { b.ondatachannel = (ev) => res(ev.channel); });
		await a.setLocalDescription();
		await b.setRemoteDescription(a.localDescription);
		await b.setLocalDescription();
		await a.setRemoteDescription(b.localDescription);
		await new Promise((res) => { ch.onopen = res; });
		const rch = await theirs;
		const done = receiveOverChannel(rch, { gate: new Promise(() => {}) }).then(
			() => 'resolved', (err) => 'rejected: ' + err.code + ': ' + err.message);
		const chunk = new Uint8Array(64 * 1024);
		for (let i = 0; i < 32 && ch.readyState === 'open'; i++) {
			while (ch.bufferedAmount > 256 * 1024 && ch.readyState === 'open') await new Promise((r) => setTimeout(r, 5));
			if (ch.readyState === 'open') ch.send(chunk); // the receiver closes it when it gives up
		}
		const out = await Promise.race([done, new Promise((r) => setTimeout(() => r('still waiting'), 10000))]);
		a.close(); b.close();
		return out;
	})()`)
	if got != "rejected: protocol: switchboard-file: protocol: the sender sent more than 1048576 bytes before the connection was checked" {
		t.Fatalf("a flood before the gate: %s", got)
	}
}
