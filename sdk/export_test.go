package sdk

// SetQUICHelloHook sets a function that alters each QUIC hello before it is sent (nil: none)
// and returns a function that restores the previous one. Tests only; not safe while peers
// set up QUIC.
func SetQUICHelloHook(f func(ufrag, pwd, fp *string)) (restore func()) {
	old := quicHelloHook
	if f == nil {
		quicHelloHook = nil
	} else {
		quicHelloHook = func(m *quicMsg) { f(&m.Ufrag, &m.Pwd, &m.FP) }
	}
	return func() { quicHelloHook = old }
}
