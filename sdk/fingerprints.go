package sdk

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Fingerprints of the certificates a pair's connections authenticate with: what an
// application that authenticates the pair by other means (a code phrase's key, a key it
// already has) binds, to learn that the connection it uses ends at the peer it authenticated
// and not at whoever rewrote the SDP or the QUIC hello on the way (the signaling server).

// ErrNoFingerprint means the connection is not up yet (or has no certificate to show).
var ErrNoFingerprint = errors.New("sdk: no certificate on that connection yet")

// DTLSFingerprints returns the SHA-256 fingerprints of the peer connection's DTLS
// certificates: this side's and the one the remote presented in its handshake. The DTLS
// transport must be connected.
func (p *Peer) DTLSFingerprints() (local, remote [32]byte, err error) {
	certs := p.pc.GetConfiguration().Certificates
	if len(certs) == 0 {
		return local, remote, ErrNoFingerprint
	}
	fps, err := certs[0].GetFingerprints()
	if err != nil {
		return local, remote, fmt.Errorf("sdk: local certificate: %w", err)
	}
	found := false
	for _, f := range fps {
		if strings.EqualFold(f.Algorithm, "sha-256") {
			b, derr := hex.DecodeString(strings.ReplaceAll(f.Value, ":", ""))
			if derr != nil || len(b) != 32 {
				return local, remote, fmt.Errorf("sdk: local certificate fingerprint %q", f.Value)
			}
			copy(local[:], b)
			found = true
		}
	}
	if !found {
		return local, remote, ErrNoFingerprint
	}
	sctp := p.pc.SCTP()
	if sctp == nil || sctp.Transport() == nil {
		return local, remote, ErrNoFingerprint
	}
	der := sctp.Transport().GetRemoteCertificate()
	if len(der) == 0 {
		return local, remote, ErrNoFingerprint
	}
	return local, sha256.Sum256(der), nil
}

// QUICFingerprints returns the SHA-256 fingerprints of the pair's QUIC connection's
// certificates: this side's and the one the remote presented in the TLS handshake (read
// from the connection, not from the hello it was pinned to: the same, as long as the pin
// holds). QUIC must have returned a connection.
func (p *Peer) QUICFingerprints() (local, remote [32]byte, err error) {
	select {
	case <-p.quic.done:
	default:
		return local, remote, ErrNoFingerprint
	}
	if p.quic.conn == nil {
		return local, remote, ErrNoFingerprint
	}
	certs := p.quic.conn.ConnectionState().TLS.PeerCertificates
	if len(certs) == 0 {
		return local, remote, ErrNoFingerprint
	}
	return p.quic.localFP, sha256.Sum256(certs[0].Raw), nil
}
