package config

import (
	"strings"
	"testing"
)

// TestWebhookSigningKey: webhook-secret signs with id "webhook" and needs no API key; else
// webhook-key's API key, else the first; errors never quote a secret.
func TestWebhookSigningKey(t *testing.T) {
	k1 := "k1:" + strings.Repeat("a", 32)
	k2 := "k2:" + strings.Repeat("b", 32)
	secret := strings.Repeat("w", 40)
	cases := []struct {
		name, secret, key string
		keys              []string
		id, err           string
	}{
		{name: "secret alone", secret: secret, id: WebhookSecretID},
		{name: "secret beside keys", secret: secret, keys: []string{k1}, id: WebhookSecretID},
		{name: "first key", keys: []string{k1, k2}, id: "k1"},
		{name: "named key", keys: []string{k1, k2}, key: "k2", id: "k2"},
		{name: "unknown key", keys: []string{k1}, key: "k9", err: "no API key has that id"},
		{name: "nothing to sign with", err: "set webhook-secret"},
		{name: "short secret", secret: "short-secret", err: "at least 32"},
		{name: "both", secret: secret, key: "k1", keys: []string{k1}, err: "not both"},
	}
	for _, c := range cases {
		cfg := Default()
		cfg.WebhookURLs = []string{"https://hooks.example.com/x"}
		cfg.WebhookSecret, cfg.WebhookKey, cfg.APIKeys = c.secret, c.key, c.keys
		k, err := cfg.WebhookSigningKey()
		verr := cfg.Validate()
		switch {
		case c.err == "" && (err != nil || k.ID != c.id || verr != nil):
			t.Errorf("%s: %v %v %v", c.name, k, err, verr)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err) || verr == nil):
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.err)
		}
		if err != nil && (strings.Contains(err.Error(), "aaaa") || strings.Contains(err.Error(), "wwww") || strings.Contains(err.Error(), "short-secret")) {
			t.Errorf("%s: error quotes a secret: %v", c.name, err)
		}
	}
}

// TestWebhookURLErrorsHideCredentials: a bad webhook URL is named without its userinfo or
// query.
func TestWebhookURLErrorsHideCredentials(t *testing.T) {
	cfg := Default()
	cfg.WebhookSecret = strings.Repeat("w", 40)
	cfg.WebhookURLs = []string{"htps://hook:S3CRETPASS@app.example.com/x?token=T0KEN"}
	err := cfg.Validate()
	if err == nil || strings.Contains(err.Error(), "S3CRETPASS") || strings.Contains(err.Error(), "T0KEN") {
		t.Fatalf("%v", err)
	}
}
