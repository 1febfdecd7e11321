package transfer

import (
	"errors"
	"fmt"
)

// sendState follows the answers to the files sent so far, and what the receiver confirmed.
type sendState struct {
	files    []outgoing
	results  []Result
	started  int // files whose header was sent
	ended    int // files whose end was sent
	answered int // files answered; files[answered] is the one the receiver is on
	done     bool

	m         *meter
	total     int64   // size of all files
	sent      []int64 // bytes of each file handed to the channel
	confirmed int64   // bytes of files[answered] the receiver said it has written (got)
	doneBytes int64   // sizes of the files answered
	acks      bool    // a got arrived: the receiver confirms bytes as they arrive
	// resuming is the file whose have is awaited (-1: none); have is that answer.
	resuming int
	have     *message
}

func newSendState(files []outgoing, m *meter) *sendState {
	st := &sendState{files: files, results: make([]Result, len(files)), m: m, sent: make([]int64, len(files)), resuming: -1}
	for i, f := range files {
		st.results[i] = Result{Name: f.name, Size: f.size}
		st.total += f.size
	}
	return st
}

// report reports the progress of the file the receiver is on, files[answered], if it has
// started; force bypasses the throttle.
func (st *sendState) report(force bool) {
	i := st.answered
	if i >= st.started {
		return
	}
	f := st.files[i]
	st.m.report(Progress{
		Name: f.name, File: i + 1, Files: len(st.files), Size: f.size,
		Bytes: st.confirmed, Sent: st.sent[i], ReceiverAcks: st.acks,
		TotalBytes: st.doneBytes + st.confirmed, TotalSize: st.total,
	}, force)
}

// reportDone reports files[i] complete: the receiver confirmed it.
func (st *sendState) reportDone(i int) {
	f := st.files[i]
	st.m.report(Progress{
		Name: f.name, File: i + 1, Files: len(st.files), Size: f.size,
		Bytes: f.size, Sent: st.sent[i], ReceiverAcks: st.acks,
		TotalBytes: st.doneBytes, TotalSize: st.total, Done: true,
	}, true)
}

// answer applies one message from the receiver.
func (st *sendState) answer(a message) error {
	name := ""
	if a.Name != nil {
		name = *a.Name
	}
	switch a.Type {
	case typeGot:
		return st.got(name, a.Bytes)
	case typeOK, typeError:
		if a.Type == typeError && (a.Code == CodeProtocol || a.Name == nil) {
			return fmt.Errorf("transfer: the receiver gave up: %s: %s", a.Code, a.Message)
		}
		limit := st.ended // ok only after end
		if a.Type == typeError {
			limit = st.started // an error may come as soon as the header is out
		}
		if st.answered >= limit {
			return fmt.Errorf("%w: unexpected %s for %q", ErrProtocol, a.Type, name)
		}
		i := st.answered
		if want := st.files[i].name; name != want {
			return fmt.Errorf("%w: answer for %q while %q is pending", ErrProtocol, name, want)
		}
		st.answered++
		st.confirmed = 0
		// A refused file counts as done for the totals, as it will not move any more.
		st.doneBytes += st.files[i].size
		if a.Type == typeError {
			st.results[i].Err = &FileError{Name: name, Code: a.Code, Message: a.Message}
		} else {
			st.reportDone(i)
		}
		st.report(true) // the next file, if it has started
	case typeHave:
		i := st.resuming
		if i < 0 || st.have != nil || i != st.answered || name != st.files[i].name {
			return fmt.Errorf("%w: unexpected have for %q", ErrProtocol, name)
		}
		st.resuming = -1
		st.have = &a
	case typeDone:
		if st.answered < len(st.files) || st.ended < len(st.files) {
			return fmt.Errorf("%w: done before every file was answered", ErrProtocol)
		}
		st.done = true
	case "malformed":
		return fmt.Errorf("%w: from the receiver: %s", ErrProtocol, a.Message)
	default:
		return fmt.Errorf("%w: unexpected %q message from the receiver", ErrProtocol, a.Type)
	}
	return nil
}

// got applies a got: bytes of the receiver's current file written. It must name that file,
// and its count must not decrease nor exceed what was sent of the file (so not its size): a
// receiver claiming more is broken, and the transfer stops with a protocol error rather
// than show a progress that is not true.
func (st *sendState) got(name string, bytes *int64) error {
	i := st.answered
	if i >= st.started {
		return fmt.Errorf("%w: got for %q while no file is pending", ErrProtocol, name)
	}
	f := st.files[i]
	switch {
	case name != f.name:
		return fmt.Errorf("%w: got for %q while %q is pending", ErrProtocol, name, f.name)
	case bytes == nil:
		return fmt.Errorf("%w: got for %q without bytes", ErrProtocol, name)
	case *bytes < st.confirmed:
		return fmt.Errorf("%w: got %d bytes of %q after %d", ErrProtocol, *bytes, name, st.confirmed)
	case *bytes > st.sent[i]:
		return fmt.Errorf("%w: got %d bytes of %q, only %d sent", ErrProtocol, *bytes, name, st.sent[i])
	}
	st.confirmed = *bytes
	st.acks = true
	st.report(false)
	return nil
}

// failures joins the files' errors.
func (st *sendState) failures() error {
	var errs []error
	for _, r := range st.results {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	return errors.Join(errs...)
}
