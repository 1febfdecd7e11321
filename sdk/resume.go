package sdk

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// What the client does so that a lost or restarted signaling connection loses and repeats
// nothing (docs/design/issue-14.md §1):
//
//   - Every event after the welcome carries the presence's seq. The client keeps the highest it
//     received, drops an event at or below it (a duplicate of a replay) and sends it as the
//     resume join's last, so the server replays only what came after.
//   - Every relay goes with an id and stays in the outbox until the server acks it (or answers
//     it with an error). After a resumed welcome the unacked ones go again, in order, with the
//     same id and "retry":true: the server acks a retry it already relayed without relaying it
//     twice. While the connection is down relays queue there (bounded).
//   - A resumed welcome lists the room's members now: peers that left meanwhile are removed,
//     peers that arrived are added. After a restored welcome (the server lost the presence and
//     re-created it from its token), known peers missing from the list may be coming back the
//     same way: they are kept for resumeMs waiting for their peer-joined (resumed), and
//     relays to them that meet unknown-target are held and sent when they are back.
//   - A welcome that says events may be missing (gap, restored) makes every pair check its
//     negotiation: an offer, answer or candidate lost on the way must not strand it.

// Bounds on what the client queues for the server.
const (
	maxOutFrames = 4096    // relays not yet acked
	maxOutBytes  = 4 << 20 // their data
	maxHeld      = 256     // relays held per pending peer
	// maxRecent is how many acked relays are kept to send again, as retries, when the server
	// says it lost its state (a restored welcome, or a peer restored there): an ack means the
	// relay was queued to its target, not that the target read it. Fewer than the ids a
	// receiver remembers per sender (maxSeenIDs), so that it can drop every one it has.
	maxRecent = 128
)

// ErrSendQueueFull is returned by a relay when too many relays wait for the server's ack
// (the signaling connection has been down too long).
var ErrSendQueueFull = errors.New("sdk: too many relays waiting for the server")

// outFrame is a relay sent with the id "r<n>".
type outFrame struct {
	n      uint64
	typ    string
	target string
	data   json.RawMessage
	retry  bool // written again after a resume: the receiver may have the first attempt
	again  bool // queued again after meeting unknown-target (sendAgain): not a second time
}

func (f *outFrame) encode(retry bool) ([]byte, error) {
	m := map[string]any{"type": f.typ, "id": "r" + strconv.FormatUint(f.n, 10), "target": f.target, "data": f.data}
	if retry {
		m["retry"] = true
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("sdk: encode: %w", err)
	}
	return b, nil
}

// outbox holds the relays the server has not answered yet.
type outbox struct {
	outMu    sync.Mutex
	online   bool // relays are written as they are sent; else only queued
	out      []*outFrame
	outBytes int
	outNext  uint64
	held     map[string][]*outFrame // per pending peer, relays that met unknown-target
	backAt   map[string]uint64      // per peer back from pending, the first n sent after
	recent   []*outFrame            // the last relays acked, oldest first (at most maxRecent)
}

// send relays data to peer target through the server: queued until acked, written now when
// the signaling connection is up.
func (c *Client) send(typ, target string, data any) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("sdk: encode: %w", err)
	}
	return c.sendRaw(typ, target, raw)
}

func (c *Client) sendRaw(typ, target string, raw json.RawMessage) error {
	c.pendMu.Lock() // before outMu: whether target is away and its held relays go together
	defer c.pendMu.Unlock()
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.ctx.Err() != nil {
		return errors.New("sdk: client closed")
	}
	if len(c.out) >= maxOutFrames || c.outBytes+len(raw) > maxOutBytes {
		return ErrSendQueueFull
	}
	c.outNext++
	f := &outFrame{n: c.outNext, typ: typ, target: target, data: raw}
	if _, away := c.pending[target]; away {
		// Held here until the peer is back: sent now, it could overtake what is held for it.
		if !c.holdLocked(f) {
			return fmt.Errorf("sdk: %s to %s: too many held for a peer not back yet: %w", typ, target, ErrSendQueueFull)
		}
		return nil
	}
	c.out = append(c.out, f)
	c.outBytes += len(raw)
	if c.online {
		c.writeOut(f, false)
	}
	return nil
}

