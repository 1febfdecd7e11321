package browsertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// buildCLI builds cmd/switchboard into a temporary directory and returns the binary's path.
func buildCLI(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD: %q, %v", gomod, err)
	}
	bin := filepath.Join(t.TempDir(), "switchboard")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/switchboard")
	cmd.Dir = filepath.Dir(gomod)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/switchboard: %v\n%s", err, b)
	}
	return bin
}

// cliRun is a running switchboard command; out (stdout and stderr) is read only once it
// exited.
type cliRun struct {
	cmd    *exec.Cmd
	out    bytes.Buffer
	done   chan error
	exited bool
}

// startCLI runs the switchboard binary with args, bounded by ctx.
func startCLI(t *testing.T, ctx context.Context, bin string, args ...string) *cliRun {
	t.Helper()
	r := &cliRun{cmd: exec.CommandContext(ctx, bin, args...), done: make(chan error, 1)}
	r.cmd.Stdout = &r.out
	r.cmd.Stderr = &r.out
	r.cmd.WaitDelay = 2 * time.Second
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", strings.Join(args, " "), err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		if !r.exited {
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// wait waits for the command to exit, up to d.
func (r *cliRun) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	r.exited = true
	select {
	case err := <-r.done:
		return err
	case <-time.After(d):
		_ = r.cmd.Process.Kill()
		<-r.done
		t.Fatalf("%s did not exit within %v; output:\n%s", strings.Join(r.cmd.Args, " "), d, r.out.String())
		return nil
	}
}

// TestWebAppFiles sends files between the web app and the real CLI: a file picked in the
// page reaches `switchboard recv`, and a file from `switchboard send` shows in the page's chat
// as a download link with the same bytes.
func TestWebAppFiles(t *testing.T) {
	base, browser := appBrowser(t, 90*time.Second)
	bin := buildCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	t0 := time.Now()

	// 1. Page → `switchboard recv`.
	out := t.TempDir()
	recv := startCLI(t, ctx, bin, "recv", "--room", "appfile-1", "--out", out, "--server", base, "--loopback")
	p1 := openApp(t, browser, "P1", base+"/r/appfile-1?name=P1", 1024, 768)
	p1.waitFor(`document.body.dataset.joined === 'true' && document.querySelectorAll('.tile[data-peer]').length === 1`, "the receiver's tile")
	want := appEval[string](p1, `(async () => {
		const bytes = new Uint8Array(1024 * 1024);
		for (let i = 0; i < bytes.length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
		const dt = new DataTransfer();
		dt.items.add(new File([bytes], 'picked.bin'));
		const input = document.querySelector('#file-input');
		input.files = dt.files;
		input.dispatchEvent(new Event('change', { bubbles: true }));
		const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
		return Array.from(d, (x) => x.toString(16).padStart(2, '0')).join('');
	})()`)
	if err := recv.wait(t, 40*time.Second); err != nil {
		t.Fatalf("switchboard recv: %v\n%s\npage console errors: %v", err, recv.out.String(), p1.errors())
	}
	b, err := os.ReadFile(filepath.Join(out, "picked.bin"))
	if err != nil {
		t.Fatalf("%v\nrecv output:\n%s", err, recv.out.String())
	}
	if sum := sha256.Sum256(b); len(b) != 1<<20 || hex.EncodeToString(sum[:]) != want {
		t.Fatalf("recv wrote %d bytes, sha256 %x; the page's file has sha256 %s", len(b), sum, want)
	}
	p1.waitFor(`document.querySelector('#chat-log li.file[data-state="done"] .file-name')?.textContent === 'picked.bin'`, "the sent file marked done")
	t.Logf("page → switchboard recv: 1 MiB after %v", time.Since(t0).Round(time.Millisecond))

	// 2. `switchboard send` → page.
	data := make([]byte, 1<<20+321)
	_, _ = rand.Read(data)
	file := filepath.Join(t.TempDir(), "from cli.bin")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	p2 := openApp(t, browser, "P2", base+"/r/appfile-2?name=P2", 1024, 768)
	p2.waitFor(`document.body.dataset.joined === 'true'`, "joined")
	send := startCLI(t, ctx, bin, "send", file, "--room", "appfile-2", "--server", base, "--loopback")
	if err := send.wait(t, 40*time.Second); err != nil {
		t.Fatalf("switchboard send: %v\n%s\npage console errors: %v", err, send.out.String(), p2.errors())
	}
	got := appEval[map[string]string](p2, waitJS+`(async () => {
		const a = document.querySelector('#chat-log li.file[data-state="done"] a.file-link[download]');
		if (!a) return null;
		const blob = await (await fetch(a.href)).blob();
		const url = await new Promise((resolve, reject) => {
			const fr = new FileReader();
			fr.onload = () => resolve(fr.result); fr.onerror = () => reject(fr.error);
			fr.readAsDataURL(blob);
		});
		return { download: a.download, text: a.closest('li').textContent, b64: url.slice(url.indexOf(',') + 1) };
	}, 20000, 'a download link')`)
	if got["download"] != "from cli.bin" || !strings.Contains(got["text"], "1.0 MiB") {
		t.Errorf("link download=%q, entry %q", got["download"], got["text"])
	}
	pb, err := base64.StdEncoding.DecodeString(got["b64"])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pb, data) {
		t.Fatalf("the page's link has %d bytes, sha256 %x; want %d bytes, %x", len(pb), sha256.Sum256(pb), len(data), sha256.Sum256(data))
	}
	t.Logf("switchboard send → page: %d bytes after %v", len(data), time.Since(t0).Round(time.Millisecond))

	// 3. Page → page, dropped on the page: P3 joins P2's room and drops two files.
	p3 := openApp(t, browser, "P3", base+"/r/appfile-2?name=P3", 1024, 768)
	p3.waitFor(`document.body.dataset.joined === 'true' && document.querySelector('.tile[data-peer]')?.dataset.state === 'connected'`, "P2 connected")
	appEval[bool](p3, `(() => {
		const dt = new DataTransfer();
		dt.items.add(new File(['hello from P3'], 'note.txt'));
		dt.items.add(new File([new Uint8Array(300000).fill(9)], 'nines.bin'));
		document.body.dispatchEvent(new DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true }));
		document.body.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
		return true;
	})()`)
	p3.waitFor(`document.querySelectorAll('#chat-log li.file[data-state="done"]').length === 2`, "both dropped files sent")
	got2 := appEval[[]string](p2, waitJS+`(async () => {
		const links = [...document.querySelectorAll('#chat-log li.file[data-from]:not([data-from=""]) a.file-link[download]')]
			.filter((a) => a.download !== 'from cli.bin');
		if (links.length !== 2) return null;
		return Promise.all(links.map(async (a) => a.download + ' ' + (await (await fetch(a.href)).blob()).size));
	}, 20000, 'two links from P3')`)
	if strings.Join(got2, ",") != "note.txt 13,nines.bin 300000" {
		t.Errorf("P2 got %q from P3's drop", got2)
	}

	// A screenshot of the chat with files in it.
	dir := os.Getenv("SWITCHBOARD_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(p2.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("P2: screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "webapp-files.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}
	checkScreenshot(t, filepath.Join(dir, "webapp-files.png"))

	for _, p := range []*appTab{p1, p2, p3} {
		if errs := p.errors(); len(errs) > 0 {
			t.Errorf("%s console errors: %v", p.name, errs)
		}
	}
}
