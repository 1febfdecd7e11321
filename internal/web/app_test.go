package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestApp(t *testing.T) {
	mux := http.NewServeMux()
	app := App()
	mux.Handle("GET /{$}", app)
	mux.Handle("GET /r/{room}", app)
	mux.Handle("GET /files", app)
	mux.Handle("GET /app/", app)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, tc := range []responseCase{
		{"/", "GET", 200, "text/html; charset=utf-8", `<script type="module" src="/app/app.js">`},
		{"/", "HEAD", 200, "text/html; charset=utf-8", ""},
		{"/r/standup-42", "GET", 200, "text/html; charset=utf-8", `id="chat-input"`},
		{"/files", "GET", 200, "text/html; charset=utf-8", `id="code-input"`},
		{"/files/", "GET", 404, "", ""},
		{"/app/codefiles.js", "GET", 200, "text/javascript; charset=utf-8", "from '/sdk/wormhole.js'"},
		{"/r/A.b_c-9", "GET", 200, "text/html; charset=utf-8", `id="grid"`},
		{"/r/" + strings.Repeat("x", 64), "GET", 200, "text/html; charset=utf-8", ""},
		{"/r/" + strings.Repeat("x", 65), "GET", 404, "", ""},
		{"/r/bad%20name", "GET", 404, "", ""},
		{"/r/a%2Fb", "GET", 404, "", ""},
		{"/r/", "GET", 404, "", ""},
		{"/app/app.js", "GET", 200, "text/javascript; charset=utf-8", "from '/sdk/switchboard.js'"},
		{"/app/app.css", "GET", 200, "text/css; charset=utf-8", ".grid"},
		{"/app/access.js", "GET", 200, "text/javascript; charset=utf-8", "export function takeToken("},
		{"/app/app.js", "GET", 200, "text/javascript; charset=utf-8", "from '/app/access.js'"},
		{"/app/page.js", "GET", 200, "text/javascript; charset=utf-8", "export function notice("},
		{"/app/media.js", "GET", 200, "text/javascript; charset=utf-8", "export class LocalMedia"},
		{"/app/chat.js", "GET", 200, "text/javascript; charset=utf-8", "export function callChat("},
		{"/app/files.js", "GET", 200, "text/javascript; charset=utf-8", "from '/sdk/transfer.js'"},
		{"/app/index.html", "GET", 404, "", ""},
		{"/app/", "GET", 404, "", ""},
		{"/app/missing.js", "GET", 404, "", ""},
		{"/app/../web.go", "GET", 404, "", ""},
		{"/", "POST", 405, "", ""},
	} {
		checkResponse(t, srv.URL, tc)
	}
}
