package natsbus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// Socket requests: Socket.IO's connection state recovery across nodes (internal/sioserver).
// A node asked to recover a socket it does not hold finds the node that does — the node of the
// socket's lobby entry, or the node of its presence in a room's replica (orphaned or not) —
// and asks it over core NATS request/reply, on that node's socket subject. The bus carries
// the request and the answer as opaque bytes: what they say is the Socket.IO server's.

// Errors returned by AskSocket.
var (
	// ErrNoSocket is returned when no live node other than this one is known to hold the
	// socket, or that node did not answer (gone, or no socket handler).
	ErrNoSocket = errors.New("natsbus: no node holds the socket")
)

// maxSocketReq bounds a socket request this node serves (a pid and an offset).
const maxSocketReq = 4096

// HandleSockets makes h answer the other nodes' socket requests to this node (AskSocket), from
// being the asking node. It
// is called at most once, before the node serves clients; h runs on the subscription's
// goroutine, one request at a time, and must not block on the network.
func (b *Bus) HandleSockets(h func(from string, req []byte) []byte) error {
	// The subscription ends with the connection (Close).
	_, err := b.nc.Subscribe(b.socketSubject(b.id), func(msg *nats.Msg) {
		if len(msg.Data) < 2 || len(msg.Data) > maxSocketReq {
			return
		}
		n := int(msg.Data[0])
		if len(msg.Data) < 1+n {
			return
		}
		from, req := string(msg.Data[1:1+n]), msg.Data[1+n:]
		if err := msg.Respond(h(from, req)); err != nil {
			b.log.Warn("socket answer failed", "err", err)
		}
	})
	if err != nil {
		return fmt.Errorf("natsbus: subscribe to socket requests: %w", err)
	}
	return nil
}

func (b *Bus) socketSubject(node string) string { return b.cfg.Prefix + ".sock." + node }

// SocketNode returns the node that holds socket id as far as this node knows: the node of
// its lobby entry, or of its presence in a room (orphaned or not). It returns "" when none
// does, or only this node.
func (b *Bus) SocketNode(id protocol.PeerID) string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if e := b.lobby[id]; e != nil {
		if e.node == b.id {
			return ""
		}
		return e.node
	}
	for _, r := range b.rooms {
		if p := r.byID[id]; p != nil && p.node != b.id {
			return p.node
		}
	}
	return ""
}

// AskSocket sends req about socket id to the node that holds it (SocketNode) and returns its
// answer. It returns ErrNoSocket when no live other node holds it or the node does not
// answer within Config.RequestTimeout.
func (b *Bus) AskSocket(ctx context.Context, id protocol.PeerID, req []byte) ([]byte, error) {
	node := b.SocketNode(id)
	if node == "" {
		return nil, ErrNoSocket
	}
	b.mu.RLock()
	_, alive := b.nodes[node]
	alive = alive && !b.suspects[node]
	b.mu.RUnlock()
	if !alive || len(b.id) > 255 || 1+len(b.id)+len(req) > maxSocketReq {
		return nil, ErrNoSocket
	}
	data := make([]byte, 0, 1+len(b.id)+len(req))
	data = append(append(append(data, byte(len(b.id))), b.id...), req...)
	rctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	msg, err := b.nc.RequestWithContext(rctx, b.socketSubject(node), data)
	if err != nil {
		return nil, fmt.Errorf("%w: node %s: %w", ErrNoSocket, node, err)
	}
	return msg.Data, nil
}

// LobbyHandOff hands socket id, a lobby socket of this node, to node, where it is being
// recovered: this node routes relays to it there from now on, and its entry no longer counts
// as this node's. Nothing is published: the other node's LobbyJoin tells the cluster.
func (b *Bus) LobbyHandOff(id protocol.PeerID, node string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.lobby[id]
	if e == nil || e.node != b.id || node == b.id {
		return
	}
	if b.lobbyByNode[node] >= b.cfg.LobbyMax {
		b.forgetLobbyLocked(id, e)
		return
	}
	b.lobbyLocal--
	b.lobbyByNode[node]++
	b.lobby[id] = &lobbyEntry{node: node}
}
