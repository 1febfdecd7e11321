package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Prefix is the path every API route starts with.
const Prefix = "/api/v1/"

// MaxBodyBytes caps a request body.
const MaxBodyBytes = 64 << 10

// Backend is what the API does its work with; *hub.Hub implements it over the bus, so every
// operation spans the cluster. Errors wrapping bus.ErrNoRoom and bus.ErrNoPeer become 404.
type Backend interface {
	// Rooms lists the rooms that have peers.
	Rooms(ctx context.Context) ([]bus.RoomSummary, error)
	// Peers lists room's peers in join order.
	Peers(ctx context.Context, room string) ([]bus.PeerDetail, error)
	// Remove ends peer's presence (error "removed", peer-left reason "removed").
	Remove(ctx context.Context, room string, peer protocol.PeerID) error
	// CloseRoom removes every peer of room and returns how many there were.
	CloseRoom(ctx context.Context, room string) (int, error)
	// Notify sends a server-message with data (raw JSON) to peer, or to the room when peer is "".
	Notify(ctx context.Context, room string, peer protocol.PeerID, data []byte) error
	// UpdateMeta replaces peer's metadata (a raw JSON object, or nil) and announces it.
	UpdateMeta(ctx context.Context, room string, peer protocol.PeerID, meta []byte) error
}

// Caller is who a verified token speaks for.
type Caller struct {
	// Identity is the token's sub ("" when it has none).
	Identity string
	// Admin is the admin grant; only admin tokens may use the API.
	Admin bool
}

// VerifyFunc checks a bearer token at now: the caller, or why the token is refused (its code
// is token-missing, token-invalid, token-expired or token-not-yet-valid).
type VerifyFunc func(token string, now time.Time) (Caller, *protocol.Error)

// Config configures the API handler.
type Config struct {
	// Backend does the work. Required.
	Backend Backend
	// Verify checks tokens; nil turns the API off (every request: 404 api-off).
	Verify VerifyFunc
	// MaxMetaBytes caps a peer's metadata, as the hub caps a join's (default 1024).
	MaxMetaBytes int
	// Timeout bounds each operation on the backend (default 10s).
	Timeout time.Duration
	// Logger records the changes made through the API; nil means slog.Default().
	Logger *slog.Logger
}

// Route is one method and path template of the API, as docs/openapi.yaml writes it
// ("/api/v1/rooms/{room}").
type Route struct {
	Method string
	Path   string
}

// handlerFunc serves one route for an authenticated admin caller.
type handlerFunc func(h *Handler, w http.ResponseWriter, r *http.Request, c Caller) *apiError

// routes is every route the API serves.
var routes = []struct {
	Route
	serve handlerFunc
}{
	{Route{http.MethodGet, Prefix + "rooms"}, (*Handler).listRooms},
	{Route{http.MethodGet, Prefix + "rooms/{room}"}, (*Handler).getRoom},
	{Route{http.MethodDelete, Prefix + "rooms/{room}"}, (*Handler).closeRoom},
	{Route{http.MethodPost, Prefix + "rooms/{room}/messages"}, (*Handler).sendMessage},
	{Route{http.MethodGet, Prefix + "rooms/{room}/peers/{peer}"}, (*Handler).getPeer},
	{Route{http.MethodPatch, Prefix + "rooms/{room}/peers/{peer}"}, (*Handler).updatePeer},
	{Route{http.MethodDelete, Prefix + "rooms/{room}/peers/{peer}"}, (*Handler).removePeer},
}

// Routes returns every route the API serves.
func Routes() []Route {
	out := make([]Route, len(routes))
	for i, r := range routes {
		out[i] = r.Route
	}
	return out
}

// Handler serves the API. Mount it at Prefix.
type Handler struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
}

// New returns the API handler for cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Backend == nil {
		return nil, fmt.Errorf("%w: no backend", ErrBadConfig)
	}
	if cfg.MaxMetaBytes < 0 || cfg.Timeout < 0 {
		return nil, fmt.Errorf("%w: max meta bytes %d, timeout %v", ErrBadConfig, cfg.MaxMetaBytes, cfg.Timeout)
	}
	if cfg.MaxMetaBytes == 0 {
		cfg.MaxMetaBytes = 1024
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	if h.log == nil {
		h.log = slog.Default()
	}
	for _, rt := range routes {
		h.mux.Handle(rt.Method+" "+rt.Path, h.authed(rt.serve))
	}
	h.mux.Handle(Prefix, h.authed((*Handler).noRoute))
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Verify == nil {
		writeError(w, errorf(http.StatusNotFound, CodeAPIOff,
			"the server API is off: start the server with --api-keys and call it with an admin token (docs/api.md)"))
		return
	}
	h.mux.ServeHTTP(w, r)
}

// authed checks the bearer token, then serves the route with a bounded context.
func (h *Handler) authed(serve handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, e := h.authenticate(r)
		if e == nil {
			ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
			defer cancel()
			e = serve(h, w, r.WithContext(ctx), c)
		}
		if e != nil {
			switch e.status {
			case http.StatusUnauthorized:
				v := `Bearer realm="switchboard"`
				if e.code != CodeTokenMissing {
					v += `, error="invalid_token"`
				}
				w.Header().Set("WWW-Authenticate", v)
			case http.StatusForbidden:
				w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard", error="insufficient_scope"`)
			}
			writeError(w, e)
		}
	})
}

// authenticate returns the caller of an admin token, or the 401/403 answer.
func (h *Handler) authenticate(r *http.Request) (Caller, *apiError) {
	scheme, token, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return Caller{}, errorf(http.StatusUnauthorized, CodeTokenMissing,
			"send an admin access token as \"Authorization: Bearer <token>\" (switchboard token --admin)")
	}
	c, perr := h.cfg.Verify(token, time.Now())
	if perr != nil {
		return Caller{}, errorf(http.StatusUnauthorized, perr.Code.String(), "%s", perr.Message)
	}
	if !c.Admin {
		return Caller{}, errorf(http.StatusForbidden, CodeAdminNotGranted,
			"the token does not grant admin; the server API needs one minted with admin (switchboard token --admin)")
	}
	return c, nil
}

// noRoute answers a path under Prefix that no route serves: 405 when another method would
// be served, else 404.
func (h *Handler) noRoute(w http.ResponseWriter, r *http.Request, _ Caller) *apiError {
	var allow []string
	for _, rt := range routes {
		if matchPath(rt.Path, r.URL.Path) {
			allow = append(allow, rt.Method)
			if rt.Method == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "this path takes %s, not %.16q",
			strings.Join(allow, ", "), r.Method)
	}
	return errorf(http.StatusNotFound, CodeNoRoute, "no API route %.80q (docs/api.md lists them)", r.URL.Path)
}

// matchPath reports whether path fits template, whose {name} segments match any non-empty
// segment.
func matchPath(template, path string) bool {
	ts, ps := strings.Split(template, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i, t := range ts {
		if strings.HasPrefix(t, "{") {
			if ps[i] == "" {
				return false
			}
		} else if t != ps[i] {
			return false
		}
	}
	return true
}
