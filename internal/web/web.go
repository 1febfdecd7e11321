package web

//go:generate go run ./genwasm -out static

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strings"
)

//go:embed static
var static embed.FS

// contentTypes are set explicitly so they do not depend on the host's MIME tables: a module
// script served as anything but JavaScript is refused by browsers.
var contentTypes = map[string]string{
	".js":   "text/javascript; charset=utf-8",
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

// Handler serves the embedded files under /sdk/: /sdk/switchboard.js, the sibling modules it
// imports (/sdk/sdk-*.js), /sdk/transfer.js, /sdk/wormhole.js with the WebAssembly build of
// internal/wormhole it runs (/sdk/wormhole.wasm, /sdk/wasm_exec.js: wasm.go) and
// /sdk/test.html.
// Mount it with mux.Handle("GET /sdk/", web.Handler()).
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has "static"
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !readOnly(w, r) {
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, "/sdk/")
		if name == wasmName {
			serveWASM(w, r)
			return
		}
		if !ok || name == "" || strings.Contains(name, "/") || !prepare(w, sub, name) {
			http.NotFound(w, r)
			return
		}
		serveAs(w, r, files, name)
	})
}

// prepare reports whether name is an embedded file of sub of a type this package serves,
// and if so sets the headers every answer carries.
func prepare(w http.ResponseWriter, sub fs.FS, name string) bool {
	ct := contentTypes[path.Ext(name)]
	if ct == "" {
		return false
	}
	if _, err := fs.Stat(sub, name); err != nil {
		return false
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	return true
}

// serveAs serves the file name through files, whatever r's path.
func serveAs(w http.ResponseWriter, r *http.Request, files http.Handler, name string) {
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/" + name
	files.ServeHTTP(w, r2)
}

// readOnly answers anything but GET and HEAD with 405 and reports whether r may go on.
func readOnly(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

// roomName is the server's room name rule: 1-64 of A-Z a-z 0-9 _ - .
var roomName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// App serves the video-call web app: the landing page at /, the call page at /r/{room}, the
// file page (files with a code phrase) at /files (the same page; app.js reads the path) and
// its assets at /app/{file}. Mount it with mux.Handle("GET /{$}", web.App()),
// mux.Handle("GET /r/{room}", web.App()), mux.Handle("GET /files", web.App()) and
// mux.Handle("GET /app/", web.App()).
func App() http.Handler {
	sub, err := fs.Sub(static, "static/app")
	if err != nil {
		panic(err) // the embedded tree always has "static/app"
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !readOnly(w, r) {
			return
		}
		p := r.URL.Path
		var name string
		switch {
		case p == "/", p == "/files":
			name = "index.html"
		case strings.HasPrefix(p, "/r/"):
			if !roomName.MatchString(strings.TrimPrefix(p, "/r/")) {
				http.Error(w, "bad room name: use 1-64 of A-Z a-z 0-9 _ - .", http.StatusNotFound)
				return
			}
			name = "index.html"
		case strings.HasPrefix(p, "/app/"):
			name = strings.TrimPrefix(p, "/app/")
			if name == "" || name == "index.html" || strings.Contains(name, "/") {
				http.NotFound(w, r)
				return
			}
		default:
			http.NotFound(w, r)
			return
		}
		if !prepare(w, sub, name) {
			http.NotFound(w, r)
			return
		}
		if name == "index.html" {
			// Serve the bytes directly: the file server redirects /index.html to ./.
			b, err := fs.ReadFile(sub, name)
			if err != nil {
				http.Error(w, "internal error", http.StatusInternalServerError)
				return
			}
			if r.Method == http.MethodHead {
				return
			}
			_, _ = w.Write(b)
			return
		}
		serveAs(w, r, files, name)
	})
}
