// Package protocol defines Switchboard's native signaling protocol, version 1: the frame types,
// stable error codes, peer ids and room-name rules, a fast decoder for client frames and the
// encoders for server frames.
//
// The wire format is specified in docs/protocol.md. The decoder walks a frame once, validating
// all of it as JSON, and returns the raw bytes of the relayed "data" value so the server can
// forward it without decoding or re-encoding it.
package protocol
