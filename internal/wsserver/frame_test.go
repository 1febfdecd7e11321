package wsserver

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

var frameTestMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

func TestParseHeader(t *testing.T) {
	m := frameTestMask[:]
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name string
		in   []byte
		want header
	}{
		{"text 7-bit unmasked", []byte{0x81, 0x05},
			header{fin: true, opcode: opText, length: 5, size: 2}},
		{"text 7-bit masked", cat([]byte{0x81, 0x85}, m),
			header{fin: true, opcode: opText, masked: true, mask: frameTestMask, length: 5, size: 6}},
		{"empty masked", cat([]byte{0x81, 0x80}, m),
			header{fin: true, opcode: opText, masked: true, mask: frameTestMask, size: 6}},
		{"7-bit max 125", cat([]byte{0x82, 0x80 | 125}, m),
			header{fin: true, opcode: opBinary, masked: true, mask: frameTestMask, length: 125, size: 6}},
		{"16-bit 126 unmasked", []byte{0x82, 126, 0x00, 0x7e},
			header{fin: true, opcode: opBinary, length: 126, size: 4}},
		{"16-bit masked", cat([]byte{0x82, 0x80 | 126, 0x01, 0x00}, m),
			header{fin: true, opcode: opBinary, masked: true, mask: frameTestMask, length: 256, size: 8}},
		{"16-bit max", cat([]byte{0x81, 0x80 | 126, 0xff, 0xff}, m),
			header{fin: true, opcode: opText, masked: true, mask: frameTestMask, length: 65535, size: 8}},
		{"16-bit non-minimal", cat([]byte{0x81, 0x80 | 126, 0x00, 0x05}, m),
			header{fin: true, opcode: opText, masked: true, mask: frameTestMask, length: 5, size: 8}},
		{"64-bit unmasked", []byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0},
			header{fin: true, opcode: opBinary, length: 65536, size: 10}},
		{"64-bit masked", cat([]byte{0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0}, m),
			header{fin: true, opcode: opBinary, masked: true, mask: frameTestMask, length: 65536, size: 14}},
		{"64-bit large", cat([]byte{0x82, 0x80 | 127, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08}, m),
			header{fin: true, opcode: opBinary, masked: true, mask: frameTestMask, length: 0x0102030405060708, size: 14}},
		// The most significant bit must be 0 (RFC 6455 §5.2); parseHeader leaves that to the
		// size limit in conn.process.
		{"64-bit top bit set", cat([]byte{0x82, 0x80 | 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, m),
			header{fin: true, opcode: opBinary, masked: true, mask: frameTestMask, length: 1<<64 - 1, size: 14}},
		{"not final", cat([]byte{0x01, 0x83}, m),
			header{opcode: opText, masked: true, mask: frameTestMask, length: 3, size: 6}},
		{"continuation", cat([]byte{0x80, 0x83}, m),
			header{fin: true, opcode: opContinuation, masked: true, mask: frameTestMask, length: 3, size: 6}},
		{"close", cat([]byte{0x88, 0x82}, m),
			header{fin: true, opcode: opClose, masked: true, mask: frameTestMask, length: 2, size: 6}},
		{"ping", cat([]byte{0x89, 0x80}, m),
			header{fin: true, opcode: opPing, masked: true, mask: frameTestMask, size: 6}},
		{"pong", cat([]byte{0x8a, 0x80}, m),
			header{fin: true, opcode: opPong, masked: true, mask: frameTestMask, size: 6}},
		{"reserved data opcode 3", []byte{0x83, 0x00}, header{fin: true, opcode: 0x3, size: 2}},
		{"reserved control opcode F", []byte{0x8f, 0x00}, header{fin: true, opcode: 0xf, size: 2}},
		{"rsv1", []byte{0xc1, 0x00}, header{fin: true, rsv: 0x40, opcode: opText, size: 2}},
		{"rsv2", []byte{0xa1, 0x00}, header{fin: true, rsv: 0x20, opcode: opText, size: 2}},
		{"rsv3", []byte{0x91, 0x00}, header{fin: true, rsv: 0x10, opcode: opText, size: 2}},
		{"all bits", cat([]byte{0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0}, m),
			header{fin: true, rsv: 0x70, opcode: 0xf, masked: true, mask: frameTestMask, length: 0, size: 14}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHeader(tt.in)
			if err != nil {
				t.Fatalf("parseHeader(% x) error %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("parseHeader(% x) =\n%+v\nwant\n%+v", tt.in, got, tt.want)
			}
			// Payload bytes after the header change nothing.
			withPayload := append(bytes.Clone(tt.in), 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
			if got2, err := parseHeader(withPayload); err != nil || got2 != tt.want {
				t.Errorf("with payload: %+v, %v", got2, err)
			}
			// Every strict prefix is incomplete.
			for i := 0; i < len(tt.in); i++ {
				if h, err := parseHeader(tt.in[:i]); err != errIncomplete {
					t.Errorf("parseHeader(% x) (first %d bytes) = %+v, %v; want errIncomplete", tt.in[:i], i, h, err)
				}
			}
		})
	}
}

