package web

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/testenv"
	"github.com/switchboard-rtc/switchboard/internal/wormhole"
)

// TestWASMCurrent rebuilds the browser's build of internal/wormhole with the generator `go
// generate` runs and fails when the committed static/wormhole.wasm.gz or static/wasm_exec.js
// differ from it: they are what the binary serves, so they must be what the sources make.
func TestWASMCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the WebAssembly module")
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "run", "./genwasm", "-out", dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run ./genwasm: %v\n%s", err, b)
	}
	stale := "is stale: run `go generate ./internal/web` (with " + runtime.Version() + ", the Go of go.mod) and commit the result"
	for _, name := range []string{"wasm_exec.js", "wormhole.wasm.gz"} {
		fresh, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		committed, err := fs.ReadFile(static, "static/"+name)
		if err != nil {
			t.Fatalf("static/%s: %v (%s)", name, err, stale)
		}
		if name == "wormhole.wasm.gz" { // the module, whatever compress/flate makes of it
			fresh, committed = gunzip(t, fresh), gunzip(t, committed)
		}
		if !bytes.Equal(fresh, committed) {
			t.Errorf("static/%s (%d bytes) differs from a fresh build (%d bytes): it %s", name, len(committed), len(fresh), stale)
		}
	}
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// nodeWASM is the committed WebAssembly build running under Node (testdata/wormhole-node.js).
type nodeWASM struct {
	t   *testing.T
	in  io.Writer
	out *bufio.Scanner
}

// startNodeWASM runs the embedded wormhole.wasm.gz and wasm_exec.js under Node.
func startNodeWASM(t *testing.T) *nodeWASM {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.Missing(t, "node is missing", "install Node.js 20 or later (scripts/install-test-deps.sh needs it too)")
	}
	dir := t.TempDir()
	for _, name := range []string{"wasm_exec.js", "wormhole.wasm.gz"} {
		b, err := fs.ReadFile(static, "static/"+name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := exec.CommandContext(ctx, node, "testdata/wormhole-node.js", filepath.Join(dir, "wasm_exec.js"), filepath.Join(dir, "wormhole.wasm.gz"))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = in.Close() // node exits at the end of its input
		_ = cmd.Wait()
		cancel()
	})
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	return &nodeWASM{t: t, in: in, out: sc}
}

// call calls switchboardWormhole[fn](args...) in Node and decodes the result into T.
func call[T any](n *nodeWASM, fn string, args ...any) T {
	n.t.Helper()
	if args == nil {
		args = []any{}
	}
	line, err := json.Marshal(map[string]any{"fn": fn, "args": args})
	if err != nil {
		n.t.Fatal(err)
	}
	if _, err := n.in.Write(append(line, '\n')); err != nil {
		n.t.Fatalf("%s: %v", fn, err)
	}
	if !n.out.Scan() {
		n.t.Fatalf("%s: no answer from node: %v", fn, n.out.Err())
	}
	var v T
	if err := json.Unmarshal(n.out.Bytes(), &v); err != nil {
		n.t.Fatalf("%s: %v in %s", fn, err, n.out.Bytes())
	}
	return v
}

// jsStep is a step as the WebAssembly API returns it.
type jsStep struct {
	Reply  json.RawMessage `json:"reply"`
	Ready  bool            `json:"ready"`
	Error  *jsErr          `json:"error"`
	Bind   json.RawMessage `json:"bind"`
	Report string          `json:"report"`
	GaveUp bool            `json:"gaveUp"`
	Lost   *jsErr          `json:"lost"`
}

type jsErr struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

