// Package turnstest holds the test of Pion WebRTC peers that may only use the embedded TURN
// server over TLS (a turns: URL), on the port HTTPS shares with it and on a port of its own.
// It has no non-test code. It is a package of its own because Pion's ICE agent checks a
// turns: server's certificate against the system roots only: its TestMain points
// SSL_CERT_FILE at the test certificate before anything in the process reads them.
package turnstest
