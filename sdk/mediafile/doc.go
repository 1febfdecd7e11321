// Package mediafile sends media files as WebRTC tracks and records received tracks to files,
// on Pion WebRTC. It works with any *webrtc.PeerConnection; with the Switchboard SDK a track
// goes to every peer of a room through sdk.Peer.AddTrack.
//
// # Playing
//
// OpenTrack opens an IVF file (VP8, VP9 or AV1: the codec comes from the header's FourCC) or
// an Ogg Opus file (the format comes from the file's first bytes, not its name) and returns a
// *webrtc.TrackLocalStaticSample and the Player that feeds it. Add the track to as many peer
// connections as you like, then call Player.Play: it sends each frame at the moment the file
// says, so the media goes out at its real pace, until the file ends, forever with loop, or until
// its context is done.
//
//   - IVF: a frame is due at its presentation timestamp in the header's time base; its RTP
//     duration is the distance to the next frame's timestamp.
//   - Ogg: every Opus packet is sent on its own (pages often hold many). Its duration comes
//     from its TOC byte (RFC 6716, section 3.1), which is exactly what the pages' granule
//     positions count (RFC 7845, section 4), so the pace follows the granule positions
//     packet by packet. Header packets, other logical streams and malformed packets are
//     skipped.
//
// A Player cannot make keyframes: a receiver that starts in the middle of a video file (a
// peer that joins late, a lost packet) shows a picture from the file's next keyframe on.
//
// # Recording
//
// Record and RecordFile write a received *webrtc.TrackRemote to an IVF file (VP8, VP9, AV1)
// or an Ogg Opus file, until the track ends or the context is done; Extension says which
// container a codec goes to. Packets are put back in sequence order (waiting up to a second
// of media for a missing one) and joined into frames on their partition heads and tails (the
// marker bit) with Pion's depacketizers, so reordering is repaired and a frame with a lost
// packet is left out whole rather than written broken. Video is written from its first
// keyframe on; IVF timestamps are the RTP timestamps (time base 1/90000), and the frame count
// and picture size in the IVF header are filled in at the end when the output supports
// io.WriterAt and io.Seeker (files do).
package mediafile
