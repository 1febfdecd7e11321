package sdk

// SetQUICHelloHook sets a function that alters each QUIC hello before it is sent (nil: none)
// and returns a function that restores the previous one; newcomer says which side of the
// pair sends the hello (the newcomer accepts, the other side dials). Tests only.
func SetQUICHelloHook(f func(newcomer bool, ufrag, pwd, fp *string)) (restore func()) {
	var hook *func(bool, *quicMsg)
	if f != nil {
		h := func(polite bool, m *quicMsg) { f(polite, &m.Ufrag, &m.Pwd, &m.FP) }
		hook = &h
	}
	old := quicHelloHook.Swap(hook)
	return func() { quicHelloHook.Store(old) }
}

// QUICOwnSocket reports whether p's QUIC connection runs on the pair's own UDP socket (not
// over ice.Conn). Tests only; after QUIC returned.
func QUICOwnSocket(p *Peer) bool {
	<-p.quic.done
	return p.quic.own
}

// SetQUICCandidateHook sets a function called with each QUIC candidate line a side is about
// to send ("" for end-of-candidates; it may block, holding that side's later candidates) and
// returns a function that restores the previous one. Tests only.
func SetQUICCandidateHook(f func(p *Peer, newcomer bool, cand string)) (restore func()) {
	var hook *func(*Peer, string)
	if f != nil {
		h := func(p *Peer, cand string) { f(p, p.newcomer, cand) }
		hook = &h
	}
	old := quicCandHook.Swap(hook)
	return func() { quicCandHook.Store(old) }
}

// SetQUICSelectedHook sets a function called once a side's QUIC ICE session has selected
// its pair, before the handshake (it may block, holding that side there), and returns a
// function that restores the previous one. Tests only.
func SetQUICSelectedHook(f func(newcomer bool)) (restore func()) {
	var hook *func(bool)
	if f != nil {
		hook = &f
	}
	old := quicSelectedHook.Swap(hook)
	return func() { quicSelectedHook.Store(old) }
}

// SendQUICCandidate sends p's remote an extra QUIC exchange candidate line, as if p had
// gathered it. Tests only.
func SendQUICCandidate(p *Peer, cand string) error {
	return p.sendQUIC(quicMsg{Quic: quicCand, Cand: cand})
}

// SetQUICHelloNew sets a function that chooses the "new" field of each QUIC hello (nil: the
// field left out, as an older peer's hello) from whether its side is the pair's newcomer,
// and returns a function that restores the previous hook. Tests only.
func SetQUICHelloNew(f func(newcomer bool) *bool) (restore func()) {
	h := func(newcomer bool, m *quicMsg) { m.New = f(newcomer) }
	old := quicHelloHook.Swap(&h)
	return func() { quicHelloHook.Store(old) }
}
