package wormhole

import (
	"errors"
	"fmt"
	"time"
)

// Pair is one side's bookkeeping of its code exchanges, one per peer it meets in the code's
// room: which peers it answers, how it counts attempts, when it gives up. It does no I/O and
// keeps no time: its driver (cmd/switchboard's send and recv, the browser's wormhole.js
// through the WebAssembly build) relays the messages each step returns, runs ExchangeWait's
// timer and reports peers leaving. Both drivers run the same Pair, so they count alike.
//
// A sender counts an attempt from the moment it answers it with its y (whose MAC tells the
// receiver whether its code was right): unless the receiver then confirms the key, the
// attempt is a wrong code, whether its confirm was wrong, malformed, or never came. It
// answers no x beyond what remains of MaxWrongCodes minus the attempts in flight, and gives
// up at MaxWrongCodes. A receiver runs an exchange with each peer that says it is a sender,
// gives up only when none is left (a third peer posing as a sender cannot end it), and
// checks at most MaxWrongCodes senders' answers whose MAC failed (each is a code tried
// against it).
//
// A Pair is not safe for concurrent use.
type Pair struct {
	role    Role
	code    Code
	peers   map[string]*pairPeer // exchanges running or confirmed, with peers still there
	pending int                  // sender: attempts answered and not yet settled
	wrong   int                  // sender: wrong codes so far
	tested  int                  // receiver: senders' answers whose MAC failed
	lastErr error                // receiver: the most telling reason so far
	lost    bool                 // receiver: Lost was reported
}

// pairPeer is the exchange with one peer.
type pairPeer struct {
	s        *Session
	ready    bool // both sides proved the code
	answered bool // sender: y sent, the attempt not settled yet
}

// Limits of a Pair.
const (
	// MaxWrongCodes is how many wrong codes a sender takes before it gives up, and how many
	// failed answers a receiver checks.
	MaxWrongCodes = 3
	// MaxPeers bounds the peers a side watches at once: a peer beyond it is not answered.
	MaxPeers = 8
	// ExchangeWait bounds an exchange, from the moment the peer is seen until the key is
	// confirmed (a relayed round trip or two, normally milliseconds): the driver fails the
	// peer with ErrSlow then.
	ExchangeWait = 20 * time.Second
	// BindWait bounds the wait for the other side's bind once the connection is up.
	BindWait = 15 * time.Second
)

// Reasons an exchange with a peer ends, besides ErrWrongCode and ErrMsg.
var (
	// ErrLeft: the peer left before the exchange was over.
	ErrLeft = errors.New("the other side left before the code was checked")
	// ErrSlow: the exchange did not end within ExchangeWait.
	ErrSlow = fmt.Errorf("the other side did not finish checking the code within %v", ExchangeWait)
	// ErrBusy: the sender has as many attempts in flight as it may still take.
	ErrBusy = errors.New("the sender is busy checking other attempts")
	// ErrSenderLeft: the sender whose exchange was confirmed left.
	ErrSenderLeft = errors.New("the sender left")
)

// Step is what the driver does after a call of Pair: each field is news of this call only.
type Step struct {
	// Reply, when not nil, goes to the peer.
	Reply *Msg
	// Ready: the peer has just proved the code (before Reply goes: a receiver's confirm lets
	// the sender open its channel, which this side takes only from a peer that proved it).
	Ready bool
	// Err: the exchange with the peer has just failed, for this reason.
	Err error
	// Bind: the peer's bind message, for the driver's check of the connection.
	Bind *Msg
	// Report (sender): a line for the user about an attempt that counted as a wrong code.
	Report string
	// GaveUp (sender): the attempt was the MaxWrongCodes-th wrong code: stop.
	GaveUp bool
	// Lost (receiver): no sender's exchange is left (or MaxWrongCodes answers failed): stop
	// with this reason (ErrWrongCode when the code was refused). Reported once.
	Lost error
}

// NewPair returns the bookkeeping of role's exchanges on code (a sender's code may be set
// later, with SetCode, once drawn).
func NewPair(role Role, code Code) *Pair {
	return &Pair{role: role, code: code, peers: make(map[string]*pairPeer)}
}

// SetCode sets the code the next exchanges run on.
func (p *Pair) SetCode(c Code) { p.code = c }

// Code returns the code the exchanges run on.
func (p *Pair) Code() Code { return p.code }

// Add starts the exchange with a peer the side has just met. It reports false when MaxPeers
// exchanges are being watched (the peer is not answered). A receiver's step carries its x.
func (p *Pair) Add(id string) (Step, bool) {
	if len(p.peers) >= MaxPeers {
		return Step{}, false
	}
	if _, ok := p.peers[id]; ok {
		return Step{}, false
	}
	pp := &pairPeer{}
	p.peers[id] = pp
	if p.role != Receiver {
		return Step{}, true
	}
	s, x, err := NewReceiver(p.code)
	if err != nil {
		return p.Fail(id, err), true
	}
	pp.s = s
	return Step{Reply: &x}, true
}

// Ready reports whether the peer proved the code and is still there.
func (p *Pair) Ready(id string) bool {
	pp := p.peers[id]
	return pp != nil && pp.ready
}