func TestUnmask(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 70; n++ {
		for off := 0; off < 8; off++ {
			var mask [4]byte
			for i := range mask {
				mask[i] = byte(rng.Uint32())
			}
			buf := make([]byte, off+n+8)
			for i := range buf {
				buf[i] = byte(rng.Uint32())
			}
			orig := bytes.Clone(buf)
			p := buf[off : off+n]
			want := bytes.Clone(p)
			for i := range want {
				want[i] ^= mask[i%4]
			}
			unmask(p, mask)
			if !bytes.Equal(p, want) {
				t.Fatalf("n=%d off=%d: unmask = % x, want % x", n, off, p, want)
			}
			if !bytes.Equal(buf[:off], orig[:off]) || !bytes.Equal(buf[off+n:], orig[off+n:]) {
				t.Fatalf("n=%d off=%d: unmask wrote outside its slice", n, off)
			}
			unmask(p, mask)
			if !bytes.Equal(buf, orig) {
				t.Fatalf("n=%d off=%d: unmasking twice does not restore the input", n, off)
			}
		}
	}
}

func TestFrameHeaderAgreement(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 1 << 20, 1<<32 + 5} {
		for _, op := range []byte{opText, opBinary, opClose, opPing, opPong} {
			hdr := appendFrameHeader(nil, op, n)
			if len(hdr) != headerLen(n) {
				t.Errorf("n=%d: appendFrameHeader wrote %d bytes, headerLen says %d", n, len(hdr), headerLen(n))
			}
			want := map[bool]int{true: 2}[n < 126] + map[bool]int{true: 4}[n >= 126 && n <= 0xffff] + map[bool]int{true: 10}[n > 0xffff]
			if len(hdr) != want {
				t.Errorf("n=%d: header is %d bytes, want the minimal %d", n, len(hdr), want)
			}
			h, err := parseHeader(hdr)
			if err != nil {
				t.Fatalf("n=%d: parseHeader(% x): %v", n, hdr, err)
			}
			if wantH := (header{fin: true, opcode: op, length: uint64(n), size: len(hdr)}); h != wantH {
				t.Errorf("n=%d op=%d: parseHeader(appendFrameHeader) = %+v, want %+v", n, op, h, wantH)
			}

			// putFrameHeader writes the same bytes ending at end, touching nothing else.
			const end = 20
			buf := bytes.Repeat([]byte{0xaa}, 32)
			start := putFrameHeader(buf, end, op, n)
			if start != end-headerLen(n) {
				t.Errorf("n=%d: putFrameHeader start = %d, want %d", n, start, end-headerLen(n))
			}
			if !bytes.Equal(buf[start:end], hdr) {
				t.Errorf("n=%d: putFrameHeader wrote % x, appendFrameHeader % x", n, buf[start:end], hdr)
			}
			if bytes.Count(buf[:start], []byte{0xaa}) != start || bytes.Count(buf[end:], []byte{0xaa}) != len(buf)-end {
				t.Errorf("n=%d: putFrameHeader wrote outside [start, end): % x", n, buf)
			}

			// Appending keeps dst.
			if got := appendFrameHeader([]byte("xy"), op, n); !bytes.Equal(got, append([]byte("xy"), hdr...)) {
				t.Errorf("n=%d: appendFrameHeader(prefix) = % x", n, got)
			}
		}
	}
}

