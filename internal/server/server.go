package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/api"
	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/bus/natsbus"
	"github.com/switchboard-rtc/switchboard/internal/clientaddr"
	"github.com/switchboard-rtc/switchboard/internal/config"
	"github.com/switchboard-rtc/switchboard/internal/fdlimit"
	"github.com/switchboard-rtc/switchboard/internal/hub"
	"github.com/switchboard-rtc/switchboard/internal/metrics"
	"github.com/switchboard-rtc/switchboard/internal/sioserver"
	"github.com/switchboard-rtc/switchboard/internal/stats"
	"github.com/switchboard-rtc/switchboard/internal/turnserver"
	"github.com/switchboard-rtc/switchboard/internal/web"
	"github.com/switchboard-rtc/switchboard/internal/webhook"
	"github.com/switchboard-rtc/switchboard/internal/wsserver"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Server is a running signaling server.
type Server struct {
	cfg  config.Config
	log  *slog.Logger
	hub  *hub.Hub
	bus  bus.Bus
	ws   *wsserver.Server
	sio  *sioserver.Server
	http *http.Server
	ln   net.Listener
	turn *turnserver.Server // nil when --turn=false
	// verifier checks access tokens; nil on an open server (no API keys).
	verifier *auth.Verifier
	webhooks *webhook.Sender // nil without --webhook-url
	metrics  *metricsServer  // nil without --metrics-listen (edges.go)
	// metricsHandler serves /metrics, on the main listener (gated) and on metrics.
	metricsHandler http.Handler
	fds            *fdlimit.Gauge // nil with --fd-reserve=0 (descriptors.go)
	budget         *budgetRunner  // the memory budget and its reclaimer (memory.go)

	proxies *clientaddr.Proxies // --trusted-proxies; nil: none (clients.go)
	tls     *tlsState           // nil without TLS (tls.go, acme.go)
}

// New builds a server from cfg and binds its listener, so Addr is known before Serve.
func New(cfg config.Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	st := new(stats.Stats)
	wh, err := startWebhooks(cfg, log, st)
	if err != nil {
		return nil, err
	}
	var b bus.Bus
	if cfg.NATS != "" {
		nb, err := natsbus.New(natsbus.Config{
			URL:         cfg.NATS,
			Heartbeat:   cfg.NATSHeartbeat,
			NodeTimeout: cfg.NATSNodeTimeout,
			Grace:       clusterGrace(cfg.ResumeGrace),
			Observer:    observer(wh),
			Stats:       st,
			Logger:      log,
		})
		if err != nil {
			closeWebhooks(wh)
			return nil, fmt.Errorf("server: %w", err)
		}
		b = nb
	} else {
		mb := bus.NewMemory(st)
		if wh != nil {
			mb.Observe(wh)
		}
		b = mb
	}
	fds := newGauge(cfg, log)
	mem := startBudget(cfg, log)
	s, err := build(cfg, log, st, b, fds, mem)
	if err != nil {
		mem.stop()
		closeGauge(fds)
		_ = b.Close()
		closeWebhooks(wh)
		return nil, err
	}
	s.webhooks = wh
	return s, nil
}