// Session returns the exchange with a peer that proved the code (nil otherwise): its Bind
// and CheckBind bind the connection.
func (p *Pair) Session(id string) *Session {
	if pp := p.peers[id]; pp != nil && pp.ready {
		return pp.s
	}
	return nil
}

// Message takes a message the peer relayed (raw, as the server delivered its data). Messages
// that are not the exchange's are left alone (a zero Step); those of a peer whose exchange
// is over change nothing, but a bind is handed over.
func (p *Pair) Message(id string, b []byte) Step {
	if !IsMsg(b) {
		return Step{}
	}
	m, err := DecodeMsg(b)
	if err != nil {
		return p.Fail(id, err)
	}
	return p.Handle(id, m)
}

// Handle takes one decoded exchange message from the peer.
func (p *Pair) Handle(id string, m Msg) Step {
	pp := p.peers[id]
	if m.Kind == KindBind {
		if pp == nil || !pp.ready {
			return Step{}
		}
		return Step{Bind: &m}
	}
	if pp == nil || pp.ready {
		return Step{} // the exchange is over: nothing the peer says changes it
	}
	if pp.s == nil && p.role == Sender && m.Kind == KindX && len(p.code.Words) > 0 {
		if p.wrong+p.pending >= MaxWrongCodes {
			// Answering would give a guess beyond what is left: not answered, not counted.
			return p.Fail(id, ErrBusy)
		}
		s, err := NewSender(p.code)
		if err != nil {
			return p.Fail(id, err)
		}
		pp.s = s
	}
	if pp.s == nil {
		return p.Fail(id, fmt.Errorf("%w: %s before the exchange began", ErrMsg, m.Kind))
	}
	if p.role == Receiver && m.Kind == KindY && p.tested >= MaxWrongCodes {
		return p.Fail(id, ErrWrongCode) // checking it would test one more code
	}
	reply, ok, err := pp.s.Handle(m)
	var st Step
	if err == nil && pp.s.Ready() {
		p.settle(pp)
		pp.ready = true
		st.Ready = true
	}
	if ok {
		if p.role == Sender && reply.Kind == KindY {
			pp.answered = true // an attempt from here on: it settles confirmed, or wrong
			p.pending++
		}
		st.Reply = &reply
	}
	if err != nil {
		if p.role == Receiver && m.Kind == KindY && errors.Is(err, ErrWrongCode) {
			p.tested++ // a y whose MAC failed: the peer tried a code against this side's x
		}
		f := p.Fail(id, err)
		f.Reply = st.Reply
		return f
	}
	return st
}

// settle takes a sender's answered attempt out of the ones in flight; it reports whether
// there was one.
func (p *Pair) settle(pp *pairPeer) bool {
	if !pp.answered {
		return false
	}
	pp.answered = false
	p.pending--
	return true
}

// Fail ends the exchange with the peer for err (the driver's: ErrSlow, ErrLeft, a relay that
// failed). A sender counts it as a wrong code if it had answered it; a receiver reports Lost
// once no sender's exchange is left. An exchange already confirmed is not failed: see Left.
func (p *Pair) Fail(id string, err error) Step {
	pp := p.peers[id]
	if pp == nil || pp.ready {
		return Step{}
	}
	delete(p.peers, id)
	st := Step{Err: err}
	if p.role == Receiver {
		st.Lost = p.lose(err)
		return st
	}
	if !p.settle(pp) {
		return st // not answered: no code was tried
	}
	p.wrong++
	what := "someone tried a wrong code"
	switch {
	case errors.Is(err, ErrWrongCode):
	case errors.Is(err, ErrLeft):
		what = "someone tried a code and left without confirming it: a wrong code"
	case errors.Is(err, ErrSlow):
		what = "someone tried a code and did not confirm it in time: a wrong code"
	default:
		what = "someone tried a code and answered with a malformed message: a wrong code"
	}
	if p.wrong >= MaxWrongCodes {
		st.Report = fmt.Sprintf("%s (%d of %d): giving up", what, p.wrong, MaxWrongCodes)
		st.GaveUp = true
		return st
	}
	st.Report = fmt.Sprintf("%s (%d of %d); still waiting for the receiver with the right one", what, p.wrong, MaxWrongCodes)
	return st
}

// Left tells that the peer left: an exchange in progress fails (ErrLeft); a receiver whose
// confirmed sender left reports Lost (ErrSenderLeft) unless another sender's exchange runs.
func (p *Pair) Left(id string) Step {
	pp := p.peers[id]
	if pp == nil {
		return Step{}
	}
	if !pp.ready {
		return p.Fail(id, ErrLeft)
	}
	delete(p.peers, id)
	if p.role != Receiver {
		return Step{}
	}
	return Step{Lost: p.lose(ErrSenderLeft)}
}

// lose records why a receiver's exchange with a sender ended and returns the most telling
// reason so far when no other sender's exchange runs or has succeeded (or MaxWrongCodes
// answers failed), once; nil otherwise.
func (p *Pair) lose(err error) error {
	if p.lastErr == nil || !errors.Is(p.lastErr, ErrWrongCode) {
		p.lastErr = err
	}
	if p.lost || (len(p.peers) > 0 && p.tested < MaxWrongCodes) {
		return nil
	}
	p.lost = true
	return p.lastErr
}

// WrongCodes returns how many wrong codes a sender has had.
func (p *Pair) WrongCodes() int { return p.wrong }
