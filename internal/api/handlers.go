package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// The JSON of answers and requests (docs/openapi.yaml has the schemas).

type roomJSON struct {
	Name  string `json:"name"`
	Peers int    `json:"peers"`
}

type roomListJSON struct {
	Rooms []roomJSON `json:"rooms"`
}

type peerJSON struct {
	ID       string          `json:"id"`
	Identity string          `json:"identity"`
	Name     string          `json:"name"`
	Meta     json.RawMessage `json:"meta"`
	JoinedAt time.Time       `json:"joinedAt"`
	Node     string          `json:"node"`
}

type roomDetailJSON struct {
	Name  string     `json:"name"`
	Peers []peerJSON `json:"peers"`
}

type closedJSON struct {
	Room    string `json:"room"`
	Removed int    `json:"removed"`
}

type messageRequest struct {
	// Data is any JSON value, sent to the peers as the server-message's data.
	Data json.RawMessage `json:"data"`
	// Peer, when set, sends to that peer only.
	Peer *string `json:"peer"`
}

type metaRequest struct {
	// Meta is the peer's new metadata: an object, or null to clear it.
	Meta json.RawMessage `json:"meta"`
}

func peerOf(d bus.PeerDetail) peerJSON {
	p := peerJSON{
		ID:       string(d.Info.ID),
		Identity: d.Info.Identity,
		Name:     d.Info.Name,
		JoinedAt: d.Joined.UTC(),
		Node:     d.Node,
	}
	if len(d.Info.Meta) > 0 {
		p.Meta = json.RawMessage(d.Info.Meta)
	}
	return p
}

// roomParam returns the {room} path value, or the 400 answer.
func roomParam(r *http.Request) (string, *apiError) {
	room := r.PathValue("room")
	if !protocol.ValidRoom(room) {
		return "", errorf(http.StatusBadRequest, CodeBadRoom, "room %.80q is not a room name: 1-%d characters of A-Z a-z 0-9 _ - .", room, protocol.MaxRoomLen)
	}
	return room, nil
}

// MaxPeerIDLen is the longest peer id accepted in a path or body.
const MaxPeerIDLen = 64

