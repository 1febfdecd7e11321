package server

import (
	"net/http"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/api"
	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// apiHandler returns the server API (/api/v1/, docs/api.md) over the hub. Without API keys it
// answers every request 404 api-off: the API is never open.
func (s *Server) apiHandler() http.Handler {
	h, err := api.New(api.Config{
		Backend:      s.hub,
		Verify:       apiVerifier(s.verifier),
		MaxMetaBytes: s.cfg.MaxMetaBytes,
		Logger:       s.log,
	})
	if err != nil {
		// Not reached: the hub is set and the config was validated.
		s.log.Error("server API unavailable", "err", err)
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "server API unavailable", http.StatusInternalServerError)
		})
	}
	return h
}

// apiVerifier turns v's checks into the API's; nil (an open server) turns the API off.
func apiVerifier(v *auth.Verifier) api.VerifyFunc {
	if v == nil {
		return nil
	}
	return func(token string, now time.Time) (api.Caller, *protocol.Error) {
		c, err := v.Verify(token, now)
		if err != nil {
			return api.Caller{}, err.Protocol()
		}
		return api.Caller{Identity: c.Subject, Admin: c.Admin}, nil
	}
}
