package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"strings"

	"github.com/mholt/acmez/v3/acme"
)

// Reason says in one line, for a person, why obtaining or renewing a certificate failed and
// what to look at; the error itself is logged beside it.
func Reason(err error) string {
	var p acme.Problem
	if errors.As(err, &p) {
		t, detail := p.Type, p.Detail
		if len(p.Subproblems) > 0 && p.Subproblems[0].Type != "" {
			t, detail = p.Subproblems[0].Type, p.Subproblems[0].Detail
		}
		// CAs report a name that does not resolve as dns (Let's Encrypt: "DNS problem:
		// NXDOMAIN ...") or, Pebble, as connection or malformed ("could not resolve").
		if d := strings.ToLower(detail); strings.Contains(d, "resolve") || strings.Contains(d, "dns problem") || strings.Contains(d, "nxdomain") {
			t = acme.ProblemTypeDNS
		}
		switch strings.TrimPrefix(t, acme.ProblemTypeNamespace) {
		case "connection":
			return "the CA could not connect to this server to check the challenge: the domain must resolve to this server and ports 80 and 443 must be open to the internet"
		case "dns":
			return "the CA could not resolve the domain: check its DNS records (A/AAAA) point to this server"
		case "unauthorized", "incorrectResponse":
			return "the CA reached a server for this domain that did not answer the challenge: check the domain's DNS points to this server and nothing else answers on ports 80 and 443"
		case "tls":
			return "the CA's TLS connection to port 443 failed during the TLS-ALPN-01 challenge: check that port 443 reaches this server directly, not through a proxy"
		case "rateLimited":
			return "the CA's rate limit was reached: it is retried later; use the CA's staging directory (--acme-ca) while trying things out"
		case "caa":
			return "a CAA record in the domain's DNS forbids this CA from issuing for it"
		case "rejectedIdentifier", "unsupportedIdentifier", "malformed":
			return "the CA refuses to issue for this name"
		case "externalAccountRequired":
			return "the CA requires an external account binding, which is not supported"
		case "invalidContact", "unsupportedContact":
			return "the CA refuses the contact address (--acme-email)"
		case "serverInternal":
			return "the CA had an internal error: it is retried later"
		}
		return "the CA refused the order"
	}
	var unknownAuthority x509.UnknownAuthorityError
	var certInvalid x509.CertificateInvalidError
	var hostname x509.HostnameError
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "stopped"
	case errors.As(err, &unknownAuthority), errors.As(err, &certInvalid), errors.As(err, &hostname):
		return "the ACME CA's HTTPS certificate is not trusted: for a private CA give its root with --acme-ca-root"
	case errors.As(err, &netErr):
		return "the ACME CA cannot be reached: check --acme-ca and that this machine can make outgoing HTTPS connections"
	}
	return "the CA did not issue it"
}
