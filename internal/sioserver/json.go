package sioserver

import "bytes"

// A small validating JSON scanner: relayed values are passed through byte for byte, so they
// must be valid JSON, but they are never decoded into Go values.

const maxDepth = 64

// skipSpace returns the index of the first non-space byte of b at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue validates the JSON value starting at b[i] and returns the index after it.
func skipValue(b []byte, i, depth int) (int, bool) {
	return skipValueT(b, i, depth, false)
}

// skipTrusted returns the index after the value at b[i], which was validated already: strings
// are skipped with a vectorized search for their closing quote.
func skipTrusted(b []byte, i int) int {
	end, _ := skipValueT(b, i, 0, true)
	return end
}

func skipValueT(b []byte, i, depth int, trusted bool) (int, bool) {
	if i >= len(b) || depth > maxDepth {
		return i, false
	}
	switch c := b[i]; {
	case c == '"':
		if trusted {
			return skipTrustedString(b, i), true
		}
		return skipString(b, i)
	case c == '{':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			var ok bool
			if i >= len(b) || b[i] != '"' {
				return i, false
			}
			if trusted {
				i = skipTrustedString(b, i)
			} else if i, ok = skipString(b, i); !ok {
				return i, false
			}
			i = skipSpace(b, i)
			if i >= len(b) || b[i] != ':' {
				return i, false
			}
			if i, ok = skipValueT(b, skipSpace(b, i+1), depth+1, trusted); !ok {
				return i, false
			}
			i = skipSpace(b, i)
			if i < len(b) && b[i] == '}' {
				return i + 1, true
			}
			if i >= len(b) || b[i] != ',' {
				return i, false
			}
			i = skipSpace(b, i+1)
		}
	case c == '[':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = skipValueT(b, i, depth+1, trusted); !ok {
				return i, false
			}
			i = skipSpace(b, i)
			if i < len(b) && b[i] == ']' {
				return i + 1, true
			}
			if i >= len(b) || b[i] != ',' {
				return i, false
			}
			i = skipSpace(b, i+1)
		}
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		return skipNumber(b, i)
	}
	return i, false
}

func literal(b []byte, i int, lit string) (int, bool) {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit), true
	}
	return i, false
}

// strStop marks the bytes that end a run of plain string content: the quote, the backslash
// and control characters.
var strStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// skipTrustedString returns the index after the valid JSON string starting at b[i].
func skipTrustedString(b []byte, i int) int {
	i++
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return len(b)
		}
		i += j
		n := 0 // backslashes right before the quote
		for k := i - 1; k >= 0 && b[k] == '\\'; k-- {
			n++
		}
		i++
		if n%2 == 0 {
			return i
		}
	}
}

func skipString(b []byte, i int) (int, bool) {
	i++ // opening quote
	for i < len(b) {
		for i < len(b) && !strStop[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			if i+1 >= len(b) {
				return i, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return i, false
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						return i, false
					}
				}
				i += 6
			default:
				return i, false
			}
		default:
			i++
		}
	}
	return i, false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func skipNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

// splitArgs validates an event's JSON array and returns its elements' raw bytes in args
// (appended to args[:0]). It reports false for anything but a valid JSON array.
func splitArgs(b []byte, args [][]byte) ([][]byte, bool) {
	args = args[:0]
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return args, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return args, skipSpace(b, i+1) == len(b)
	}
	for {
		start := i
		end, ok := skipValue(b, i, 1)
		if !ok {
			return args, false
		}
		args = append(args, b[start:end])
		i = skipSpace(b, end)
		if i < len(b) && b[i] == ']' {
			return args, skipSpace(b, i+1) == len(b)
		}
		if i >= len(b) || b[i] != ',' {
			return args, false
		}
		i = skipSpace(b, i+1)
	}
}

// field returns the raw value of the top-level key of obj, a valid JSON object, matching key
// exactly (keys with escapes never match). The last occurrence wins, as in JSON.parse.
func field(obj []byte, key string) []byte {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil
	}
	var found []byte
	i = skipSpace(obj, i+1)
	for i < len(obj) && obj[i] == '"' {
		kend := skipTrustedString(obj, i)
		k := obj[i+1 : kend-1]
		i = skipSpace(obj, skipSpace(obj, kend)+1) // past ':'
		vend := skipTrusted(obj, i)
		if string(k) == key {
			found = obj[i:vend]
		}
		i = skipSpace(obj, vend)
		if i >= len(obj) || obj[i] != ',' {
			break
		}
		i = skipSpace(obj, i+1)
	}
	return found
}

// plainString returns the contents of a JSON string without escapes, or false.
func plainString(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' || bytes.IndexByte(v, '\\') >= 0 {
		return nil, false
	}
	return v[1 : len(v)-1], true
}

// isObject reports whether the valid JSON value v is an object, and whether it is empty.
func isObject(v []byte) (obj, empty bool) {
	if len(v) == 0 || v[0] != '{' {
		return false, false
	}
	return true, skipSpace(v, 1) == len(v)-1
}
