package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pion/logging"
	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
)

// quietPion keeps pion's logs out of the tool's output.
var quietPion = func() *logging.DefaultLoggerFactory {
	f := logging.NewDefaultLoggerFactory()
	f.Writer = io.Discard
	return f
}()

// turnCreds is the embedded TURN server's address and one peer's credentials.
type turnCreds struct {
	addr       string // host:port, UDP and TCP
	user, pass string
}

// credsFrom finds the embedded TURN server's credentials in a welcome's iceServers.
func credsFrom(servers []iceServer) (turnCreds, bool) {
	for _, s := range servers {
		for _, u := range s.URLs {
			rest, ok := strings.CutPrefix(u, "turn:")
			if !ok || s.Username == "" {
				continue
			}
			hostport, _, _ := strings.Cut(rest, "?")
			return turnCreds{addr: hostport, user: s.Username, pass: s.Credential}, true
		}
	}
	return turnCreds{}, false
}

// turnAlloc is one live allocation and what it holds open.
type turnAlloc struct {
	relay  net.PacketConn
	client *turn.Client
	conn   net.PacketConn
}

// close deallocates (a Refresh with lifetime 0) and closes the client's socket.
func (a *turnAlloc) close() {
	_ = a.relay.Close()
	a.client.Close()
	_ = a.conn.Close()
}

// turnAllocate allocates one UDP relay from src, talking to the server over TCP when tcp is
// set (what a browser behind a UDP-blocking firewall does with `?transport=tcp`).
func turnAllocate(ctx context.Context, c turnCreds, src netip.Addr, tcp bool) (*turnAlloc, error) {
	var conn net.PacketConn
	if tcp {
		d := tcpDialer(src, 5*time.Second, 0)
		tc, err := d.DialContext(ctx, "tcp4", c.addr)
		if err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		conn = turn.NewSTUNConn(tc)
	} else {
		pc, err := net.ListenPacket("udp4", net.JoinHostPort(src.String(), "0"))
		if err != nil {
			return nil, fmt.Errorf("udp socket: %w", err)
		}
		conn = pc
	}
	cl, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: c.addr,
		TURNServerAddr: c.addr,
		Username:       c.user,
		Password:       c.pass,
		Conn:           conn,
		LoggerFactory:  quietPion,
		RTO:            200 * time.Millisecond,
	})
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("turn client: %w", err)
	}
	if err := cl.Listen(); err != nil {
		cl.Close()
		_ = conn.Close()
		return nil, fmt.Errorf("turn client: %w", err)
	}
	relay, err := cl.AllocateWithContext(ctx)
	if err != nil {
		cl.Close()
		_ = conn.Close()
		return nil, fmt.Errorf("allocate: %w", err)
	}
	return &turnAlloc{relay: relay, client: cl, conn: conn}, nil
}

// turnKey names a TURN failure for a tally: the STUN error code when the server answered
// one (486 quota, 508 capacity, 401 credentials), else the class of the error.
func turnKey(err error) string {
	var te *stun.TurnError
	if errors.As(err, &te) {
		return strconv.Itoa(int(te.ErrorCodeAttr.Code))
	}
	var tv stun.TurnError
	if errors.As(err, &tv) {
		return strconv.Itoa(int(tv.ErrorCodeAttr.Code))
	}
	if errors.Is(err, errNoCredentials) {
		return "no-credentials"
	}
	if err != nil && strings.Contains(err.Error(), "retransmissions failed") {
		return "timeout"
	}
	if err != nil && strings.Contains(err.Error(), "failed to retransmit") {
		return "closed" // the request could not be written: the server closed the connection
	}
	return errKey(err)
}
