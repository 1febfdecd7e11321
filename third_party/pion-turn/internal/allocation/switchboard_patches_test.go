// Tests of Switchboard's patches (PATCHES.md); each fails without its patch. Run from
// Switchboard's root: go test -race -count=1 -run '^TestPatch' github.com/pion/turn/v5/...

//go:build !js

package allocation

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/turn/v5/internal/proto"
)

// relayFixture is an allocation on 127.0.0.1 with a UDP client and a peer on a channel.
type relayFixture struct {
	manager *Manager
	alloc   *Allocation
	client  *net.UDPConn
	peer    *net.UDPConn
	relay   netip.AddrPort
	channel *ChannelBind
}

func newRelayFixture(t *testing.T) *relayFixture {
	t.Helper()
	manager, err := newTestManager()
	if err != nil {
		t.Fatal(err)
	}
	udp := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	turnSocket, client, peer := udp(), udp(), udp()
	alloc, err := manager.CreateAllocation(&FiveTuple{SrcAddr: client.LocalAddr(), DstAddr: turnSocket.LocalAddr()},
		turnSocket, proto.ProtoUDP, 0, proto.DefaultLifetime, "", "", proto.RequestedFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = manager.Close() })
	channel := NewChannelBind(proto.MinChannelNumber, peer.LocalAddr(), manager.log)
	if err := alloc.AddChannelBind(channel, proto.DefaultLifetime, DefaultPermissionTimeout); err != nil {
		t.Fatal(err)
	}
	port := alloc.relayPacketConn.LocalAddr().(*net.UDPAddr).Port //nolint:forcetypeassert
	return &relayFixture{
		manager: manager, alloc: alloc, client: client, peer: peer, channel: channel,
		relay: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)), //nolint:gosec
	}
}

// TestPatchRelayLoopReusesChannelData (patches 1 and 2): a datagram from a peer on a channel
// reaches the client as ChannelData (odd sizes: the padding is right) and the relay loop
// allocates only what the socket's ReadFrom does (its source address: two objects). Upstream
// made a ChannelData and its Raw for each datagram and boxed a debug line's arguments.
func TestPatchRelayLoopReusesChannelData(t *testing.T) {
	f := newRelayFixture(t)
	buf := make([]byte, 2048)
	payload := bytes.Repeat([]byte{0xab}, 1201)
	relay := func(size int) {
		if _, err := f.peer.WriteToUDPAddrPort(payload[:size], f.relay); err != nil {
			t.Fatal(err)
		}
		_ = f.client.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := f.client.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		cd := proto.ChannelData{Raw: buf[:n]}
		if err := cd.Decode(); err != nil || cd.Number != f.channel.Number || !bytes.Equal(cd.Data, payload[:size]) || n%4 != 0 {
			t.Fatalf("client got %d bytes, channel %v, %d of data (%v); want channel %v, %d bytes padded to 4", n, cd.Number, len(cd.Data), err, f.channel.Number, size)
		}
	}
	for _, size := range []int{1, 2, 3, 4, 1201, 1200} {
		relay(size)
	}
	if allocs := testing.AllocsPerRun(500, func() { relay(1201) }); allocs > 2 {
		t.Errorf("%.0f allocations per datagram relayed to the client, want 2 (the relay socket's source address)", allocs)
	}
}

// TestPatchLookupsTakeNoLock (patch 4): the lookups every relayed datagram makes return while
// the locks their writers take are held.
func TestPatchLookupsTakeNoLock(t *testing.T) {
	f := newRelayFixture(t)
	five := &FiveTuple{SrcAddr: f.client.LocalAddr(), DstAddr: f.alloc.TurnSocket.LocalAddr()}
	within := func(what string, lookup func() bool) {
		t.Helper()
		done := make(chan bool, 1)
		go func() { done <- lookup() }()
		select {
		case ok := <-done:
			if !ok {
				t.Errorf("%s found nothing", what)
			}
		case <-time.After(2 * time.Second):
			t.Errorf("%s waited for the lock", what)
		}
	}
	f.manager.lock.Lock()
	within("GetAllocation", func() bool { return f.manager.GetAllocation(five) == f.alloc })
	f.manager.lock.Unlock()
	f.alloc.channelBindingsLock.Lock()
	within("GetChannelByNumber", func() bool { return f.alloc.GetChannelByNumber(f.channel.Number) == f.channel })
	within("GetChannelByAddr", func() bool { return f.alloc.GetChannelByAddr(f.peer.LocalAddr()) == f.channel })
	f.alloc.channelBindingsLock.Unlock()
	// Changes are seen: a removed channel and a deleted allocation are gone.
	if !f.alloc.RemoveChannelBind(f.channel.Number) || f.alloc.GetChannelByNumber(f.channel.Number) != nil {
		t.Error("a removed channel is still found")
	}
	f.manager.DeleteAllocation(five)
	if f.manager.GetAllocation(five) != nil {
		t.Error("a deleted allocation is still found")
	}
}