func TestParseClose(t *testing.T) {
	code := func(c uint16, reason string) []byte {
		return append(binary.BigEndian.AppendUint16(nil, c), reason...)
	}
	tests := []struct {
		name     string
		in       []byte
		wantCode uint16
		ok       bool
	}{
		{"empty means no status", nil, 1005, true},
		{"one byte", []byte{0x03}, 0, false},
		{"1000", code(1000, ""), 1000, true},
		{"1001", code(1001, ""), 1001, true},
		{"1002", code(1002, ""), 1002, true},
		{"1003", code(1003, ""), 1003, true},
		{"1007", code(1007, ""), 1007, true},
		{"1008", code(1008, ""), 1008, true},
		{"1009", code(1009, ""), 1009, true},
		{"1010", code(1010, ""), 1010, true},
		{"1011", code(1011, ""), 1011, true},
		{"3000", code(3000, ""), 3000, true},
		{"3999", code(3999, ""), 3999, true},
		{"4000", code(4000, ""), 4000, true},
		{"4999", code(4999, ""), 4999, true},
		{"1000 with reason", code(1000, "bye ✓"), 1000, true},
		{"reason of 123 bytes", code(1000, strings.Repeat("r", 123)), 1000, true},
		{"0", code(0, ""), 0, false},
		{"999", code(999, ""), 999, false},
		{"1004 reserved", code(1004, ""), 1004, false},
		{"1005 must not be sent", code(1005, ""), 1005, false},
		{"1006 must not be sent", code(1006, ""), 1006, false},
		{"1015 must not be sent", code(1015, ""), 1015, false},
		{"1016", code(1016, ""), 1016, false},
		{"2000", code(2000, ""), 2000, false},
		{"2999", code(2999, ""), 2999, false},
		{"5000", code(5000, ""), 5000, false},
		{"65535", code(65535, ""), 65535, false},
		{"invalid UTF-8 reason", code(1000, "bad \xff"), 1000, false},
		{"truncated rune in reason", code(1000, "\xe2\x9c"), 1000, false},
		{"surrogate in reason", code(1000, "\xed\xa0\x80"), 1000, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := parseClose(tt.in)
			if ok != tt.ok || ok && c != tt.wantCode {
				t.Errorf("parseClose(% x) = %d, %v; want %d, %v", tt.in, c, ok, tt.wantCode, tt.ok)
			}
		})
	}
}

func TestClosePayload(t *testing.T) {
	tests := []struct {
		name, reason, want string
	}{
		{"empty", "", ""},
		{"short", "going away", "going away"},
		{"123 bytes fits", strings.Repeat("a", 123), strings.Repeat("a", 123)},
		{"124 bytes cut", strings.Repeat("a", 124), strings.Repeat("a", 123)},
		{"long ASCII cut", strings.Repeat("a", 300), strings.Repeat("a", 123)},
		{"2-byte runes cut on a rune boundary", strings.Repeat("é", 100), strings.Repeat("é", 61)},
		{"4-byte runes cut on a rune boundary", strings.Repeat("🦊", 40), strings.Repeat("🦊", 30)},
		{"3-byte runes", strings.Repeat("日", 50), strings.Repeat("日", 41)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := closePayload(1008, tt.reason)
			if len(p) > 125 {
				t.Errorf("payload is %d bytes, over 125", len(p))
			}
			if binary.BigEndian.Uint16(p) != 1008 {
				t.Errorf("code = %d", binary.BigEndian.Uint16(p))
			}
			if string(p[2:]) != tt.want {
				t.Errorf("reason = %q, want %q", p[2:], tt.want)
			}
			if c, ok := parseClose(p); !ok || c != 1008 {
				t.Errorf("parseClose(closePayload) = %d, %v", c, ok)
			}
		})
	}
	// Every cut point of a mixed-width reason yields valid UTF-8 within the limit, and the
	// longest such prefix.
	mixed := strings.Repeat("aé日🦊", 20)
	for n := 0; n <= len(mixed); n++ {
		reason := mixed[:n]
		if !utf8.ValidString(reason) {
			continue
		}
		p := closePayload(1000, reason)
		got := string(p[2:])
		if len(p) > 125 || !utf8.ValidString(got) || !strings.HasPrefix(reason, got) {
			t.Fatalf("closePayload(%q): %q (%d bytes)", reason, got, len(p))
		}
		if len(reason) <= 123 && got != reason {
			t.Fatalf("closePayload cut a reason that fits: %q -> %q", reason, got)
		}
		if len(reason) > 123 && len(got) < 123-3 {
			t.Fatalf("closePayload cut %d bytes to %d, more than one rune", len(reason), len(got))
		}
	}
}

