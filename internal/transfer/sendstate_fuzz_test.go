package transfer

import (
	"bytes"
	"testing"
)

// FuzzSenderAnswers feeds a sender's state messages from a receiver (one JSON text per
// line), decoded as the Sender decodes them: whatever they say, nothing panics, an error
// stops the transfer, and the progress reported never claims more than was sent nor goes
// back.
//
//	go test -run '^$' -fuzz FuzzSenderAnswers -fuzztime 30s ./internal/transfer
func FuzzSenderAnswers(f *testing.F) {
	for _, s := range []string{
		`{"type":"got","name":"a","bytes":10}` + "\n" + `{"type":"got","name":"a","bytes":100}`,
		`{"type":"got","name":"a","bytes":100}` + "\n" + `{"type":"ok","name":"a"}` + "\n" + `{"type":"got","name":"b","bytes":5}`,
		`{"type":"got","name":"a","bytes":101}`,
		`{"type":"got","name":"a","bytes":-1}`,
		`{"type":"got","name":"b","bytes":1}`,
		`{"type":"got","name":"a","bytes":1e3}`,
		`{"type":"got","name":"a","bytes":9223372036854775807}`,
		`{"type":"error","name":"a","code":"io","message":"x"}` + "\n" + `{"type":"got","name":"b","bytes":7}`,
		`{"type":"ok","name":"a"}` + "\n" + `{"type":"ok","name":"b"}` + "\n" + `{"type":"done"}`,
		`{"type":"got"}`,
		`{"type":"got","name":null,"bytes":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		files := []outgoing{{name: "a", size: 100}, {name: "b", size: 50}, {name: "c", size: 0}}
		var last Progress
		reports := 0
		st := newSendState(files, newMeter(func(p Progress) {
			if p.Bytes < 0 || p.Bytes > p.Sent || p.Sent > p.Size || p.TotalBytes > p.TotalSize {
				t.Fatalf("report %+v", p)
			}
			if reports > 0 && (p.TotalBytes < last.TotalBytes || p.File < last.File) {
				t.Fatalf("report %+v after %+v", p, last)
			}
			last = p
			reports++
		}, 1))
		// "a" sent and ended, "b" started with 7 of its bytes sent.
		st.started, st.ended, st.sent[0], st.sent[1] = 2, 1, 100, 7
		for _, line := range bytes.Split(in, []byte("\n")) {
			m, err := decode(line)
			if err != nil {
				m = message{Type: "malformed", Message: err.Error()}
			}
			if err := st.answer(m); err != nil {
				return // the Sender stops here
			}
			if st.answered > st.started || (st.answered < st.started && st.confirmed > st.sent[st.answered]) {
				t.Fatalf("state: answered %d of %d started, confirmed %d", st.answered, st.started, st.confirmed)
			}
		}
	})
}
