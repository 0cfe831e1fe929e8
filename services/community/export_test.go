package community

// Test hooks, reachable from the external test package.

func (s *Service) SetBeforeCommit(f func() error) { s.beforeCommit = f }
func (s *Service) SetAfterCommit(f func() error)  { s.afterCommit = f }
