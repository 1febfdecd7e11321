package transfer

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	// Label is the data channel label of a file transfer.
	Label = "switchboard-file"
	// Protocol is the data channel protocol string of this version.
	Protocol = "switchboard-file/1"
	// ChunkSize is the size of the binary messages the sender sends.
	ChunkSize = 64 << 10
	// MaxNameBytes is the longest accepted file name, so that NAME.part fits in 255 bytes.
	MaxNameBytes = 250
	// MaxPathBytes is the longest accepted relative path of a file in a folder.
	MaxPathBytes = 4096
	// MaxDepth is the most folders a file's path may name above it.
	MaxDepth = 32
	// MaxText is the largest text message a receiver shows rather than writes.
	MaxText = 64 << 10
	// maxSize is the largest size a browser can express exactly (2^53 - 1).
	maxSize = 1<<53 - 1
	// AckInterval is the least time between two of a receiver's got messages during a file
	// (it also sends one when a file's last byte is written).
	AckInterval = 100 * time.Millisecond
)

// Message types.
const (
	typeFile  = "file"
	typeEnd   = "end"
	typeDone  = "done"
	typeOK    = "ok"
	typeError = "error"
	typeGot   = "got"  // receiver → sender: bytes of the current file written so far
	typeHave  = "have" // receiver → sender: the hashes of the blocks of a partial file it has
	typeFrom  = "from" // sender → receiver: where the data of a resumed file starts
)

// Error codes of the receiver's error answers (docs/file-transfer.md).
const (
	CodeBadName  = "bad-name"
	CodeExists   = "exists"
	CodeSize     = "size-mismatch"
	CodeHash     = "hash-mismatch"
	CodeIO       = "io"
	CodeProtocol = "protocol"
)

// Result is the outcome of one file.
type Result struct {
	Name string
	Size int64
	// Err is nil when the receiver confirmed the file, otherwise why not (often a *FileError).
	Err error
	// Resumed is how many bytes of the file the receiver had kept from an earlier transfer:
	// they were not sent again (Resume).
	Resumed int64
	// Text: it was a text message, shown (ReceiveOptions.Text) rather than written.
	Text bool
}

// message is any text message of the protocol, decoded. Pointers tell absent from zero.
type message struct {
	Type    string   `json:"type"`
	Name    *string  `json:"name"`
	Size    *int64   `json:"size"`
	SHA256  string   `json:"sha256"`
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Bytes   *int64   `json:"bytes"`  // got, from
	Acks    bool     `json:"acks"`   // file: the sender asks for got messages
	Resume  bool     `json:"resume"` // file: the sender can continue from what the receiver has
	Text    bool     `json:"text"`   // file: a text message, for the receiver to show
	Block   *int64   `json:"block"`  // have
	Blocks  []string `json:"blocks"` // have
}

// Encoders: one struct per message, so that zero values (size 0) are written.
type (
	fileMsg struct {
		Type string `json:"type"`
		Name string `json:"name"`
		Size int64  `json:"size"`
		Acks bool   `json:"acks,omitempty"`
		// Resume: the receiver answers have, and the data starts after the sender's from.
		Resume bool `json:"resume,omitempty"`
		// Text: the file is a text message (MaxText bytes at most): a receiver that shows
		// text shows it instead of writing a file.
		Text bool `json:"text,omitempty"`
	}
	haveMsg struct {
		Type   string   `json:"type"`
		Name   string   `json:"name"`
		Block  int64    `json:"block"`
		Blocks []string `json:"blocks"`
	}
	fromMsg struct {
		Type  string `json:"type"`
		Bytes int64  `json:"bytes"`
	}
	gotMsg struct {
		Type  string `json:"type"`
		Name  string `json:"name"`
		Bytes int64  `json:"bytes"`
	}
	endMsg struct {
		Type   string `json:"type"`
		SHA256 string `json:"sha256"`
	}
	answerMsg struct {
		Type    string  `json:"type"`
		Name    *string `json:"name,omitempty"` // present (maybe "") in a file's answer
		Code    string  `json:"code,omitempty"`
		Message string  `json:"message,omitempty"`
	}
)

func encode(v any) string {
	b, err := json.Marshal(v)
	if err != nil { // only strings and integers: cannot happen
		panic(err)
	}
	return string(b)
}

func decode(b []byte) (message, error) {
	var m message
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if m.Type == "" {
		return m, fmt.Errorf("%w: a text message without a type", ErrProtocol)
	}
	return m, nil
}

// CheckName reports whether name is acceptable as a received file's name: 1 to MaxNameBytes
// bytes of UTF-8, no '/', '\\', NUL or other control character, not "." or "..". Such a name
// can only mean a file directly inside the receiver's directory, on any operating system.
func CheckName(name string) error {
	if why := nameProblem(name); why != "" {
		return fmt.Errorf("%w %q: %s", ErrBadName, name, why)
	}
	return nil
}

// nameProblem says what is wrong with name as a file name ("" if nothing).
func nameProblem(name string) string {
	switch {
	case name == "":
		return "empty"
	case name == "." || name == "..":
		return "not a file name"
	case len(name) > MaxNameBytes:
		return fmt.Sprintf("longer than %d bytes", MaxNameBytes)
	case !utf8.ValidString(name):
		return "not UTF-8"
	case strings.ContainsAny(name, `/\`):
		return "contains a path separator"
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return "contains a control character"
		}
	}
	return ""
}

// CheckPath reports whether name may be received: a relative path of at most MaxDepth
// folders and a file name, separated by "/", each of which passes CheckName (so no empty,
// "." or ".." component, no absolute path, no backslash), MaxPathBytes at most.
func CheckPath(name string) error {
	if !strings.Contains(name, "/") {
		return CheckName(name)
	}
	bad := func(why string) error { return fmt.Errorf("%w %.80q: %s", ErrBadName, name, why) }
	if len(name) > MaxPathBytes {
		return bad(fmt.Sprintf("longer than %d bytes", MaxPathBytes))
	}
	if strings.HasPrefix(name, "/") {
		return bad("an absolute path")
	}
	parts := strings.Split(name, "/")
	if len(parts) > MaxDepth+1 {
		return bad(fmt.Sprintf("more than %d folders deep", MaxDepth))
	}
	for _, p := range parts {
		if why := nameProblem(p); why != "" {
			return bad(fmt.Sprintf("its part %.40q: %s", p, why))
		}
	}
	return nil
}
