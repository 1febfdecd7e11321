package natsbus

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// What the cluster keeps in JetStream KV, when the NATS server has JetStream: the resume
// secret every node signs and verifies resume tokens with, created once by the first node
// that asks (a create-only put: the others read it), and the ledger of spent resume tokens,
// one create-only key per token id with a per-key TTL of the token's expiry, so that a token
// is spent once across the cluster. Everything else natsbus does uses core NATS only.

// ErrNoJetStream is returned (wrapped) by ResumeSecret and Ledger when the NATS server has no
// JetStream: a cluster then needs its resume secret configured on every node.
var ErrNoJetStream = errors.New("natsbus: the NATS server has no JetStream (needed for a shared resume secret and spent-token ledger; give every node the same resume secret instead)")

const (
	secretKey   = "resume-secret"
	secretBytes = 32
	// ledgerMaxBytes bounds the ledger bucket; a key is a few dozen bytes and lives as long
	// as its token.
	ledgerMaxBytes = 64 << 20
	// kvTry bounds one try at opening or creating a bucket (keyValue).
	kvTry = 5 * time.Second
)

// bucketName returns a KV bucket name for the cluster prefix (letters, digits, '-', '_').
func (b *Bus) bucketName(suffix string) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, b.cfg.Prefix)
	return name + suffix
}

// keyValue opens the bucket of cfg, creating it if no node has.
func (b *Bus) keyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	js, err := jetstream.New(b.nc)
	if err != nil {
		return nil, fmt.Errorf("natsbus: jetstream: %w", err)
	}
	var kv jetstream.KeyValue
	for {
		// Each try gets kvTry: an answer of JetStream's API that does not come (seen when
		// nodes create the first bucket of a fresh server at once on a loaded machine) costs a
		// try, not the whole of ctx.
		tctx, cancel := context.WithTimeout(ctx, kvTry)
		kv, err = js.KeyValue(tctx, cfg.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = js.CreateKeyValue(tctx, cfg)
			if errors.Is(err, jetstream.ErrBucketExists) {
				kv, err = js.KeyValue(tctx, cfg.Bucket)
			}
		}
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			break
		}
		b.log.Warn("JetStream did not answer in time; asking again", "bucket", cfg.Bucket, "after", kvTry)
	}
	switch {
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount), errors.Is(err, nats.ErrNoResponders):
		return nil, ErrNoJetStream
	case err != nil:
		return nil, fmt.Errorf("natsbus: key-value bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// ResumeSecret returns the cluster's resume secret (32 random bytes), creating it in the
// JetStream KV bucket "<prefix>" (key "resume-secret") when no node has yet: every node gets
// the same one. Without JetStream it returns ErrNoJetStream.
func (b *Bus) ResumeSecret(ctx context.Context) ([]byte, error) {
	kv, err := b.keyValue(ctx, jetstream.KeyValueConfig{Bucket: b.bucketName(""), Description: "switchboard cluster state"})
	if err != nil {
		return nil, err
	}
	for range 2 {
		e, err := kv.Get(ctx, secretKey)
		if err == nil {
			if len(e.Value()) < secretBytes {
				return nil, fmt.Errorf("natsbus: resume secret in bucket %s is %d bytes, want %d", b.bucketName(""), len(e.Value()), secretBytes)
			}
			return e.Value(), nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("natsbus: read resume secret: %w", err)
		}
		secret := make([]byte, secretBytes)
		_, _ = rand.Read(secret)
		_, err = kv.Create(ctx, secretKey, secret)
		if err == nil {
			return secret, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("natsbus: create resume secret: %w", err)
		}
		// Another node created it first: read theirs.
	}
	return nil, errors.New("natsbus: resume secret: created and not found")
}

// Ledger is the cluster's spent resume tokens, in the JetStream KV bucket "<prefix>-spent".
type Ledger struct {
	kv jetstream.KeyValue
}

// Ledger opens (or creates) the spent-token ledger. Without JetStream it returns
// ErrNoJetStream.
func (b *Bus) Ledger(ctx context.Context) (*Ledger, error) {
	kv, err := b.keyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         b.bucketName("-spent"),
		Description:    "switchboard spent resume tokens",
		MaxBytes:       ledgerMaxBytes,
		MaxValueSize:   1024,        // the whole message, with its TTL header
		LimitMarkerTTL: time.Second, // needed for per-key TTLs
	})
	if err != nil {
		return nil, err
	}
	return &Ledger{kv: kv}, nil
}

// ledgerKey returns the key of token id jti: itself when it is made of key characters,
// else its SHA-256 in hex.
func ledgerKey(jti string) string {
	ok := len(jti) > 0 && len(jti) <= 128
	for i := 0; ok && i < len(jti); i++ {
		c := jti[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
	}
	if ok {
		return "t." + jti
	}
	sum := sha256.Sum256([]byte(jti))
	return "h." + hex.EncodeToString(sum[:])
}

// Spend marks the token jti, valid until exp, spent across the cluster: true the first time,
// false when any node spent it before (or exp has passed). The mark lasts until exp.
func (l *Ledger) Spend(ctx context.Context, jti string, exp time.Time) (bool, error) {
	ttl := time.Until(exp)
	if ttl <= 0 {
		return false, nil
	}
	ttl = max(ttl.Round(time.Second)+time.Second, time.Second) // whole seconds, never shorter
	_, err := l.kv.Create(ctx, ledgerKey(jti), []byte{1}, jetstream.KeyTTL(ttl))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists):
		return false, nil
	}
	return false, fmt.Errorf("natsbus: spend resume token: %w", err)
}
