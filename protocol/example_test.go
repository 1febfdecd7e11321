package protocol_test

import (
	"fmt"

	"github.com/switchboard-rtc/switchboard/protocol"
)

func ExampleDecodeFrame() {
	var f protocol.Frame
	in := []byte(`{"type":"offer","id":7,"target":"q3m8sXoLqv1yCpTtNd3h1w","data":{"type":"offer","sdp":"v=0\r\n"}}`)
	if err := protocol.DecodeFrame(in, &f); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(f.Type, string(f.ID), string(f.Target))
	fmt.Println(string(f.Data))

	// A frame that fails validation still yields its id, so the error can echo it.
	err := protocol.DecodeFrame([]byte(`{"type":"offer","id":"j1","data":{}}`), &f)
	fmt.Println(err.Code, string(f.ID))
	// Output:
	// offer 7 q3m8sXoLqv1yCpTtNd3h1w
	// {"type":"offer","sdp":"v=0\r\n"}
	// missing-field "j1"
}

func ExampleAppendEvent() {
	relay := protocol.Event{
		Type: protocol.TypeMessage,
		From: "Vb4k7hVd0S2v0w9Jv1qgXA",
		Data: []byte(`{"text":"hello room"}`),
		// Broadcast marks a message sent to the whole room.
		Broadcast: true,
	}
	fmt.Println(string(protocol.AppendEvent(nil, &relay)))

	errFrame := protocol.Event{
		Type: protocol.TypeError,
		ID:   []byte(`"m7"`),
		Err:  protocol.Errorf(protocol.CodeUnknownTarget, "target is not in your room"),
	}
	fmt.Println(string(protocol.AppendEvent(nil, &errFrame)))

	left := protocol.Event{Type: protocol.TypePeerLeft, Peer: &protocol.PeerInfo{ID: "q3m8sXoLqv1yCpTtNd3h1w"}, Reason: "left"}
	fmt.Println(string(protocol.AppendEvent(nil, &left)))
	// Output:
	// {"type":"message","from":"Vb4k7hVd0S2v0w9Jv1qgXA","data":{"text":"hello room"},"broadcast":true}
	// {"type":"error","id":"m7","code":"unknown-target","message":"target is not in your room"}
	// {"type":"peer-left","peer":{"id":"q3m8sXoLqv1yCpTtNd3h1w"},"reason":"left"}
}

func ExampleAppendString() {
	fmt.Println(string(protocol.AppendString(nil, "say \"hi\"\n\x01 \xff")))
	// Output:
	// "say \"hi\"\n\u0001 \ufffd"
}

func ExampleValidRoom() {
	for _, name := range []string{"standup-42", "team.eng_1", "", "no spaces", "café"} {
		fmt.Printf("%q %v\n", name, protocol.ValidRoom(name))
	}
	// Output:
	// "standup-42" true
	// "team.eng_1" true
	// "" false
	// "no spaces" false
	// "café" false
}

func ExampleNewPeerID() {
	id := protocol.NewPeerID()
	fmt.Println(len(id), id != protocol.NewPeerID())
	// Output:
	// 22 true
}
