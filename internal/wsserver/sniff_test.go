package wsserver

import (
	"encoding/binary"
	"net/http"
	"testing"

	"github.com/pion/stun/v4"
)

// refSniff is the rule sniff implements, written as plainly as it is stated.
func refSniff(b []byte) sniffed {
	firstBitsZero := len(b) > 0 && b[0] < 0x40
	if len(b) == 0 || firstBitsZero && len(b) < 8 {
		return sniffMore
	}
	if firstBitsZero && binary.BigEndian.Uint32(b[4:8]) == 0x2112A442 && binary.BigEndian.Uint16(b[2:4])%4 == 0 {
		return sniffSTUN
	}
	return sniffHTTP
}

var httpMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace, "PRI"}

// stunMessage builds a STUN message with pion/stun from fuzzed parts.
func stunMessage(method uint16, class uint8, attr []byte) []byte {
	m := stun.New()
	m.Type = stun.NewType(stun.Method(method&0xFFF), stun.MessageClass(class%4))
	m.TransactionID = stun.NewTransactionID()
	m.WriteHeader()
	if len(attr) > 0 {
		m.Add(stun.AttrData, attr)
	}
	m.WriteLength()
	return append([]byte(nil), m.Raw...)
}

// FuzzSniff: sniff never panics and agrees with the rule on any bytes and on every prefix of
// them; once it decides, more bytes do not change its mind; a STUN message built by
// pion/stun is always STUN (from its 8th byte on); an HTTP request line is always HTTP (from
// its first).
func FuzzSniff(f *testing.F) {
	f.Add([]byte("GET /ws HTTP/1.1\r\n"), uint16(1), uint8(0), []byte(nil), "/healthz")
	f.Add(stunMessage(3, 0, nil), uint16(3), uint8(0), []byte("x"), "/")
	f.Add([]byte{0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4}, uint16(9), uint8(1), []byte{1, 2, 3}, "*")
	f.Add([]byte{0x00, 0x01, 0x00, 0x02, 0x21, 0x12, 0xA4, 0x42}, uint16(0xFFF), uint8(3), []byte{}, "")
	f.Fuzz(func(t *testing.T, data []byte, method uint16, class uint8, attr []byte, path string) {
		if len(data) > 64 {
			data = data[:64]
		}
		decided := sniffMore
		for i := 0; i <= len(data); i++ {
			got := sniff(data[:i])
			if want := refSniff(data[:i]); got != want {
				t.Fatalf("sniff(% x) = %d, rule says %d", data[:i], got, want)
			}
			if decided != sniffMore && got != decided {
				t.Fatalf("sniff changed its mind at %d bytes of % x: %d then %d", i, data, decided, got)
			}
			decided = got
		}
		if len(attr) > 512 {
			attr = attr[:512]
		}
		msg := stunMessage(method, class, attr)
		for i := 8; i <= len(msg); i++ {
			if got := sniff(msg[:i]); got != sniffSTUN {
				t.Fatalf("STUN message % x: %d bytes sniffed as %d", msg, i, got)
			}
		}
		line := httpMethods[int(method)%len(httpMethods)] + " " + path + " HTTP/1.1\r\n"
		for i := 1; i <= len(line); i++ {
			if got := sniff([]byte(line[:i])); got != sniffHTTP {
				t.Fatalf("request line %q: %d bytes sniffed as %d", line, i, got)
			}
		}
	})
}
