package sioserver

import (
	"context"
	"time"
)

// Restart begins the shutdown of a node of a cluster that drains for restart (or for good)
// while its clients move to the other nodes: every session is closed as if its connection
// were lost (WebSocket close 1012, a long-poll answered with the close packet), so each socket
// is parked and socket.io-client reconnects — through the load balancer, to another node —
// where the socket is recovered (across.go): same id, same pid, the events it missed. From
// now on this node refuses requests (503) and only hands its sockets over; WaitMoved waits
// for that, Shutdown ends what is left. Without a cluster, or with recovery off, it is
// Shutdown.
func (s *Server) Restart() {
	if s.cluster == nil || s.grace <= 0 || s.closing.Load() {
		_ = s.Shutdown(context.Background())
		return
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
}

// WaitMoved waits until no socket is parked here (each was taken over by another node, or its
// grace ended), or ctx ends.
func (s *Server) WaitMoved(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for s.parkedNow() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// parkedNow returns how many sockets are parked.
func (s *Server) parkedNow() int {
	s.sockMu.Lock()
	defer s.sockMu.Unlock()
	return s.parked
}
