package web

import (
	"bytes"
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
		{"/sdk/wormhole.js", "GET", 200, "text/javascript; charset=utf-8", "export async function receiveWithCode("},
		{"/sdk/wasm_exec.js", "GET", 200, "text/javascript; charset=utf-8", "globalThis.Go = class"},
		{"/sdk/wormhole.wasm.gz", "GET", 404, "", ""},
		{"/sdk/wormhole.wasm", "POST", 405, "", ""},
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

// TestWASMServed fetches /sdk/wormhole.wasm as a browser does (gzip: the stored bytes, with
// Content-Encoding) and as a client without gzip (decompressed), and revalidates it by ETag.
func TestWASMServed(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	gz, _ := wasmGz()
	plain := gunzip(t, gz)
	if !bytes.HasPrefix(plain, []byte("\x00asm")) {
		t.Fatalf("the stored module is not WebAssembly: % x", plain[:8])
	}
	for _, tc := range []struct {
		accept, encoding string
		body             []byte
	}{
		{"gzip, deflate, br", "gzip", gz},
		{"identity", "", plain},
		{"br;q=1, gzip;q=0", "", plain},
	} {
		req, _ := http.NewRequest("GET", srv.URL+"/sdk/wormhole.wasm", nil)
		req.Header.Set("Accept-Encoding", tc.accept) // set by hand: the client does not decompress
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		h := resp.Header
		if resp.StatusCode != 200 || h.Get("Content-Type") != "application/wasm" || h.Get("Content-Encoding") != tc.encoding ||
			h.Get("Vary") != "Accept-Encoding" || !bytes.Equal(b, tc.body) {
			t.Fatalf("Accept-Encoding %q: %d, type %q, encoding %q, vary %q, %d bytes (want %d)", tc.accept, resp.StatusCode,
				h.Get("Content-Type"), h.Get("Content-Encoding"), h.Get("Vary"), len(b), len(tc.body))
		}
		req.Header.Set("If-None-Match", h.Get("ETag"))
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNotModified {
			t.Fatalf("Accept-Encoding %q, If-None-Match %s: %d, want 304", tc.accept, h.Get("ETag"), resp.StatusCode)
		}
	}
}
