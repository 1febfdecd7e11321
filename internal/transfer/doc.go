// Package transfer sends files between two peers over one WebRTC data channel: the protocol
// behind `switchboard send` and `switchboard recv`, specified for other implementations (a
// browser) in docs/file-transfer.md.
//
// The sender opens an ordered, reliable channel labelled Label with protocol Protocol and,
// for each file, sends a JSON text message {"type":"file","name":...,"size":...}, the bytes
// as binary messages of ChunkSize, and {"type":"end","sha256":...}; then {"type":"done"}. The
// receiver answers each file once, in order, with {"type":"ok"} or {"type":"error","code":...}
// and the final done with {"type":"done"}, upon which the sender closes the channel. Files are
// pipelined: the sender does not wait for a file's answer before the next one.
//
// Progress tells the truth: the sender asks ("acks":true in file) for the receiver's
// {"type":"got","name":...,"bytes":N} after it writes data (at most every AckInterval, and at
// a file's last byte), and its Progress counts only bytes so confirmed; a got that cannot be
// true is a protocol error. A receiver that predates acknowledgements confirms whole files
// only (see Progress).
//
// A Receiver writes only into its directory (through an os.Root), accepts only base names
// (CheckName), never overwrites unless told to, and writes to NAME.part, which it renames to
// NAME only once the size and SHA-256 match and the data is synced; on any failure the .part
// is removed. Sends go through an sdk.ChannelWriter, so the sender never buffers more than
// the writer's high-water mark.
//
// NewSender and NewReceiver only install the channel's handlers: call NewSender right after
// creating the channel, NewReceiver from Peer.OnDataChannel, so that no event is missed.
// Sender.Send and Receiver.Run then do the work on the caller's goroutine; a sender waiting
// for room in the channel's buffer still handles the receiver's messages as they arrive. A
// sender should create its channel once the peer is connected (see docs/file-transfer.md on
// offers crossing).
//
// The work is pipelined so that the disk and the hashing overlap with the network. Send
// reads and hashes each file ahead of its writes on one goroutine of its own (readahead.go:
// readAheadDepth reused buffers of ChunkSize), which it stops before it moves on, on every
// path. A receiver's messages arrive on the channel's goroutine (Pion's, or the QUIC
// stream's reader) into a bounded queue that Run hashes and writes behind; a stream reads
// binary frames into pooled buffers that Run hands back once written; and Run asks the
// kernel to start writing each writebackEvery bytes to the disk as they come, so that the
// fsync at a file's end has only the tail left.
package transfer
