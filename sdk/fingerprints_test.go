package sdk_test

import (
	"context"
	"errors"
	"testing"

	"github.com/switchboard-rtc/switchboard/internal/testserver"
	"github.com/switchboard-rtc/switchboard/sdk"
)

// TestFingerprintsCross: each side's local fingerprint is what the other side saw as remote,
// for the DTLS and the QUIC connection, and the two connections have different
// certificates; before a connection is up there is none.
func TestFingerprintsCross(t *testing.T) {
	url := testserver.Start(t, nil)
	pa, pb, _, _ := quicPair(t, url, "fingerprints", sdk.Options{})
	if _, _, err := pa.QUICFingerprints(); !errors.Is(err, sdk.ErrNoFingerprint) {
		t.Fatalf("QUIC fingerprints before QUIC: %v", err)
	}
	la, ra, err := pa.DTLSFingerprints()
	if err != nil {
		t.Fatal(err)
	}
	lb, rb, err := pb.DTLSFingerprints()
	if err != nil {
		t.Fatal(err)
	}
	if la != rb || lb != ra || la == lb {
		t.Fatalf("DTLS: a %x/%x, b %x/%x", la[:4], ra[:4], lb[:4], rb[:4])
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, _, ea, eb := bothQUIC(ctx, pa, pb); ea != nil || eb != nil {
		t.Fatalf("QUIC: %v / %v", ea, eb)
	}
	qa, qra, err := pa.QUICFingerprints()
	if err != nil {
		t.Fatal(err)
	}
	qb, qrb, err := pb.QUICFingerprints()
	if err != nil {
		t.Fatal(err)
	}
	if qa != qrb || qb != qra || qa == qb || qa == la {
		t.Fatalf("QUIC: a %x/%x, b %x/%x", qa[:4], qra[:4], qb[:4], qrb[:4])
	}
}
