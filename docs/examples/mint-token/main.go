// Command mint-token is docs/auth.md's Go example: an application backend mints a Switchboard
// access token with golang-jwt/jwt, without Switchboard's code. SWITCHBOARD_KEY is one of the
// server's --api-keys, "KEY_ID:SECRET".
package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func main() {
	kid, secret, _ := strings.Cut(os.Getenv("SWITCHBOARD_KEY"), ":")
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "user-42", "room": "sales", "join": true, "turn": true,
		"name": "Alice", "meta": map[string]any{"role": "host"},
		"exp": time.Now().Add(time.Hour).Unix(),
	})
	t.Header["kid"] = kid
	token, err := t.SignedString([]byte(secret))
	if err != nil {
		fmt.Fprintln(os.Stderr, "mint-token:", err)
		os.Exit(1)
	}
	fmt.Println(token)
}
