package sioserver

import (
	"context"
	"time"
)

// Restart is Shutdown for a node of a cluster that drains for restart (or for good) while its
// clients move to the other nodes: every session is closed as if its connection were lost
// (WebSocket close 1012, a long-poll answered with the close packet), so each socket is parked
// and socket.io-client reconnects — through the load balancer, to another node — where the
// socket is recovered (across.go): same id, same pid, the events it missed. This node refuses
// new requests meanwhile and hands its sockets over until every one is taken or its grace has
// ended, or ctx ends; then it shuts down. Without a cluster, or with recovery off, it is
// Shutdown.
func (s *Server) Restart(ctx context.Context) error {
	if s.cluster == nil || s.grace <= 0 || s.closing.Load() {
		return s.Shutdown(ctx)
	}
	s.restarting.Store(true)
	s.mu.Lock()
	all := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		all = append(all, ss)
	}
	s.mu.Unlock()
	for _, ss := range all {
		ss.lose("restart")
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for s.parkedNow() > 0 {
		select {
		case <-ctx.Done():
			return s.Shutdown(ctx)
		case <-tick.C:
		}
	}
	return s.Shutdown(ctx)
}

// parkedNow returns how many sockets are parked.
func (s *Server) parkedNow() int {
	s.sockMu.Lock()
	defer s.sockMu.Unlock()
	return s.parked
}