// sendAgain queues f, a relay answered unknown-target while its peer was away, again with its
// first id: a retry goes as a retry, for the receiver to drop if the first attempt reached it.
func (c *Client) sendAgain(f *outFrame) error {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.ctx.Err() != nil {
		return errors.New("sdk: client closed")
	}
	if !c.queueAgainLocked(f) {
		return ErrSendQueueFull
	}
	return nil
}

// queueAgainLocked puts f, a relay sent before, back in the outbox with its id and writes it
// if the connection is up; it reports false when the outbox is full. Under outMu.
func (c *Client) queueAgainLocked(f *outFrame) bool {
	if len(c.out) >= maxOutFrames || c.outBytes+len(f.data) > maxOutBytes {
		return false
	}
	f.again = true
	c.out = append(c.out, f)
	c.outBytes += len(f.data)
	if c.online {
		c.writeOut(f, false)
	}
	return true
}

// writeOut writes f on the current connection. A failed write is not an error: the read
// loop sees the connection go and f goes again after the resume. Under outMu.
func (c *Client) writeOut(f *outFrame, retry bool) {
	f.retry = f.retry || retry
	b, err := f.encode(f.retry)
	if err != nil {
		c.report(nil, err)
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	if err := c.conn().Write(ctx, websocket.MessageText, b); err != nil {
		c.log.Debug("relay not written; it goes again after reconnecting", "id", f.n, "err", err)
	}
}

// setOnline says whether relays are written as they are sent.
func (c *Client) setOnline(on bool) {
	c.outMu.Lock()
	c.online = on
	c.outMu.Unlock()
}

// resendOut writes every unacked relay again with retry (after a resumed welcome), then
// lets new relays through. After a restored welcome the recent acked ones go first: the
// server that had queued them is gone. readLoop only.
func (c *Client) resendOut(restored bool) {
	c.pendMu.Lock()
	defer c.pendMu.Unlock()
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if restored {
		again := c.takeRecent("")
		for _, f := range again {
			f.again = true
			c.outBytes += len(f.data)
		}
		c.out = append(again, c.out...)
	}
	out := c.out[:0]
	for _, f := range c.out {
		if _, away := c.pending[f.target]; away {
			// For a peer expected back: held until it is, then sent in order with the rest.
			f.retry = true
			c.outBytes -= len(f.data)
			if !c.holdLocked(f) {
				c.log.Debug("relay dropped: too many held for a peer not back yet", "peer", f.target)
			}
			continue
		}
		out = append(out, f)
		c.writeOut(f, true)
	}
	clear(c.out[len(out):])
	c.out = out
	c.online = true
}

// holdLocked keeps f for its peer, away, and reports false when too many are held for it.
// Under outMu.
func (c *Client) holdLocked(f *outFrame) bool {
	if len(c.held[f.target]) >= maxHeld {
		return false
	}
	if c.held == nil {
		c.held = make(map[string][]*outFrame)
	}
	c.held[f.target] = append(c.held[f.target], f)
	return true
}

// dropOut forgets every queued relay (after joining anew: the pairs they were for are gone).
func (c *Client) dropOut() {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	c.out, c.outBytes, c.held, c.backAt, c.recent = nil, 0, nil, nil, nil
	c.online = true
}

// answered removes relay id and every one written before it (the server answers in order) from the
// outbox and returns it, or nil if id is not one of our relays.
func (c *Client) answered(id json.RawMessage, acked bool) *outFrame {
	var s string
	if json.Unmarshal(id, &s) != nil {
		return nil
	}
	digits, ok := strings.CutPrefix(s, "r")
	if !ok {
		return nil
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return nil
	}
	c.outMu.Lock()
	defer c.outMu.Unlock()
	// The server answers in the order relays were written, which is c.out's order (a relay
	// held for a peer and sent again when it is back goes at the end with its first id).
	i := 0
	for i < len(c.out) && c.out[i].n != n {
		i++
	}
	if i == len(c.out) {
		return nil
	}
	f := c.out[i]
	for _, g := range c.out[:i+1] {
		c.outBytes -= len(g.data)
		if acked {
			c.addRecent(g)
		}
	}
	c.out = append(c.out[:0:0], c.out[i+1:]...)
	return f
}

// addRecent keeps f, an acked relay, among the recent ones. Under outMu.
func (c *Client) addRecent(f *outFrame) {
	if len(c.recent) == maxRecent {
		c.recent = append(c.recent[:0], c.recent[1:]...)
	}
	c.recent = append(c.recent, f)
}

// acked handles an ack: the relays it answers join the recent ones.
func (c *Client) acked(id json.RawMessage) { c.answered(id, true) }

// takeRecent removes the recent relays to target (every one when target is empty) and returns
// them, oldest first. Under outMu.
func (c *Client) takeRecent(target string) []*outFrame {
	var took []*outFrame
	kept := c.recent[:0]
	for _, f := range c.recent {
		if target == "" || f.target == target {
			took = append(took, f)
		} else {
			kept = append(kept, f)
		}
	}
	clear(c.recent[len(kept):])
	c.recent = kept
	return took
}

// refused handles an error answering one of our relays and reports whether it did: an
// unknown-target for a peer expected back is held for it (or sent again if it is back).
func (c *Client) refused(id json.RawMessage, se *ServerError) bool {
	f := c.answered(id, false)
	if f == nil {
		return false
	}
	if se.Code == "unknown-target" {
		c.pendMu.Lock()
		_, waiting := c.pending[f.target]
		c.pendMu.Unlock()
		c.outMu.Lock()
		back, wasBack := c.backAt[f.target]
		switch {
		case waiting && len(c.held[f.target]) < maxHeld:
			if c.held == nil {
				c.held = make(map[string][]*outFrame)
			}
			c.held[f.target] = append(c.held[f.target], f)
			c.outMu.Unlock()
			return true
		case waiting:
			c.outMu.Unlock()
			c.report(c.Peer(f.target), fmt.Errorf("sdk: %s to %s dropped: too many held for a peer not back yet", f.typ, f.target))
			return true
		case wasBack && f.n < back && !f.again:
			c.outMu.Unlock()
			if err := c.sendAgain(f); err != nil {
				c.report(c.Peer(f.target), err)
			}
			return true
		}
		c.outMu.Unlock()
	}
	c.report(c.Peer(f.target), fmt.Errorf("sdk: %s to %s: %w", f.typ, f.target, se))
	return true
}

// handleSeq drops an event already received, notes the highest seq, and handles the rest.
func (c *Client) handleSeq(f *serverFrame) {
	var seq uint64
	if f.Seq != nil {
		seq = *f.Seq
	}
	if seq != 0 {
		if seq <= c.lastSeq {
			c.log.Debug("duplicate event dropped", "type", f.Type, "seq", seq)
			return
		}
		c.lastSeq = seq
	}
	c.handle(f)
	if r := c.replay; r != nil && seq >= r.end {
		c.finishReplay()
	}
}

// replayState is a resumed welcome's view of the room while the events before it are replayed.
type replayState struct {
	end     uint64          // the welcome's seq: events up to it are replays
	present map[string]bool // the welcome's peers
	gone    []string        // known peers not in the welcome: removed once the replay is over
}

// skipReplayedJoin reports whether f is a replayed peer-joined of a peer the welcome said is
// gone already: it is not added only to be removed.
func (c *Client) skipReplayedJoin(f *serverFrame, id string) bool {
	r := c.replay
	return r != nil && f.Seq != nil && *f.Seq <= r.end && !r.present[id]
}

// finishReplay removes the peers a resumed welcome said are gone and whose peer-left the
// replay did not bring.
func (c *Client) finishReplay() {
	r := c.replay
	c.replay = nil
	if r == nil {
		return
	}
	for _, id := range r.gone {
		c.removePeer(id, "left")
	}
}

// reconcile brings the client's peers in line with a resumed welcome. readLoop only.
func (c *Client) reconcile(w *serverFrame) {
	if w.ResumeMs > 0 {
		c.resumeMs = w.ResumeMs
	}
	var s uint64 // the presence's counter before the replay ("seq", omitted when 0)
	if w.Seq != nil {
		s = *w.Seq
	} else if !w.Restored && len(w.Peers) == 0 {
		// A server from before seq lists no peers in a resumed welcome; a server of today
		// whose counter is 0 sent us no event, so no peer of ours can have left.
		return
	}
	if s < c.lastSeq {
		c.lastSeq = s // the presence's counter started again (restored without its state)
	}
	c.finishReplay() // a replay cut short by this reconnect
	present := make(map[string]bool, len(w.Peers))
	for _, p := range w.Peers {
		present[p.ID] = true
	}
	var gone []string
	for _, p := range c.Peers() {
		if !present[p.id] {
			gone = append(gone, p.id)
		}
	}
	for _, info := range w.Peers {
		if info.ID == c.ID() {
			continue
		}
		if _, err := c.addPeer(info, true); err != nil {
			c.report(nil, err)
		}
	}
	if w.Restored {
		for _, id := range gone {
			c.awaitPeer(id)
		}
		return
	}
	c.replay = &replayState{end: s, present: present, gone: gone}
	if w.Gap || s <= c.lastSeq {
		c.finishReplay() // nothing (reliable) to wait for
	}
}

// pendingPeer is a known peer a restored welcome did not list, given resumeMs to come back.
type pendingPeer struct {
	timer *time.Timer
}

// awaitPeer gives peer id resumeMs to come back before it is removed (reason timeout).
func (c *Client) awaitPeer(id string) {
	d := time.Duration(c.resumeMs) * time.Millisecond
	if d <= 0 {
		d = 15 * time.Second
	}
	c.pendMu.Lock()
	defer c.pendMu.Unlock()
	if _, ok := c.pending[id]; ok || c.ctx.Err() != nil {
		return
	}
	c.wg.Add(1)
	c.pending[id] = &pendingPeer{timer: time.AfterFunc(d, func() {
		defer c.wg.Done()
		if c.forgetPending(id) {
			c.dropHeld(id)
			c.removePeer(id, "timeout")
		}
	})}
}

// forgetPending stops waiting for peer id and reports whether it was awaited.
func (c *Client) forgetPending(id string) bool {
	c.pendMu.Lock()
	p, ok := c.pending[id]
	delete(c.pending, id)
	c.pendMu.Unlock()
	if ok && p.timer.Stop() {
		c.wg.Done() // the timer will not run
	}
	return ok
}

// stopPending stops every wait (Close).
func (c *Client) stopPending() {
	c.pendMu.Lock()
	ids := make([]string, 0, len(c.pending))
	for id := range c.pending {
		ids = append(ids, id)
	}
	c.pendMu.Unlock()
	for _, id := range ids {
		c.forgetPending(id)
	}
}

func (c *Client) dropHeld(id string) {
	c.outMu.Lock()
	delete(c.held, id)
	c.outMu.Unlock()
}

// peerBack handles a peer-joined for a peer already known: an update, not an arrival. A
// peer we were waiting for gets the relays held for it, in order. It reports whether the
// peer was known.
func (c *Client) peerBack(info peerInfo, resumed bool) bool {
	p := c.Peer(info.ID)
	if p == nil {
		return false
	}
	p.update(info)
	// Atomically for the relays sent meanwhile (sendRaw): the peer is no longer awaited, and
	// what is held for it goes in the order it was sent, before anything sent from now on;
	// restored where it is now, the recent acked relays to it go too (as retries, first):
	// its former server may not have written them.
	c.pendMu.Lock()
	pp, waited := c.pending[info.ID]
	delete(c.pending, info.ID)
	c.outMu.Lock()
	var again []*outFrame
	if resumed {
		again = c.takeRecent(info.ID)
		for _, f := range again {
			f.retry = true
		}
	}
	again = append(again, c.held[info.ID]...)
	delete(c.held, info.ID)
	slices.SortFunc(again, func(x, y *outFrame) int { return cmp.Compare(x.n, y.n) })
	if waited {
		if c.backAt == nil {
			c.backAt = make(map[string]uint64)
		}
		c.backAt[info.ID] = c.outNext + 1
	}
	dropped := 0
	for _, f := range again {
		if !c.queueAgainLocked(f) {
			dropped++
		}
	}
	c.outMu.Unlock()
	c.pendMu.Unlock()
	if waited && pp.timer.Stop() {
		c.wg.Done() // the timer will not run
	}
	if dropped > 0 {
		c.report(p, fmt.Errorf("sdk: %d relays to %s dropped: %w", dropped, info.ID, ErrSendQueueFull))
	}
	if waited || len(again) > 0 {
		c.log.Debug("peer back", "peer", info.ID, "again", len(again), "resumed", resumed)
	}
	return true
}

// recoverPeers makes every pair check its negotiation after events may have been lost.
func (c *Client) recoverPeers() {
	for _, p := range c.Peers() {
		p.do(p.recoverNegotiation)
	}
}