func TestAcceptKey(t *testing.T) {
	// RFC 6455 §1.3.
	if got := acceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Errorf("acceptKey = %q, want s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", got)
	}
}

// frameTestEncodeHeader re-encodes h using the length form (7-bit, 126 or 127) of the
// original second byte.
func frameTestEncodeHeader(h header, form byte) []byte {
	b0 := h.rsv | h.opcode
	if h.fin {
		b0 |= 0x80
	}
	var b1 byte
	if h.masked {
		b1 = 0x80
	}
	out := []byte{b0, b1}
	switch form {
	case 126:
		out[1] |= 126
		out = binary.BigEndian.AppendUint16(out, uint16(h.length))
	case 127:
		out[1] |= 127
		out = binary.BigEndian.AppendUint64(out, h.length)
	default:
		out[1] |= byte(h.length)
	}
	if h.masked {
		out = append(out, h.mask[:]...)
	}
	return out
}

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 'H', 'e', 'l', 'l', 'o'})
	f.Add([]byte{0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4})
	f.Add([]byte{0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4})
	f.Add([]byte{0x88, 0x80})
	f.Add([]byte{0x81})
	f.Add([]byte{0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		h, err := parseHeader(b)
		if !bytes.Equal(b, orig) {
			t.Fatalf("parseHeader modified its input")
		}
		if err != nil {
			if err != errIncomplete {
				t.Fatalf("parseHeader(% x): unexpected error %v", b, err)
			}
			if len(b) >= maxHeaderLen {
				t.Fatalf("parseHeader(% x): errIncomplete with %d bytes", b, len(b))
			}
			return
		}
		if h.size < 2 || h.size > maxHeaderLen || h.size > len(b) {
			t.Fatalf("parseHeader(% x): size %d", b, h.size)
		}
		form := b[1] & 0x7f
		if re := frameTestEncodeHeader(h, form); !bytes.Equal(re, b[:h.size]) {
			t.Fatalf("parseHeader(% x) = %+v, which re-encodes as % x", b[:h.size], h, re)
		}
		// Only the header's own bytes matter.
		if h2, err := parseHeader(b[:h.size]); err != nil || h2 != h {
			t.Fatalf("parseHeader of the header alone = %+v, %v; want %+v", h2, err, h)
		}
		if _, err := parseHeader(b[:h.size-1]); err != errIncomplete {
			t.Fatalf("parseHeader(% x) one byte short: %v, want errIncomplete", b[:h.size-1], err)
		}
		// A server-style header (final, unmasked, no rsv, minimal length) is exactly what
		// appendFrameHeader produces.
		minimal := form < 126 || form == 126 && h.length >= 126 || form == 127 && h.length > 0xffff
		if h.fin && !h.masked && h.rsv == 0 && minimal && h.length < 1<<62 {
			if got := appendFrameHeader(nil, h.opcode, int(h.length)); !bytes.Equal(got, b[:h.size]) {
				t.Fatalf("appendFrameHeader(%d, %d) = % x, parsed from % x", h.opcode, h.length, got, b[:h.size])
			}
			if headerLen(int(h.length)) != h.size {
				t.Fatalf("headerLen(%d) = %d, header is %d bytes", h.length, headerLen(int(h.length)), h.size)
			}
		}
	})
}
