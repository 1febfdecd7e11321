// Package wormhole provides code phrases and what they authenticate: a send and a recv meet
// in a room named by the code's channel number, run a password-authenticated key exchange
// (PAKE, schollz/pake/v3) on the whole code over messages the signaling server relays, confirm
// the key both ways (so that a wrong code shows at its first attempt), and then bind the
// connection they use — the certificates of its DTLS or QUIC handshake — with MACs under the
// key, so that a server that substituted fingerprints is caught before any byte of a file
// moves (docs/file-transfer.md, "Code phrases").
package wormhole

import (
	"crypto/rand"
	_ "embed" // the word list
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

//go:embed pgpwords.txt
var pgpwords string

// evenWords and oddWords are the PGP word list's two halves: a code's words alternate
// between them (even, odd, even), so a swapped or dropped word reads wrong.
var evenWords, oddWords = splitWords(pgpwords)

// wordIndex maps each word to its byte value and whether it is an odd-position word.
var wordIndex = indexWords()

// Shape of a code: CodeWords words of 8 bits each (24 bits a guesser must find, three tries
// at most), after a channel number from 1 to MaxChannel that names the room.
const (
	CodeWords  = 3
	MaxChannel = 9999
	// newChannels is the range new codes draw their channel from: short to type, many
	// enough that concurrent transfers on one server rarely meet (a sender whose room is
	// taken draws again).
	newChannels = 999
)

// ErrCode means a code phrase is not one: it says what is wrong.
var ErrCode = errors.New("not a code")

// Code is a parsed code phrase.
type Code struct {
	Channel int
	Words   []string
}

// NewCode returns a random code.
func NewCode() (Code, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(newChannels))
	if err != nil {
		return Code{}, fmt.Errorf("wormhole: random channel: %w", err)
	}
	var b [CodeWords]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Code{}, fmt.Errorf("wormhole: random words: %w", err)
	}
	c := Code{Channel: int(n.Int64()) + 1}
	for i, v := range b {
		c.Words = append(c.Words, wordAt(i, v))
	}
	return c, nil
}

// ParseCode parses "7-gravity-lemon-orbit" style phrases: a channel number and CodeWords words
// of the list in their positions, separated by "-" or spaces, any case.
func ParseCode(s string) (Code, error) {
	fields := strings.FieldsFunc(strings.ToLower(strings.TrimSpace(s)), func(r rune) bool { return r == '-' || r == ' ' })
	if len(fields) != 1+CodeWords {
		return Code{}, fmt.Errorf("%w: a code is a number and %d words, like 7-%s", ErrCode, CodeWords, example())
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil || n < 1 || n > MaxChannel {
		return Code{}, fmt.Errorf("%w: it starts with a number from 1 to %d", ErrCode, MaxChannel)
	}
	c := Code{Channel: n}
	for i, w := range fields[1:] {
		e, ok := wordIndex[w]
		if !ok {
			return Code{}, fmt.Errorf("%w: %q is not one of the code words (check its spelling)", ErrCode, truncate(w, 24))
		}
		if e.odd != (i%2 == 1) {
			return Code{}, fmt.Errorf("%w: %q is in the wrong place (are two words swapped?)", ErrCode, w)
		}
		c.Words = append(c.Words, w)
	}
	return c, nil
}

// String returns the code as it is shown: "7-gravity-lemon-orbit".
func (c Code) String() string {
	return strconv.Itoa(c.Channel) + "-" + strings.Join(c.Words, "-")
}

// Room returns the name of the room the code's two sides meet in.
func (c Code) Room() string { return "code-" + strconv.Itoa(c.Channel) }

// secret returns what the PAKE runs on: the whole code, canonical.
func (c Code) secret() []byte { return []byte("switchboard code v1 " + c.String()) }

type wordEntry struct {
	value byte
	odd   bool
}

func wordAt(pos int, v byte) string {
	if pos%2 == 1 {
		return oddWords[v]
	}
	return evenWords[v]
}

func example() string {
	var w []string
	for i := range CodeWords {
		w = append(w, wordAt(i, byte(37*i+11)))
	}
	return strings.Join(w, "-")
}

func splitWords(list string) (even, odd []string) {
	var all []string
	for _, l := range strings.Split(list, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			all = append(all, l)
		}
	}
	if len(all) != 512 {
		panic(fmt.Sprintf("wormhole: the word list has %d words, want 512", len(all)))
	}
	return all[:256], all[256:]
}

func indexWords() map[string]wordEntry {
	m := make(map[string]wordEntry, 512)
	for i, w := range evenWords {
		m[w] = wordEntry{value: byte(i)}
	}
	for i, w := range oddWords {
		m[w] = wordEntry{value: byte(i), odd: true}
	}
	return m
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
