package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// eioClient speaks Engine.IO v4 long-polling from one source address over keep-alive HTTP
// connections (at most conns at once).
type eioClient struct {
	hc   *http.Client
	base string // http://host:port/socket.io/?EIO=4&transport=polling
}

func newEIOClient(server string, src netip.Addr, conns int) *eioClient {
	d := tcpDialer(src, 5*time.Second, 0)
	tr := &http.Transport{
		Proxy:               nil, // never send loopback load through a proxy
		DialContext:         d.DialContext,
		MaxConnsPerHost:     conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	return &eioClient{
		hc:   &http.Client{Transport: tr, Timeout: 10 * time.Second},
		base: strings.TrimRight(server, "/") + "/socket.io/?EIO=4&transport=polling",
	}
}

// close drops the client's idle connections.
func (e *eioClient) close() { e.hc.CloseIdleConnections() }

// do sends one request and returns the body of a 200 answer; another status is a
// *statusError.
func (e *eioClient) do(ctx context.Context, method, url, body string) (string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return "", fmt.Errorf("request: %w", err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s: %w", method, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", fmt.Errorf("%s: read answer: %w", method, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", &statusError{code: resp.StatusCode, body: strings.TrimSpace(string(b[:min(len(b), 120)]))}
	}
	return string(b), nil
}

// handshake opens a session and returns its sid.
func (e *eioClient) handshake(ctx context.Context) (string, error) {
	b, err := e.do(ctx, http.MethodGet, e.base, "")
	if err != nil {
		return "", err
	}
	return parseOpenSID(b)
}

// parseOpenSID returns the sid of an Engine.IO open packet `0{"sid":...}`.
func parseOpenSID(b string) (string, error) {
	if !strings.HasPrefix(b, "0{") {
		return "", fmt.Errorf("want an Engine.IO open packet, got %.80q", b)
	}
	var o struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal([]byte(b[1:]), &o); err != nil || o.SID == "" {
		return "", fmt.Errorf("bad Engine.IO open packet %.80q", b)
	}
	return o.SID, nil
}

// post sends a payload of packets (joined by \x1e) to session sid.
func (e *eioClient) post(ctx context.Context, sid, payload string) error {
	_, err := e.do(ctx, http.MethodPost, e.base+"&sid="+sid, payload)
	return err
}

// get is one long-polling GET on session sid: the packets queued for it.
func (e *eioClient) get(ctx context.Context, sid string) ([]string, error) {
	b, err := e.do(ctx, http.MethodGet, e.base+"&sid="+sid, "")
	if err != nil {
		return nil, err
	}
	return strings.Split(b, "\x1e"), nil
}

// connectSIO opens a session and its Socket.IO socket on the main namespace: the handshake,
// CONNECT, and the GET that brings the CONNECT answer. It returns the sid and the socket id.
func (e *eioClient) connectSIO(ctx context.Context) (sid, socketID string, err error) {
	if sid, err = e.handshake(ctx); err != nil {
		return "", "", fmt.Errorf("handshake: %w", err)
	}
	if err = e.post(ctx, sid, "40"); err != nil {
		return sid, "", fmt.Errorf("CONNECT: %w", err)
	}
	for range 8 {
		pkts, err := e.get(ctx, sid)
		if err != nil {
			return sid, "", fmt.Errorf("wait for the CONNECT answer: %w", err)
		}
		for _, p := range pkts {
			if id, ok := strings.CutPrefix(p, "40"); ok {
				var c struct {
					SID string `json:"sid"`
				}
				if err := json.Unmarshal([]byte(id), &c); err != nil || c.SID == "" {
					return sid, "", fmt.Errorf("bad CONNECT answer %.80q", p)
				}
				return sid, c.SID, nil
			}
			if strings.HasPrefix(p, "44") {
				return sid, "", fmt.Errorf("CONNECT refused: %.120s", p)
			}
		}
	}
	return sid, "", fmt.Errorf("no CONNECT answer in 8 polls")
}
