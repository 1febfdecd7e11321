package transfer

import (
	"context"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/sdk"
)

// Message is one message of a transfer channel: a JSON text message or file data.
type Message struct {
	Text bool
	Data []byte
	// pooled, when set, is the frame buffer Data is in (a QUIC stream's binary frame), for
	// release to hand back.
	pooled *[]byte
}

// release hands the message's buffer back to the channel for a later message, if it came
// from one: Data must not be used after. Messages never released are garbage collected.
func (m Message) release() {
	if m.pooled != nil {
		framePool.Put(m.pooled)
	}
}

// Channel is what a transfer runs on: an ordered, reliable channel of messages. Two exist: a
// WebRTC data channel (DataChannel), which browsers speak, and a framed QUIC stream
// (OpenStream, AcceptStream; docs/file-transfer.md, "Over QUIC") between two Go peers.
type Channel interface {
	// Handle installs the handlers; call it once, before the channel can deliver anything.
	// open runs once the channel can carry messages (at once if it can already), message
	// for each message received, in order (blocking in it holds the remote back), closed
	// once, after the last message, when the channel has closed.
	Handle(open func(), message func(Message), closed func())
	// SendText sends one text message, waiting while the channel's buffer is full; an
	// error means the message was not sent, and ctx bounds the wait.
	SendText(ctx context.Context, s string) error
	// Send sends one binary message as SendText does; b may be reused once it returns.
	Send(ctx context.Context, b []byte) error
	// Flush waits until what was sent is on its way for good, as far as the channel can
	// tell (a data channel: acknowledged by the remote).
	Flush(ctx context.Context) error
	// Close closes the channel: waiting sends fail, the remote's closed handler runs after
	// the messages already sent. It may be called more than once.
	Close() error
}

// DataChannel returns dc as a Channel, writing through an sdk.ChannelWriter (opts: nil for
// defaults). It takes over dc's OnBufferedAmountLow handler at once and its OnOpen, OnClose
// and OnMessage handlers in Handle.
func DataChannel(dc *webrtc.DataChannel, opts *sdk.ChannelWriterOptions) Channel {
	return &dataChannel{dc: dc, w: sdk.NewChannelWriter(dc, opts)}
}

type dataChannel struct {
	dc *webrtc.DataChannel
	w  *sdk.ChannelWriter
}

func (c *dataChannel) Handle(open func(), message func(Message), closed func()) {
	c.dc.OnOpen(open)
	c.dc.OnClose(func() {
		c.w.Close() // a write waiting for the buffer to drain gives up now
		closed()
	})
	c.dc.OnMessage(func(m webrtc.DataChannelMessage) { message(Message{Text: m.IsString, Data: m.Data}) })
}

func (c *dataChannel) SendText(ctx context.Context, s string) error { return c.w.SendText(ctx, s) }

func (c *dataChannel) Send(ctx context.Context, b []byte) error { return c.w.Send(ctx, b) }

func (c *dataChannel) Flush(ctx context.Context) error { return c.w.Flush(ctx) }

func (c *dataChannel) Close() error {
	c.w.Close()
	return c.dc.Close() //nolint:wrapcheck // Pion's, as before
}

// frameErr returns why ch ended if its remote broke the framing (a QUIC stream's bad frame),
// else nil; a Channel that wraps another says which with an Unwrap() Channel method. Valid
// once ch's closed handler has run.
func frameErr(ch Channel) error {
	for range 8 { // wrappers of wrappers, bounded
		switch c := ch.(type) {
		case interface{ frameErr() error }:
			return c.frameErr()
		case interface{ Unwrap() Channel }:
			ch = c.Unwrap()
		default:
			return nil
		}
	}
	return nil
}
