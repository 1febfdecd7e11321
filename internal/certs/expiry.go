package certs

import (
	"crypto/tls"
	"crypto/x509"
	"time"
)

// Expiry is when the certificate served for a domain expires.
type Expiry struct {
	Domain   string
	NotAfter time.Time
}

// ExpiriesOf returns the expiry of c for each DNS name it covers (its common name when it
// lists none).
func ExpiriesOf(c *tls.Certificate) []Expiry {
	leaf := leafOf(c)
	if leaf == nil {
		return nil
	}
	names := leaf.DNSNames
	if len(names) == 0 && leaf.Subject.CommonName != "" {
		names = []string{leaf.Subject.CommonName}
	}
	out := make([]Expiry, 0, len(names))
	for _, n := range names {
		out = append(out, Expiry{Domain: n, NotAfter: leaf.NotAfter})
	}
	return out
}

func leafOf(c *tls.Certificate) *x509.Certificate {
	if c == nil {
		return nil
	}
	if c.Leaf != nil {
		return c.Leaf
	}
	if len(c.Certificate) == 0 {
		return nil
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}

// Expiries returns the expiry of the certificate a new connection gets (the files are looked
// at again first, as for a handshake).
func (f *Files) Expiries() []Expiry {
	c, _ := f.GetCertificate(nil)
	return ExpiriesOf(c)
}
