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
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-rtc/switchboard/internal/wormhole"
)

// Code phrases between the web app's file page (/files, wormhole.js on the WebAssembly build
// of internal/wormhole) and the real switchboard binary, through a real server.

// watchedOutput is a command's output (stdout and stderr) that a test may read while it runs,
// with a signal each time more arrives.
type watchedOutput struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func (w *watchedOutput) Write(p []byte) (int, error) {
	w.mu.Lock()
	n, err := w.b.Write(p)
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
	return n, err
}

func (w *watchedOutput) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// watchedRun is a running switchboard command whose output is watched.
type watchedRun struct {
	cmd  *exec.Cmd
	out  *watchedOutput
	done chan struct{} // closed when it exited; err is then set
	err  error
}

// startWatched runs the switchboard binary with args, bounded by ctx and killed when the
// test ends.
func startWatched(t *testing.T, ctx context.Context, bin string, args ...string) *watchedRun {
	t.Helper()
	r := &watchedRun{cmd: exec.CommandContext(ctx, bin, args...), out: &watchedOutput{changed: make(chan struct{}, 1)}, done: make(chan struct{})}
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	r.cmd.WaitDelay = 2 * time.Second
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		_ = r.cmd.Process.Kill()
		<-r.done
	})
	return r
}

// waitOutput waits up to d for re to match the output and returns the match's groups.
func (r *watchedRun) waitOutput(t *testing.T, re *regexp.Regexp, d time.Duration) []string {
	t.Helper()
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for {
		if m := re.FindStringSubmatch(r.out.String()); m != nil {
			return m
		}
		select {
		case <-r.out.changed:
		case <-r.done:
			if m := re.FindStringSubmatch(r.out.String()); m != nil {
				return m
			}
			t.Fatalf("%s exited (%v) without printing %s:\n%s", strings.Join(r.cmd.Args, " "), r.err, re, r.out.String())
		case <-timeout.C:
			t.Fatalf("%s did not print %s within %v:\n%s", strings.Join(r.cmd.Args, " "), re, d, r.out.String())
		}
	}
}

// wait waits up to d for the command to exit and returns how it ended.
func (r *watchedRun) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(d):
		t.Fatalf("%s did not exit within %v:\n%s", strings.Join(r.cmd.Args, " "), d, r.out.String())
		return nil
	}
}

// wrongCode returns code with its first word changed: the same room, another code.
func wrongCode(t *testing.T, code string) string {
	t.Helper()
	c, err := wormhole.ParseCode(code)
	if err != nil {
		t.Fatalf("%q: %v", code, err)
	}
	w := "aardvark"
	if c.Words[0] == w {
		w = "absurd"
	}
	c.Words = append([]string{w}, c.Words[1:]...)
	return c.String()
}

// otherChannel returns code with the next channel number: a room nobody is in.
func otherChannel(t *testing.T, code string) string {
	t.Helper()
	c, err := wormhole.ParseCode(code)
	if err != nil {
		t.Fatalf("%q: %v", code, err)
	}
	c.Channel = c.Channel%wormhole.MaxChannel + 1
	return c.String()
}

// screenshot saves the tab as name in $SWITCHBOARD_ARTIFACTS (a temporary directory without
// it) and checks it shows something.
func (p *appTab) screenshot(name string) {
	p.t.Helper()
	dir := os.Getenv("SWITCHBOARD_ARTIFACTS")
	if dir == "" {
		dir = p.t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	shot, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("%s: screenshot: %v", p.name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), shot, 0o644); err != nil {
		p.t.Fatal(err)
	}
	checkScreenshot(p.t, filepath.Join(dir, name))
}

// typeCode types code into the file page's code field and submits it.
func (p *appTab) typeCode(code string) {
	p.t.Helper()
	appEval[bool](p, `(() => {
		document.querySelector('#code-input').value = `+js(code)+`;
		document.querySelector('#code-form').requestSubmit();
		return true;
	})()`)
}

// codeStatus waits until body[data-code] is state and returns #code-status's text.
func (p *appTab) codeStatus(state string) string {
	p.t.Helper()
	return appEval[string](p, `(async () => {
		const status = () => document.querySelector('#code-status').textContent;
		for (const end = Date.now() + 20000; document.body.dataset.code !== `+js(state)+`;) {
			if (Date.now() > end) throw new Error('body[data-code] is ' + document.body.dataset.code + ', not '+`+js(state)+`+'; status: ' + status());
			await new Promise((r) => setTimeout(r, 50));
		}
		return status();
	})()`)
}

