package natsbus

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// TakeOver across nodes: the node where a presence resumes asks the node that holds it (its
// home in the replica) over core NATS request/reply. That node calls the member's Handover,
// appends the relays that reached it for the member since it was muted (numbered after the
// presence's counter), marks the member orphaned everywhere (relays are then held until the
// Resumed join re-homes it) and answers with the events, encoded compactly and bounded to
// what one NATS message carries. The asking node then awaits what still reaches that node
// for the member before it delivers the member's relays (hold.go).

// maxTakeovers bounds the TakeOver requests a node serves at once; up to maxTakeoverQueue
// more wait for their turn (a drained node's presences all come back within a moment, and a
// request dropped would cost its presence the events held for it, and their order: the asker
// would time out and restore it without them).
const (
	maxTakeovers     = 16
	maxTakeoverQueue = 4096
)

// maxHandoverEvents bounds the events of one handover (the hub's outbox holds 256, and the
// node held up to Config.HoldEvents more).
const maxHandoverEvents = 1024

type takeOverReq struct {
	Room string          `json:"room"`
	Peer protocol.PeerID `json:"peer"`
	Last uint64          `json:"last"`
	Node string          `json:"node"` // the asking node
}

// TakeOver implements bus.Bus: it asks the node that holds peer's presence in room for the
// events after last, and tells it to let the presence go. It returns nil, nil when no live
// node holds it: not in the room, or its node is gone (dead, or no longer answering).
func (b *Bus) TakeOver(ctx context.Context, room string, peer protocol.PeerID, last uint64) (*bus.Handover, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.RLock()
	p := b.peerLocked(room, peer)
	node := ""
	alive := false
	if p != nil {
		node = p.node
		_, alive = b.nodes[node]
		alive = alive && !b.suspects[node]
	}
	b.mu.RUnlock()
	switch {
	case p == nil:
		return nil, nil
	case node == b.id:
		return b.handOver(room, peer, last), nil
	case !alive:
		return nil, nil // fail fast: its node is gone, and its events with it
	}
	data, err := json.Marshal(takeOverReq{Room: room, Peer: peer, Last: last, Node: b.id})
	if err != nil {
		return nil, fmt.Errorf("natsbus: take over: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	msg, err := b.nc.RequestWithContext(rctx, b.cfg.Prefix+".node."+node, append([]byte{kindTakeOver}, data...))
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, nil // its node is gone
	case err != nil:
		return nil, fmt.Errorf("natsbus: take over from node %s: %w: %w", node, bus.ErrUnavailable, err)
	}
	h, err := decodeHandover(msg.Data)
	if err != nil {
		return nil, fmt.Errorf("natsbus: take over from node %s: %w", node, err)
	}
	if h != nil {
		// What reaches node for the peer from now on, it sends here at the re-homing: relays
		// to the peer wait for it (hold.go).
		b.mu.Lock()
		if p := b.peerLocked(room, peer); p != nil && p.node == node {
			b.awaitLocked(p, node)
		}
		b.mu.Unlock()
	}
	return h, nil
}

// serveTakeOver answers another node's TakeOver, on its own goroutine (Handover is the hub's
// and may take its time), at most maxTakeovers at once and maxTakeoverQueue waiting; beyond
// those, the asker times out.
func (b *Bus) serveTakeOver(msg *nats.Msg) {
	var req takeOverReq
	if err := json.Unmarshal(msg.Data[1:], &req); err != nil {
		b.log.Warn("bad take-over request", "err", err)
		return
	}
	select {
	case b.takeoverQ <- struct{}{}:
	default:
		b.log.Warn("take-over requests beyond the limit: one refused", "peer", req.Peer)
		return
	}
	b.wg.Add(1)
	b.serving.Add(1)
	go func() {
		defer b.wg.Done()
		defer b.serving.Add(-1)
		defer func() { <-b.takeoverQ }()
		select {
		case b.takeovers <- struct{}{}:
		case <-b.stop:
			return
		}
		defer func() { <-b.takeovers }()
		h := b.handOver(req.Room, req.Peer, req.Last)
		if err := msg.Respond(encodeHandover(h, b.maxPayload())); err != nil {
			b.log.Warn("take-over answer failed", "err", err)
		}
	}()
}

func (b *Bus) maxPayload() int {
	if n := b.nc.MaxPayload(); n > 0 {
		return int(n)
	}
	return 1 << 20
}

// handOver gives up this node's presence of peer in room: its Handover's events after last,
// then the relays held here for it. It returns nil when this node does not hold it.
func (b *Bus) handOver(room string, peer protocol.PeerID, last uint64) *bus.Handover {
	b.mu.Lock()
	p := b.peerLocked(room, peer)
	if p == nil || p.node != b.id || p.local == nil && p.held == nil {
		b.mu.Unlock()
		return nil
	}
	m, wasLocal := p.local, p.local != nil
	if m != nil && m.Handover == nil {
		b.mu.Unlock()
		return nil // a member that cannot be handed over stays where it is
	}
	if wasLocal {
		// Connected (or parked by the hub) here: no event may reach it from now on, so that
		// none is lost between its Handover and the re-homing: they are held instead.
		b.dropLocalLocked(p)
		b.holdMemberLocked(p, m)
		b.orphanLocked(p, "timeout") // if the resume fails, it leaves when the grace ends
	}
	m = p.held
	b.mu.Unlock()

	var h *bus.Handover
	if m.Handover != nil {
		h = m.Handover(last)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	current := p.room.byID[peer] == p && p.node == b.id
	if p.held == m {
		b.releaseMemberLocked(p)
	}
	if !current {
		return h
	}
	if wasLocal {
		// The others hold its relays from now on, until the Resumed join re-homes it, or
		// until the grace ends (a presence the hub no longer had: its leave may have come
		// while it was being handed over, and was not announced).
		b.expectOrphanSeenLocked(p)
		b.publishLocked(&ctlMsg{Op: opOrphan, Node: b.id, Room: room, Peer: &wirePeer{ID: peer, Node: b.id}, Reason: p.why})
	}
	if h == nil {
		return nil // what was held here goes to its new node as relays
	}
	for _, msg := range b.takeHoldLocked(peer) {
		rm, err := decodeRelay(msg)
		if err != nil {
			continue
		}
		h.Seq++
		e := rm.ev
		e.Seq = h.Seq
		h.Events = append(h.Events, &e)
	}
	return h
}

// The handover encoding: a status byte (0: none, 1: a handover), then
//
//	flags (1: gap, 2: retry ids), uvarint seq, uvarint n, then n events:
//	type, flags (1: broadcast, 2: resumed, 4: peer), uvarint seq, from, data, reason,
//	and with a peer: id, identity, name, meta;
//	with retry ids: uvarint m (1…maxHandoverRetryIDs), then m little-endian uint64s;
//
// every string and byte field a uvarint length then its bytes. (A node without the retry
// ids flag refuses a handover that has them: the resume then reports a gap.)
const (
	hoGap = 1 << iota
	hoRetryIDs
)

// maxHandoverRetryIDs bounds the retry ids of one handover (the hub remembers 256).
const maxHandoverRetryIDs = 256

const (
	evBroadcast = 1 << iota
	evResumed
	evPeer
	evID    // a relay's id follows its data (protocol.Event.ID)
	evRetry // protocol.Event.Retry
)

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodeHandover encodes h in at most limit bytes, dropping its oldest events (and marking a
// gap) when it would not fit.
func encodeHandover(h *bus.Handover, limit int) []byte {
	if h == nil {
		return []byte{0}
	}
	evs := h.Events
	gap := h.Gap
	ids := h.RetryIDs
	if len(ids) > maxHandoverRetryIDs {
		ids = ids[len(ids)-maxHandoverRetryIDs:]
	}
	if len(evs) > maxHandoverEvents {
		evs, gap = evs[len(evs)-maxHandoverEvents:], true
	}
	for {
		out := make([]byte, 0, 64)
		flags := byte(0)
		if gap {
			flags |= hoGap
		}
		if len(ids) > 0 {
			flags |= hoRetryIDs
		}
		out = append(out, 1, flags)
		out = binary.AppendUvarint(out, h.Seq)
		out = binary.AppendUvarint(out, uint64(len(evs)))
		for _, e := range evs {
			out = appendEvent(out, e)
		}
		if len(ids) > 0 {
			out = binary.AppendUvarint(out, uint64(len(ids)))
			for _, id := range ids {
				out = binary.LittleEndian.AppendUint64(out, id)
			}
		}
		if len(out) <= limit || len(evs) == 0 {
			return out
		}
		evs, gap = evs[max(1, len(evs)/8):], true // too big: drop the oldest eighth
	}
}

func appendEvent(out []byte, e *protocol.Event) []byte {
	flags := byte(0)
	if e.Broadcast {
		flags |= evBroadcast
	}
	if e.Resumed {
		flags |= evResumed
	}
	if e.Peer != nil {
		flags |= evPeer
	}
	if e.ID != nil {
		flags |= evID
	}
	if e.Retry {
		flags |= evRetry
	}
	out = append(out, byte(e.Type), flags)
	out = binary.AppendUvarint(out, e.Seq)
	out = appendBytes(out, []byte(e.From))
	out = appendBytes(out, e.Data)
	out = appendBytes(out, []byte(e.Reason))
	if e.Peer != nil {
		out = appendBytes(out, []byte(e.Peer.ID))
		out = appendBytes(out, []byte(e.Peer.Identity))
		out = appendBytes(out, []byte(e.Peer.Name))
		out = appendBytes(out, e.Peer.Meta)
	}
	if e.ID != nil {
		out = appendBytes(out, e.ID)
	}
	return out
}

// handoverReader reads the handover encoding; its first error sticks.
type handoverReader struct {
	b   []byte
	err error
}

func (r *handoverReader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errBadMessage
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *handoverReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errBadMessage
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes returns the next length-prefixed field, copied (nil when empty).
func (r *handoverReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errBadMessage
		return nil
	}
	var out []byte
	if n > 0 {
		out = append([]byte(nil), r.b[:n]...)
	}
	r.b = r.b[n:]
	return out
}

// decodeHandover decodes what encodeHandover made: nil for "none".
func decodeHandover(data []byte) (*bus.Handover, error) {
	r := &handoverReader{b: data}
	switch r.byte() {
	case 0:
		if r.err == nil && len(r.b) == 0 {
			return nil, nil
		}
		return nil, errBadMessage
	case 1:
	default:
		return nil, errBadMessage
	}
	flags := r.byte()
	h := &bus.Handover{Gap: flags&hoGap != 0, Seq: r.uvarint()}
	n := r.uvarint()
	if n > maxHandoverEvents {
		return nil, errBadMessage
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		e := &protocol.Event{Type: protocol.Type(r.byte())}
		flags := r.byte()
		e.Broadcast = flags&evBroadcast != 0
		e.Resumed = flags&evResumed != 0
		e.Seq = r.uvarint()
		e.From = protocol.PeerID(r.bytes())
		e.Data = r.bytes()
		e.Reason = string(r.bytes())
		if flags&evPeer != 0 {
			e.Peer = &protocol.PeerInfo{ID: protocol.PeerID(r.bytes()), Identity: string(r.bytes()), Name: string(r.bytes()), Meta: r.bytes()}
		}
		e.Retry = flags&evRetry != 0
		if flags&evID != 0 {
			if e.ID = r.bytes(); len(e.ID) == 0 || len(e.ID) > protocol.MaxIDLen {
				return nil, errBadMessage
			}
		}
		h.Events = append(h.Events, e)
	}
	if flags&hoRetryIDs != 0 && r.err == nil {
		m := r.uvarint()
		if m == 0 || m > maxHandoverRetryIDs || m*8 > uint64(len(r.b)) {
			return nil, errBadMessage
		}
		h.RetryIDs = make([]uint64, m)
		for i := range h.RetryIDs {
			h.RetryIDs[i] = binary.LittleEndian.Uint64(r.b)
			r.b = r.b[8:]
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, errBadMessage
	}
	return h, nil
}
