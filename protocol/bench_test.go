package protocol

import (
	"encoding/json"
	"strings"
	"testing"
)

// benchOffer is a relay frame like a browser's offer: ~3 KB of SDP inside data.
var benchOffer = func() []byte {
	var sdp strings.Builder
	sdp.WriteString(`v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n`)
	for sdp.Len() < 3000 {
		sdp.WriteString(`a=candidate:1 1 udp 2122260223 192.0.2.10 54400 typ host generation 0\r\n`)
	}
	return []byte(`{"type":"offer","id":17,"target":"Vb4k7hVd0S2v0w9Jv1qgXA","data":{"type":"offer","sdp":"` + sdp.String() + `"}}`)
}()

// BenchmarkDecodeFrame decodes a 3 KB offer frame with DecodeFrame.
func BenchmarkDecodeFrame(b *testing.B) {
	b.SetBytes(int64(len(benchOffer)))
	b.ReportAllocs()
	var f Frame
	for b.Loop() {
		if err := DecodeFrame(benchOffer, &f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeFrameEncodingJSON is the anchor: the same frame through encoding/json with
// data kept raw, as a straightforward Go server would do it.
func BenchmarkDecodeFrameEncodingJSON(b *testing.B) {
	b.SetBytes(int64(len(benchOffer)))
	b.ReportAllocs()
	var f struct {
		Type   string          `json:"type"`
		ID     json.RawMessage `json:"id"`
		Target string          `json:"target"`
		Data   json.RawMessage `json:"data"`
	}
	for b.Loop() {
		if err := json.Unmarshal(benchOffer, &f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendRelay encodes the relayed offer.
func BenchmarkAppendRelay(b *testing.B) {
	var f Frame
	if err := DecodeFrame(benchOffer, &f); err != nil {
		b.Fatal(err)
	}
	e := Event{Type: f.Type, From: "q3m8sXoLqv1yCpTtNd3h1w", Data: f.Data}
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(len(benchOffer)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendEvent(buf[:0], &e)
	}
}