func marshal(t *testing.T, m *wormhole.Msg) string {
	t.Helper()
	if m == nil {
		t.Fatal("no message")
	}
	b, err := json.Marshal(*m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestWASMAgreesWithNative runs the WebAssembly build (under Node) against the native
// package, through JSON as the server relays it: a receiver in WebAssembly with a native
// sender, binds checked both ways (and a substituted certificate refused); a sender in
// WebAssembly that counts a native receiver's wrong code with the native Pair's words, then
// takes the right one; codes parsed and refused alike.
func TestWASMAgreesWithNative(t *testing.T) {
	n := startNodeWASM(t)
	if v := call[int](n, "maxWrongCodes"); v != wormhole.MaxWrongCodes {
		t.Fatalf("maxWrongCodes %d", v)
	}
	c, err := wormhole.NewCode()
	if err != nil {
		t.Fatal(err)
	}

	// WebAssembly receiver, native sender.
	h := call[int](n, "newPair", "recv", c.String())
	s := wormhole.NewPair(wormhole.Sender, c)
	x := call[jsStep](n, "add", h, "s")
	if x.Reply == nil {
		t.Fatalf("receiver's add: %+v", x)
	}
	s.Add("r")
	y := s.Message("r", x.Reply)
	if y.Reply == nil || y.Err != nil {
		t.Fatalf("native sender on the WebAssembly x: %+v", y)
	}
	conf := call[jsStep](n, "message", h, "s", marshal(t, y.Reply))
	if !conf.Ready || conf.Reply == nil || conf.Error != nil {
		t.Fatalf("WebAssembly receiver on y: %+v", conf)
	}
	if st := s.Message("r", conf.Reply); !st.Ready {
		t.Fatalf("native sender on the WebAssembly confirm: %+v", st)
	}
	if !call[bool](n, "ready", h, "s") {
		t.Fatal("the WebAssembly receiver is not ready")
	}
	fr, fs, fm := sha256.Sum256([]byte("recv cert")), sha256.Sum256([]byte("send cert")), sha256.Sum256([]byte("mitm cert"))
	sdp := func(b [32]byte) string { // as in SDP: AB:CD:...
		h := hex.EncodeToString(b[:])
		out := ""
		for i := 0; i < len(h); i += 2 {
			if i > 0 {
				out += ":"
			}
			out += h[i : i+2]
		}
		return out
	}
	jb := call[json.RawMessage](n, "bind", h, "s", "dtls", sdp(fr), sdp(fs))
	m, err := wormhole.DecodeMsg(jb)
	if err != nil {
		t.Fatalf("the WebAssembly bind %s: %v", jb, err)
	}
	if err := s.Session("r").CheckBind(m, "dtls", fs[:], fr[:]); err != nil {
		t.Fatalf("native check of the WebAssembly bind: %v", err)
	}
	nb, _ := s.Session("r").Bind("dtls", fs[:], fr[:])
	if e := call[*jsStep](n, "checkBind", h, "s", marshal(t, &nb), "dtls", sdp(fr), sdp(fs)); e != nil {
		t.Fatalf("WebAssembly check of the native bind: %+v", e)
	}
	if e := call[jsStep](n, "checkBind", h, "s", marshal(t, &nb), "dtls", sdp(fr), sdp(fm)); e.Error == nil || e.Error.Kind != "binding" {
		t.Fatalf("a substituted certificate: %+v", e)
	}
	if st := call[jsStep](n, "left", h, "s"); st.Lost == nil || st.Lost.Kind != "sender-left" {
		t.Fatalf("the sender left: %+v", st)
	}
	call[any](n, "close", h)

	// WebAssembly sender; a native receiver with a wrong code, then one with the right code.
	w := c
	w.Words = append([]string(nil), c.Words...)
	w.Words[1] = map[bool]string{true: "adroitness", false: "adviser"}[w.Words[1] != "adroitness"]
	native := wormhole.NewPair(wormhole.Sender, c) // the same attempt, natively, for the words
	hs := call[int](n, "newPair", "send", "")
	if e := call[*jsStep](n, "setCode", hs, c.String()); e != nil {
		t.Fatalf("setCode: %+v", e)
	}
	for i, rc := range []wormhole.Code{w, c} {
		id := []string{"wrong", "right"}[i]
		r, r2 := wormhole.NewPair(wormhole.Receiver, rc), wormhole.NewPair(wormhole.Receiver, rc)
		rx, _ := r.Add("s")
		rx2, _ := r2.Add("s")
		call[jsStep](n, "add", hs, id)
		native.Add(id)
		jy := call[jsStep](n, "message", hs, id, marshal(t, rx.Reply))
		ny := native.Message(id, []byte(marshal(t, rx2.Reply)))
		if jy.Reply == nil || ny.Reply == nil {
			t.Fatalf("%s: y: %+v / %+v", id, jy, ny)
		}
		rs := r.Message("s", jy.Reply)
		js := call[jsStep](n, "message", hs, id, marshal(t, rs.Reply))
		ns := native.Message(id, []byte(marshal(t, r2.Message("s", []byte(marshal(t, ny.Reply))).Reply)))
		if i == 0 {
			if !errors.Is(rs.Lost, wormhole.ErrWrongCode) || js.Error == nil || js.Error.Kind != "wrong-code" {
				t.Fatalf("wrong code: receiver %+v, WebAssembly sender %+v", rs, js)
			}
			if js.Report == "" || js.Report != ns.Report {
				t.Fatalf("WebAssembly sender reports %q, the native one %q", js.Report, ns.Report)
			}
			continue
		}
		if !rs.Ready || !js.Ready || js.Error != nil {
			t.Fatalf("right code: receiver %+v, WebAssembly sender %+v", rs, js)
		}
	}

	// Codes: the same canonical form and the same refusals.
	for _, in := range []string{c.String(), "  42 Aardvark ADROITNESS acme ", "7-aardvark-nonsense-acme", "7-adroitness-aardvark-acme", "12", "0-aardvark-adroitness-acme"} {
		got := call[struct {
			Code  string `json:"code"`
			Room  string `json:"room"`
			Error *jsErr `json:"error"`
		}](n, "parseCode", in)
		want, err := wormhole.ParseCode(in)
		switch {
		case err != nil && (got.Error == nil || got.Error.Kind != "bad-code" || got.Error.Message != err.Error()):
			t.Errorf("parseCode(%q): %+v, want the error %q", in, got, err)
		case err == nil && (got.Code != want.String() || got.Room != want.Room()):
			t.Errorf("parseCode(%q): %+v, want %s in %s", in, got, want, want.Room())
		}
	}
	nc := call[struct{ Code string }](n, "newCode")
	if _, err := wormhole.ParseCode(nc.Code); err != nil {
		t.Fatalf("newCode %q: %v", nc.Code, err)
	}
}
