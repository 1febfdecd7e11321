package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	for _, tc := range []responseCase{
		{"/sdk/switchboard.js", "GET", 200, "text/javascript; charset=utf-8", "export async function join("},
		{"/sdk/test.html", "GET", 200, "text/html; charset=utf-8", "import { join } from './switchboard.js'"},
		{"/sdk/switchboard.js", "HEAD", 200, "text/javascript; charset=utf-8", ""},
		{"/sdk/switchboard.js", "GET", 200, "text/javascript; charset=utf-8", "from './sdk-client.js'"},
		{"/sdk/sdk-client.js", "GET", 200, "text/javascript; charset=utf-8", "export class Client {"},
		{"/sdk/sdk-peer.js", "GET", 200, "text/javascript; charset=utf-8", "export class Peer {"},
		{"/sdk/sdk-connect.js", "GET", 200, "text/javascript; charset=utf-8", "export function connect("},
		{"/sdk/sdk-errors.js", "GET", 200, "text/javascript; charset=utf-8", "export class ServerError extends Error {"},
		{"/sdk/transfer.js", "GET", 200, "text/javascript; charset=utf-8", "export async function sendFiles("},
		{"/sdk/sdk-peer.js", "HEAD", 200, "text/javascript; charset=utf-8", ""},
		{"/sdk/", "GET", 404, "", ""},
		{"/sdk/missing.js", "GET", 404, "", ""},
		{"/sdk/static/switchboard.js", "GET", 404, "", ""},
		{"/sdk/../web.go", "GET", 404, "", ""},
		{"/other/switchboard.js", "GET", 404, "", ""},
		{"/sdk/switchboard.js", "POST", 405, "", ""},
	} {
		checkResponse(t, srv.URL, tc)
	}
}

// responseCase is one request and what its answer must be: status, Content-Type when ctype
// is set, and a body containing body.
type responseCase struct {
	path, method string
	status       int
	ctype, body  string
}

func checkResponse(t *testing.T, base string, tc responseCase) {
	t.Helper()
	req, err := http.NewRequest(tc.method, base+tc.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != tc.status {
		t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		return
	}
	if tc.ctype != "" && resp.Header.Get("Content-Type") != tc.ctype {
		t.Errorf("%s %s: Content-Type %q, want %q", tc.method, tc.path, resp.Header.Get("Content-Type"), tc.ctype)
	}
	if !strings.Contains(string(b), tc.body) {
		t.Errorf("%s %s: body does not contain %q", tc.method, tc.path, tc.body)
	}
}
