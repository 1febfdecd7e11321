package testserver

import (
	"io"
	"net"
	"testing"
	"time"
)

// echoServer accepts on loopback and writes name to each connection, then echoes.
func echoServer(t *testing.T, name string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = c.Write([]byte(name))
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln
}

func greet(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read through the balancer: %v", err)
	}
	return string(b)
}

// Connections go to the backends in turn and skip one that is down.
func TestBalancerPassesOverDeadBackend(t *testing.T) {
	a, b := echoServer(t, "a"), echoServer(t, "b")
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	_ = dead.Close()
	lb := NewBalancer(t, a.Addr().String(), deadAddr, b.Addr().String())
	got := map[string]int{}
	for range 6 {
		got[greet(t, lb.Addr())]++
	}
	if got["a"] == 0 || got["b"] == 0 || got["a"]+got["b"] != 6 {
		t.Fatalf("greetings %v: want both live backends and nothing else", got)
	}
	if lb.Count(deadAddr) != 0 {
		t.Fatalf("%d connections to the dead backend", lb.Count(deadAddr))
	}
}
