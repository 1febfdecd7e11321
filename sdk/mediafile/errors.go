package mediafile

import "errors"

var (
	// ErrUnsupported is returned for a file or track this package cannot play or record: a
	// container other than IVF or Ogg, a codec other than VP8, VP9, AV1 or Opus, or an Opus
	// layout WebRTC cannot carry (more than two channels).
	ErrUnsupported = errors.New("mediafile: unsupported format or codec")
	// ErrPlaying is returned by Play while another Play of the same Player runs.
	ErrPlaying = errors.New("mediafile: already playing")
	// ErrMalformed is returned for a file whose structure is broken: a bad header or page
	// signature, a zero IVF time base, an IVF frame over 64 MiB.
	ErrMalformed = errors.New("mediafile: malformed file")
)
