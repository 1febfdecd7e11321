package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
)

// ACMEConfig configures an ACME manager.
type ACMEConfig struct {
	// Domains are the names to get certificates for (one certificate each).
	Domains []string
	// Email is the ACME account's contact (may be empty).
	Email string
	// CA is the directory URL of the ACME CA.
	CA string
	// CARoots is a PEM file of the roots to trust for the CA's own HTTPS; empty: the
	// system's roots.
	CARoots string
	// Storage is the directory of the account key, the certificates and their keys.
	Storage string
	// HTTPAddr is the plain-HTTP listener that serves HTTPHandler, where the CA's HTTP-01
	// challenges arrive; nil: no HTTP-01.
	HTTPAddr net.Addr
	// TLSAddr is the TLS listener that uses TLSConfig, where the CA's TLS-ALPN-01 challenges
	// arrive; nil: no TLS-ALPN-01.
	TLSAddr net.Addr
	// Logger receives what happens to the certificates (and certmagic's own lines at debug).
	Logger *slog.Logger
}

// ACME obtains and renews certificates from an ACME CA with certmagic: HTTP-01 challenges
// through HTTPHandler, TLS-ALPN-01 through TLSConfig. It starts managing the domains with
// Start and stops with Stop; until the first certificate of a domain is obtained, handshakes
// for it fail (the server still serves everything else).
type ACME struct {
	domains []string
	ca      string
	log     *slog.Logger
	storage *stoppableStorage
	cache   *certmagic.Cache
	magic   *certmagic.Config
	issuer  *certmagic.ACMEIssuer
	alpn    bool

	off     atomic.Bool // set by Stop: events and certmagic's lines are no longer logged
	stopped chan struct{}
	runMu   sync.Mutex // guards cancel and the start and stop of the management
	cancel  context.CancelFunc
	running bool // started and not stopped
	ended   bool // stopped

	mu       sync.Mutex
	failures map[string]*Failure // by domain, one per configured domain
}

// Failure is what failed for one domain: how many attempts to obtain or renew its
// certificate, and when the last one did.
type Failure struct {
	Domain string
	Count  uint64
	Last   time.Time
}

// NewACME prepares a manager for cfg.Domains: it opens the storage (checking that it can be
// written), but asks the CA for nothing before Start.
func NewACME(cfg ACMEConfig) (*ACME, error) {
	if len(cfg.Domains) == 0 {
		return nil, errors.New("certs: ACME needs at least one domain")
	}
	if cfg.HTTPAddr == nil && cfg.TLSAddr == nil {
		return nil, errors.New("certs: ACME needs a listener for HTTP-01 or TLS-ALPN-01 challenges")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	var roots *x509.CertPool
	if cfg.CARoots != "" {
		pem, err := os.ReadFile(cfg.CARoots)
		if err != nil {
			return nil, fmt.Errorf("certs: acme-ca-root: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("certs: acme-ca-root %s: no PEM certificate in it", cfg.CARoots)
		}
	}
	if err := os.MkdirAll(cfg.Storage, 0o700); err != nil {
		return nil, fmt.Errorf("certs: acme-storage: %w", err)
	}
	m := &ACME{
		ca:       cfg.CA,
		log:      log.With("component", "acme"),
		storage:  &stoppableStorage{FileStorage: &certmagic.FileStorage{Path: cfg.Storage}},
		alpn:     cfg.TLSAddr != nil,
		stopped:  make(chan struct{}),
		failures: map[string]*Failure{},
	}
	for _, d := range cfg.Domains {
		d = strings.ToLower(strings.TrimSpace(d))
		if d != "" && !slices.Contains(m.domains, d) {
			m.domains = append(m.domains, d)
			m.failures[d] = &Failure{Domain: d}
		}
	}
	if err := checkWritable(context.Background(), m.storage); err != nil {
		return nil, fmt.Errorf("certs: acme-storage %s cannot be written: %w", cfg.Storage, err)
	}
	zl := newZapLogger(m.log, &m.off)
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		Logger:           zl,
	})
	m.magic = certmagic.New(m.cache, certmagic.Config{
		Storage:           m.storage,
		Logger:            zl,
		DefaultServerName: m.domains[0], // a client without SNI (an address typed by hand) gets the first
		OnEvent:           m.onEvent,
		ShouldEmitFunc: func(event string) bool {
			return event == "cert_obtaining" || event == "cert_obtained" || event == "cert_failed"
		},
	})
	host, httpPort, tlsPort := listenHostPorts(cfg.HTTPAddr, cfg.TLSAddr)
	m.issuer = certmagic.NewACMEIssuer(m.magic, certmagic.ACMEIssuer{
		CA:     cfg.CA,
		Email:  cfg.Email,
		Agreed: true, // asking for certificates with --acme-domains is agreeing to the CA's terms
		// The challenges arrive on our own listeners: certmagic finds these ports taken and
		// binds nothing itself.
		ListenHost:              host,
		AltHTTPPort:             httpPort,
		AltTLSALPNPort:          tlsPort,
		DisableHTTPChallenge:    cfg.HTTPAddr == nil,
		DisableTLSALPNChallenge: cfg.TLSAddr == nil,
		TrustedRoots:            roots,
		Logger:                  zl,
	})
	m.magic.Issuers = []certmagic.Issuer{m.issuer}
	return m, nil
}

