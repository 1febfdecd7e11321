package bench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
)

// sessionDescription is the data of an offer or answer (RTCSessionDescriptionInit).
type sessionDescription struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
}

// nativeRelay is a native relay frame as a client sends it.
type nativeRelay struct {
	Type   string `json:"type"`
	Target string `json:"target"`
	Data   any    `json:"data"`
}

// sioDescription and sioCandidate are the seed client's event payloads: the
// target's socket id, the sender's (so the callee knows whom to answer), then
// the description or candidate fields.
type sioDescription struct {
	Target string `json:"target"`
	From   string `json:"from"`
	sessionDescription
}

type sioCandidate struct {
	Target string `json:"target"`
	From   string `json:"from"`
	iceCandidate
}

// roundMessages are the pre-encoded frames one side of a pair sends per round:
// its description (offer or answer) and two ICE candidates.
type roundMessages struct {
	desc   []byte
	cands  [2][]byte
	sdpLen int // length of the SDP text inside desc
}

// all returns the frames in sending order.
func (m *roundMessages) all() [3][]byte { return [3][]byte{m.desc, m.cands[0], m.cands[1]} }

// buildRoundMessages encodes the frames from (own id) to target. descType is
// "offer" or "answer"; sdpBytes the size of the generated SDP.
func buildRoundMessages(p protoKind, r *rand.Rand, descType, from, target string, sdpBytes int) (roundMessages, error) {
	sdp := generateSDP(r, descType == "answer", sdpBytes)
	cands := generateCandidates(r)
	m := roundMessages{sdpLen: len(sdp)}
	var err error
	desc := sessionDescription{Type: descType, SDP: sdp}
	if p == protoSocketIO {
		m.desc, err = encodeSIOEvent(descType, sioDescription{Target: target, From: from, sessionDescription: desc})
	} else {
		m.desc, err = json.Marshal(nativeRelay{Type: descType, Target: target, Data: desc})
	}
	if err != nil {
		return m, fmt.Errorf("encode %s: %w", descType, err)
	}
	for i, c := range cands {
		if p == protoSocketIO {
			m.cands[i], err = encodeSIOEvent("ice-candidate", sioCandidate{Target: target, From: from, iceCandidate: c})
		} else {
			m.cands[i], err = json.Marshal(nativeRelay{Type: "ice-candidate", Target: target, Data: c})
		}
		if err != nil {
			return m, fmt.Errorf("encode ice-candidate: %w", err)
		}
	}
	return m, nil
}

// encodeSIOEvent encodes a Socket.IO EVENT packet on the main namespace:
// `42["event",data]`.
func encodeSIOEvent(event string, data any) ([]byte, error) {
	b, err := json.Marshal([]any{event, data})
	if err != nil {
		return nil, fmt.Errorf("encode socket.io event %s: %w", event, err)
	}
	return append([]byte("42"), b...), nil
}
