package browsertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/transfer"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// transferJoin joins the page to room with meta {role} and the modules switchboard.js and
// transfer.js loaded as window.X.sb and window.X.tr.
func transferJoin(p *page, wsURL, room, role string) string {
	p.t.Helper()
	return eval[string](p, `(async () => {
		const sb = await import(new URL('switchboard.js', location.href).href);
		const tr = await import(new URL('transfer.js', location.href).href);
		window.X = { sb, tr, peers: [] };
		X.client = await sb.join(`+js(wsURL)+`, `+js(room)+`, {
			name: 'page-'+`+js(role)+`, meta: { role: `+js(role)+` },
			onPeer(peer) {
				X.peers.push(peer);
				if (`+js(role)+` === 'recv') {
					X.have = {}; // bytes of each file received so far
					X.recv = tr.receiveFiles(peer, { onProgress: (p) => { X.progress = p; X.have[p.name] = p.bytes; } })
						.then((r) => (X.res = r), (e) => { X.err = String(e); throw e; });
				}
			},
			onError(peer, err) { T.errors.push(String(err)); },
		});
		return X.client.id;
	})()`)
}

// TestTransferGoToPage sends a file with internal/transfer's sender, exactly as
// `switchboard send` does, to a page receiving with transfer.js, and compares the bytes the
// page assembled. The sender's progress is what the page confirmed: at each report, the page
// has at least the bytes reported (it acknowledges after it has them), and the page's
// acknowledgements arrive during the file, not only at its end.
func TestTransferGoToPage(t *testing.T) {
	e := setup(t, 60*time.Second)
	room := "xfer-go2page"
	pg := e.page("recv")
	transferJoin(pg, e.wsURL, room, "recv")

	data := make([]byte, 3<<20+12345)
	_, _ = rand.Read(data)
	path := filepath.Join(t.TempDir(), "report v1.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.browser, 40*time.Second)
	defer cancel()
	peers := make(chan *sdk.Peer, 4)
	c, err := sdk.Dial(ctx, e.wsURL, room, &sdk.Options{
		Meta: map[string]string{"role": "send"}, Loopback: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnPeer: func(p *sdk.Peer) {
			if transferRole(p) != "send" {
				peers <- p
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	var p *sdk.Peer
	select {
	case p = <-peers:
	case <-ctx.Done():
		t.Fatal("no receiver peer")
	}
	select {
	case <-p.Connected():
	case <-ctx.Done():
		t.Fatalf("not connected\npage log:\n%s", pg.log())
	}
	dc, err := p.CreateDataChannel(transfer.Label, transfer.DataChannelInit())
	if err != nil {
		t.Fatal(err)
	}
	var reports []transfer.Progress
	var tooMuch []string
	sopts := &transfer.SendOptions{ProgressInterval: time.Nanosecond, Progress: func(p transfer.Progress) {
		if have := eval[int64](pg, `X.have[`+js(p.Name)+`] || 0`); p.Bytes > have {
			tooMuch = append(tooMuch, fmt.Sprintf("reported %d, the page had %d", p.Bytes, have))
		}
		reports = append(reports, p)
	}}
	t0 := time.Now()
	results, err := transfer.NewSender(dc, sopts).Send(ctx, []string{path})
	if err != nil {
		t.Fatalf("send: %v (results %+v)\npage: %v", err, results, eval[any](pg, `X.err || null`))
	}
	if len(results) != 1 || results[0].Err != nil {
		t.Fatalf("results %+v", results)
	}
	t.Logf("Go → page: %d bytes in %v", len(data), time.Since(t0).Round(time.Millisecond))
	if len(tooMuch) > 0 {
		t.Fatalf("the sender reported bytes the page did not have: %v", tooMuch)
	}
	partial := 0
	for _, p := range reports {
		if p.ReceiverAcks && !p.Done && p.Bytes > 0 && p.Bytes < p.Size {
			partial++
		}
	}
	if last := reports[len(reports)-1]; partial == 0 || !last.Done || !last.ReceiverAcks || last.Bytes != int64(len(data)) {
		t.Fatalf("%d reports of confirmed bytes during the file; last report %+v", partial, last)
	}

	got := eval[map[string]any](pg, `X.recv.then(async (r) => {
		const f = r[0].file;
		const url = await new Promise((resolve, reject) => {
			const fr = new FileReader();
			fr.onload = () => resolve(fr.result); fr.onerror = () => reject(fr.error);
			fr.readAsDataURL(f.blob);
		});
		return { n: r.length, name: f.name, size: f.size, sha256: f.sha256, url: f.url, b64: url.slice(url.indexOf(',') + 1) };
	})`)
	if got["n"].(float64) != 1 || got["name"] != "report v1.bin" || got["size"].(float64) != float64(len(data)) {
		t.Fatalf("page got %v %v %v", got["n"], got["name"], got["size"])
	}
	b, err := base64.StdEncoding.DecodeString(got["b64"].(string))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if !bytes.Equal(b, data) {
		t.Fatalf("page's bytes differ: %d bytes, sha256 %x, want %x", len(b), sha256.Sum256(b), sum)
	}
	if got["sha256"] != hex.EncodeToString(sum[:]) {
		t.Fatalf("page's sha256 %v, want %x", got["sha256"], sum)
	}
	if u, _ := got["url"].(string); len(u) < 5 || u[:5] != "blob:" {
		t.Fatalf("url %q", u)
	}
	if errs := pg.errors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}

// TestTransferPageToGo "drops" a File made in the page and sends it with transfer.js to
// internal/transfer's receiver, exactly as `switchboard recv` runs it. The receiver is held
// at the start of the file (its progress hook blocks) until the page has queued all of it:
// the page's progress must show nothing confirmed meanwhile, then the receiver's
// acknowledgements, then the file done.
func TestTransferPageToGo(t *testing.T) {
	e := setup(t, 60*time.Second)
	room := "xfer-page2go"
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(e.browser, 40*time.Second)
	defer cancel()
	held, release := make(chan struct{}), make(chan struct{})
	holding := false
	hold := func(transfer.Progress) { // on Run's goroutine: the first report, the file's start
		if holding {
			return
		}
		holding = true
		close(held)
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	recvs := make(chan *transfer.Receiver, 1)
	c, err := sdk.Dial(ctx, e.wsURL, room, &sdk.Options{
		Meta: map[string]string{"role": "recv"}, Loopback: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnPeer: func(p *sdk.Peer) {
			p.OnDataChannel(func(dc *webrtc.DataChannel) {
				if !transfer.Accept(dc) {
					return
				}
				select {
				case recvs <- transfer.NewReceiver(dc, transfer.ReceiveOptions{Dir: dir, Progress: hold}):
				default:
					_ = dc.Close()
				}
			})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()

	pg := e.page("send")
	transferJoin(pg, e.wsURL, room, "send")
	// The page sends like the CLI: to the first peer not announcing itself as a sender, once
	// connected. Two files: a random one and an empty one.
	eval[bool](pg, `(async () => {
		const peer = await new Promise((resolve, reject) => {
			const end = Date.now() + 10000;
			(function poll() {
				const p = X.peers.find((p) => !(p.meta && p.meta.role === 'send'));
				if (p) return resolve(p);
				if (Date.now() > end) return reject(new Error('no receiver'));
				setTimeout(poll, 20);
			})();
		});
		await peer.connected;
		const bytes = new Uint8Array(2 * 1024 * 1024 + 777);
		for (let i = 0; i < bytes.length; i += 65536) crypto.getRandomValues(bytes.subarray(i, Math.min(i + 65536, bytes.length)));
		const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
		X.want = Array.from(d, (x) => x.toString(16).padStart(2, '0')).join('');
		const files = [new File([bytes], 'dropped.bin'), new File([], 'empty.txt')];
		X.reports = [];
		let queued;
		X.queued = new Promise((resolve) => { queued = resolve; });
		const onProgress = (p) => {
			X.reports.push({ ...p });
			if (p.name === 'dropped.bin' && (p.sent ?? p.bytes) >= bytes.length) queued(true);
		};
		X.sending = X.tr.sendFiles(peer, files, { onProgress })
			.then((r) => (X.sent = r.map((x) => ({ name: x.name, size: x.size, sha256: x.sha256, error: x.error && String(x.error) }))),
				(e) => { X.err = String(e); throw e; });
		return true;
	})()`)
	var r *transfer.Receiver
	select {
	case r = <-recvs:
	case <-ctx.Done():
		t.Fatalf("no transfer channel from the page\npage log:\n%s", pg.log())
	}
	t0 := time.Now()
	type runResult struct {
		results []transfer.Result
		err     error
	}
	ran := make(chan runResult, 1)
	go func() {
		rs, err := r.Run(ctx)
		ran <- runResult{rs, err}
	}()
	defer func() { // Run stops with ctx if the test fails before the end
		cancel()
		<-ran
	}()
	select {
	case <-held:
	case <-ctx.Done():
		t.Fatalf("the receiver never started the file\npage log:\n%s", pg.log())
	}
	eval[bool](pg, `X.queued`) // the page queued every byte of the file
	type report struct {
		Name  string `json:"name"`
		Bytes int64  `json:"bytes"`
		Sent  int64  `json:"sent"`
		Size  int64  `json:"size"`
		Done  bool   `json:"done"`
		Acks  bool   `json:"acks"`
	}
	for _, p := range eval[[]report](pg, `X.reports`) {
		if p.Bytes != 0 || p.Done || p.Acks {
			t.Fatalf("while the receiver held, with nothing written, the page reported %+v", p)
		}
	}
	close(release)
	var rr runResult
	select {
	case rr = <-ran:
		ran <- rr // for the deferred wait
	case <-ctx.Done():
		t.Fatal("the receiver did not finish")
	}
	results, err := rr.results, rr.err
	if err != nil {
		t.Fatalf("receive: %v (results %+v)", err, results)
	}
	t.Logf("page → Go: %+v in %v", results, time.Since(t0).Round(time.Millisecond))
	sent := eval[[]map[string]any](pg, `X.sending`)
	want := eval[string](pg, `X.want`)
	if len(results) != 2 || len(sent) != 2 {
		t.Fatalf("Go results %+v, page results %v", results, sent)
	}
	for _, s := range sent {
		if s["error"] != nil {
			t.Errorf("page: %v", s)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "dropped.bin"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != want || len(b) != 2*1024*1024+777 {
		t.Fatalf("received %d bytes, sha256 %x; the page's bytes have sha256 %s", len(b), sum, want)
	}
	if sent[0]["sha256"] != want { // transfer.js's own SHA-256 against crypto.subtle's
		t.Fatalf("transfer.js sha256 %v, crypto.subtle %s", sent[0]["sha256"], want)
	}
	if fi, err := os.Stat(filepath.Join(dir, "empty.txt")); err != nil || fi.Size() != 0 {
		t.Fatalf("empty.txt: %v %v", fi, err)
	}
	// After the hold: the receiver's acknowledgements, growing, then the file done.
	var prev int64
	partial, doneAt := 0, -1
	reps := eval[[]report](pg, `X.reports`)
	for i, p := range reps {
		if p.Name != "dropped.bin" {
			continue
		}
		if p.Bytes < prev || p.Bytes > p.Sent || p.Bytes > p.Size {
			t.Fatalf("report %+v after %d confirmed", p, prev)
		}
		prev = p.Bytes
		if p.Acks && !p.Done && p.Bytes > 0 && p.Bytes < p.Size {
			partial++
		}
		if p.Done {
			doneAt = i
		}
	}
	if partial == 0 || doneAt < 0 || reps[doneAt].Bytes != 2*1024*1024+777 {
		t.Fatalf("%d reports of confirmed bytes during the file, done at %d: %+v", partial, doneAt, reps)
	}
	if errs := pg.errors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
}

// TestTransferSHA256 checks transfer.js's SHA-256 against Go's at block boundaries, fed in
// odd pieces.
func TestTransferSHA256(t *testing.T) {
	e := setup(t, 30*time.Second)
	pg := e.page("sha")
	got := eval[[]string](pg, `(async () => {
		const { SHA256 } = await import(new URL('transfer.js', location.href).href);
		const out = [];
		for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 100000]) {
			const b = new Uint8Array(n).map((_, i) => (i * 31 + 7) & 255);
			const h = new SHA256();
			for (let i = 0; i < n; i += 37) h.update(b.subarray(i, Math.min(i + 37, n)));
			out.push(h.hex());
		}
		return out;
	})()`)
	for i, n := range []int{0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 100000} {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(j*31 + 7)
		}
		if want := sha256.Sum256(b); got[i] != hex.EncodeToString(want[:]) {
			t.Errorf("sha256 of %d bytes: %s, want %x", n, got[i], want)
		}
	}
}

// transferRole returns the role a peer announced in its meta, as cmd/switchboard does.
func transferRole(p *sdk.Peer) string {
	m := struct {
		Role string `json:"role"`
	}{}
	_ = json.Unmarshal(p.Meta(), &m)
	return m.Role
}

// TestTransferRefused has internal/transfer's receiver refuse a file the page sends (it
// exists): transfer.js stops that file, reports the receiver's code and sends the next one.
// The other way, a page refuses a file through accept and the Go sender reports the code.
func TestTransferRefused(t *testing.T) {
	e := setup(t, 60*time.Second)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(e.browser, 40*time.Second)
	defer cancel()

	// Page → Go: "taken.bin" exists at the receiver.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "taken.bin"), []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	recvs := make(chan *transfer.Receiver, 1)
	c, err := sdk.Dial(ctx, e.wsURL, "xfer-refused", &sdk.Options{
		Meta: map[string]string{"role": "recv"}, Loopback: true, Logger: quiet,
		OnPeer: func(p *sdk.Peer) {
			p.OnDataChannel(func(dc *webrtc.DataChannel) {
				if transfer.Accept(dc) {
					recvs <- transfer.NewReceiver(dc, transfer.ReceiveOptions{Dir: dir})
				}
			})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	pg := e.page("send")
	transferJoin(pg, e.wsURL, "xfer-refused", "send")
	eval[bool](pg, `(async () => {
		const end = Date.now() + 10000;
		while (!X.peers.length && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
		const big = new Uint8Array(4 * 1024 * 1024).fill(7);
		X.sending = X.tr.sendFiles(X.peers[0], [new File([big], 'taken.bin'), new File(['fine'], 'fine.txt')])
			.then((r) => r.map((x) => ({ name: x.name, code: x.error ? x.error.code : '' })));
		return true;
	})()`)
	var r *transfer.Receiver
	select {
	case r = <-recvs:
	case <-ctx.Done():
		t.Fatalf("no transfer channel\npage log:\n%s", pg.log())
	}
	results, err := r.Run(ctx)
	var fe *transfer.FileError
	if err == nil || len(results) != 2 || !errors.As(results[0].Err, &fe) || results[1].Err != nil {
		t.Fatalf("Go receiver: %v, %+v", err, results)
	}
	sent := eval[[]map[string]string](pg, `X.sending`)
	if len(sent) != 2 || sent[0]["code"] != transfer.CodeExists || sent[1]["code"] != "" {
		t.Fatalf("page results %v", sent)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "taken.bin")); string(b) != "original" {
		t.Fatalf("taken.bin overwritten: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "fine.txt")); string(b) != "fine" {
		t.Fatalf("fine.txt: %q", b)
	}

	// Go → page: the page refuses "no.bin" with "exists".
	rp := e.page("recv")
	eval[string](rp, `(async () => {
		const sb = await import(new URL('switchboard.js', location.href).href);
		const tr = await import(new URL('transfer.js', location.href).href);
		window.X = { peers: [] };
		X.client = await sb.join(`+js(e.wsURL)+`, "xfer-refused-2", { meta: { role: 'recv' }, onPeer(peer) {
			X.recv = tr.receiveFiles(peer, { accept: (name) => (name === 'no.bin' ? 'exists' : '') })
				.then((r) => r.map((x) => ({ name: x.name, code: x.error ? x.error.code : '', size: x.file ? x.file.blob.size : -1 })));
		} });
		return X.client.id;
	})()`)
	src := t.TempDir()
	for name, size := range map[string]int{"no.bin": 1 << 20, "yes.bin": 1000} {
		if err := os.WriteFile(filepath.Join(src, name), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	peers := make(chan *sdk.Peer, 1)
	s, err := sdk.Dial(ctx, e.wsURL, "xfer-refused-2", &sdk.Options{
		Meta: map[string]string{"role": "send"}, Loopback: true, Logger: quiet,
		OnPeer: func(p *sdk.Peer) { peers <- p },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	var p *sdk.Peer
	select {
	case p = <-peers:
	case <-ctx.Done():
		t.Fatal("the Go sender never saw the page")
	}
	select {
	case <-p.Connected():
	case <-ctx.Done():
		t.Fatal("not connected")
	}
	dc, err := p.CreateDataChannel(transfer.Label, transfer.DataChannelInit())
	if err != nil {
		t.Fatal(err)
	}
	sres, err := transfer.NewSender(dc, nil).Send(ctx, []string{filepath.Join(src, "no.bin"), filepath.Join(src, "yes.bin")})
	if err == nil || len(sres) != 2 || !errors.As(sres[0].Err, &fe) || fe.Code != transfer.CodeExists || sres[1].Err != nil {
		t.Fatalf("Go sender: %v, %+v", err, sres)
	}
	got := eval[[]map[string]any](rp, `X.recv`)
	if len(got) != 2 || got[0]["code"] != "exists" || got[1]["code"] != "" || got[1]["size"].(float64) != 1000 {
		t.Fatalf("page results %v", got)
	}
	for _, pg := range []*page{pg, rp} {
		if errs := pg.errors(); len(errs) > 0 {
			t.Errorf("%s errors: %v", pg.name, errs)
		}
	}
}

// TestTransferPageToPage sends a file between two pages, both on transfer.js.
func TestTransferPageToPage(t *testing.T) {
	e := setup(t, 40*time.Second)
	recv, send := e.page("recv"), e.page("send")
	transferJoin(recv, e.wsURL, "xfer-pages", "recv")
	transferJoin(send, e.wsURL, "xfer-pages", "send")
	want := eval[string](send, `(async () => {
		const end = Date.now() + 10000;
		while (!X.peers.length && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
		const bytes = new Uint8Array(1024 * 1024 + 3).map((_, i) => (i * 7) & 255);
		const r = await X.tr.sendFiles(X.peers[0], [new File([bytes], 'p2p.bin')]);
		if (r[0].error) throw r[0].error;
		return r[0].sha256;
	})()`)
	got := eval[map[string]any](recv, `X.recv.then((r) => ({ n: r.length, sha256: r[0].file.sha256, size: r[0].file.blob.size }))`)
	if got["n"].(float64) != 1 || got["sha256"] != want || got["size"].(float64) != 1024*1024+3 {
		t.Fatalf("page got %v, sender's sha256 %s", got, want)
	}
}