// listenHostPorts is where certmagic would listen for challenges, were the ports free: the
// host of the listeners (one of them; both are the usual ":80" and ":443") and their ports.
func listenHostPorts(httpAddr, tlsAddr net.Addr) (host string, httpPort, tlsPort int) {
	split := func(a net.Addr) (string, int) {
		if a == nil {
			return "", 0
		}
		h, p, err := net.SplitHostPort(a.String())
		if err != nil {
			return "", 0
		}
		n, _ := strconv.Atoi(p)
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			h = ""
		}
		return h, n
	}
	th, tp := split(tlsAddr)
	hh, hp := split(httpAddr)
	host = th
	if tlsAddr == nil {
		host = hh
	}
	return host, hp, tp
}

// Start begins managing the domains: certificates in the storage are loaded and renewed when
// due, missing ones are obtained, all in the background (Start does not wait for the CA).
// Failures are retried with backoff. Work stops when ctx ends or Stop is called.
func (m *ACME) Start(ctx context.Context) {
	m.runMu.Lock()
	defer m.runMu.Unlock()
	if m.running || m.ended {
		return
	}
	m.running = true
	ctx, m.cancel = context.WithCancel(ctx)
	m.log.Info("ACME: managing certificates", "domains", strings.Join(m.domains, ","), "ca", m.ca, "storage", m.storage.Path)
	if err := m.magic.ManageAsync(ctx, m.domains); err != nil {
		m.log.Error("ACME: cannot start managing the certificates", "err", err)
	}
}

// Stop ends the management: retries and renewals stop, nothing is logged or written to the
// storage after it returns (certmagic's goroutines that were asking the CA end on their own
// shortly after, refused by the storage).
func (m *ACME) Stop() {
	m.runMu.Lock()
	defer m.runMu.Unlock()
	if m.ended {
		return
	}
	m.ended, m.running = true, false
	m.off.Store(true)
	if m.cancel != nil {
		m.cancel()
	}
	close(m.stopped)
	m.cache.Stop()
	m.storage.stop()
}

// Domains returns the managed names, the first being the default one.
func (m *ACME) Domains() []string { return slices.Clone(m.domains) }

// GetCertificate implements tls.Config.GetCertificate: a domain's certificate, the
// TLS-ALPN-01 challenge certificate when the CA asks for one (ALPN acme-tls/1 only), the
// first domain's for a client without SNI, and an error (a handshake failure) for another
// name or before the first certificate is obtained.
func (m *ACME) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.magic.GetCertificate(hello)
}

// TLSConfig returns the main listener's TLS configuration: TLS 1.2 and up, HTTP/1.1, and
// acme-tls/1 for the CA's TLS-ALPN-01 challenges. A connection that negotiated acme-tls/1
// has served its purpose once the handshake is over: the server must close it (net/http
// does for a protocol it has no TLSNextProto handler for; TLSNextProto says so explicitly).
func (m *ACME) TLSConfig() *tls.Config {
	c := ServerConfig(m.GetCertificate)
	if m.alpn {
		c.NextProtos = append(c.NextProtos, acmez.ACMETLS1Protocol)
	}
	return c
}

// ALPNChallenge is the ALPN protocol of TLS-ALPN-01 challenges.
const ALPNChallenge = acmez.ACMETLS1Protocol

