package hub

import (
	"hash/fnv"
	"sync"
	"time"
	"unsafe"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/membudget"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// The outbox (docs/protocol.md "Resuming"): every event the bus delivers to a resumable
// presence gets the presence's next seq and is kept, copied, until the client is known to have
// read it (a mark ping's pong, a read frame, a resume's last). Kept events are bounded by
// ResumeHoldEvents and ResumeHoldBytes and charged to the memory budget. Connected and full,
// the oldest are dropped and the presence remembers the gap; parked (no connection) and full,
// the presence is given up (onOver).

// Marker is implemented by sinks that can ask their client at once which events it has read
// (a WebSocket ping carrying the seq of the last event written; the pong's echo marks them).
// The hub calls MarkNow, under the outbox's lock, when the unread events reach half the bound.
type Marker interface {
	MarkNow()
}

// kept is one event in the outbox.
type kept struct {
	ev    protocol.Event
	size  int
	chunk *arenaChunk // where ev.Data is (arena.go); nil when it has its own copy
}

// chargeChunk is how much of the memory budget an outbox takes or gives back at a time, so
// that a busy presence does not touch the budget's shared counter for every event.
const chargeChunk = 16 << 10

// resumeSink is a resumable presence's bus.Sink and outbox. It stays the same across
// connections: it numbers and keeps events, and forwards them to the current connection's sink
// (nil while parked).
type resumeSink struct {
	mu        sync.Mutex
	cur       bus.Sink    // nil while parked
	mark      Marker      // cur's, when it has one
	seq       uint64      // the last seq given
	kept      []kept      // unread events, in seq order
	keptArr   []kept      // kept's array from its start (arena.go: appendKept)
	chunk     *arenaChunk // the arena chunk being written (arena.go)
	keptBytes int
	dropped   uint64 // the highest seq dropped unread (connected and full): a gap for a resume before it
	urged     bool   // MarkNow was called since the last mark
	over      bool   // the outbox overflowed while parked: the presence is being given up
	onOver    func() // called once, under mu, when it overflows while parked
	maxEvents int
	maxBytes  int
	acct      *membudget.Account // nil without a budget
	charged   int64              // what acct holds for kept

	// claims describe the presence for the tokens minted for it; jtis are the ids of those
	// not used yet (the newest last): a resume here must present one (resume.go). open: a
	// presence restored from a state file without them takes any of its tokens once.
	// client is the client key its ledger entries are attributed to.
	claims  tokenClaims
	jtis    []jtiRef
	open    bool
	client  string
	refresh *time.Timer // the next resume-token refresh while connected

	ids retryIDs // the ids of the last relays accepted from this presence
}

// newResumeSink returns the outbox of a new presence whose events go to cur; seq is the
// presence's counter (0 for a new one).
func (h *Hub) newResumeSink(cur bus.Sink, seq uint64) *resumeSink {
	r := &resumeSink{cur: cur, seq: seq, maxEvents: h.cfg.ResumeHoldEvents, maxBytes: h.cfg.ResumeHoldBytes}
	r.mark, _ = cur.(Marker)
	if h.cfg.Budget != nil {
		r.acct = h.cfg.Budget.NewAccount(membudget.HeldEvents, r.reclaimed)
	}
	return r
}

// Send implements bus.Sink.
func (r *resumeSink) Send(e *protocol.Event) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.over {
		return false
	}
	r.seq++
	size := eventSize(e)
	keep := r.makeRoomLocked(size)
	if r.over {
		return false
	}
	if !keep {
		// Not kept (over the budget, or bigger than the whole outbox): it goes out, but a
		// resume before it cannot have it back.
		r.dropped = r.seq
		if r.cur == nil {
			return false
		}
		c := *e
		c.Seq = r.seq
		return r.cur.Send(&c)
	}
	k := r.appendKept(kept{ev: *e, size: size})
	k.ev.Seq = r.seq
	// The sender's read buffer is reused after Send. A relay keeps its id (the receiver
	// drops a retry it has, protocol.Event.Retry); other events have none here.
	var id []byte
	if e.Type.IsRelay() {
		id = e.ID
	}
	k.ev.ID, k.ev.Data, k.chunk = r.store(id, e.Data)
	r.keptBytes += size
	if r.cur == nil {
		return true
	}
	ok := r.cur.Send(&k.ev)
	if r.mark != nil && !r.urged && (2*len(r.kept) >= r.maxEvents || 2*r.keptBytes >= r.maxBytes) {
		r.urged = true
		r.mark.MarkNow()
	}
	return ok
}

