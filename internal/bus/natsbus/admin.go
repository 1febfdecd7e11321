package natsbus

import (
	"context"
	"errors"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/protocol"
)

var errTODO = errors.New("natsbus: not implemented yet")

// Rooms implements bus.Admin.
func (b *Bus) Rooms(ctx context.Context) ([]bus.RoomSummary, error) { return nil, errTODO }

// Peers implements bus.Admin.
func (b *Bus) Peers(ctx context.Context, room string) ([]bus.PeerDetail, error) {
	return nil, errTODO
}

// Kick implements bus.Admin.
func (b *Bus) Kick(ctx context.Context, room string, peer protocol.PeerID, code protocol.Code, reason string) error {
	return errTODO
}

// CloseRoom implements bus.Admin.
func (b *Bus) CloseRoom(ctx context.Context, room string, code protocol.Code, reason string) (int, error) {
	return 0, errTODO
}

// Notify implements bus.Admin.
func (b *Bus) Notify(ctx context.Context, room string, peer protocol.PeerID, data []byte) error {
	return errTODO
}

// UpdateMeta implements bus.Admin.
func (b *Bus) UpdateMeta(ctx context.Context, room string, peer protocol.PeerID, meta []byte) error {
	return errTODO
}
