package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// LetsEncrypt is the directory URL of Let's Encrypt's production CA, the default --acme-ca.
const LetsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

// ACME is how the main listener gets its certificates by itself (docs/tls.md): obtained and
// renewed from an ACME CA for ACMEDomains, answering the CA's TLS-ALPN-01 challenges on
// --listen and its HTTP-01 challenges on ACMEHTTPListen. TLS embeds it, so its keys sit at
// the top level of the YAML file.
type ACME struct {
	// ACMEDomains are the names to get certificates for; none: ACME is off.
	ACMEDomains []string `yaml:"acme-domains"`
	// ACMEEmail is the account's contact: the CA writes there about expiring certificates
	// and problems.
	ACMEEmail string `yaml:"acme-email"`
	// ACMECA is the CA's directory URL (default: Let's Encrypt's production).
	ACMECA string `yaml:"acme-ca"`
	// ACMECARoot is a PEM file of the roots to trust for the CA's own HTTPS (a private CA);
	// empty: the system's roots.
	ACMECARoot string `yaml:"acme-ca-root"`
	// ACMEStorage is the directory holding the account key, the certificates and their keys;
	// empty: StorageDir's default.
	ACMEStorage string `yaml:"acme-storage"`
	// ACMEHTTPListen is the plain-HTTP listener that answers HTTP-01 challenges and
	// redirects everything else to https (308); "" or "off": none, and no HTTP-01.
	ACMEHTTPListen string `yaml:"acme-http-listen"`
	// ACMETLSALPN answers TLS-ALPN-01 challenges on --listen (which the CA reaches on port
	// 443); false when port 443 is not this server's.
	ACMETLSALPN bool `yaml:"acme-tls-alpn"`
}

// DefaultACME returns the built-in ACME settings (ACME itself is off: no domains).
func DefaultACME() ACME {
	return ACME{ACMECA: LetsEncrypt, ACMEHTTPListen: ":80", ACMETLSALPN: true}
}

// ACMEOn reports whether certificates come from an ACME CA.
func (a *ACME) ACMEOn() bool { return len(a.ACMEDomains) > 0 }

// ACMEHTTPOn reports whether the plain-HTTP listener (HTTP-01 and the redirect) is on.
func (a *ACME) ACMEHTTPOn() bool { return a.ACMEHTTPListen != "" && a.ACMEHTTPListen != "off" }

// StorageDir is where ACME keeps its account and certificates: --acme-storage, else
// $XDG_DATA_HOME/switchboard/acme, else ~/.local/share/switchboard/acme, else
// ./switchboard-data/acme when no home directory is known.
func (a *ACME) StorageDir() string {
	if a.ACMEStorage != "" {
		return a.ACMEStorage
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "switchboard", "acme")
	}
	if h, err := os.UserHomeDir(); err == nil && h != "" && h != "/" {
		return filepath.Join(h, ".local", "share", "switchboard", "acme")
	}
	return filepath.Join("switchboard-data", "acme")
}

func (a *ACME) flags(fs *flag.FlagSet) {
	fs.Var(listValue{&a.ACMEDomains}, "acme-domains", "domain names to get certificates for from an ACME CA, obtained and renewed by themselves (comma list, e.g. call.example.com); ports 80 and 443 must reach this server (docs/tls.md)")
	fs.StringVar(&a.ACMEEmail, "acme-email", a.ACMEEmail, "contact address of the ACME account: the CA writes there about expiring certificates")
	fs.StringVar(&a.ACMECA, "acme-ca", a.ACMECA, "ACME directory URL of the CA (Let's Encrypt's staging directory to try things out, or a private CA)")
	fs.StringVar(&a.ACMECARoot, "acme-ca-root", a.ACMECARoot, "PEM file of root certificates to trust for the ACME CA's own HTTPS (a private CA); empty: the system's")
	fs.StringVar(&a.ACMEStorage, "acme-storage", a.ACMEStorage, "directory for the ACME account and certificates (empty: $XDG_DATA_HOME/switchboard/acme, else ~/.local/share/switchboard/acme, else ./switchboard-data/acme)")
	fs.StringVar(&a.ACMEHTTPListen, "acme-http-listen", a.ACMEHTTPListen, "plain-HTTP listener with --acme-domains: answers HTTP-01 challenges, redirects everything else to https (308); off: none")
	fs.BoolVar(&a.ACMETLSALPN, "acme-tls-alpn", a.ACMETLSALPN, "answer TLS-ALPN-01 challenges on --listen (the CA connects to port 443); false when port 443 is not this server's")
}

func (a *ACME) validate() []error {
	if !a.ACMEOn() {
		if a.ACMEEmail != "" || a.ACMECARoot != "" || a.ACMEStorage != "" {
			return []error{errors.New("acme-email, acme-ca-root and acme-storage need acme-domains: give the domain names to get certificates for")}
		}
		return nil
	}
	var errs []error
	for _, d := range a.ACMEDomains {
		if err := checkDomain(d); err != nil {
			errs = append(errs, err)
		}
	}
	if e := a.ACMEEmail; e != "" && (strings.Count(e, "@") != 1 || strings.HasPrefix(e, "@") || strings.HasSuffix(e, "@") || strings.ContainsAny(e, " \t\r\n<>,")) {
		errs = append(errs, fmt.Errorf("acme-email %q: want an address like admin@example.com", e))
	}
	if u, err := url.Parse(a.ACMECA); err != nil || u.Scheme != "https" || u.Host == "" {
		errs = append(errs, fmt.Errorf("acme-ca %q: want the https:// URL of an ACME directory, e.g. %s", a.ACMECA, LetsEncrypt))
	}
	if a.ACMEHTTPOn() {
		if _, _, err := net.SplitHostPort(a.ACMEHTTPListen); err != nil {
			errs = append(errs, fmt.Errorf("acme-http-listen %q: want host:port like :80, or off", a.ACMEHTTPListen))
		}
	} else if !a.ACMETLSALPN {
		errs = append(errs, errors.New("acme-http-listen is off and acme-tls-alpn false: the CA has no challenge left to check, keep one"))
	}
	return errs
}

// checkDomain accepts a bare DNS name an ACME CA can check with HTTP-01 or TLS-ALPN-01.
func checkDomain(d string) error {
	switch {
	case strings.Contains(d, "://"):
		return fmt.Errorf("acme-domains %q: want a bare domain name like call.example.com, without a scheme", d)
	case strings.ContainsAny(d, "/:?#@"):
		return fmt.Errorf("acme-domains %q: want a bare domain name like call.example.com, without a port or path", d)
	case net.ParseIP(d) != nil:
		return fmt.Errorf("acme-domains %q: an IP address gets no certificate here: give a domain name that resolves to it", d)
	case strings.Contains(d, "*"):
		return fmt.Errorf("acme-domains %q: wildcards need the DNS-01 challenge, which is not supported: list each name", d)
	case d == "localhost" || strings.HasSuffix(d, ".localhost"):
		return fmt.Errorf("acme-domains %q: a CA cannot reach localhost: use --tls-self-signed on a LAN", d)
	case !isDNSName(d):
		return fmt.Errorf("acme-domains %q: not a domain name (letters, digits, hyphens, two labels or more)", d)
	}
	return nil
}

// isDNSName reports whether d is a fully qualified host name without the final dot: two
// labels or more of letters, digits and inner hyphens, 63 bytes each, 253 in all.
func isDNSName(d string) bool {
	if len(d) > 253 {
		return false
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