// makeRoomLocked makes room for an event of size: connected, the oldest kept events are
// dropped; parked, the outbox overflows (r.over). It reports false when the event cannot be
// kept (connected: it is sent all the same). r.mu is held.
func (r *resumeSink) makeRoomLocked(size int) bool {
	if size > r.maxBytes || r.maxEvents == 0 {
		if r.cur == nil {
			r.overflowLocked()
		}
		return false
	}
	for len(r.kept) > 0 && (len(r.kept) >= r.maxEvents || r.keptBytes+size > r.maxBytes) {
		if r.cur == nil {
			r.overflowLocked()
			return false
		}
		r.dropped = r.kept[0].ev.Seq
		r.popLocked()
	}
	if need := int64(r.keptBytes+size) - r.charged; need > 0 && r.acct != nil {
		chunk := max(need, chargeChunk)
		if !r.acct.Add(chunk) {
			if r.cur == nil {
				r.overflowLocked()
				return false
			}
			// The budget is short: what is kept goes, to be sent without being kept.
			r.dropAllLocked()
			return false
		}
		r.charged += chunk
	}
	return true
}

// popLocked drops the oldest kept event. r.mu is held.
func (r *resumeSink) popLocked() {
	r.keptBytes -= r.kept[0].size
	r.unstore(r.kept[0].chunk)
	r.kept[0] = kept{}
	r.kept = r.kept[1:]
	if len(r.kept) == 0 {
		r.kept = r.keptArr[:0] // all read: write from the start again
	}
}

// dropAllLocked drops every kept event as unread (a gap) and gives the budget back. r.mu is held.
func (r *resumeSink) dropAllLocked() {
	if n := len(r.kept); n > 0 {
		r.dropped = r.kept[n-1].ev.Seq
	}
	r.letGoKept()
	r.uncharge()
}

// uncharge gives back what acct holds beyond what is kept, keeping a chunk while something
// is. r.mu is held.
func (r *resumeSink) uncharge() {
	if r.acct == nil {
		return
	}
	want := int64(0)
	if r.keptBytes > 0 {
		want = int64(r.keptBytes) + chargeChunk
	}
	if r.charged > want+chargeChunk || r.keptBytes == 0 {
		r.acct.Add(want - r.charged)
		r.charged = want
	}
}

// overflowLocked gives up what is kept: the presence is to leave (onOver). r.mu is held.
func (r *resumeSink) overflowLocked() {
	r.over = true
	r.letGoKept()
	r.acct.Release()
	r.charged = 0
	if r.onOver != nil {
		r.onOver()
	}
}

// reclaimed is the memory budget's drop of this outbox: parked, as if it had overflowed;
// connected, what is kept goes (a gap for a resume before it).
func (r *resumeSink) reclaimed() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.over {
		return
	}
	if r.cur == nil {
		r.overflowLocked()
		return
	}
	r.dropAllLocked()
}

// markRead drops the kept events up to seq: the client has read them.
func (r *resumeSink) markRead(seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.markReadLocked(seq)
}

func (r *resumeSink) markReadLocked(seq uint64) {
	r.urged = false
	for len(r.kept) > 0 && r.kept[0].ev.Seq <= seq {
		r.popLocked()
	}
	r.uncharge()
}

// park detaches the current connection: events are kept from now on, and an overflow gives
// the presence up (onOver).
func (r *resumeSink) park(onOver func()) {
	r.mu.Lock()
	r.cur, r.mark, r.over, r.onOver = nil, nil, false, onOver
	if r.refresh != nil {
		r.refresh.Stop()
	}
	r.mu.Unlock()
}

// mute detaches the connection of a presence muted for a restart: nothing more goes out, what
// is kept stays for a handover (or until forget), and an overflow just marks it (a handover
// then tells of a gap).
func (r *resumeSink) mute() {
	r.mu.Lock()
	r.cur, r.mark, r.onOver = nil, nil, nil
	if r.refresh != nil {
		r.refresh.Stop()
	}
	r.mu.Unlock()
}

// forget lets go of what is kept when the presence ends: nothing is kept any more (events
// may still come until it has left its room).
func (r *resumeSink) forget() {
	r.mu.Lock()
	r.letGoKept()
	r.over, r.onOver = true, nil
	r.acct.Release()
	r.charged = 0
	if r.refresh != nil {
		r.refresh.Stop()
	}
	r.mu.Unlock()
}

