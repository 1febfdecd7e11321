package serverapi_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/switchboard-rtc/switchboard/sdk/serverapi"
)

// An application's backend lists its rooms, tells one room the meeting ends soon, and removes
// a peer, with a token minted by `switchboard token --admin`.
func Example() {
	api := serverapi.New("http://127.0.0.1:8080", os.Getenv("SWITCHBOARD_ADMIN_TOKEN"), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	rooms, err := api.Rooms(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range rooms {
		fmt.Printf("%s: %d peers\n", r.Name, r.Peers)
	}

	// Every peer of "sales" gets {"type":"server-message","data":{"notice":"ends in 5 minutes"}}.
	if err := api.SendMessage(ctx, "sales", "", map[string]string{"notice": "ends in 5 minutes"}); err != nil {
		log.Fatal(err)
	}

	peers, err := api.Peers(ctx, "sales")
	if serverapi.IsNotFound(err) {
		return // the room emptied meanwhile
	}
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range peers {
		if p.Identity == "mallory" {
			err := api.RemovePeer(ctx, "sales", p.ID)
			var apiErr *serverapi.Error
			if errors.As(err, &apiErr) {
				log.Printf("not removed: %s (%s)", apiErr.Message, apiErr.Code)
			}
		}
	}
}
