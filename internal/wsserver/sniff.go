package wsserver

import "encoding/binary"

// What the first bytes of a TLS connection on the shared port are (SharedTLSListener).
type sniffed int

const (
	sniffMore sniffed = iota // too few bytes to tell
	sniffHTTP                // anything that is not STUN: net/http answers it
	sniffSTUN                // a STUN message: the TURN server's
)

// sniffLen is how many bytes sniffing reads at most: a STUN header. The decision needs the
// first 8 (type, length, magic cookie); an HTTP request line is told at its first byte.
const sniffLen = 20

// stunMagicCookie is the fixed value at bytes 4-8 of every STUN message (RFC 5389 §6).
const stunMagicCookie = 0x2112A442

// sniff tells a STUN message from anything else by its first bytes (RFC 7983's rule for
// STUN, with the checks RFC 5389 §7.3 gives): the first two bits are 0, the length at bytes
// 2-4 is a multiple of 4 and bytes 4-8 are the magic cookie. Every HTTP method starts with a
// letter (first bits 01), so a request is told at its first byte. ChannelData (first byte
// 0x40-0x7F) is HTTP here: it cannot come first on a TURN connection, which must allocate
// before it can bind a channel (RFC 8656).
func sniff(b []byte) sniffed {
	switch {
	case len(b) == 0:
		return sniffMore
	case b[0]&0xC0 != 0:
		return sniffHTTP
	case len(b) < 8:
		return sniffMore
	case binary.BigEndian.Uint32(b[4:8]) == stunMagicCookie && binary.BigEndian.Uint16(b[2:4])%4 == 0:
		return sniffSTUN
	}
	return sniffHTTP
}
