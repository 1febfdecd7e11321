package bench

import (
	"testing"
)

func TestTopLevelString(t *testing.T) {
	tests := []struct {
		name, in, key string
		want          string
		ok            bool
	}{
		{"first", `{"type":"offer","from":"a"}`, "type", "offer", true},
		{"after nested with same key", `{"data":{"type":"answer","sdp":"v=0\r\n"},"type":"offer"}`, "type", "offer", true},
		{"nested only", `{"data":{"type":"answer"}}`, "type", "", false},
		{"whitespace", " {\n \"from\" : \"x\" ,\t\"type\" : \"peer-joined\" } ", "type", "peer-joined", true},
		{"escaped quote in earlier string", `{"m":"a\"b}{","type":"error"}`, "type", "error", true},
		{"arrays and literals", `{"peers":[{"id":"x"},[1,2]],"n":-1.5e3,"b":true,"z":null,"type":"welcome"}`, "type", "welcome", true},
		{"escape kept raw", `{"type":"a\"b"}`, "type", `a\"b`, true},
		{"not a string", `{"type":5}`, "type", "", false},
		{"missing", `{"a":"b"}`, "type", "", false},
		{"empty object", `{}`, "type", "", false},
		{"not an object", `["type","offer"]`, "type", "", false},
		{"truncated", `{"data":{"type":"x"`, "type", "", false},
		{"truncated string", `{"type":"off`, "type", "", false},
		{"empty input", ``, "type", "", false},
		{"garbage", `{type:"offer"}`, "type", "", false},
		{"key is prefix", `{"typeX":"no","type":"yes"}`, "type", "yes", true},
		{"engine.io frame", `42["offer",{}]`, "type", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := topLevelString([]byte(tt.in), tt.key)
			if ok != tt.ok || string(got) != tt.want {
				t.Errorf("topLevelString(%q, %q) = %q, %v; want %q, %v", tt.in, tt.key, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestClassifyNative(t *testing.T) {
	tests := []struct {
		in   string
		want msgKind
	}{
		{`{"type":"offer","from":"a","data":{"type":"offer","sdp":"x"}}`, kindOffer},
		{`{"type":"answer","from":"a","data":{"type":"answer","sdp":"x"}}`, kindAnswer},
		{`{"type":"ice-candidate","from":"a","data":{"candidate":"candidate:1"}}`, kindCandidate},
		{`{"type":"peer-joined","peer":{"id":"x"}}`, kindPeerJoined},
		{`{"type":"error","code":"unknown-target","message":"m"}`, kindError},
		{`{"type":"peer-left","peer":{"id":"x"},"reason":"closed"}`, kindOther},
		{`{"from":"a","data":{"type":"offer"}}`, kindOther},
		{`not json`, kindOther},
	}
	for _, tt := range tests {
		if got := classify(protoNative, []byte(tt.in)); got != tt.want {
			t.Errorf("classify(native, %q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestClassifySocketIO(t *testing.T) {
	tests := []struct {
		in   string
		want msgKind
	}{
		{`42["offer",{"target":"a","sdp":"x"}]`, kindOffer},
		{`42["answer",{"target":"a"}]`, kindAnswer},
		{`42["ice-candidate",{"candidate":"candidate:1"}]`, kindCandidate},
		{`42["chat","hi"]`, kindOther},
		{`421["offer",{}]`, kindOther}, // with an ack id: not something the seed server sends
		{`41`, kindError},
		{`44{"message":"Invalid namespace"}`, kindError},
		{`1`, kindError},
		{`2`, kindOther},
		{`3`, kindOther},
		{`40{"sid":"x"}`, kindOther},
		{`42[`, kindOther},
		{``, kindOther},
	}
	for _, tt := range tests {
		if got := classify(protoSocketIO, []byte(tt.in)); got != tt.want {
			t.Errorf("classify(socketio, %q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseEIOOpen(t *testing.T) {
	tests := []struct {
		in      string
		want    eioOpen
		wantErr bool
	}{
		{`0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`,
			eioOpen{SID: "lv_VI97HAXpY6yYWAAAC", PingInterval: 25000, PingTimeout: 20000, MaxPayload: 1000000}, false},
		{`0{}`, eioOpen{}, true},
		{`0{bad`, eioOpen{}, true},
		{`40`, eioOpen{}, true},
		{`0`, eioOpen{}, true},
		{``, eioOpen{}, true},
	}
	for _, tt := range tests {
		got, err := parseEIOOpen([]byte(tt.in))
		if (err != nil) != tt.wantErr {
			t.Errorf("parseEIOOpen(%q) err = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && got != tt.want {
			t.Errorf("parseEIOOpen(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseSIOConnect(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{`40{"sid":"wZX3oN0bSVIhsaknAAAI"}`, "wZX3oN0bSVIhsaknAAAI", false},
		{`40{"sid":"a","pid":"b"}`, "a", false},
		{`40`, "", true},
		{`40{}`, "", true},
		{`44{"message":"Not authorized"}`, "", true},
		{`42["x"]`, "", true},
		{`2`, "", true},
	}
	for _, tt := range tests {
		got, err := parseSIOConnect([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseSIOConnect(%q) = %q, %v; want %q, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestSIOEventName(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{`42["offer",{}]`, "offer", true},
		{`42["ice-candidate",{"a":1}]`, "ice-candidate", true},
		{`42["a\"b",1]`, `a\"b`, true},
		{`42["unterminated`, "", false},
		{`43["offer"]`, "", false},
		{`42[1,2]`, "", false},
		{`42`, "", false},
	}
	for _, tt := range tests {
		got, ok := sioEventName([]byte(tt.in))
		if ok != tt.ok || string(got) != tt.want {
			t.Errorf("sioEventName(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestIsEIOPing(t *testing.T) {
	for in, want := range map[string]bool{"2": true, "3": false, "2probe": false, "": false, "42": false} {
		if got := isEIOPing([]byte(in)); got != want {
			t.Errorf("isEIOPing(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestPeerJoinedID(t *testing.T) {
	id, err := peerJoinedID([]byte(`{"type":"peer-joined","peer":{"id":"q3m8","name":"Ada","meta":{}}}`))
	if err != nil || id != "q3m8" {
		t.Errorf("peerJoinedID = %q, %v", id, err)
	}
	if _, err := peerJoinedID([]byte(`{"type":"peer-joined","peer":{}}`)); err == nil {
		t.Error("peer-joined without id: want an error")
	}
}

func TestNewDialerSourceIPs(t *testing.T) {
	tests := []struct {
		url       string
		sourceIPs int
		want      int
		wantErr   bool
	}{
		{"ws://127.0.0.1:8080/ws", 8, 8, false},
		{"ws://localhost:8080/ws", 4, 4, false},
		{"ws://127.0.0.1:8080/ws", 0, 1, false},
		{"ws://10.1.2.3:8080/ws", 8, 1, false}, // not loopback: the system picks
		{"ws://[::1]:8080/ws", 8, 1, false},
		{"ftp://127.0.0.1/", 8, 0, true},
		{"ws://%zz", 8, 0, true},
	}
	for _, tt := range tests {
		d, err := newDialer(tt.url, protoNative, tt.sourceIPs, 0)
		if (err != nil) != tt.wantErr {
			t.Errorf("newDialer(%q) err = %v, wantErr %v", tt.url, err, tt.wantErr)
			continue
		}
		if err == nil && len(d.clients) != tt.want {
			t.Errorf("newDialer(%q, %d): %d source addresses, want %d", tt.url, tt.sourceIPs, len(d.clients), tt.want)
		}
	}
}
