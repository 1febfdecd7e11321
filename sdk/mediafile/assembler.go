package mediafile

import (
	"github.com/pion/rtp"
)

// assembler puts RTP packets back in sequence order and joins them into frames: a frame runs
// from a packet the depacketizer calls a partition head to one it calls a partition tail (the
// marker bit, for video), all with one timestamp and no sequence number missing. A frame with
// a packet missing is left out whole.
//
// It does the job of Pion's samplebuilder, which in v4.2.26 cannot be used here: its Flush,
// after a frame of several packets, re-reads the frame's last packet, fails, and advances past
// the end of its buffer, walking the whole 65536-slot ring (0.5 s per track, 8 s under the race
// detector); its forced purges drop the next frame's first packet the same way.
type assembler struct {
	newDep  func() rtp.Depacketizer
	dep     rtp.Depacketizer
	emit    func(frame []byte, ts uint32) error
	ring    []*rtp.Packet // indexed by sequence number modulo its length
	maxWait uint32        // RTP ticks a missing packet is waited for

	started  bool
	next     uint16 // sequence number to process next
	newest   uint16 // highest sequence number seen
	newestTS uint32
	lastTS   uint32 // timestamp of the last packet processed

	inFrame bool
	broken  bool // the frame being assembled lost a packet: skip to its end
	frameTS uint32
	frame   []byte

	lost int64 // packets never received
}

func newAssembler(newDep func() rtp.Depacketizer, window int, maxWait uint32, emit func([]byte, uint32) error) *assembler {
	return &assembler{newDep: newDep, dep: newDep(), emit: emit, ring: make([]*rtp.Packet, window), maxWait: maxWait}
}

func (a *assembler) slot(seq uint16) **rtp.Packet { return &a.ring[int(seq)%len(a.ring)] }

// push adds a packet and emits every frame it completes.
func (a *assembler) push(p *rtp.Packet) error {
	if !a.started {
		a.started, a.next, a.newest, a.newestTS, a.lastTS = true, p.SequenceNumber, p.SequenceNumber, p.Timestamp, p.Timestamp
	}
	d := int16(p.SequenceNumber - a.next)
	if d < 0 && int(-d) > len(a.ring) {
		// Far behind what was processed: the sender started over. Finish and follow it.
		if err := a.flush(); err != nil {
			return err
		}
		a.started = false
		return a.push(p)
	}
	if d < 0 {
		return nil // late (already given up on) or a duplicate
	}
	if int(d) >= len(a.ring) {
		// The window is full: stop waiting for what is missing before the new packet's slot.
		if err := a.advance(p.SequenceNumber - uint16(len(a.ring)) + 1); err != nil {
			return err
		}
	}
	if s := a.slot(p.SequenceNumber); *s == nil {
		*s = p
	}
	if int16(p.SequenceNumber-a.newest) > 0 {
		a.newest, a.newestTS = p.SequenceNumber, p.Timestamp
	}
	return a.drain(false)
}

// flush emits what can still be completed, giving up on every missing packet.
func (a *assembler) flush() error {
	if !a.started {
		return nil
	}
	return a.drain(true)
}

// drain processes packets in order while they are there; at a missing one it waits, unless
// force is set or the packets behind it are more than maxWait newer.
func (a *assembler) drain(force bool) error {
	for int16(a.newest-a.next) >= 0 {
		s := a.slot(a.next)
		if *s == nil && !force && int64(int32(a.newestTS-a.lastTS)) <= int64(a.maxWait) {
			return nil
		}
		if err := a.step(); err != nil {
			return err
		}
	}
	return nil
}

// advance processes or gives up on every sequence number before to.
func (a *assembler) advance(to uint16) error {
	for int16(to-a.next) > 0 {
		if err := a.step(); err != nil {
			return err
		}
	}
	return nil
}

// step processes the packet at a.next, or records it lost.
func (a *assembler) step() error {
	s := a.slot(a.next)
	p := *s
	*s = nil
	a.next++
	if p == nil {
		a.lost++
		if a.inFrame {
			a.broken = true
		}
		return nil
	}
	a.lastTS = p.Timestamp
	return a.process(p)
}

func (a *assembler) process(p *rtp.Packet) error {
	if len(p.Payload) == 0 {
		return nil // padding belongs to no frame
	}
	if a.inFrame && p.Timestamp != a.frameTS {
		a.inFrame = false // the frame's last packet never came
	}
	if !a.inFrame {
		if !a.dep.IsPartitionHead(p.Payload) {
			return nil // the middle of a frame whose start was lost
		}
		if a.broken {
			a.dep = a.newDep() // forget state from the broken frame (AV1 keeps a fragment)
		}
		a.inFrame, a.broken, a.frameTS, a.frame = true, false, p.Timestamp, a.frame[:0]
	}
	tail := a.dep.IsPartitionTail(p.Marker, p.Payload)
	if !a.broken {
		b, err := a.dep.Unmarshal(p.Payload)
		if err != nil {
			a.broken = true
		} else {
			a.frame = append(a.frame, b...)
		}
	}
	if !tail {
		return nil
	}
	a.inFrame = false
	if a.broken {
		return nil
	}
	return a.emit(a.frame, a.frameTS)
}
