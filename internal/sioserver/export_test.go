package sioserver

import "github.com/switchboard-rtc/switchboard/protocol"

// For the external tests (package sioserver_test), which run the whole server.

// NodeScenarioSpec runs a scenario of nodetest/sio.mjs with a JSON argument (node_test.go).
var NodeScenarioSpec = nodeScenarioSpec

// inLobby reports whether id is in the server's own lobby (not a cluster's).
func (s *Server) inLobby(id protocol.PeerID) bool {
	l := s.lobby.(*memLobby)
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.sinks[id] != nil
}

// lobbyLen returns how many sockets the server's own lobby has.
func (s *Server) lobbyLen() int {
	l := s.lobby.(*memLobby)
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.sinks)
}

// carried reports whether an open session carries the socket id.
func (s *Server) carried(id protocol.PeerID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.sessions {
		ss.mu.Lock()
		ok := ss.id == id && !ss.closed
		ss.mu.Unlock()
		if ok {
			return true
		}
	}
	return false
}
