package server

import (
	"fmt"
	"log/slog"

	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/resume"
)

// resumeTokens returns the hub's resume tokens: signed with --resume-secret, or with a random
// secret of this process (logged once: a restart then cannot take presences back).
// A state file's secrets verify too (after the configured ones), or sign when none is
// configured: tokens from before the restart stay good.
func resumeTokens(cfg config.Config, saved *state, log *slog.Logger) (*resume.Tokens, error) {
	secrets, err := resume.ParseSecrets(cfg.ResumeSecret)
	if err != nil {
		return nil, fmt.Errorf("resume-secret: %w", err)
	}
	if saved != nil {
		secrets = append(secrets, saved.Secrets...)
	}
	t, err := resume.New(resume.Config{Secrets: secrets, TTL: cfg.ResumeTokenTTL})
	if err != nil {
		return nil, fmt.Errorf("resume tokens: %w", err)
	}
	if t.RandomSecret() && cfg.ResumeGrace > 0 {
		log.Info("no --resume-secret: resume tokens are signed with a random secret, so clients cannot take their presences back after a restart")
	}
	return t, nil
}
