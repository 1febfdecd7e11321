package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/stats"
	"github.com/switchboard-rtc/switchboard/internal/webhook"
)

// startWebhooks starts the webhook sender for cfg.WebhookURLs, or returns nil when there are
// none.
func startWebhooks(cfg config.Config, log *slog.Logger, st *stats.Stats) (*webhook.Sender, error) {
	if len(cfg.WebhookURLs) == 0 {
		return nil, nil
	}
	key, err := cfg.WebhookSigningKey()
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	wh, err := webhook.New(webhook.Config{
		URLs:    cfg.WebhookURLs,
		Key:     key,
		Timeout: cfg.WebhookTimeout,
		Queue:   cfg.WebhookQueue,
		Stats:   st,
		Logger:  log,
	})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	for _, u := range cfg.WebhookURLs {
		log.Info("webhooks on", "url", webhook.Redact(u), "key", key.ID)
	}
	return wh, nil
}

// observer returns wh as the bus's observer: nil (no observer) when wh is nil.
func observer(wh *webhook.Sender) bus.Observer {
	if wh == nil {
		return nil
	}
	return wh
}

// stopWebhooks delivers what is queued within ctx. Events still undelivered then are counted
// as dropped and logged, not returned: the server itself has stopped cleanly.
func (s *Server) stopWebhooks(ctx context.Context) {
	if s.webhooks == nil {
		return
	}
	if err := s.webhooks.Shutdown(ctx); err != nil {
		s.log.Warn("webhook events dropped at shutdown", "error", err)
	}
}

// closeWebhooks stops wh at once (nil: nothing).
func closeWebhooks(wh *webhook.Sender) {
	if wh != nil {
		_ = wh.Close()
	}
}
