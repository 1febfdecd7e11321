package hub

import (
	"bytes"
	"sync"
)

// The outbox copies every event's data (the sender's read buffer is reused after Send). A
// copy per event would be an allocation per relayed message; instead the data goes into
// chunks shared through a pool: a presence writes into its current chunk, each kept event
// counts against the chunk it is in, and a chunk goes back to the pool once no kept event is
// in it. Only the normal trims (read marks, the oldest dropped to make room) give chunks back;
// when a whole outbox is let go (given up, handed over, reclaimed) its chunks are left to the
// garbage collector, since what was handed over may still point into them.

// arenaChunkSize is the size of one chunk; data bigger than a quarter of it is copied on its
// own.
const arenaChunkSize = 16 << 10

type arenaChunk struct {
	buf  []byte
	used int // bytes written
	live int // kept events in it
}

var chunkPool = sync.Pool{New: func() any { return &arenaChunk{buf: make([]byte, arenaChunkSize)} }}

// store copies a kept event's id (nil for none) and data next to each other into r's arena
// and returns the copies and their chunk (nil when copied on their own). r.mu is held.
func (r *resumeSink) store(id, data []byte) ([]byte, []byte, *arenaChunk) {
	n := len(id) + len(data)
	if n == 0 || n > arenaChunkSize/4 {
		return cloneOrNil(id), bytes.Clone(data), nil
	}
	c := r.chunk
	if c == nil || c.used+n > len(c.buf) {
		if c != nil && c.live == 0 {
			c.used = 0 // nothing kept in it: write over it
		} else {
			c = chunkPool.Get().(*arenaChunk)
			c.used, c.live = 0, 0
			r.chunk = c // the one before goes back to the pool with its last kept event
		}
	}
	off := c.used
	c.used += copy(c.buf[off:], id)
	mid := c.used
	c.used += copy(c.buf[mid:], data)
	c.live++
	var idc []byte
	if id != nil {
		idc = c.buf[off:mid:mid]
	}
	return idc, c.buf[mid:c.used:c.used], c
}

func cloneOrNil(b []byte) []byte {
	if b == nil {
		return nil
	}
	return bytes.Clone(b)
}

// unstore is the end of a kept event in chunk c (nil: none) by a normal trim: c goes back to
// the pool once nothing kept is in it and r writes elsewhere. r.mu is held.
func (r *resumeSink) unstore(c *arenaChunk) {
	if c == nil {
		return
	}
	c.live--
	if c.live > 0 {
		return
	}
	if c == r.chunk {
		c.used = 0
		return
	}
	chunkPool.Put(c)
}

// appendKept adds k at the end of the kept events without reallocating their array when it
// has room at the front (the read events went from there). r.mu is held.
func (r *resumeSink) appendKept(k kept) *kept {
	if len(r.kept) == cap(r.kept) && len(r.kept) < cap(r.keptArr) {
		n := copy(r.keptArr[:cap(r.keptArr)], r.kept)
		clear(r.keptArr[n:cap(r.keptArr)])
		r.kept = r.keptArr[:n]
	}
	before := cap(r.kept)
	r.kept = append(r.kept, k)
	if cap(r.kept) != before {
		r.keptArr = r.kept[:0] // a new array
	}
	return &r.kept[len(r.kept)-1]
}

// letGoKept forgets every kept event without giving their chunks back (see above). r.mu is
// held.
func (r *resumeSink) letGoKept() {
	r.kept, r.keptArr, r.keptBytes, r.chunk = nil, nil, 0, nil
}
