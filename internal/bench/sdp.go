package bench

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// defaultSDPBytes is the size of the generated offers and answers: a browser's
// audio+video+data offer is a few KB.
const defaultSDPBytes = 3000

// videoCodec is one video payload type with its retransmission twin.
type videoCodec struct {
	pt, rtx int
	name    string
	fmtp    string
}

// videoCodecs are offered in this order, as far as the size budget allows.
var videoCodecs = []videoCodec{
	{96, 97, "VP8/90000", ""},
	{98, 99, "VP9/90000", "profile-id=0"},
	{100, 101, "VP9/90000", "profile-id=2"},
	{102, 103, "H264/90000", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"},
	{104, 105, "H264/90000", "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f"},
	{106, 107, "H264/90000", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
	{108, 109, "H264/90000", "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f"},
	{127, 125, "H264/90000", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f"},
	{39, 40, "H264/90000", "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=4d001f"},
	{45, 46, "AV1/90000", "level-idx=5;profile=0;tier=0"},
	{112, 113, "H264/90000", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f"},
}

const sdpAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

func randToken(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = sdpAlphabet[r.IntN(len(sdpAlphabet))]
	}
	return string(b)
}

// sdpIdentity is what a peer keeps between its SDP and its ICE candidates.
type sdpIdentity struct {
	ufrag, pwd, fingerprint, stream, audioTrack, videoTrack, cname string
	audioSSRC, videoSSRC, rtxSSRC                                  uint32
	sessionID                                                      uint64
}

func newSDPIdentity(r *rand.Rand) sdpIdentity {
	var fp strings.Builder
	for i := range 32 {
		if i > 0 {
			fp.WriteByte(':')
		}
		fmt.Fprintf(&fp, "%02X", r.IntN(256))
	}
	return sdpIdentity{
		ufrag:       randToken(r, 4),
		pwd:         randToken(r, 24),
		fingerprint: fp.String(),
		stream:      randToken(r, 36),
		audioTrack:  randToken(r, 36),
		videoTrack:  randToken(r, 36),
		cname:       randToken(r, 16),
		audioSSRC:   r.Uint32(),
		videoSSRC:   r.Uint32(),
		rtxSSRC:     r.Uint32(),
		sessionID:   r.Uint64() >> 1,
	}
}

// generateSDP returns a browser-like SDP offer (answer=false) or answer with an
// audio, a video and a data-channel section. Video codecs are added while the
// text stays within target bytes, so the result is a little under target for
// targets from about 2.8 KB (audio, VP8 and data channel alone) to about 5.3 KB
// (every codec in videoCodecs); outside that range it is the nearest of those.
func generateSDP(r *rand.Rand, answer bool, target int) string {
	id := newSDPIdentity(r)
	setup := "actpass"
	if answer {
		setup = "active"
	}
	transport := func(b *strings.Builder, mid int) {
		b.WriteString("c=IN IP4 0.0.0.0\r\n")
		if mid < 2 {
			b.WriteString("a=rtcp:9 IN IP4 0.0.0.0\r\n")
		}
		fmt.Fprintf(b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\na=ice-options:trickle\r\n", id.ufrag, id.pwd)
		fmt.Fprintf(b, "a=fingerprint:sha-256 %s\r\na=setup:%s\r\na=mid:%d\r\n", id.fingerprint, setup, mid)
	}

	var head strings.Builder
	fmt.Fprintf(&head, "v=0\r\no=- %d 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", id.sessionID)
	head.WriteString("a=group:BUNDLE 0 1 2\r\na=extmap-allow-mixed\r\n")
	fmt.Fprintf(&head, "a=msid-semantic: WMS %s\r\n", id.stream)

	head.WriteString("m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n")
	transport(&head, 0)
	head.WriteString("a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n" +
		"a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n" +
		"a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n" +
		"a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n" +
		"a=sendrecv\r\n")
	fmt.Fprintf(&head, "a=msid:%s %s\r\n", id.stream, id.audioTrack)
	head.WriteString("a=rtcp-mux\r\n" +
		"a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n" +
		"a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n" +
		"a=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\n" +
		"a=rtpmap:110 telephone-event/48000\r\na=rtpmap:126 telephone-event/8000\r\n")
	fmt.Fprintf(&head, "a=ssrc:%d cname:%s\r\na=ssrc:%d msid:%s %s\r\n", id.audioSSRC, id.cname, id.audioSSRC, id.stream, id.audioTrack)

	var videoCommon strings.Builder
	transport(&videoCommon, 1)
	videoCommon.WriteString("a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n" +
		"a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n" +
		"a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n" +
		"a=extmap:13 urn:3gpp:video-orientation\r\n" +
		"a=sendrecv\r\n")
	fmt.Fprintf(&videoCommon, "a=msid:%s %s\r\n", id.stream, id.videoTrack)
	videoCommon.WriteString("a=rtcp-mux\r\na=rtcp-rsize\r\n")

	var ssrcs strings.Builder
	fmt.Fprintf(&ssrcs, "a=ssrc-group:FID %d %d\r\n", id.videoSSRC, id.rtxSSRC)
	for _, s := range []uint32{id.videoSSRC, id.rtxSSRC} {
		fmt.Fprintf(&ssrcs, "a=ssrc:%d cname:%s\r\na=ssrc:%d msid:%s %s\r\n", s, id.cname, s, id.stream, id.videoTrack)
	}

	var app strings.Builder
	app.WriteString("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n")
	transport(&app, 2)
	app.WriteString("a=sctp-port:5000\r\na=max-message-size:262144\r\n")

	const mVideo = "m=video 9 UDP/TLS/RTP/SAVPF"
	fixed := head.Len() + len(mVideo) + 2 + videoCommon.Len() + ssrcs.Len() + app.Len()
	var codecs strings.Builder
	var pts strings.Builder
	for _, c := range videoCodecs {
		var blk strings.Builder
		fmt.Fprintf(&blk, "a=rtpmap:%d %s\r\n", c.pt, c.name)
		for _, fb := range []string{"goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"} {
			fmt.Fprintf(&blk, "a=rtcp-fb:%d %s\r\n", c.pt, fb)
		}
		if c.fmtp != "" {
			fmt.Fprintf(&blk, "a=fmtp:%d %s\r\n", c.pt, c.fmtp)
		}
		fmt.Fprintf(&blk, "a=rtpmap:%d rtx/90000\r\na=fmtp:%d apt=%d\r\n", c.rtx, c.rtx, c.pt)
		ptText := fmt.Sprintf(" %d %d", c.pt, c.rtx)
		if pts.Len() > 0 && fixed+pts.Len()+len(ptText)+codecs.Len()+blk.Len() > target {
			break
		}
		pts.WriteString(ptText)
		codecs.WriteString(blk.String())
	}

	var b strings.Builder
	b.Grow(fixed + pts.Len() + codecs.Len())
	b.WriteString(head.String())
	b.WriteString(mVideo)
	b.WriteString(pts.String())
	b.WriteString("\r\n")
	b.WriteString(videoCommon.String())
	b.WriteString(codecs.String())
	b.WriteString(ssrcs.String())
	b.WriteString(app.String())
	return b.String()
}

// iceCandidate is the data of an ice-candidate message (RTCIceCandidateInit).
type iceCandidate struct {
	Candidate        string `json:"candidate"`
	SDPMid           string `json:"sdpMid"`
	SDPMLineIndex    int    `json:"sdpMLineIndex"`
	UsernameFragment string `json:"usernameFragment"`
}

// generateCandidates returns two trickled candidates as a browser sends them:
// a host candidate and a server-reflexive one.
func generateCandidates(r *rand.Rand) [2]iceCandidate {
	ufrag := randToken(r, 4)
	port := 49152 + r.IntN(16000)
	host := fmt.Sprintf("192.168.%d.%d", r.IntN(256), 1+r.IntN(254))
	pub := fmt.Sprintf("203.0.113.%d", 1+r.IntN(254))
	return [2]iceCandidate{
		{
			Candidate: fmt.Sprintf("candidate:%d 1 udp 2122260223 %s %d typ host generation 0 ufrag %s network-id 1 network-cost 10",
				r.Uint32(), host, port, ufrag),
			SDPMid: "0", UsernameFragment: ufrag,
		},
		{
			Candidate: fmt.Sprintf("candidate:%d 1 udp 1686052607 %s %d typ srflx raddr %s rport %d generation 0 ufrag %s network-id 1 network-cost 10",
				r.Uint32(), pub, 1024+r.IntN(60000), host, port, ufrag),
			SDPMid: "0", UsernameFragment: ufrag,
		},
	}
}