func (r *resumeSink) overflowed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.over
}

// counter returns the presence's seq counter.
func (r *resumeSink) counter() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// attach hands the presence to sink: the kept events up to last are read; the welcome (its
// Seq and Gap filled in here, its Peers brought up to date with the membership events since
// the counter was since) goes first, then the kept events after last, then whatever comes
// next. It reports false, and changes nothing, if the outbox overflowed.
func (r *resumeSink) attach(sink bus.Sink, welcome *protocol.Event, last, since uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.over {
		return false
	}
	if last > r.seq {
		last = r.seq // a client that claims more than was sent has read everything
	}
	r.markReadLocked(last)
	w := welcome.Welcome
	w.Seq, w.Gap = r.seq, w.Gap || r.dropped > last
	w.Peers = applyMembership(w.Peers, r.kept, since, w.Self)
	sink.Send(welcome)
	for i := range r.kept {
		sink.Send(&r.kept[i].ev)
	}
	r.cur, r.onOver = sink, nil
	r.mark, _ = sink.(Marker)
	r.urged = false
	return true
}

// applyMembership brings peers, the room as seen when the counter was at since, up to date
// with the kept peer-joined and peer-left events after since (applying one already seen
// changes nothing). self is never listed.
func applyMembership(peers []protocol.PeerInfo, ks []kept, since uint64, self protocol.PeerID) []protocol.PeerInfo {
	if peers == nil {
		peers = []protocol.PeerInfo{}
	}
	for i := range ks {
		e := &ks[i].ev
		if e.Seq <= since || e.Peer == nil || e.Peer.ID == self {
			continue
		}
		at := -1
		for j := range peers {
			if peers[j].ID == e.Peer.ID {
				at = j
				break
			}
		}
		switch {
		case e.Type == protocol.TypePeerJoined && at < 0:
			peers = append(peers, *e.Peer)
		case e.Type == protocol.TypePeerLeft && at >= 0:
			peers = append(peers[:at], peers[at+1:]...)
		}
	}
	return peers
}

// eventOverhead is what a kept event costs besides its bytes: the copied struct.
const eventOverhead = int(unsafe.Sizeof(kept{}))

// eventSize approximates an event's memory while kept.
func eventSize(e *protocol.Event) int {
	n := eventOverhead + len(e.ID) + len(e.Data) + len(e.Reason)
	if e.Peer != nil {
		n += len(e.Peer.ID) + len(e.Peer.Name) + len(e.Peer.Meta)
	}
	return n
}

// retryIDs remembers the ids of the last maxRetryIDs relays a presence had accepted, for
// relays re-sent with retry after a resume, as 64-bit FNV-1a hashes of the ids' JSON text:
// 2 KiB at most per presence whatever the ids (up to protocol.MaxIDLen bytes each), a fixed
// cost like the presence's own records, so it is not charged to the memory budget. A
// collision can only make a presence's own retry look like one of its earlier relays.
type retryIDs struct {
	mu   sync.Mutex
	ids  []uint64
	next int
}

// maxRetryIDs is how many relay ids a presence remembers.
const maxRetryIDs = 256

func hashID(id []byte) uint64 {
	h := fnv.New64a()
	h.Write(id)
	return h.Sum64()
}

func (r *retryIDs) add(id []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addLocked(hashID(id))
}

func (r *retryIDs) addLocked(h uint64) {
	if len(r.ids) < maxRetryIDs {
		r.ids = append(r.ids, h)
		return
	}
	r.ids[r.next] = h
	r.next = (r.next + 1) % maxRetryIDs
}

func (r *retryIDs) seen(id []byte) bool {
	h := hashID(id)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.ids {
		if s == h {
			return true
		}
	}
	return false
}

// list returns the remembered ids, oldest first (for a handover).
func (r *retryIDs) list() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ids) == 0 {
		return nil
	}
	out := make([]uint64, 0, len(r.ids))
	out = append(out, r.ids[r.next:]...)
	return append(out, r.ids[:r.next]...)
}

// load remembers ids, oldest first, after those remembered already (a handover's).
func (r *retryIDs) load(ids []uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(ids) > maxRetryIDs {
		ids = ids[len(ids)-maxRetryIDs:]
	}
	for _, h := range ids {
		r.addLocked(h)
	}
}
