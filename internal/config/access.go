package config

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/auth"
)

// Keys parses api-keys. Its errors never quote a secret.
func (c *Config) Keys() ([]auth.Key, error) {
	keys, err := auth.ParseKeys(c.APIKeys)
	if err != nil {
		return nil, fmt.Errorf("api-keys: %w", err)
	}
	return keys, nil
}

// WebhookSecretID is the key id webhooks signed with webhook-secret carry.
const WebhookSecretID = "webhook"

// WebhookSigningKey returns the key that signs webhooks: webhook-secret (id "webhook"), else
// the API key webhook-key names, else the first API key.
func (c *Config) WebhookSigningKey() (auth.Key, error) {
	if c.WebhookSecret != "" {
		switch {
		case c.WebhookKey != "":
			return auth.Key{}, errors.New("webhook-key and webhook-secret: give one (the key that signs webhooks), not both")
		case len(c.WebhookSecret) < auth.MinSecretLen:
			return auth.Key{}, fmt.Errorf("webhook-secret: %d characters; at least %d are needed", len(c.WebhookSecret), auth.MinSecretLen)
		}
		return auth.Key{ID: WebhookSecretID, Secret: []byte(c.WebhookSecret)}, nil
	}
	keys, err := c.Keys()
	if err != nil {
		return auth.Key{}, err
	}
	if len(keys) == 0 {
		return auth.Key{}, errors.New("webhook-url: webhooks are signed; set webhook-secret (or api-keys)")
	}
	if c.WebhookKey == "" {
		return keys[0], nil
	}
	for _, k := range keys {
		if k.ID == c.WebhookKey {
			return k, nil
		}
	}
	return auth.Key{}, fmt.Errorf("webhook-key %q: no API key has that id", c.WebhookKey)
}

func (c *Config) validateAccess() []error {
	var errs []error
	if _, err := c.Keys(); err != nil {
		errs = append(errs, err)
	}
	for i, u := range c.WebhookURLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			// The URL may hold credentials: name it by position and scheme/host only.
			what := fmt.Sprintf("webhook-url %d", i+1)
			if err == nil && p.Host != "" {
				what += fmt.Sprintf(" (%.16s://%s)", p.Scheme, p.Host)
			}
			errs = append(errs, fmt.Errorf("%s: want an http:// or https:// URL", what))
		}
	}
	if len(c.WebhookURLs) > 0 {
		if _, err := c.WebhookSigningKey(); err != nil {
			errs = append(errs, err)
		}
		if c.WebhookTimeout < 100*time.Millisecond || c.WebhookTimeout > time.Minute {
			errs = append(errs, fmt.Errorf("webhook-timeout %v: want 100ms to 1m", c.WebhookTimeout))
		}
		if c.WebhookQueue < 1 || c.WebhookQueue > 1000000 {
			errs = append(errs, fmt.Errorf("webhook-queue %d: want 1 to 1000000", c.WebhookQueue))
		}
	}
	return errs
}
