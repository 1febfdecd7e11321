package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
)

// Resume (docs/file-transfer.md, "Resume"). A receiver with ReceiveOptions.Resume keeps
// NAME.part when a transfer stops in the middle of a file. A sender with SendOptions.Resume
// (the receiver announced it can) marks files of ResumeMin bytes or more "resume": the
// receiver answers have, the SHA-256 of each whole block of the NAME.part it has (none when
// it has none), the sender compares them with its file's and answers from, the length of the
// blocks that match from the start; the data follows from there, and end's SHA-256 is still
// that of the whole file, which the receiver checks over what it kept and what came.

const (
	// ResumeMin is the smallest file a sender offers to resume: a smaller one is sent again
	// whole, without the round trip.
	ResumeMin = 1 << 20
	// minBlock is the smallest block a have may name, and the receiver's choice for files
	// up to maxBlocks MiB.
	minBlock = 1 << 20
	// maxBlocks bounds the hashes of a have (it stays a few KiB).
	maxBlocks = 256
)

// blockSize is the block a receiver hashes a partial file of size bytes in.
func blockSize(size int64) int64 {
	b := int64(minBlock)
	for b*maxBlocks < size {
		b *= 2
	}
	return b
}

// openPartial opens NAME.part to continue it, or makes it, and returns the have to answer:
// the hashes of its whole blocks (at most maxBlocks).
func (st *recvState) openPartial(c *incoming) (*os.File, haveMsg, string, error) {
	have := haveMsg{Type: typeHave, Name: c.name, Block: blockSize(c.size), Blocks: []string{}}
	// Only a regular NAME.part is continued: never one that is a link to another file.
	if fi, err := st.root.Lstat(c.part); err == nil && !fi.Mode().IsRegular() {
		return nil, have, CodeExists, fmt.Errorf("%s exists and is not a regular file", c.part)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, have, CodeIO, err
	}
	f, err := st.root.OpenFile(c.part, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, have, CodeIO, err
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		_ = f.Close()
		if err == nil {
			err = fmt.Errorf("%s is not a regular file", c.part)
		}
		return nil, have, CodeIO, err
	}
	n := min(fi.Size(), c.size) / have.Block
	buf := make([]byte, ChunkSize)
	for i := int64(0); i < n && i < maxBlocks; i++ {
		h := sha256.New()
		if _, err := io.CopyBuffer(h, io.NewSectionReader(f, i*have.Block, have.Block), buf); err != nil {
			_ = f.Close()
			return nil, have, CodeIO, err
		}
		have.Blocks = append(have.Blocks, hex.EncodeToString(h.Sum(nil)))
	}
	return f, have, "", nil
}

// from applies the sender's from: the partial file is cut to bytes, the file's hash starts
// over what is kept, and the data that follows is appended.
func (st *recvState) from(ctx context.Context, m message) error {
	c := st.cur
	if c == nil || !c.awaitFrom {
		return fmt.Errorf("%w: from outside a resumed file", ErrProtocol)
	}
	if c.rejected {
		return nil
	}
	if m.Bytes == nil || *m.Bytes < 0 || *m.Bytes > c.offered || *m.Bytes%c.block != 0 {
		return fmt.Errorf("%w: from %v for %q (it has %d bytes in blocks of %d)", ErrProtocol, m.Bytes, c.name, c.offered, c.block)
	}
	n := *m.Bytes
	c.awaitFrom = false
	if err := c.f.Truncate(n); err != nil {
		return st.refuse(ctx, CodeIO, err.Error())
	}
	if _, err := io.Copy(c.h, io.NewSectionReader(c.f, 0, n)); err != nil {
		return st.refuse(ctx, CodeIO, err.Error())
	}
	if _, err := c.f.Seek(n, io.SeekStart); err != nil {
		return st.refuse(ctx, CodeIO, err.Error())
	}
	c.got, c.resumed, c.flushed = n, n, n
	st.results[c.index].Resumed = n
	st.total += n
	st.report(c, true, false)
	return nil
}

// startResumable opens c for a resumable transfer and answers have.
func (st *recvState) startResumable(ctx context.Context, c *incoming) error {
	if !st.r.opts.Overwrite {
		if _, err := st.root.Lstat(c.name); err == nil {
			return st.refuse(ctx, CodeExists, fmt.Sprintf("%s exists", c.name))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return st.refuse(ctx, CodeIO, err.Error())
		}
	}
	f, have, code, err := st.openPartial(c)
	if err != nil {
		return st.refuse(ctx, code, err.Error())
	}
	c.f, c.h = f, sha256.New()
	c.awaitFrom, c.keep = true, true
	c.block, c.offered = have.Block, have.Block*int64(len(have.Blocks))
	st.report(c, true, false)
	return st.r.answer(ctx, have)
}

// resumeFrom compares a have for file f with the file's blocks and returns how many bytes
// of it the receiver has, and the whole-file hash over them.
func resumeFrom(path string, size int64, a message) (int64, hash.Hash, error) {
	h := sha256.New()
	if a.Block == nil || *a.Block < minBlock || len(a.Blocks) > maxBlocks || *a.Block*int64(len(a.Blocks)) > size {
		return 0, h, fmt.Errorf("%w: have for %q with blocks %v × %d", ErrProtocol, derefName(a.Name), a.Block, len(a.Blocks))
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, h, fmt.Errorf("transfer: %w", err)
	}
	defer f.Close()
	block := *a.Block
	buf := make([]byte, ChunkSize)
	var n int64
	for _, want := range a.Blocks {
		w, err := hex.DecodeString(want)
		if err != nil || len(w) != sha256.Size {
			return 0, h, fmt.Errorf("%w: have for %q with a hash that is not 64 hex digits", ErrProtocol, derefName(a.Name))
		}
		bh := sha256.New()
		if _, err := io.CopyBuffer(bh, io.NewSectionReader(f, n, block), buf); err != nil {
			return 0, h, fmt.Errorf("transfer: read %s: %w", path, err)
		}
		if string(bh.Sum(nil)) != string(w) {
			break
		}
		n += block
	}
	if _, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, n), buf); err != nil {
		return 0, h, fmt.Errorf("transfer: read %s: %w", path, err)
	}
	return n, h, nil
}

func derefName(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// waitHave waits for the receiver's have for file i (or its refusal).
func (s *Sender) waitHave(ctx context.Context, st *sendState, i int) (*message, error) {
	for st.have == nil && st.answered <= i {
		select {
		case a := <-s.answers:
			if err := st.answer(a); err != nil {
				return nil, err
			}
		case <-s.closed:
			if err := s.pollAnswers(st); err != nil {
				return nil, err
			}
			if st.have == nil && st.answered <= i {
				return nil, fmt.Errorf("%w: waiting for the receiver's answer to %q", ErrClosed, st.files[i].name)
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	h := st.have
	st.have = nil
	return h, nil
}
