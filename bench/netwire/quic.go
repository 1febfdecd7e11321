package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"time"

	"github.com/quic-go/quic-go"
)

// The QUIC anchor: quic-go on its own UDP socket (GSO, batched reads and path MTU discovery
// where the kernel has them), with the receive windows the SDK uses. It shows what the
// library can do on the link, beside TCP: quic-serve sends n bytes on the first stream of
// each connection, quic-get dials, asks, and times from the start of its dial to the last
// byte. The bench's anchor only: certificates are throwaway, nothing is verified.

const quicAnchorALPN = "netwire-anchor"

func quicAnchorConfig() *quic.Config {
	return &quic.Config{
		MaxStreamReceiveWindow:     8 << 20,
		MaxConnectionReceiveWindow: 16 << 20,
		MaxIdleTimeout:             30 * time.Second,
	}
}

// quicServe serves quic-get until ctx ends, one connection at a time.
func quicServe(ctx context.Context, listen string, n int64) error {
	cert, err := throwawayCert()
	if err != nil {
		return err
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{quicAnchorALPN}, MinVersion: tls.VersionTLS13}
	ln, err := quic.ListenAddr(listen, tc, quicAnchorConfig())
	if err != nil {
		return fmt.Errorf("quic-serve: listen on %s: %w", listen, err)
	}
	defer ln.Close()
	fmt.Fprintf(os.Stderr, "quic-serve: listening on %s, %d bytes per connection\n", ln.Addr(), n)
	buf := make([]byte, 256<<10)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	for {
		c, err := ln.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		start := time.Now()
		sent, err := serveStream(ctx, c, buf, n)
		fmt.Fprintf(os.Stderr, "quic-serve: %s: wrote %d bytes in %s (err %v)\n", c.RemoteAddr(), sent, time.Since(start).Round(time.Millisecond), err)
	}
}

func serveStream(ctx context.Context, c *quic.Conn, buf []byte, n int64) (int64, error) {
	defer c.CloseWithError(0, "done") //nolint:errcheck // the client has read it all or gone
	s, err := c.AcceptStream(ctx)
	if err != nil {
		return 0, err
	}
	var ask [1]byte
	if _, err := io.ReadFull(s, ask[:]); err != nil {
		return 0, err
	}
	sent, err := io.CopyN(s, zeroReader{buf}, n)
	if err != nil {
		return sent, err
	}
	if err := s.Close(); err != nil {
		return sent, err
	}
	// The client closes once it has the last byte.
	select {
	case <-c.Context().Done():
	case <-ctx.Done():
	}
	return sent, nil
}

// quicGet dials addr, asks for the bytes and reads them, printing the rate from the start of
// the dial to the last byte.
func quicGet(ctx context.Context, addr string, n int64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	tc := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{quicAnchorALPN}, MinVersion: tls.VersionTLS13} //nolint:gosec // the bench's anchor
	c, err := quic.DialAddr(ctx, addr, tc, quicAnchorConfig())
	if err != nil {
		return fmt.Errorf("quic-get: dial %s: %w", addr, err)
	}
	defer c.CloseWithError(0, "got it") //nolint:errcheck
	s, err := c.OpenStreamSync(ctx)
	if err != nil {
		return err
	}
	if _, err := s.Write([]byte{1}); err != nil {
		return err
	}
	buf := make([]byte, 256<<10)
	var got int64
	for got < n {
		k, err := s.Read(buf)
		got += int64(k)
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				break
			}
			return fmt.Errorf("after %d bytes: %w", got, err)
		}
	}
	el := time.Since(start)
	if got < n {
		fmt.Printf("quic-get: INCOMPLETE %d of %d bytes (%.1f %%) in %.3f s\n", got, n, 100*float64(got)/float64(n), el.Seconds())
		return nil
	}
	fmt.Printf("quic-get: %d bytes in %.3f s: %.3f MiB/s\n", got, el.Seconds(), float64(got)/(1<<20)/el.Seconds())
	return nil
}

func throwawayCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "netwire"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"netwire"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
