package bench

import (
	"fmt"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/internal/netimpair"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// dcKnobs are the settings of one data-channel transfer.
type dcKnobs struct {
	msgSize      int           // bytes per Send
	maxBuffered  uint64        // stop sending above this bufferedAmount
	lowThreshold uint64        // resume at this bufferedAmountLowThreshold
	reliable     bool          // ordered and reliable; otherwise unordered with maxRetransmits 0
	detach       bool          // detached channels: Read/Write instead of OnMessage/Send
	recvBuffer   uint32        // SettingEngine.SetSCTPMaxReceiveBufferSize (0: Pion's default, 1 MiB)
	zeroChecksum bool          // SettingEngine.EnableSCTPZeroChecksum
	udpBuffer    int           // SO_RCVBUF and SO_SNDBUF of the ICE sockets (0: the kernel's default)
	rtoMax       time.Duration // SettingEngine.SetSCTPRTOMax (0: Pion's default, 60 s)
	minCwnd      uint32        // SettingEngine.SetSCTPMinCwnd (0: Pion's default)
	fastRtxWnd   uint32        // SettingEngine.SetSCTPFastRtxWnd (0: Pion's default)
	cwndCAStep   uint32        // SettingEngine.SetSCTPCwndCAStep (0: Pion's default)
	dtlsReplay   uint          // SettingEngine.SetDTLSReplayProtectionWindow (0: Pion's default, 64)
	impair       netimpair.Config
}

func (k dcKnobs) String() string {
	s := fmt.Sprintf("%s msgs, high %s, low %s", sizeStr(uint64(k.msgSize)), sizeStr(k.maxBuffered), sizeStr(k.lowThreshold))
	if k.reliable {
		s = "ordered reliable, " + s
	} else {
		s = "unordered maxRetransmits=0, " + s
	}
	if k.recvBuffer != 0 {
		s += ", sctp receive buffer " + sizeStr(uint64(k.recvBuffer))
	}
	if k.detach {
		s += ", detached"
	}
	if k.zeroChecksum {
		s += ", zero checksum"
	}
	if k.udpBuffer != 0 {
		s += ", udp socket buffers " + sizeStr(uint64(k.udpBuffer))
	}
	if k.rtoMax != 0 {
		s += ", sctp rto max " + k.rtoMax.String()
	}
	if k.minCwnd != 0 {
		s += ", sctp min cwnd " + sizeStr(uint64(k.minCwnd))
	}
	if k.dtlsReplay != 0 {
		s += fmt.Sprintf(", dtls replay window %d", k.dtlsReplay)
	}
	if k.fastRtxWnd != 0 {
		s += ", sctp fast rtx wnd " + sizeStr(uint64(k.fastRtxWnd))
	}
	if k.cwndCAStep != 0 {
		s += ", sctp cwnd CA step " + sizeStr(uint64(k.cwndCAStep))
	}
	if c := k.impair; c != (netimpair.Config{}) {
		s += fmt.Sprintf(", impaired: %v ± %v one way, %.1f %% loss, %d B/s", c.Delay, c.Jitter, 100*c.Loss, c.Rate)
	}
	return s
}

// sizeStr formats a byte count in KiB or MiB when it is a whole number of them.
func sizeStr(n uint64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// stockKnobs are the settings of Pion's examples/data-channels-flow-control (v4.2.26).
var stockKnobs = dcKnobs{
	msgSize:      1024,
	maxBuffered:  1024 * 1024,
	lowThreshold: 512 * 1024,
	reliable:     false,
}

// ourKnobs are the fastest settings found for an SDK pair on loopback (docs/benchmarks.md):
// the stock example's watermarks, but 64 KiB messages on an ordered reliable detached
// channel, and larger UDP socket buffers so that the kernel drops no packet (a lost packet
// stalls a reliable SCTP stream for its 1 s minimum retransmission timeout).
var ourKnobs = dcKnobs{
	msgSize:      64 * 1024,
	maxBuffered:  1024 * 1024,
	lowThreshold: 512 * 1024,
	reliable:     true,
	detach:       true,
	udpBuffer:    4 << 20,
}

// knobSettingEngine adds k's SettingEngine knobs to se, and a logger that keeps Pion's
// retransmission counters in pc (which changes nothing on the wire).
func knobSettingEngine(se webrtc.SettingEngine, k dcKnobs, pc *pionCounters) (webrtc.SettingEngine, error) {
	se.LoggerFactory = pc
	if k.udpBuffer != 0 || k.impair != (netimpair.Config{}) {
		n, err := sdk.BufferedNet(k.udpBuffer, pc.recordRcvbuf)
		if err != nil {
			return se, fmt.Errorf("network: %w", err)
		}
		if k.impair != (netimpair.Config{}) {
			n = netimpair.Net(n, k.impair)
		}
		se.SetNet(n)
	}
	if k.minCwnd != 0 {
		se.SetSCTPMinCwnd(k.minCwnd)
	}
	if k.dtlsReplay != 0 {
		se.SetDTLSReplayProtectionWindow(k.dtlsReplay)
	}
	if k.fastRtxWnd != 0 {
		se.SetSCTPFastRtxWnd(k.fastRtxWnd)
	}
	if k.cwndCAStep != 0 {
		se.SetSCTPCwndCAStep(k.cwndCAStep)
	}
	if k.rtoMax != 0 {
		se.SetSCTPRTOMax(k.rtoMax)
	}
	if k.recvBuffer != 0 {
		se.SetSCTPMaxReceiveBufferSize(k.recvBuffer)
	}
	if k.detach {
		se.DetachDataChannels()
	}
	if k.zeroChecksum {
		se.EnableSCTPZeroChecksum(true)
	}
	return se, nil
}

// init is the DataChannelInit of k's channel (nil: ordered and reliable).
func (k dcKnobs) init() *webrtc.DataChannelInit {
	if k.reliable {
		return nil // ordered and reliable
	}
	ordered, retransmits := false, uint16(0)
	return &webrtc.DataChannelInit{Ordered: &ordered, MaxRetransmits: &retransmits}
}
