package natsbus

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/protocol"
)

func sampleHandover() *bus.Handover {
	return &bus.Handover{Seq: 9, Gap: true, Events: []*protocol.Event{
		{Type: protocol.TypeOffer, Seq: 7, From: "p1", Data: []byte(`{"sdp":"x"}`)},
		{Type: protocol.TypeMessage, Seq: 8, From: "p2", Data: []byte(`1`), Broadcast: true},
		{Type: protocol.TypeMessage, Seq: 8, From: "p2", Data: []byte(`2`), ID: []byte(`"r9"`), Retry: true},
		{Type: protocol.TypePeerJoined, Seq: 9, Resumed: true, Peer: &protocol.PeerInfo{ID: "p3", Identity: "bob", Name: "Bob", Meta: []byte(`{"a":1}`)}},
		{Type: protocol.TypePeerLeft, Seq: 10, Peer: &protocol.PeerInfo{ID: "p3"}, Reason: "timeout"},
	}, RetryIDs: []uint64{1, 0xfeedface, 1 << 63}}
}

func TestHandoverRoundTrip(t *testing.T) {
	h := sampleHandover()
	got, err := decodeHandover(encodeHandover(h, 1<<20))
	if err != nil || !reflect.DeepEqual(got, h) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if got, err := decodeHandover(encodeHandover(nil, 1<<20)); got != nil || err != nil {
		t.Fatalf("none: %v %v", got, err)
	}
	// Too big for one message: the oldest events go, and the gap says so.
	h.Gap = false
	small := encodeHandover(h, 60)
	got, err = decodeHandover(small)
	if err != nil || len(small) > 60 || !got.Gap || len(got.Events) == 0 || got.Events[len(got.Events)-1].Seq != 10 {
		t.Fatalf("bounded: %d bytes, %+v %v", len(small), got, err)
	}
	// Retry ids: at most maxHandoverRetryIDs, the newest kept.
	many := &bus.Handover{Seq: 1}
	for i := 0; i < maxHandoverRetryIDs+10; i++ {
		many.RetryIDs = append(many.RetryIDs, uint64(i))
	}
	got, err = decodeHandover(encodeHandover(many, 1<<20))
	if err != nil || len(got.RetryIDs) != maxHandoverRetryIDs || got.RetryIDs[0] != 10 {
		t.Fatalf("retry ids past the bound: %d ids from %v, %v", len(got.RetryIDs), got.RetryIDs[:1], err)
	}
	tooMany := []byte{1, hoRetryIDs, 1, 0, 0x81, 0x02} // 257 ids announced
	tooMany = append(tooMany, make([]byte, 257*8)...)
	for _, bad := range [][]byte{nil, {2}, {0, 0}, {1}, {1, 0, 1, 1}, {1, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		{1, hoRetryIDs, 1, 0}, {1, hoRetryIDs, 1, 0, 0}, {1, hoRetryIDs, 1, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8}, tooMany} {
		if _, err := decodeHandover(bad); err == nil {
			t.Errorf("decodeHandover(%v) accepted", bad)
		}
	}
}

// FuzzDecodeHandover: any answer from another node decodes without panicking, within its
// bounds, and what decodes encodes back to the same bytes.
func FuzzDecodeHandover(f *testing.F) {
	f.Add(encodeHandover(sampleHandover(), 1<<20))
	f.Add([]byte{0})
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := decodeHandover(data)
		if err != nil {
			return
		}
		if h == nil {
			return
		}
		if len(h.Events) > maxHandoverEvents || len(h.RetryIDs) > maxHandoverRetryIDs {
			t.Fatalf("%d events, %d retry ids", len(h.Events), len(h.RetryIDs))
		}
		again := encodeHandover(h, 1<<30)
		h2, err := decodeHandover(again)
		if err != nil || !reflect.DeepEqual(h, h2) {
			t.Fatalf("re-decode: %v", err)
		}
		if !bytes.Equal(again, encodeHandover(h2, 1<<30)) {
			t.Fatal("encoding not stable")
		}
	})
}

// FuzzDecodeRelay: any inbox relay message decodes without panicking, and a broadcast has no
// target while every other kind has one.
func FuzzDecodeRelay(f *testing.F) {
	e := &protocol.Event{Type: protocol.TypeMessage, From: "a", Data: []byte(`{}`)}
	f.Add(encodeRelay("r", "t", e))
	f.Add(encodeRelay("r", "", e))
	f.Add(encodeKind(kindBroadcastTo, "r", "t", e))
	f.Add(encodeKind(kindLobby, "", "t", e))
	f.Add(encodeKind(kindFlushed, "r", "t", &protocol.Event{From: "node"}))
	f.Add(encodeKind(kindOrphanSeen, "r", "t", &protocol.Event{From: "node"}))
	former := encodeKind(kindBroadcastTo, "r", "t", e)
	former[2] |= relayFormer
	f.Add(former)
	f.Add(encodeRelay("r", "t", &protocol.Event{Type: protocol.TypeMessage, From: "a", ID: []byte(`"r1"`), Retry: true, Data: []byte(`{}`)}))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeRelay(data)
		if err != nil {
			return
		}
		if (m.kind == kindBroadcast) != (m.target == "") {
			t.Fatalf("kind %c with target %q", m.kind, m.target)
		}
	})
}
