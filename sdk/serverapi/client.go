package serverapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Room is a room that has peers.
type Room struct {
	Name  string `json:"name"`
	Peers int    `json:"peers"`
}

// Peer is a peer in a room.
type Peer struct {
	ID string `json:"id"`
	// Identity is the user its access token names (the token's sub).
	Identity string `json:"identity"`
	// Name and Meta are what the other peers see; Meta is a JSON object, or null.
	Name     string          `json:"name"`
	Meta     json.RawMessage `json:"meta"`
	JoinedAt time.Time       `json:"joinedAt"`
	// Node is the cluster node the peer is connected to ("" on a single node).
	Node string `json:"node"`
}

// Options configures a Client; nil means defaults.
type Options struct {
	// HTTPClient sends the requests; nil means one with a 30-second timeout.
	HTTPClient *http.Client
}

// Client calls the server API of one Switchboard server (or cluster). It is safe for
// concurrent use.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// New returns a client for the server at baseURL ("https://calls.example.com", or with the
// path prefix a proxy serves it under) that authenticates with token, an access token with
// the admin grant.
func New(baseURL, token string, opts *Options) *Client {
	c := &Client{base: strings.TrimRight(baseURL, "/"), token: token}
	if opts != nil && opts.HTTPClient != nil {
		c.hc = opts.HTTPClient
	} else {
		c.hc = &http.Client{Timeout: 30 * time.Second}
	}
	return c
}

// Rooms lists the rooms that have peers, by name.
func (c *Client) Rooms(ctx context.Context) ([]Room, error) {
	var out struct {
		Rooms []Room `json:"rooms"`
	}
	if err := c.do(ctx, http.MethodGet, "/rooms", nil, &out); err != nil {
		return nil, err
	}
	return out.Rooms, nil
}

// Peers lists room's peers in the order they joined. A room without peers does not exist:
// IsNotFound(err).
func (c *Client) Peers(ctx context.Context, room string) ([]Peer, error) {
	var out struct {
		Peers []Peer `json:"peers"`
	}
	if err := c.do(ctx, http.MethodGet, "/rooms/"+url.PathEscape(room), nil, &out); err != nil {
		return nil, err
	}
	return out.Peers, nil
}

// Peer returns one peer of room.
func (c *Client) Peer(ctx context.Context, room, peer string) (*Peer, error) {
	var out Peer
	if err := c.do(ctx, http.MethodGet, peerPath(room, peer), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RemovePeer removes peer from room: it gets the error "removed" and is disconnected, the
// others hear peer-left with reason "removed", and it cannot resume its presence.
func (c *Client) RemovePeer(ctx context.Context, room, peer string) error {
	return c.do(ctx, http.MethodDelete, peerPath(room, peer), nil, nil)
}

// CloseRoom removes every peer of room (error "room-closed", peer-left reason "room-closed")
// and returns how many there were.
func (c *Client) CloseRoom(ctx context.Context, room string) (int, error) {
	var out struct {
		Removed int `json:"removed"`
	}
	if err := c.do(ctx, http.MethodDelete, "/rooms/"+url.PathEscape(room), nil, &out); err != nil {
		return 0, err
	}
	return out.Removed, nil
}

// SendMessage sends data (anything encoding/json encodes; a json.RawMessage goes as is) as a
// server-message event to peer in room, or to every peer of room when peer is "".
func (c *Client) SendMessage(ctx context.Context, room, peer string, data any) error {
	body := struct {
		Data any    `json:"data"`
		Peer string `json:"peer,omitempty"`
	}{data, peer}
	return c.do(ctx, http.MethodPost, "/rooms/"+url.PathEscape(room)+"/messages", &body, nil)
}

// UpdateMeta replaces peer's metadata with meta (anything that encodes to a JSON object; nil
// clears it); the room, the peer included, hears peer-updated.
func (c *Client) UpdateMeta(ctx context.Context, room, peer string, meta any) error {
	body := struct {
		Meta any `json:"meta"`
	}{meta}
	return c.do(ctx, http.MethodPatch, peerPath(room, peer), &body, nil)
}

func peerPath(room, peer string) string {
	return "/rooms/" + url.PathEscape(room) + "/peers/" + url.PathEscape(peer)
}

// maxAnswerBytes bounds what is read of an answer.
const maxAnswerBytes = 64 << 20

// do sends one request with body (JSON) and decodes a successful answer into out.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("serverapi: encode the request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+"/api/v1"+path, rd)
	if err != nil {
		return fmt.Errorf("serverapi: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("serverapi: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return answerError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswerBytes))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswerBytes)).Decode(out); err != nil {
		return fmt.Errorf("serverapi: %s %s: read the answer: %w", method, path, err)
	}
	return nil
}

// answerError reads an error answer: the API's JSON error, or the first line of another.
func answerError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
		return &Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	msg, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(msg) > 200 {
		msg = msg[:200]
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &Error{Status: resp.StatusCode, Message: msg}
}
