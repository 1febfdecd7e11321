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
