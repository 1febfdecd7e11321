package config

import (
	"flag"
	"fmt"

	"github.com/switchboard-rtc/switchboard/internal/clientaddr"
)

// ClientRates are the per-client rate limits (docs/limits.md), and the reverse proxies whose
// forwarding headers name the client a request counts for. Config embeds it, so its keys sit
// at the top level of the YAML file.
type ClientRates struct {
	// TrustedProxies are CIDRs or addresses of reverse proxies in front of the server: a
	// request from one counts for the client its Forwarded or X-Forwarded-For header names.
	TrustedProxies []string `yaml:"trusted-proxies"`
	// JoinsPerClient is how many new presences (joins that are not resumes) one client may
	// make per second, sustained; JoinBurstPerClient how many at once.
	JoinsPerClient     float64 `yaml:"joins-per-client"`
	JoinBurstPerClient float64 `yaml:"join-burst-per-client"`
	// TURNCredentialsPerClient is how many TURN credentials (welcomes and ice-servers
	// answers that carry them) one client may get per minute; past it they carry STUN only.
	TURNCredentialsPerClient int `yaml:"turn-credentials-per-client"`
}

// DefaultClientRates returns the built-in rates: no proxy trusted.
func DefaultClientRates() ClientRates {
	return ClientRates{
		JoinsPerClient:           20,
		JoinBurstPerClient:       40,
		TURNCredentialsPerClient: 120,
	}
}

// Proxies returns the trusted proxies, with ignored told each time a trusted proxy's
// forwarding headers are ignored (see clientaddr.NewProxies); nil when none are trusted.
func (r *ClientRates) Proxies(ignored func(reason string)) (*clientaddr.Proxies, error) {
	p, err := clientaddr.NewProxies(r.TrustedProxies, ignored)
	if err != nil {
		return nil, fmt.Errorf("trusted-proxies: %w", err)
	}
	return p, nil
}

func (r *ClientRates) flags(fs *flag.FlagSet) {
	fs.Var(listValue{&r.TrustedProxies}, "trusted-proxies", "reverse proxies in front of the server (comma list of CIDRs or addresses): a request from one counts for the client its Forwarded or X-Forwarded-For header names (default: none, every client is its TCP peer)")
	fs.Float64Var(&r.JoinsPerClient, "joins-per-client", r.JoinsPerClient, "new joins per second one client may make, sustained (resumes are free); more get the rate-limited error")
	fs.Float64Var(&r.JoinBurstPerClient, "join-burst-per-client", r.JoinBurstPerClient, "new joins one client may make at once before joins-per-client applies")
	fs.IntVar(&r.TURNCredentialsPerClient, "turn-credentials-per-client", r.TURNCredentialsPerClient, "TURN credentials one client may get per minute (welcomes, ice-servers answers); past it they carry STUN only")
}

func (r *ClientRates) validate() []error {
	var errs []error
	for _, s := range r.TrustedProxies {
		if _, err := clientaddr.ParsePrefix(s); err != nil {
			errs = append(errs, fmt.Errorf("trusted-proxies %q: want a CIDR like 10.0.0.0/8 or an address", s))
		}
	}
	if r.JoinsPerClient <= 0 {
		errs = append(errs, fmt.Errorf("joins-per-client %v: must be positive", r.JoinsPerClient))
	}
	if r.JoinBurstPerClient < 1 {
		errs = append(errs, fmt.Errorf("join-burst-per-client %v: must be at least 1", r.JoinBurstPerClient))
	}
	if r.TURNCredentialsPerClient < 1 {
		errs = append(errs, fmt.Errorf("turn-credentials-per-client %d: must be at least 1", r.TURNCredentialsPerClient))
	}
	return errs
}