// TestCodeCLIToPage: `switchboard send FILE` prints a code; on the file page, a code that is
// not one is refused at once, a wrong code of the right room is refused with the one-line
// message while the sender reports someone tried and keeps waiting, and the right code
// receives the file (SHA-256 equal) as a download link. A code nobody sends with waits and
// says so, until cancelled.
func TestCodeCLIToPage(t *testing.T) {
	base, browser := appBrowser(t, 120*time.Second)
	bin := buildCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()

	data := make([]byte, 3<<19+4321)
	_, _ = rand.Read(data)
	file := filepath.Join(t.TempDir(), "from the cli.bin")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	send := startWatched(t, ctx, bin, "send", file, "--server", base, "--loopback")
	code := send.waitOutput(t, regexp.MustCompile(`switchboard recv (\S+)`), 30*time.Second)[1]

	pg := openApp(t, browser, "R", base+"/files", 1024, 768)
	pg.waitFor(`document.body.dataset.code === 'idle' && document.body.dataset.view === 'files'`, "the file page")

	// Not a code: said at once, nothing joined.
	pg.typeCode("7-gravity")
	if s := pg.codeStatus("failed"); !strings.HasPrefix(s, "Not a code: a code is a number and 3 words") {
		t.Errorf("a code that is not one: %q", s)
	}

	// A wrong code: the sender refuses it, counts it and waits on.
	t0 := time.Now()
	pg.typeCode(wrongCode(t, code))
	if s := pg.codeStatus("failed"); !strings.HasPrefix(s, "The code is wrong: the sender did not accept it.") {
		t.Fatalf("wrong code: status %q", s)
	}
	t.Logf("wrong code refused in %v", time.Since(t0).Round(time.Millisecond))
	send.waitOutput(t, regexp.MustCompile(`someone tried a wrong code \(1 of 3\); still waiting for the receiver with the right one`), 10*time.Second)

	// The right code, typed as a person might.
	t0 = time.Now()
	pg.typeCode("  " + strings.ToUpper(strings.ReplaceAll(code, "-", " ")) + " ")
	s := pg.codeStatus("done")
	if !strings.HasPrefix(s, "Received 1 file(s), 1.5 MiB") {
		t.Errorf("status %q", s)
	}
	pg.screenshot("webapp-code-recv.png")
	got := appEval[map[string]string](pg, `(async () => {
		const a = document.querySelector('#code-files li.file[data-state="done"] a.file-link[download]');
		const blob = await (await fetch(a.href)).blob();
		const url = await new Promise((resolve, reject) => {
			const fr = new FileReader();
			fr.onload = () => resolve(fr.result); fr.onerror = () => reject(fr.error);
			fr.readAsDataURL(blob);
		});
		return { download: a.download, b64: url.slice(url.indexOf(',') + 1) };
	})()`)
	b, err := base64.StdEncoding.DecodeString(got["b64"])
	if err != nil {
		t.Fatal(err)
	}
	if got["download"] != "from the cli.bin" || sha256.Sum256(b) != sha256.Sum256(data) {
		t.Fatalf("the page's link %q has %d bytes, sha256 %x; want %d bytes, %x", got["download"], len(b), sha256.Sum256(b), len(data), sha256.Sum256(data))
	}
	if err := send.wait(t, 20*time.Second); err != nil {
		t.Fatalf("switchboard send: %v\n%s", err, send.out.String())
	}
	out := send.out.String()
	if !strings.Contains(out, "sent 1 file(s)") || !strings.Contains(out, "over the data channel") {
		t.Errorf("switchboard send's output:\n%s", out)
	}
	t.Logf("switchboard send → page with a code: %d bytes in %v", len(data), time.Since(t0).Round(time.Millisecond))

	// A code nobody sends with (another channel: the sender that just finished may still be
	// in its room): the page says so and waits, until cancelled.
	pg.typeCode(otherChannel(t, code))
	pg.waitFor(`document.querySelector('#code-status').textContent.startsWith('No sender with this code on the server yet')`, "the no-sender line")
	appEval[bool](pg, `(document.querySelector('#code-cancel').click(), true)`)
	if s := pg.codeStatus("failed"); s != "Stopped." {
		t.Errorf("cancelled: %q", s)
	}
	if errs := pg.errors(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
}

// TestCodePageToCLI: files picked on the file page get a code and the `switchboard recv`
// command to take them; `switchboard recv` with a wrong code is refused while the page
// reports someone tried and waits on; the command the page shows receives the files
// (SHA-256 equal) and the page says the receiver confirmed each.
func TestCodePageToCLI(t *testing.T) {
	base, browser := appBrowser(t, 120*time.Second)
	bin := buildCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()

	pg := openApp(t, browser, "S", base+"/files", 1024, 768)
	pg.waitFor(`document.body.dataset.code === 'idle'`, "the file page")
	want := appEval[string](pg, `(async () => {
		const bytes = new Uint8Array(2 * 1024 * 1024 + 99);
		for (let i = 0; i < bytes.length; i += 65536) crypto.getRandomValues(bytes.subarray(i, Math.min(i + 65536, bytes.length)));
		const dt = new DataTransfer();
		dt.items.add(new File([bytes], 'picked.bin'));
		dt.items.add(new File(['a note'], 'note.txt'));
		const input = document.querySelector('#code-file-input');
		input.files = dt.files;
		input.dispatchEvent(new Event('change', { bubbles: true }));
		const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
		return Array.from(d, (x) => x.toString(16).padStart(2, '0')).join('');
	})()`)
	pg.waitFor(`document.querySelector('#code-show').textContent !== '' && !document.querySelector('#code-offer').hidden`, "the code")
	code := appEval[string](pg, `document.querySelector('#code-show').textContent`)
	cmd := appEval[string](pg, `document.querySelector('#code-cmd').textContent`)
	if wantCmd := "switchboard recv " + code + " --server " + base; cmd != wantCmd {
		t.Fatalf("the page shows %q, want %q", cmd, wantCmd)
	}
	if _, err := wormhole.ParseCode(code); err != nil {
		t.Fatalf("the page's code %q: %v", code, err)
	}

	// A wrong code: recv is refused; the page counts it and waits on.
	wrong := startWatched(t, ctx, bin, "recv", wrongCode(t, code), "--out", t.TempDir(), "--server", base, "--loopback")
	if err := wrong.wait(t, 30*time.Second); err == nil || !strings.Contains(wrong.out.String(), "the code is wrong: the sender did not accept it") {
		t.Fatalf("recv with a wrong code: %v\n%s", err, wrong.out.String())
	}
	pg.waitFor(`document.querySelector('#code-status').textContent.startsWith('Someone tried a wrong code (1 of 3); still waiting for the receiver with the right one')`,
		"the wrong code reported")
	if st := appEval[string](pg, `document.body.dataset.code`); st != "waiting" {
		t.Fatalf("after a wrong code the page is %q, want waiting", st)
	}
	pg.screenshot("webapp-code-send.png")

	// The command the page shows.
	t0 := time.Now()
	dir := t.TempDir()
	args := append(strings.Fields(cmd)[1:], "--out", dir, "--loopback")
	recv := startWatched(t, ctx, bin, args...)
	if err := recv.wait(t, 40*time.Second); err != nil {
		t.Fatalf("%s: %v\n%s\npage status: %q", cmd, err, recv.out.String(), appEval[string](pg, `document.querySelector('#code-status').textContent`))
	}
	b, err := os.ReadFile(filepath.Join(dir, "picked.bin"))
	if err != nil {
		t.Fatalf("%v\nrecv output:\n%s", err, recv.out.String())
	}
	if sum := sha256.Sum256(b); len(b) != 2<<20+99 || hex.EncodeToString(sum[:]) != want {
		t.Fatalf("recv wrote %d bytes, sha256 %x; the page's file has sha256 %s", len(b), sum, want)
	}
	if note, _ := os.ReadFile(filepath.Join(dir, "note.txt")); string(note) != "a note" {
		t.Fatalf("note.txt: %q", note)
	}
	if s := pg.codeStatus("done"); !strings.HasPrefix(s, "Sent 2 file(s), 2.0 MiB; the receiver confirmed each.") {
		t.Errorf("page status %q", s)
	}
	if n := appEval[int](pg, `document.querySelectorAll('#code-files li.file[data-state="done"]').length`); n != 2 {
		t.Errorf("%d files marked done on the page", n)
	}
	t.Logf("page → switchboard recv with a code: 2 files in %v\n%s", time.Since(t0).Round(time.Millisecond), recv.out.String())
	if errs := pg.errors(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
}

// TestCodePageToPage: a file picked on one file page reaches another through the code the
// first one shows.
func TestCodePageToPage(t *testing.T) {
	base, browser := appBrowser(t, 60*time.Second)
	s := openApp(t, browser, "S", base+"/files", 1024, 768)
	r := openApp(t, browser, "R", base+"/files", 1024, 768)
	s.waitFor(`document.body.dataset.code === 'idle'`, "the file page")
	want := appEval[string](s, `(async () => {
		const bytes = new Uint8Array(700000).map((_, i) => (i * 13) & 255);
		const dt = new DataTransfer();
		dt.items.add(new File([bytes], 'between pages.bin'));
		const input = document.querySelector('#code-file-input');
		input.files = dt.files;
		input.dispatchEvent(new Event('change', { bubbles: true }));
		const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
		return Array.from(d, (x) => x.toString(16).padStart(2, '0')).join('');
	})()`)
	s.waitFor(`document.querySelector('#code-show').textContent !== ''`, "the code")
	r.waitFor(`document.body.dataset.code === 'idle'`, "the file page")
	r.typeCode(appEval[string](s, `document.querySelector('#code-show').textContent`))
	if st := r.codeStatus("done"); !strings.HasPrefix(st, "Received 1 file(s)") {
		t.Errorf("receiver: %q", st)
	}
	got := appEval[string](r, `(async () => {
		const a = document.querySelector('#code-files a.file-link[download]');
		const d = new Uint8Array(await crypto.subtle.digest('SHA-256', await (await fetch(a.href)).arrayBuffer()));
		return a.download + ' ' + Array.from(d, (x) => x.toString(16).padStart(2, '0')).join('');
	})()`)
	if got != "between pages.bin "+want {
		t.Fatalf("the receiving page has %q, want the sha256 %s", got, want)
	}
	if st := s.codeStatus("done"); !strings.HasPrefix(st, "Sent 1 file(s)") {
		t.Errorf("sender: %q", st)
	}
	for _, p := range []*appTab{s, r} {
		if errs := p.errors(); len(errs) > 0 {
			t.Errorf("%s console errors: %v", p.name, errs)
		}
	}
}
