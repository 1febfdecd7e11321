package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus/natsbus"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/resume"
)

// clusterKVTimeout bounds the start's reads of the cluster's resume secret and ledger.
const clusterKVTimeout = 15 * time.Second

// resumeTokens returns the hub's resume tokens: signed with --resume-secret, else on a cluster
// node with the cluster's shared secret (JetStream KV), else with a random secret of this
// process (logged once: a restart, or another node, then cannot take presences back).
// A state file's secrets verify too (after the configured ones), or sign when none is
// configured: tokens from before the restart stay good. On a cluster node with JetStream the
// spent tokens are recorded in the cluster's ledger, so that a token is good once across the
// nodes; else in this process's memory.
func resumeTokens(cfg config.Config, saved *state, cluster *natsbus.Bus, log *slog.Logger) (*resume.Tokens, error) {
	secrets, err := resume.ParseSecrets(cfg.ResumeSecret)
	if err != nil {
		return nil, fmt.Errorf("resume-secret: %w", err)
	}
	if saved != nil {
		secrets = append(secrets, saved.Secrets...)
	}
	rc := resume.Config{Secrets: secrets, TTL: cfg.ResumeTokenTTL}
	shared := false
	if cluster != nil && cfg.ResumeGrace > 0 {
		shared, err = clusterResume(cluster, &rc, log)
		if err != nil {
			return nil, err
		}
	}
	t, err := resume.New(rc)
	if err != nil {
		return nil, fmt.Errorf("resume tokens: %w", err)
	}
	switch {
	case !t.RandomSecret() || cfg.ResumeGrace <= 0:
	case cluster != nil && !shared:
		log.Warn("no --resume-secret and no JetStream on the NATS server: resume tokens are signed with a random secret of this node, so clients cannot take their presences back on another node or after a restart; give every node the same --resume-secret, or enable JetStream")
	case cluster == nil:
		log.Info("no --resume-secret: resume tokens are signed with a random secret, so clients cannot take their presences back after a restart")
	}
	return t, nil
}

// clusterResume completes rc from the cluster's JetStream KV: its shared secret when none is
// configured, and its spent-token ledger. It reports whether the secret is the cluster's. A
// NATS server without JetStream, or one not reachable now, leaves rc as it is (logged).
func clusterResume(nb *natsbus.Bus, rc *resume.Config, log *slog.Logger) (bool, error) {
	if !nb.Connected() {
		log.Warn("NATS is not reachable at start: resume tokens are signed, verified and spent on this node only until it restarts (unless --resume-secret is given)")
		return false, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterKVTimeout)
	defer cancel()
	l, err := nb.Ledger(ctx)
	switch {
	case errors.Is(err, natsbus.ErrNoJetStream):
		log.Info("the NATS server has no JetStream: spent resume tokens are recorded per node (a token may be spent once on each node)")
		return false, nil
	case err != nil:
		log.Warn("open the cluster's spent-token ledger: recorded on this node only", "err", err)
	default:
		rc.Ledger = l
	}
	if len(rc.Secrets) > 0 {
		return false, nil
	}
	secret, err := nb.ResumeSecret(ctx)
	switch {
	case errors.Is(err, natsbus.ErrNoJetStream):
		return false, nil
	case err != nil:
		log.Warn("read the cluster's resume secret", "err", err)
		return false, nil
	}
	rc.Secrets = [][]byte{secret}
	log.Info("resume tokens signed with the cluster's shared secret (JetStream KV)")
	return true, nil
}
