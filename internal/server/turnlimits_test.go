package server_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/config"
)

// TestTURNPerClientLimitsFromConfig: --turn-tcp-per-client reaches the embedded TURN server
// (the connection over a client's cap is closed while another client's is served) and the
// refusal shows in /metrics by reason.
func TestTURNPerClientLimitsFromConfig(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.TURN = true
		c.TURNTCPPerClient = 2
	})
	dialFrom := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp4", ts.TURN().TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	closed := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return err != nil && !(errors.As(err, &ne) && ne.Timeout())
	}
	dialFrom("127.0.0.2")
	dialFrom("127.0.0.2")
	if !closed(dialFrom("127.0.0.2")) {
		t.Fatal("a third TCP connection from 127.0.0.2 stayed open with turn-tcp-per-client 2")
	}
	other := dialFrom("127.0.0.3")
	if _, err := other.Write([]byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}); err != nil {
		t.Fatal(err) // a STUN Binding request
	}
	_ = other.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := other.Read(make([]byte, 64)); err != nil {
		t.Fatalf("a client from 127.0.0.3 got no Binding answer: %v", err)
	}
	if v := metricValue(t, ts, `switchboard_turn_refused_total{reason="tcp-per-client"}`); v != "1" {
		t.Errorf(`switchboard_turn_refused_total{reason="tcp-per-client"} = %q, want 1`, v)
	}
	if v := metricValue(t, ts, `switchboard_turn_refused_total{reason="client-allocations"}`); v != "0" {
		t.Errorf(`switchboard_turn_refused_total{reason="client-allocations"} = %q, want 0`, v)
	}
}