// validPeer reports whether id looks like a peer id: 1-MaxPeerIDLen base64url characters.
func validPeer(id string) bool {
	if id == "" || len(id) > MaxPeerIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

func badPeer(id string) *apiError {
	return errorf(http.StatusBadRequest, CodeBadPeer, "peer %.80q is not a peer id (1-%d characters of A-Z a-z 0-9 _ -)", id, MaxPeerIDLen)
}

// roomPeerParams returns the {room} and {peer} path values, or the 400 answer.
func roomPeerParams(r *http.Request) (string, protocol.PeerID, *apiError) {
	room, e := roomParam(r)
	if e != nil {
		return "", "", e
	}
	peer := r.PathValue("peer")
	if !validPeer(peer) {
		return "", "", badPeer(peer)
	}
	return room, protocol.PeerID(peer), nil
}

// GET /api/v1/rooms
func (h *Handler) listRooms(w http.ResponseWriter, r *http.Request, _ Caller) *apiError {
	rooms, err := h.cfg.Backend.Rooms(r.Context())
	if err != nil {
		return backendError(err, "", "")
	}
	out := roomListJSON{Rooms: make([]roomJSON, 0, len(rooms))}
	for _, rm := range rooms {
		out.Rooms = append(out.Rooms, roomJSON{Name: rm.Name, Peers: rm.Peers})
	}
	slices.SortFunc(out.Rooms, func(a, b roomJSON) int { return strings.Compare(a.Name, b.Name) })
	writeJSON(w, http.StatusOK, &out)
	return nil
}

// GET /api/v1/rooms/{room}
func (h *Handler) getRoom(w http.ResponseWriter, r *http.Request, _ Caller) *apiError {
	room, e := roomParam(r)
	if e != nil {
		return e
	}
	peers, err := h.cfg.Backend.Peers(r.Context(), room)
	if err != nil {
		return backendError(err, room, "")
	}
	out := roomDetailJSON{Name: room, Peers: make([]peerJSON, 0, len(peers))}
	for _, d := range peers {
		out.Peers = append(out.Peers, peerOf(d))
	}
	writeJSON(w, http.StatusOK, &out)
	return nil
}

// GET /api/v1/rooms/{room}/peers/{peer}
func (h *Handler) getPeer(w http.ResponseWriter, r *http.Request, _ Caller) *apiError {
	room, peer, e := roomPeerParams(r)
	if e != nil {
		return e
	}
	peers, err := h.cfg.Backend.Peers(r.Context(), room)
	if err != nil {
		return backendError(err, room, string(peer))
	}
	for _, d := range peers {
		if d.Info.ID == peer {
			p := peerOf(d)
			writeJSON(w, http.StatusOK, &p)
			return nil
		}
	}
	return backendError(bus.ErrNoPeer, room, string(peer))
}

// DELETE /api/v1/rooms/{room}
func (h *Handler) closeRoom(w http.ResponseWriter, r *http.Request, c Caller) *apiError {
	room, e := roomParam(r)
	if e != nil {
		return e
	}
	n, err := h.cfg.Backend.CloseRoom(r.Context(), room)
	if err != nil {
		return backendError(err, room, "")
	}
	h.log.Info("api: room closed", "room", room, "peers", n, "by", c.Identity)
	writeJSON(w, http.StatusOK, &closedJSON{Room: room, Removed: n})
	return nil
}

// DELETE /api/v1/rooms/{room}/peers/{peer}
func (h *Handler) removePeer(w http.ResponseWriter, r *http.Request, c Caller) *apiError {
	room, peer, e := roomPeerParams(r)
	if e != nil {
		return e
	}
	if err := h.cfg.Backend.Remove(r.Context(), room, peer); err != nil {
		return backendError(err, room, string(peer))
	}
	h.log.Info("api: peer removed", "room", room, "peer", peer, "by", c.Identity)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// POST /api/v1/rooms/{room}/messages
func (h *Handler) sendMessage(w http.ResponseWriter, r *http.Request, _ Caller) *apiError {
	room, e := roomParam(r)
	if e != nil {
		return e
	}
	var req messageRequest
	if e := decodeBody(w, r, &req); e != nil {
		return e
	}
	if req.Data == nil {
		return errorf(http.StatusBadRequest, CodeMissingField, "the body needs \"data\": any JSON value, sent to the peers as the server-message's data")
	}
	data, e := compactJSON("data", req.Data)
	if e != nil {
		return e
	}
	var peer protocol.PeerID
	if req.Peer != nil {
		if !validPeer(*req.Peer) {
			return badPeer(*req.Peer)
		}
		peer = protocol.PeerID(*req.Peer)
	}
	if err := h.cfg.Backend.Notify(r.Context(), room, peer, data); err != nil {
		return backendError(err, room, string(peer))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// PATCH /api/v1/rooms/{room}/peers/{peer}
func (h *Handler) updatePeer(w http.ResponseWriter, r *http.Request, c Caller) *apiError {
	room, peer, e := roomPeerParams(r)
	if e != nil {
		return e
	}
	var req metaRequest
	if e := decodeBody(w, r, &req); e != nil {
		return e
	}
	if req.Meta == nil {
		return errorf(http.StatusBadRequest, CodeMissingField, "the body needs \"meta\": a JSON object, or null to clear it")
	}
	meta, e := compactJSON("meta", req.Meta)
	if e != nil {
		return e
	}
	switch {
	case string(meta) == "null":
		meta = nil
	case meta[0] != '{':
		return errorf(http.StatusBadRequest, CodeBadField, "meta must be a JSON object, or null to clear it")
	case len(meta) > h.cfg.MaxMetaBytes:
		return errorf(http.StatusBadRequest, CodeMetaTooLarge, "meta is %d bytes; the limit is %d (--max-meta-bytes)", len(meta), h.cfg.MaxMetaBytes)
	}
	if err := h.cfg.Backend.UpdateMeta(r.Context(), room, peer, meta); err != nil {
		return backendError(err, room, string(peer))
	}
	h.log.Info("api: peer meta updated", "room", room, "peer", peer, "by", c.Identity)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
