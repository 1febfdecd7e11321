package server

// MemoryHeld returns what s's memory budget holds, for the tests of package server_test.
func MemoryHeld(s *Server) int64 { return s.budget.b.Used() }
