package config

import (
	"errors"
	"flag"
)

// TLS is how the main listener speaks HTTPS (docs/deploy.md). Config embeds it, so its keys
// sit at the top level of the YAML file.
type TLS struct {
	// TLSCert and TLSKey are PEM files of a certificate chain and its key; they are read
	// again when they change, so an outside renewal needs no restart.
	TLSCert string `yaml:"tls-cert"`
	TLSKey  string `yaml:"tls-key"`
	// TLSSelfSigned serves a certificate made at start, for a LAN demo: its SHA-256
	// fingerprint is logged for a person to compare with the browser's.
	TLSSelfSigned bool `yaml:"tls-self-signed"`
	// ACME: certificates obtained and renewed from an ACME CA (acme.go).
	ACME `yaml:",inline"`
}

// TLSOn reports whether the main listener speaks TLS.
func (t *TLS) TLSOn() bool { return t.TLSCert != "" || t.TLSSelfSigned || t.ACMEOn() }

func (t *TLS) flags(fs *flag.FlagSet) {
	fs.StringVar(&t.TLSCert, "tls-cert", t.TLSCert, "PEM certificate chain for HTTPS and WSS on --listen (read again when it changes); needs --tls-key")
	fs.StringVar(&t.TLSKey, "tls-key", t.TLSKey, "PEM private key of --tls-cert")
	fs.BoolVar(&t.TLSSelfSigned, "tls-self-signed", t.TLSSelfSigned, "serve HTTPS with a certificate made at start (a LAN demo; its fingerprint is logged)")
	t.ACME.flags(fs)
}

func (t *TLS) validate() []error {
	switch {
	case (t.TLSCert == "") != (t.TLSKey == ""):
		return []error{errors.New("tls-cert and tls-key go together: give both files")}
	case t.TLSCert != "" && t.TLSSelfSigned:
		return []error{errors.New("tls-self-signed and tls-cert exclude each other: choose one")}
	case t.ACMEOn() && (t.TLSCert != "" || t.TLSSelfSigned):
		return []error{errors.New("acme-domains excludes tls-cert and tls-self-signed: choose where the certificate comes from")}
	}
	return t.ACME.validate()
}
