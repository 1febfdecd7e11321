package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The browser's build of internal/wormhole (the code phrases' exchange), made by genwasm (go
// generate) and checked by TestWASMCurrent: static/wormhole.wasm.gz, served gzipped at
// /sdk/wormhole.wasm (4.7 MB as a module, 1.4 MB on the wire), and static/wasm_exec.js, the
// Go toolchain's loader for it.
const wasmName = "wormhole.wasm"

// wasmGz is the module, gzipped, and its entity tag.
var wasmGz = sync.OnceValues(func() ([]byte, string) {
	b, err := static.ReadFile("static/" + wasmName + ".gz")
	if err != nil {
		panic(err) // embedded: always there
	}
	sum := sha256.Sum256(b)
	return b, `"` + hex.EncodeToString(sum[:8]) + `"`
})

// serveWASM serves the module with the type WebAssembly.instantiateStreaming requires, as it
// is stored (gzip) to a client that takes gzip, else decompressed.
func serveWASM(w http.ResponseWriter, r *http.Request) {
	gz, etag := wasmGz()
	h := w.Header()
	h.Set("Content-Type", "application/wasm")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Vary", "Accept-Encoding")
	body := gz
	if acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		h.Set("ETag", etag)
	} else {
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err == nil {
			body, err = io.ReadAll(zr)
		}
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		h.Set("ETag", strings.TrimSuffix(etag, `"`)+`-identity"`)
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// acceptsGzip reports whether the request's Accept-Encoding takes gzip (with a q above 0).
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}
