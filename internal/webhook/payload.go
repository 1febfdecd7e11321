package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"sync"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
)

// Header names of a webhook request (docs/webhooks.md).
const (
	// HeaderSignature carries "sha256=" and the hex HMAC-SHA256 of the body.
	HeaderSignature = "Switchboard-Signature"
	// HeaderKeyID names the API key whose secret made the signature.
	HeaderKeyID = "Switchboard-Key-Id"
	// HeaderEventID repeats the body's id, the same on every attempt and every URL.
	HeaderEventID = "Switchboard-Event-Id"
	// HeaderEvent repeats the body's event.
	HeaderEvent = "Switchboard-Event"
)

// SignaturePrefix starts the signature header's value.
const SignaturePrefix = "sha256="

// timeFormat is RFC 3339 in UTC with milliseconds: 2026-12-06T10:04:05.123Z.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// Event is the JSON body of a webhook request.
type Event struct {
	// ID identifies the event: the same on every attempt and at every URL, so a receiver can
	// drop a repeat.
	ID string `json:"id"`
	// Event is room-started, room-finished, peer-joined or peer-left.
	Event string `json:"event"`
	// Room is the room's name.
	Room string `json:"room"`
	// Peer is the peer that joined or left (peer-joined and peer-left only).
	Peer *Peer `json:"peer,omitempty"`
	// Reason is why the peer left (peer-left only).
	Reason string `json:"reason,omitempty"`
	// CreatedAt is when the event happened.
	CreatedAt string `json:"createdAt"`
	// SentAt is when this attempt was sent: a receiver refuses a body whose sentAt is far from
	// its clock (a replay).
	SentAt string `json:"sentAt"`
}

// Peer is a peer in an Event.
type Peer struct {
	ID string `json:"id"`
	// Identity is the sub of the peer's access token.
	Identity string `json:"identity,omitempty"`
	Name     string `json:"name,omitempty"`
	// Meta is the peer's metadata, a JSON object, as it joined.
	Meta     json.RawMessage `json:"meta,omitempty"`
	JoinedAt string          `json:"joinedAt"`
	// Node is the id of the cluster node the peer is connected to (absent on a single node).
	Node string `json:"node,omitempty"`
}

// item is one event waiting for delivery, shared by every URL's queue.
type item struct {
	ev   bus.RoomEvent
	peer bus.PeerDetail // ev.Peer's copy, when ev.Peer != nil

	idOnce sync.Once
	id     string
}

func newItem(e *bus.RoomEvent) *item {
	it := &item{ev: *e}
	if e.Peer != nil {
		it.peer = *e.Peer
		it.ev.Peer = &it.peer
	}
	if it.ev.At.IsZero() {
		it.ev.At = time.Now()
	}
	return it
}

// ID returns the event's id, made when first asked for (off the bus's locks).
func (it *item) ID() string {
	it.idOnce.Do(func() {
		var b [16]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error (Go 1.24+).
		it.id = "ev_" + base64.RawURLEncoding.EncodeToString(b[:])
	})
	return it.id
}

// body returns the JSON body of an attempt sent at now.
func (it *item) body(now time.Time) ([]byte, error) {
	e := Event{
		ID:        it.ID(),
		Event:     it.ev.Kind.String(),
		Room:      it.ev.Room,
		Reason:    it.ev.Reason,
		CreatedAt: it.ev.At.UTC().Format(timeFormat),
		SentAt:    now.UTC().Format(timeFormat),
	}
	if p := it.ev.Peer; p != nil {
		e.Peer = &Peer{
			ID:       string(p.Info.ID),
			Identity: p.Info.Identity,
			Name:     p.Info.Name,
			Meta:     p.Info.Meta,
			JoinedAt: p.Joined.UTC().Format(timeFormat),
			Node:     p.Node,
		}
	}
	return json.Marshal(&e)
}

// Sign returns the signature header's value for body: "sha256=" and the hex HMAC-SHA256 of
// body keyed with secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return SignaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// Redact returns rawURL fit for a log: its user information and query are replaced by
// "REDACTED", as either may hold a credential.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery = "REDACTED"
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}
