package browsertest

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// codeJS loads wormhole.js in the page as window.W, with the server's signaling URL as W.ws
// and W.mitm: what a server between the two sides that substituted the certificate
// fingerprints makes this side see (the remote one is not the peer's).
const codeJS = `(async () => {
	window.W = Object.assign({}, await import('/sdk/wormhole.js'));
	W.ws = location.origin.replace(/^http/, 'ws') + '/ws';
	W.mitm = (fps) => { fps.remote = (fps.remote.startsWith('00') ? '11' : '00') + fps.remote.slice(2); };
	return true;
})()`

// TestCodeBindingRefusedInBrowser: with the code right but the connection not the one it
// authenticated (each side's view of the certificates altered as a man in the middle would),
// the page and the CLI both refuse before any byte of a file moves, both ways.
func TestCodeBindingRefusedInBrowser(t *testing.T) {
	base, browser := appBrowser(t, 120*time.Second)
	bin := buildCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	refused := "the connection is not the one the code authenticated"

	// `switchboard send` → page.
	file := filepath.Join(t.TempDir(), "secret.bin")
	if err := os.WriteFile(file, []byte("nobody in between may read this"), 0o644); err != nil {
		t.Fatal(err)
	}
	send := startWatched(t, ctx, bin, "send", file, "--server", base, "--loopback")
	code := send.waitOutput(t, regexp.MustCompile(`switchboard recv (\S+)`), 30*time.Second)[1]
	pg := openApp(t, browser, "P", base+"/files", 1024, 768)
	pg.waitFor(`document.body.dataset.code === 'idle'`, "the file page")
	appEval[bool](pg, codeJS)
	got := appEval[map[string]any](pg, `W.receiveWithCode(W.ws, `+js(code)+`, { alterFingerprints: W.mitm, onProgress: () => { W.progress = true; } })
		.then((r) => ({ kind: 'received', n: r.length }), (e) => ({ kind: e.kind, message: e.message, progress: !!W.progress }))`)
	if got["kind"] != "binding" || !strings.HasPrefix(got["message"].(string), "The connection is not the one the code authenticated") || got["progress"] != false {
		t.Fatalf("the page, its view altered: %v %v", got, pg.errors())
	}
	if err := send.wait(t, 30*time.Second); err == nil || !strings.Contains(send.out.String(), refused) || strings.Contains(send.out.String(), "sending secret.bin") {
		t.Fatalf("switchboard send: %v\n%s", err, send.out.String())
	}

	// Page → `switchboard recv`.
	appEval[bool](pg, `(() => {
		W.sent = W.sendWithCode(W.ws, [new File(['nobody in between may read this either'], 'secret.txt')], {
			alterFingerprints: W.mitm, onCode: (c) => { W.code = c; },
		}).then((r) => ({ kind: 'sent', n: r.length }), (e) => ({ kind: e.kind, message: e.message }));
		return true;
	})()`)
	code = appEval[string](pg, waitJS+`(async () => W.code, 20000, 'the code')`)
	dir := t.TempDir()
	recv := startWatched(t, ctx, bin, "recv", code, "--out", dir, "--server", base, "--loopback")
	if err := recv.wait(t, 30*time.Second); err == nil || !strings.Contains(recv.out.String(), refused) {
		t.Fatalf("switchboard recv: %v\n%s", err, recv.out.String())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("recv wrote %v", ents)
	}
	if got := appEval[map[string]any](pg, `W.sent`); got["kind"] != "binding" {
		t.Fatalf("the page, sending with its view altered: %v", got)
	}
}
