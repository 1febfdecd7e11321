package server

import "context"

// RenewCertificates forces an ACME renewal of s's certificates now (certs.ACME.Renew), for
// the tests of package server_test.
func RenewCertificates(ctx context.Context, s *Server) error { return s.tls.acme.Renew(ctx) }
