// Tests of Switchboard's patches (PATCHES.md); each fails without its patch. Run from
// Switchboard's root: go test -race -count=1 -run '^TestPatch' github.com/pion/turn/v5/...

package server

import (
	"bytes"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5/internal/allocation"
	"github.com/pion/turn/v5/internal/proto"
)

// countingLogger counts the lines it is asked for, at any level, and writes none.
type countingLogger struct{ n atomic.Int64 }

func (l *countingLogger) Trace(string)          { l.n.Add(1) }
func (l *countingLogger) Tracef(string, ...any) { l.n.Add(1) }
func (l *countingLogger) Debug(string)          { l.n.Add(1) }
func (l *countingLogger) Debugf(string, ...any) { l.n.Add(1) }
func (l *countingLogger) Info(string)           { l.n.Add(1) }
func (l *countingLogger) Infof(string, ...any)  { l.n.Add(1) }
func (l *countingLogger) Warn(string)           { l.n.Add(1) }
func (l *countingLogger) Warnf(string, ...any)  { l.n.Add(1) }
func (l *countingLogger) Error(string)          { l.n.Add(1) }
func (l *countingLogger) Errorf(string, ...any) { l.n.Add(1) }

var _ logging.LeveledLogger = (*countingLogger)(nil)

// TestPatchChannelDataLogsNothing (patch 1): relaying ChannelData from a client to a peer
// through HandleRequest asks the logger for no line, so builds none of their arguments, and
// the datagram reaches the peer. Upstream built three debug lines per datagram.
func TestPatchChannelDataLogsNothing(t *testing.T) {
	udp := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	turnSocket, client, peer := udp(), udp(), udp()
	log := &countingLogger{}
	manager, err := allocation.NewManager(allocation.ManagerConfig{
		AllocatePacketConn: func(conf allocation.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
			c, err := net.ListenPacket(conf.Network, "127.0.0.1:0") // nolint: noctx
			if err != nil {
				return nil, nil, err
			}
			return c, c.LocalAddr(), nil
		},
		AllocateListener: func(allocation.AllocateListenerConfig) (net.Listener, net.Addr, error) { return nil, nil, nil },
		AllocateConn:     func(allocation.AllocateConnConfig) (net.Conn, error) { return nil, nil }, //nolint:nilnil
		LeveledLogger:    log,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = manager.Close() }()
	alloc, err := manager.CreateAllocation(&allocation.FiveTuple{SrcAddr: client.LocalAddr(), DstAddr: turnSocket.LocalAddr()},
		turnSocket, proto.ProtoUDP, 0, proto.DefaultLifetime, "", "", proto.RequestedFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	bind := allocation.NewChannelBind(proto.MinChannelNumber, peer.LocalAddr(), log)
	if err := alloc.AddChannelBind(bind, proto.DefaultLifetime, allocation.DefaultPermissionTimeout); err != nil {
		t.Fatal(err)
	}

	cd := &proto.ChannelData{Number: proto.MinChannelNumber, Data: bytes.Repeat([]byte{7}, 1200)}
	cd.Encode()
	before := log.n.Load()
	buf := make([]byte, 2048)
	for range 100 {
		if err := HandleRequest(Request{Conn: turnSocket, SrcAddr: client.LocalAddr(), Buff: cd.Raw, Log: log, AllocationManager: manager}); err != nil {
			t.Fatal(err)
		}
		_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, _, err := peer.ReadFromUDPAddrPort(buf); err != nil || !bytes.Equal(buf[:n], cd.Data) {
			t.Fatalf("peer got %d bytes (%v), want the 1,200 sent", n, err)
		}
	}
	if n := log.n.Load() - before; n != 0 {
		t.Errorf("%d log lines asked for while relaying 100 datagrams, want none", n)
	}
}