// HTTPHandler serves the plain-HTTP listener: the CA's HTTP-01 challenges, 404 for another
// challenge path, and a 308 redirect to https for everything else, keeping the path and
// query. The redirect goes to the host asked for when it is a managed domain, else to the
// first one, on httpsPort (left out when 443).
func (m *ACME) HTTPHandler(httpsPort int) http.Handler {
	redirect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if certmagic.LooksLikeHTTPChallenge(r) {
			http.NotFound(w, r) // a challenge this server did not start
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.ToLower(host)
		if !slices.Contains(m.domains, host) {
			host = m.domains[0]
		}
		if httpsPort != 443 && httpsPort > 0 {
			host = net.JoinHostPort(host, strconv.Itoa(httpsPort))
		}
		uri := r.URL.RequestURI()
		if !strings.HasPrefix(uri, "/") {
			uri = "/"
		}
		w.Header().Set("Connection", "close")
		http.Redirect(w, r, "https://"+host+uri, http.StatusPermanentRedirect)
	})
	return m.issuer.HTTPChallengeHandler(redirect)
}

// Renew forces a renewal of every domain's certificate now (the old key may be compromised;
// tests), retrying with backoff until it succeeds or ctx ends. New connections get the new
// certificates as each one arrives; connections already open keep theirs.
func (m *ACME) Renew(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // Stop cancels it too; ends with Renew
		select {
		case <-m.stopped:
			cancel()
		case <-ctx.Done():
		}
	}()
	for _, d := range m.domains {
		old := m.cache.AllMatchingCertificates(d)
		if err := m.magic.RenewCertAsync(ctx, d, true); err != nil { // blocks; "async": non-interactive
			return fmt.Errorf("certs: renewing %s: %w", d, err)
		}
		fresh, err := m.magic.CacheManagedCertificate(ctx, d)
		if err != nil {
			return fmt.Errorf("certs: loading the renewed certificate of %s: %w", d, err)
		}
		var gone []string
		for _, c := range old {
			if c.Hash() != fresh.Hash() {
				gone = append(gone, c.Hash())
			}
		}
		m.cache.Remove(gone)
	}
	return nil
}

// Expiries returns the expiry of the certificate served for each domain that has one.
func (m *ACME) Expiries() []Expiry {
	var out []Expiry
	now := time.Now()
	for _, d := range m.domains {
		var best *x509.Certificate
		for _, c := range m.cache.AllMatchingCertificates(d) {
			if c.Leaf == nil {
				continue
			}
			// As certmagic's selection: the first one valid now, else any.
			if best == nil || !validAt(best, now) && validAt(c.Leaf, now) {
				best = c.Leaf
			}
		}
		if best != nil {
			out = append(out, Expiry{Domain: d, NotAfter: best.NotAfter})
		}
	}
	return out
}

func validAt(c *x509.Certificate, t time.Time) bool {
	return t.After(c.NotBefore) && t.Before(c.NotAfter)
}

// Failures returns, for each domain, how many attempts to obtain or renew its certificate
// failed, and when the last one did.
func (m *ACME) Failures() []Failure {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Failure, 0, len(m.domains))
	for _, d := range m.domains {
		out = append(out, *m.failures[d])
	}
	return out
}

// onEvent logs what happens to the certificates, from certmagic's events, and counts the
// failures.
func (m *ACME) onEvent(_ context.Context, event string, data map[string]any) error {
	if m.off.Load() {
		return nil
	}
	domain, _ := data["identifier"].(string)
	renewal, _ := data["renewal"].(bool)
	switch event {
	case "cert_obtaining":
		if renewal {
			m.log.Info("ACME: renewing the certificate", "domain", domain, "ca", m.ca)
		} else {
			m.log.Info("ACME: asking the CA for a certificate", "domain", domain, "ca", m.ca)
		}
	case "cert_obtained":
		m.log.Info("ACME: certificate obtained", "domain", domain, "renewal", renewal)
	case "cert_failed":
		err, _ := data["error"].(error)
		m.mu.Lock()
		if f := m.failures[domain]; f != nil {
			f.Count++
			f.Last = time.Now()
		}
		m.mu.Unlock()
		what := "could not obtain a certificate for " + domain + " (HTTPS for it fails until one is obtained; retried with backoff)"
		if renewal {
			what = "could not renew the certificate of " + domain + " (the current one is served until it expires; retried with backoff)"
		}
		m.log.Error("ACME: "+what+": "+Reason(err), "domain", domain, "renewal", renewal, "err", err)
	}
	return nil
}
