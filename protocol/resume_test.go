package protocol_test

import (
	"testing"

	"github.com/switchboard-rtc/switchboard/protocol"
)

// TestDecodeFrameResumeFields covers the fields of resumption: a join's last, a relay's retry
// and a read mark's seq (docs/protocol.md "Resuming").
func TestDecodeFrameResumeFields(t *testing.T) {
	tests := []struct {
		in      string
		typ     protocol.Type
		last    uint64
		seq     uint64
		haveSeq bool
		retry   bool
	}{
		{`{"type":"join","room":"r","resume":"t","last":0}`, protocol.TypeJoin, 0, 0, false, false},
		{`{"type":"join","room":"r","resume":"t","last":42}`, protocol.TypeJoin, 42, 0, false, false},
		{`{"type":"join","room":"r","last":18446744073709551615}`, protocol.TypeJoin, 1<<64 - 1, 0, false, false},
		{`{"type":"read","seq":0}`, protocol.TypeRead, 0, 0, true, false},
		{`{"type":"read","seq":9007199254740993}`, protocol.TypeRead, 0, 9007199254740993, true, false},
		{`{"type":"message","id":"m1","target":"p","data":1,"retry":true}`, protocol.TypeMessage, 0, 0, false, true},
		{`{"type":"offer","id":3,"target":"p","data":{},"retry":false}`, protocol.TypeOffer, 0, 0, false, false},
		{`{"type":"message","broadcast":true,"id":"b","data":1,"retry":true}`, protocol.TypeMessage, 0, 0, false, true},
	}
	for _, tt := range tests {
		var f protocol.Frame
		if err := protocol.DecodeFrame([]byte(tt.in), &f); err != nil {
			t.Errorf("DecodeFrame(%s) = %v", tt.in, err)
			continue
		}
		if f.Type != tt.typ || f.Last != tt.last || f.Seq != tt.seq || f.HaveSeq != tt.haveSeq || f.Retry != tt.retry {
			t.Errorf("DecodeFrame(%s) = type %v last %d seq %d (%v) retry %v", tt.in, f.Type, f.Last, f.Seq, f.HaveSeq, f.Retry)
		}
	}
}

func TestDecodeFrameResumeFieldErrors(t *testing.T) {
	for _, tt := range []struct {
		in   string
		code protocol.Code
	}{
		{`{"type":"read"}`, protocol.CodeMissingField},
		{`{"type":"read","seq":-1}`, protocol.CodeBadField},
		{`{"type":"read","seq":1.5}`, protocol.CodeBadField},
		{`{"type":"read","seq":1e3}`, protocol.CodeBadField},
		{`{"type":"read","seq":"1"}`, protocol.CodeBadField},
		{`{"type":"read","seq":null}`, protocol.CodeBadField},
		{`{"type":"read","seq":18446744073709551616}`, protocol.CodeBadField},
		{`{"type":"read","seq":99999999999999999999}`, protocol.CodeBadField},
		{`{"type":"join","room":"r","last":-0}`, protocol.CodeBadField},
		{`{"type":"join","room":"r","last":true}`, protocol.CodeBadField},
		{`{"type":"message","target":"p","data":1,"retry":1}`, protocol.CodeBadField},
		{`{"type":"message","target":"p","data":1,"retry":"true"}`, protocol.CodeBadField},
		{`{"type":"read","seq":01}`, protocol.CodeBadJSON},
	} {
		var f protocol.Frame
		err := protocol.DecodeFrame([]byte(tt.in), &f)
		if err == nil || err.Code != tt.code {
			t.Errorf("DecodeFrame(%s) = %v, want %v", tt.in, err, tt.code)
		}
	}
}