func build(cfg config.Config, log *slog.Logger, st *stats.Stats, b bus.Bus, fds *fdlimit.Gauge, mem *budgetRunner) (*Server, error) {
	grace := cfg.ResumeGrace
	if grace == 0 {
		grace = -1 // the hub's zero value means its default
	}
	cluster, _ := b.(*natsbus.Bus)
	stateFile := cfg.StateFile
	if cluster != nil && stateFile != "" {
		// The cluster keeps a draining node's members for the others to take over.
		log.Warn("--state-file is not used on a cluster node: its presences resume on the other nodes")
		stateFile = ""
	}
	saved, err := readState(stateFile)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	tokens, err := resumeTokens(cfg, saved, cluster, log)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	hcfg := hub.Config{
		Budget:           mem.b,
		ResumeGrace:      grace,
		Resume:           tokens,
		Node:             nodeID(cluster),
		ResumeHoldEvents: cfg.ResumeHoldEvents,
		ResumeHoldBytes:  cfg.ResumeHoldBytes,
		MaxPeersPerRoom:  cfg.MaxPeers,
		MaxMetaBytes:     cfg.MaxMetaBytes,
		RateLimit:        cfg.RateLimit,
		RateBurst:        cfg.RateBurst,
		ICEServers:       cfg.ICEServers,
		Clients:          hubClients(cfg),
		Bus:              b,
		Stats:            st,
		Logger:           log,
	}
	keys, err := cfg.Keys()
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	proxies, err := proxies(cfg, st)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	var verifier *auth.Verifier
	if len(keys) > 0 {
		if verifier, err = auth.NewVerifier(keys); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		hcfg.Authorize = authorizer(verifier)
	}
	ts, err := startTURN(cfg, log)
	if err != nil {
		return nil, err
	}
	closeTURN := func() {
		if ts != nil {
			_ = ts.Close(context.Background())
		}
	}
	if ts != nil || len(cfg.TURNURLs) > 0 {
		external := cfg.TURNURLs
		secret, ttl := []byte(cfg.TURNSecret), cfg.TURNTTL
		hcfg.ICEServersFor = func(peer protocol.PeerID, now time.Time) []protocol.ICEServer {
			var out []protocol.ICEServer
			if ts != nil {
				out = ts.ICEServers(string(peer), now)
			}
			if len(external) > 0 {
				out = append(out, turnserver.ICEServers(secret, external, string(peer), now.Add(ttl)))
			}
			return out
		}
	}
	h, err := hub.New(hcfg)
	if err != nil {
		closeTURN()
		return nil, fmt.Errorf("server: %w", err)
	}
	if saved != nil {
		if err := h.Restore(saved.Presences); err != nil {
			closeTURN()
			return nil, fmt.Errorf("server: %w", err)
		}
	}
	ws, err := wsserver.New(wsserver.Config{
		Hub:            h,
		MaxFrameBytes:  cfg.MaxFrameBytes,
		SendQueueBytes: cfg.SendQueueBytes,
		PingInterval:   cfg.PingInterval,
		PeerTimeout:    cfg.PeerTimeout,
		FrameTimeout:   cfg.FrameTimeout,
		AllowedOrigins: cfg.AllowedOrigins,
		PublicURL:      cfg.PublicURL,
		Loops:          cfg.EventLoops,
		Logger:         log,
		Descriptors:    descriptors(fds),

		ConnsPerClient: cfg.ConnsPerClient,
		Clients:        cfg.Clients(),

		Budget:           mem.b,
		KernelSendBuffer: kernelSendBuffer(cfg),
		Proxies:          proxies,
	})
	if err != nil {
		closeTURN()
		return nil, fmt.Errorf("server: %w", err)
	}
	var lobby sioserver.Lobby // one node: sioserver's own
	if nb, ok := b.(*natsbus.Bus); ok {
		lobby = nb // a cluster: Socket.IO sockets in no room reach each other across nodes
	}
	sio, err := sioserver.New(sioserver.Config{
		Hub:            h,
		WS:             ws,
		Lobby:          lobby,
		MaxPayload:     cfg.MaxFrameBytes,
		SendQueueBytes: cfg.SendQueueBytes,
		PingInterval:   cfg.PingInterval,
		PingTimeout:    cfg.PeerTimeout - cfg.PingInterval,
		ConnectTimeout: cfg.ConnectTimeout,
		UpgradeTimeout: cfg.UpgradeTimeout,
		Logger:         log,

		SessionsPerClient: cfg.SIOSessionsPerClient,
		Clients:           cfg.Clients(),
		Budget:            mem.b,
		Proxies:           proxies,
	})
	if err != nil {
		_ = ws.Close()
		closeTURN()
		return nil, fmt.Errorf("server: %w", err)
	}
	// No TCP keep-alive: the WebSocket layer pings, and skipping the setsockopt calls makes
	// each accept cheaper.
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp", cfg.Listen)
	if err != nil {
		_ = sio.Close()
		_ = ws.Close()
		closeTURN()
		return nil, fmt.Errorf("server: listen: %w", err)
	}
	warnIfOpen(log, keys, ln.Addr())
	ln = fdlimit.NewListener(withSendBuffer(ln, cfg.SocketSendBuffer), fds, log, func() { st.RefusedDescriptors.Add(1) })
	tlsLn, tlsSt, err := withTLS(ln, cfg, log, turnTLS(cfg, ts, st, proxies, fds, log))
	if err != nil {
		_ = ln.Close()
		_ = sio.Close()
		_ = ws.Close()
		closeTURN()
		return nil, err
	}
	ln = tlsLn
	s := &Server{cfg: cfg, log: log, hub: h, bus: b, ws: ws, sio: sio, ln: ln, turn: ts, verifier: verifier, fds: fds, budget: mem, proxies: proxies, tls: tlsSt}
	hc := newHTTPConns(cfg.HTTPConnsPerClient, cfg.Clients(), proxies, st)
	tlsSt.servePlain(cfg, log, st, fds, hc, ln.Addr().(*net.TCPAddr).Port)
	s.http = &http.Server{
		Handler:           hc.handler(s.edges(bodyDeadline(cfg.ReadTimeout, st, s.routes(st)))),
		ConnContext:       connTLSContext(hc.connContext),
		ReadHeaderTimeout: cfg.HeaderTimeout,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          httpErrorLog(log), // handshake failures at debug (httplog.go)
		ConnState:         chainConnState(connState(fds), hc.connState),
		TLSNextProto:      tlsNextProto(), // acme-tls/1: closed after the handshake (acme.go)
	}
	if s.metrics, err = listenMetrics(cfg.MetricsListen, s.metricsHandler); err != nil {
		tlsSt.stop(context.Background())
		_ = ln.Close()
		_ = sio.Close()
		_ = ws.Close()
		closeTURN()
		return nil, err
	}
	return s, nil
}

