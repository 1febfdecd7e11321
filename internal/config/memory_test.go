package config

import (
	"testing"
)

func TestByteSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want ByteSize
	}{
		{"0", 0}, {"65536", 65536}, {"64KiB", 64 << 10}, {"64k", 64 << 10}, {"64KB", 64 << 10},
		{"512MiB", 512 << 20}, {"1.5GiB", 3 << 29}, {"2g", 2 << 30}, {" 1 TiB ", 1 << 40}, {"10B", 10},
	} {
		got, err := ParseByteSize(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "GiB", "-1", "12XB", "1e3", "99999999TiB", "1.2.3k"} {
		if got, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", bad, got)
		}
	}
	for _, c := range []struct {
		in   ByteSize
		want string
	}{{0, "0"}, {64 << 10, "64KiB"}, {3 << 29, "1536MiB"}, {1000, "1000"}, {2 << 30, "2GiB"}} {
		if got := c.in.String(); got != c.want {
			t.Errorf("%d.String() = %q, want %q", int64(c.in), got, c.want)
		}
	}
}

func TestMemoryConfig(t *testing.T) {
	cfg, err := Load([]string{"--memory-budget", "256MiB"}, fakeEnv(map[string]string{"SWITCHBOARD_SOCKET_SEND_BUFFER": "128k"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Budget() != 256<<20 || cfg.SocketSendBuffer != 128<<10 {
		t.Fatalf("budget %d, send buffer %d", cfg.Budget(), cfg.SocketSendBuffer)
	}
	if _, err := Load([]string{"--memory-budget", "100k"}, fakeEnv(nil), nil); err == nil {
		t.Fatal("a 100 KiB budget was accepted")
	}
	if _, err := Load([]string{"--socket-send-buffer", "1k"}, fakeEnv(nil), nil); err == nil {
		t.Fatal("a 1 KiB send buffer was accepted")
	}
	def, err := Load(nil, fakeEnv(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if def.Budget() <= 0 || def.SocketSendBuffer != 64<<10 {
		t.Fatalf("default budget %d, send buffer %d", def.Budget(), def.SocketSendBuffer)
	}
}
