// Tests of Switchboard's patches 7 onwards (PATCHES.md). Each fails on upstream's code.

package sctp

import (
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Patch 7: the packet that fills a gap is SACKed at once, not after the delayed-ack timer.
func TestPatchSackImmediatelyWhenGapFilled(t *testing.T) {
	assoc := createTestAssociation(t, Config{LoggerFactory: logging.NewDefaultLoggerFactory()})
	assoc.payloadQueue.init(0)
	assoc.setState(established)
	defer assoc.ackTimer.stop()

	data := func(tsn uint32, ssn uint16) *chunkPayloadData {
		return &chunkPayloadData{
			beginningFragment: true, endingFragment: true, tsn: tsn,
			streamIdentifier: 1, streamSequenceNumber: ssn, userData: []byte("x"),
		}
	}
	first := assoc.peerLastTSN() + 1

	// TSN first+1 arrives before first: a gap, SACKed at once (upstream does that too).
	assoc.handleChunksStart()
	assoc.handleData(data(first+1, 1))
	assoc.handleChunksEnd()
	assoc.lock.Lock()
	require.Equal(t, ackStateImmediate, assoc.ackState)
	assoc.ackState = ackStateIdle // as if that SACK went out
	assoc.lock.Unlock()

	// The retransmission of first fills the gap: its SACK must not wait.
	assoc.handleChunksStart()
	assoc.handleData(data(first, 0))
	assoc.handleChunksEnd()
	assoc.lock.RLock()
	defer assoc.lock.RUnlock()
	assert.Equal(t, first+1, assoc.peerLastTSN(), "both chunks are in")
	assert.Equal(t, ackStateImmediate, assoc.ackState, "the chunk that fills the gap is SACKed at once")
}

// Patch 8: retransmitting the earliest outstanding chunk after a detected loss restarts T3-rtx
// with the current RTO, instead of leaving it running from the last cumulative ack.
func TestPatchT3RestartsWhenFirstOutstandingRetransmitted(t *testing.T) {
	assoc := newRackTestAssoc(t)
	assoc.lock.Lock()
	defer assoc.lock.Unlock()
	defer assoc.t3RTX.stop()

	assoc.setCWND(100000)
	assoc.setRWND(100000)
	now := time.Now()
	c100, c101 := mkChunk(100, now.Add(-50*time.Millisecond)), mkChunk(101, now)
	assoc.inflightQueue.pushNoCheck(c100)
	assoc.inflightQueue.pushNoCheck(c101)

	const running = 30000.0 // ms: the timer as it was started long ago, not the current RTO
	require.True(t, assoc.t3RTX.start(running))
	require.NotEqual(t, running, assoc.rtoMgr.getRTO())

	c100.retransmit = true // RACK or three miss indications found it lost
	packets := assoc.getDataPacketsToRetransmit(nil, nil)
	require.Len(t, packets, 1)

	assoc.t3RTX.mutex.Lock()
	rto := assoc.t3RTX.rto
	assoc.t3RTX.mutex.Unlock()
	assert.InDelta(t, assoc.rtoMgr.getRTO(), rto, 0.001, "T3-rtx restarted with the current RTO")
}

// Patch 8: after the timer expired, its own retransmissions keep the backed-off timeout.
func TestPatchT3KeepsBackoffOnItsOwnRetransmissions(t *testing.T) {
	assoc := newRackTestAssoc(t)
	assoc.lock.Lock()
	defer assoc.lock.Unlock()
	defer assoc.t3RTX.stop()

	assoc.setCWND(100000)
	assoc.setRWND(100000)
	c100 := mkChunk(100, time.Now())
	assoc.inflightQueue.pushNoCheck(c100)
	require.True(t, assoc.t3RTX.start(30000))
	assoc.t3RTX.mutex.Lock()
	assoc.t3RTX.nRtos = 1 // expired once
	assoc.t3RTX.mutex.Unlock()

	c100.retransmit = true
	require.Len(t, assoc.getDataPacketsToRetransmit(nil, nil), 1)
	assert.True(t, assoc.t3RTX.backedOff(), "a T3 retransmission does not reset the backoff")
}

// Patch 9: RACK finds a lost retransmission: a chunk retransmitted before a chunk that has
// since been delivered, by more than the reordering window, is lost again.
func TestPatchRackDetectsLostRetransmission(t *testing.T) {
	assoc := newRackTestAssoc(t)
	assoc.lock.Lock()
	assoc.rackMinRTT = 40 * time.Millisecond
	assoc.rackReoWnd = 10 * time.Millisecond
	now := time.Now()
	retransmitted := mkChunk(100, now.Add(-50*time.Millisecond))
	retransmitted.nSent = 2 // its retransmission, 50 ms ago, was lost too
	later := mkChunk(101, now.Add(-time.Millisecond))
	assoc.inflightQueue.pushNoCheck(retransmitted)
	assoc.inflightQueue.pushNoCheck(later)
	assoc.rackInsert(retransmitted)
	assoc.rackInsert(later)
	assoc.lock.Unlock()

	assoc.onRackAfterSACK(true, later.since, 101, &chunkSelectiveAck{})

	assoc.lock.RLock()
	defer assoc.lock.RUnlock()
	assert.True(t, retransmitted.retransmit, "RACK marks the lost retransmission for another one")
}

// Patch 9: the ack of a retransmitted chunk that came sooner than the minimum RTT after the
// retransmission acknowledges the original (RFC 8985 6.2): it does not advance RACK's clock.
func TestPatchRackIgnoresAmbiguousAckOfRetransmission(t *testing.T) {
	assoc := newRackTestAssoc(t)
	assoc.lock.Lock()
	defer assoc.lock.Unlock()
	assoc.rackMinRTT = 40 * time.Millisecond
	now := time.Now()

	c := mkChunk(100, now.Add(-5*time.Millisecond))
	c.nSent = 2
	assert.True(t, assoc.rackAmbiguousLocked(c, now), "acked 5 ms after its retransmission")
	c.since = now.Add(-50 * time.Millisecond)
	assert.False(t, assoc.rackAmbiguousLocked(c, now), "acked a round trip after its retransmission")
	c.nSent, c.since = 1, now.Add(-5*time.Millisecond)
	assert.False(t, assoc.rackAmbiguousLocked(c, now), "an original is never ambiguous")
}

// Patch 10: an association starts with TCP's initial window (RFC 6928), not 4380 bytes.
func TestPatchInitialWindowIsTCPs(t *testing.T) {
	assert.Equal(t, uint32(12000), initialCwnd(1200), "10 MTU below 1460-byte MTUs")
	assert.Equal(t, uint32(14600), initialCwnd(1500), "14600 bytes with a 1500-byte MTU")
	assert.Equal(t, uint32(18000), initialCwnd(9000), "at least 2 MTU")
	assoc := createTestAssociation(t, Config{LoggerFactory: logging.NewDefaultLoggerFactory()})
	assert.Equal(t, initialCwnd(assoc.MTU()), assoc.CWND())
}

// Patch 11: the tail loss probe is due before the T3-rtx timer, not after it.
func TestPatchProbeBeforeT3(t *testing.T) {
	assoc := newRackTestAssoc(t)
	assoc.lock.Lock()
	defer assoc.lock.Unlock()
	defer assoc.t3RTX.stop()
	defer assoc.stopPTOTimer()

	require.True(t, assoc.t3RTX.start(1000))
	assoc.startPTOTimer(5 * time.Second)
	assoc.timerMu.Lock()
	deadline := assoc.ptoDeadline
	assoc.timerMu.Unlock()
	assert.True(t, deadline.Before(time.Now().Add(time.Second)), "the probe comes before T3-rtx expires")

	// Once a probe is out, T3-rtx has its turn.
	assoc.tlpProbeOut = true
	assoc.startPTOTimer(5 * time.Second)
	assoc.timerMu.Lock()
	deadline = assoc.ptoDeadline
	assoc.timerMu.Unlock()
	assert.True(t, deadline.After(time.Now().Add(4*time.Second)), "no second probe before T3-rtx")
}

// Patch 11: when cwnd is full, the probe is the most recent chunk even with data waiting (upstream
// only woke the writer, which could send nothing), and it re-arms T3-rtx.
func TestPatchProbeWithFullCwnd(t *testing.T) {
	assoc := newRackTestAssoc(t)
	assoc.lock.Lock()
	defer assoc.lock.Unlock()
	defer assoc.t3RTX.stop()
	defer assoc.stopPTOTimer()

	now := time.Now()
	assoc.inflightQueue.pushNoCheck(mkChunk(100, now))
	latest := mkChunk(101, now)
	assoc.inflightQueue.pushNoCheck(latest)
	assoc.pendingQueue.push(mkChunk(102, now))
	assoc.setCWND(assoc.MTU()) // full
	require.True(t, assoc.t3RTX.start(30000))

	assoc.onPTOTimerLocked()
	assert.True(t, latest.retransmit, "the most recent chunk is the probe")
	assert.True(t, assoc.tlpProbeOut)
	assoc.t3RTX.mutex.Lock()
	rto := assoc.t3RTX.rto
	assoc.t3RTX.mutex.Unlock()
	assert.InDelta(t, assoc.rtoMgr.getRTO(), rto, 0.001, "the probe re-arms T3-rtx")
}

// Patch 12: in-order deliveries above 2^31 (half of all random initial TSNs) are not taken for
// reordering.
func TestPatchRackReorderingFromFirstDelivery(t *testing.T) {
	assoc := newRackTestAssoc(t)
	const base = uint32(0x90000000)
	now := time.Now()
	assoc.onRackAfterSACK(true, now.Add(-2*time.Millisecond), base, &chunkSelectiveAck{})
	assoc.onRackAfterSACK(true, now.Add(-time.Millisecond), base+1, &chunkSelectiveAck{})

	assoc.lock.RLock()
	defer assoc.lock.RUnlock()
	assert.False(t, assoc.rackReorderingSeen, "two in-order deliveries are no reordering")
	assert.Equal(t, base+1, assoc.rackHighestDeliveredOrigTSN)

	// A delivery below the mark still is.
	assoc.lock.RUnlock()
	assoc.onRackAfterSACK(true, now, base-1, &chunkSelectiveAck{})
	assoc.lock.RLock()
	assert.True(t, assoc.rackReorderingSeen)
}

// Patch 13: a reduction is undone only when every chunk retransmitted since proved unneeded.
func TestPatchUndoOnlyWhenAllRetransmissionsSpurious(t *testing.T) {
	assoc := newRackTestAssoc(t)
	assoc.lock.Lock()
	defer assoc.lock.Unlock()

	assoc.setCWND(40000)
	assoc.ssthresh = 40000
	assoc.saveUndoLocked()
	assoc.setCWND(20000) // the reduction
	assoc.ssthresh = 20000
	assoc.countRetransmissionLocked() // the lost chunk, retransmitted
	assoc.countRetransmissionLocked() // a tail loss probe of a chunk that had arrived

	assoc.undoOnDuplicatesLocked(&chunkSelectiveAck{duplicateTSN: []uint32{101}})
	assert.Equal(t, uint32(20000), assoc.CWND(), "the probe's duplicate alone does not undo")

	assoc.undoOnDuplicatesLocked(&chunkSelectiveAck{duplicateTSN: []uint32{100}})
	assert.Equal(t, uint32(40000), assoc.CWND(), "both retransmissions unneeded: undone")
}