func (s *Server) routes(st *stats.Stats) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /ws", s.ws)
	mux.Handle("/socket.io/", s.sio)
	mux.Handle(api.Prefix, s.apiHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := s.hub.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mh := metrics.Handler(st, s.collectors(st)...)
	mux.Handle("GET /metrics", s.metricsGate(mh))
	s.metricsHandler = mh
	mux.Handle("GET /sdk/", web.Handler())
	app := web.App()
	mux.Handle("GET /{$}", app)
	mux.Handle("GET /r/{room}", app)
	mux.Handle("GET /files", app)
	mux.Handle("GET /app/", app)
	return mux
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// startTURN starts the embedded STUN/TURN server, or returns nil when cfg.TURN is off.
func startTURN(cfg config.Config, log *slog.Logger) (*turnserver.Server, error) {
	if !cfg.TURN {
		return nil, nil
	}
	allow, err := cfg.TURNAllowPrefixes()
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	var public netip.Addr
	if cfg.TURNPublicIP != "" {
		if public, err = netip.ParseAddr(cfg.TURNPublicIP); err != nil {
			return nil, fmt.Errorf("server: turn-public-ip: %w", err)
		}
	}
	ts, err := turnserver.New(turnserver.Config{
		Listen:         cfg.TURNListen,
		PublicIP:       public,
		MinPort:        cfg.TURNMinPort,
		MaxPort:        cfg.TURNMaxPort,
		Realm:          cfg.TURNRealm,
		Secret:         []byte(cfg.TURNSecret),
		TTL:            cfg.TURNTTL,
		Grace:          cfg.TURNGrace,
		AllowPeers:     allow,
		UserQuota:      min(cfg.TURNUserQuota, cfg.TURNMaxAllocations),
		MaxAllocations: cfg.TURNMaxAllocations,
		IPQuota:        min(cfg.TURNIPQuota, cfg.TURNMaxAllocations),
		Clients:        cfg.Clients(),
		TCPPerClient:   min(cfg.TURNTCPPerClient, cfg.TURNMaxAllocations),
		AllocateWithin: cfg.TURNAllocateTimeout,
		Logger:         log.With("component", "turn"),
	})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	log.Info("turn serving", "addr", ts.Addr().String(), "public-ip", ts.PublicIP().String(), "realm", ts.Realm())
	return ts, nil
}

// TURN returns the embedded STUN/TURN server, or nil when it is off.
func (s *Server) TURN() *turnserver.Server { return s.turn }

// SocketIO returns the server's Socket.IO endpoint.
func (s *Server) SocketIO() *sioserver.Server { return s.sio }

// Hub returns the server's hub.
func (s *Server) Hub() *hub.Hub { return s.hub }

// Run serves until ctx is canceled, then shuts down gracefully within the configured
// shutdown timeout. It returns nil after a clean shutdown.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.ln) }()
	s.metrics.start(s)
	s.tls.start(ctx, s.log) // the first certificates are obtained in the background
	s.log.Info("switchboard serving: open "+openURL(s.cfg, s.ln.Addr()), "addr", s.ln.Addr().String(), "tls", s.cfg.TLSOn())
	select {
	case err := <-errc:
		s.tls.stop(context.Background())
		_ = s.sio.Close()
		_ = s.ws.Close()
		_ = s.bus.Close()
		s.metrics.stop(context.Background())
		closeWebhooks(s.webhooks)
		if s.turn != nil {
			_ = s.turn.Close(context.Background())
		}
		closeGauge(s.fds)
		s.budget.stop()
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	return s.Shutdown(sctx)
}

// Shutdown stops accepting and stops everything within ctx. With resumption on (a graceful
// restart or a drain whose clients come back) every presence is muted, no peer-left, and each
// connection is closed 1012 "restart" after what was queued for it; a cluster node then
// serves the other nodes' TakeOvers of its presences (their clients resume there) until all
// are taken, the resume grace ends or ctx nears its end. Without resumption every peer gets a
// goodbye (1001) and leaves. A cluster node then tells the other nodes it is gone.
func (s *Server) Shutdown(ctx context.Context) error {
	restart := s.cfg.ResumeGrace > 0
	var serr error
	if restart {
		// Every presence is muted: nobody hears a leave, and each client comes back (close
		// 1012) to resume here after the restart or on another node.
		saved := s.hub.Shutdown(true)
		if s.cfg.StateFile != "" && s.cfg.NATS == "" {
			serr = writeState(s.cfg.StateFile, &state{Secrets: s.hub.ResumeSecrets(), Presences: saved})
			if serr != nil {
				s.log.Error("write the state file", "err", serr)
			}
		}
	} else {
		s.hub.Drain()
	}
	// Socket.IO first: its long-polling GETs would hold http.Shutdown until ctx ends. A
	// cluster node that restarts hands its sockets over to the nodes their clients reconnect
	// to (sioserver.Restart) until waitHandovers is done.
	moveSockets := restart && s.cfg.NATS != ""
	if moveSockets {
		s.sio.Restart()
	} else {
		_ = s.sio.Shutdown(ctx)
	}
	herr := s.http.Shutdown(ctx)
	s.tls.stop(ctx)
	var werr error
	if restart {
		werr = s.ws.Restart(ctx)
	} else {
		werr = s.ws.Shutdown(ctx)
	}
	werr = errors.Join(werr, serr)
	// Joins still waiting on the cluster end before the bus goes (each is bounded by the bus's
	// request timeout); a presence they admit leaves at once, its connection being gone.
	if jerr := s.hub.WaitJoins(ctx); jerr != nil {
		werr = errors.Join(werr, jerr)
	}
	if restart {
		s.waitHandovers(ctx)
		s.hub.ReleaseMuted()
	}
	if moveSockets {
		_ = s.sio.Shutdown(ctx)
	}
	// The handed-over presences' tokens are spent in the cluster's ledger before the bus goes.
	if err := s.hub.WaitSpends(ctx); err != nil {
		s.log.Warn("closing with resume-token spends under way", "err", err)
	}
	berr := s.bus.Close()
	s.metrics.stop(ctx) // after the peers: the counters stay readable while they leave
	// After the bus: the last peer-left and room-finished events are queued by then.
	s.stopWebhooks(ctx)
	if s.turn != nil {
		// After the peers: a call relayed through TURN lasts as long as its signaling.
		if terr := s.turn.Close(ctx); terr != nil {
			werr = errors.Join(werr, terr)
		}
	}
	closeGauge(s.fds)
	s.budget.stop()
	if herr != nil && !errors.Is(herr, http.ErrServerClosed) {
		return fmt.Errorf("server: http shutdown: %w", errors.Join(herr, werr, berr))
	}
	if werr != nil || berr != nil {
		return fmt.Errorf("server: %w", errors.Join(werr, berr))
	}
	return nil
}

// clusterGrace is how long the cluster keeps the members of a node that drains or dies for
// them to resume elsewhere: the resume grace, none when resumption is off.
func clusterGrace(resume time.Duration) time.Duration {
	if resume <= 0 {
		return -1
	}
	return resume
}

// nodeID is the cluster node's id for the tokens it mints ("" on a single node).
func nodeID(cluster *natsbus.Bus) string {
	if cluster == nil {
		return ""
	}
	return cluster.ID()
}

// waitHandovers keeps a draining cluster node up while other nodes take its muted presences
// over (their clients resume there with what they had not read), and its Socket.IO sockets
// (sioserver.Restart): until every one is taken,
// or the resume grace ends, or three quarters of what is left of ctx have passed (the rest
// is for closing).
func (s *Server) waitHandovers(ctx context.Context) {
	nb, ok := s.bus.(*natsbus.Bus)
	if !ok || !nb.Connected() || nb.Nodes() < 2 {
		return // cut off from NATS (or crashed), or alone: no other node can ask
	}
	wait := s.cfg.ResumeGrace
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl)*3/4)
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	start := time.Now()
	err := nb.WaitHandovers(wctx)
	if err == nil {
		err = s.sio.WaitMoved(wctx) // the Socket.IO sockets of the lobby
	}
	if err != nil {
		s.log.Info("presences not taken over by another node before closing; they stay in the cluster for the rest of the grace", "waited", time.Since(start).Round(time.Millisecond))
		return
	}
	s.log.Info("every presence taken over or expired", "waited", time.Since(start).Round(time.Millisecond))
}
