package certs

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// TestFilesReload: the pair in the files is served; new files are picked up; files that do
// not load keep the previous pair in service.
func TestFilesReload(t *testing.T) {
	dir := t.TempDir()
	cp, kp := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	a, err := SelfSigned([]string{"a.test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := WritePEM(a, cp, kp); err != nil {
		t.Fatal(err)
	}
	f, err := LoadFiles(cp, kp, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.every = 0
	serving := func() string {
		c, err := f.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return Fingerprint(c)
	}
	if serving() != Fingerprint(a) {
		t.Fatal("not serving the files' certificate")
	}
	b, _ := SelfSigned([]string{"b.test"})
	if err := WritePEM(b, cp, kp); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute) // a changed modification time, whatever the clock's grain
	_ = os.Chtimes(cp, later, later)
	if serving() != Fingerprint(b) {
		t.Fatal("the renewed certificate is not served")
	}
	if err := os.WriteFile(cp, []byte("half written"), 0o644); err != nil {
		t.Fatal(err)
	}
	later = later.Add(time.Minute)
	_ = os.Chtimes(cp, later, later)
	if serving() != Fingerprint(b) {
		t.Fatal("a broken renewal replaced the certificate in service")
	}
	if _, err := LoadFiles(filepath.Join(dir, "missing"), kp, nil); err == nil {
		t.Fatal("missing files loaded")
	}
}

func TestSelfSigned(t *testing.T) {
	c, err := SelfSigned([]string{"call.example.test", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Leaf.VerifyHostname("call.example.test"); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"localhost", "127.0.0.1", "192.0.2.7"} {
		if err := c.Leaf.VerifyHostname(h); err != nil {
			t.Fatalf("%s: %v", h, err)
		}
	}
	if fp := Fingerprint(c); !regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`).MatchString(fp) {
		t.Fatalf("fingerprint %q", fp)
	}
}
