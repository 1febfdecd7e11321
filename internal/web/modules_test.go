package web

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"strings"
	"testing"
)

// importRE matches the module specifiers of static imports and re-exports
// (`import {a} from './x.js'`, `export {b} from '/app/y.js'`, `import './z.js'`).
// JSDoc type imports (`import('./x.js').T`) are left out: browsers never load them.
var importRE = regexp.MustCompile(`(?m)^\s*(?:(?:import|export)\b[^'";]*?\bfrom\s*|import\s*)'([^']+)'`)

// TestModules checks that every ES module in the embedded tree is served with the JavaScript
// content type at its URL (static/NAME.js at /sdk/NAME.js, static/app/NAME.js at
// /app/NAME.js), and that every module the SDK, the app and test.html import, transitively,
// is served too: a module the browser cannot load breaks everything that imports it.
func TestModules(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("GET /sdk/", Handler())
	app := App()
	mux.Handle("GET /{$}", app)
	mux.Handle("GET /app/", app)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	get := func(p string) (string, bool) {
		t.Helper()
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", p, resp.StatusCode)
			return "", false
		}
		if ct := resp.Header.Get("Content-Type"); path.Ext(p) == ".js" && ct != "text/javascript; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q, want JavaScript", p, ct)
		}
		return string(b), true
	}

	var all []string
	err := fs.WalkDir(static, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(name) != ".js" {
			return err
		}
		switch dir := path.Dir(name); dir {
		case "static":
			all = append(all, "/sdk/"+path.Base(name))
		case "static/app":
			all = append(all, "/app/"+path.Base(name))
		default:
			t.Errorf("%s: a module in %s is served by neither handler", name, dir)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/sdk/switchboard.js", "/sdk/sdk-client.js", "/sdk/sdk-peer.js",
		"/sdk/sdk-connect.js", "/sdk/sdk-errors.js", "/sdk/transfer.js", "/sdk/wormhole.js", "/sdk/wasm_exec.js", "/app/app.js"} {
		found := false
		for _, p := range all {
			found = found || p == want
		}
		if !found {
			t.Errorf("%s is not in the embedded tree", want)
		}
	}

	// Follow the imports from the pages and every module, as a browser would.
	seen, imported := map[string]bool{}, map[string]bool{}
	queue := append([]string{"/", "/sdk/test.html"}, all...)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		body, ok := get(p)
		if !ok {
			continue
		}
		base, _ := url.Parse(p)
		for _, m := range importRE.FindAllStringSubmatch(body, -1) {
			spec := m[1]
			if !strings.HasPrefix(spec, "/") && !strings.HasPrefix(spec, "./") && !strings.HasPrefix(spec, "../") {
				t.Errorf("%s imports %q: a bare specifier no browser resolves", p, spec)
				continue
			}
			ref, err := url.Parse(spec)
			if err != nil {
				t.Errorf("%s imports %q: %v", p, spec, err)
				continue
			}
			target := base.ResolveReference(ref).Path
			imported[target] = true
			queue = append(queue, target)
		}
		if p == "/" {
			queue = append(queue, "/app/app.js") // index.html's <script type="module" src>
		}
	}
	for _, p := range []string{"/sdk/sdk-client.js", "/sdk/sdk-peer.js", "/sdk/sdk-connect.js",
		"/sdk/sdk-outbox.js", "/sdk/sdk-errors.js", "/app/page.js", "/app/media.js", "/app/chat.js", "/app/files.js", "/app/access.js",
		"/app/codefiles.js", "/sdk/wormhole.js", "/sdk/transfer.js",
		"/app/callmedia.js", "/app/share.js", "/app/speaker.js", "/app/quality.js", "/app/bitrate.js"} {
		if !imported[p] {
			t.Errorf("%s: nothing imports it", p)
		}
	}
}
