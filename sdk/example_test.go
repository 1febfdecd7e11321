package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/switchboard-rtc/switchboard/sdk"
)

// Join a room and say hello over a data channel to every peer in it, now or later.
func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := sdk.Dial(ctx, "http://localhost:8080", "standup", &sdk.Options{
		Name: "gopher",
		OnPeer: func(p *sdk.Peer) {
			dc, err := p.CreateDataChannel("chat", nil)
			if err != nil {
				log.Print(err)
				return
			}
			dc.OnOpen(func() { _ = dc.SendText("hello, " + p.Name()) })
			dc.OnMessage(func(m webrtc.DataChannelMessage) { fmt.Printf("%s: %s\n", p.Name(), m.Data) })
		},
		OnPeerLeft: func(p *sdk.Peer, reason string) { fmt.Println(p.Name(), "left:", reason) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	<-ctx.Done()
}

func ExampleWebSocketURL() {
	for _, server := range []string{"http://localhost:8080", "https://rtc.example.com/", "ws://127.0.0.1:9000/custom"} {
		u, _ := sdk.WebSocketURL(server)
		fmt.Println(u)
	}
	// Output:
	// ws://localhost:8080/ws
	// wss://rtc.example.com/ws
	// ws://127.0.0.1:9000/custom
}

// Ride out a lost signaling connection: peer connections stay up while the client
// reconnects; give up (Done, Err) after ten failed attempts.
func ExampleReconnectOptions() {
	ctx := context.Background()
	client, err := sdk.Dial(ctx, "http://localhost:8080", "standup", &sdk.Options{
		Reconnect: sdk.ReconnectOptions{MaxAttempts: 10, MaxDelay: 3 * time.Second},
		OnReconnecting: func(attempt int, cause error) {
			log.Printf("signaling lost (%v): attempt %d", cause, attempt)
		},
		OnReconnected: func(resumed bool) {
			if resumed {
				log.Print("back, same id, nothing missed")
			} else {
				log.Print("back under a new id: every pair starts over")
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	<-client.Done()
	log.Print("gave up: ", client.Err())
}

// Join a server that requires access tokens: the application's backend mints them (here
// fetched from a hypothetical /call-token endpoint), the server takes the room and name from
// the token, and a fresh one is fetched only when the client must join anew after a lost
// connection it could not resume.
func ExampleOptions_tokenFunc() {
	fetch := func(ctx context.Context) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://app.example.com/call-token", nil)
		if err != nil {
			return "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	client, err := sdk.Dial(context.Background(), "https://rtc.example.com", "", &sdk.Options{
		TokenFunc:       fetch,
		OnServerMessage: func(data json.RawMessage) { log.Printf("from the application: %s", data) },
	})
	switch {
	case errors.Is(err, sdk.ErrTokenExpired):
		log.Fatal("the call link has expired: ask for a new one")
	case err != nil:
		log.Fatal(err)
	}
	defer client.Close()
	<-client.Done()
	if errors.Is(client.Err(), sdk.ErrReplaced) {
		log.Print("you joined this call from another device")
	}
}
