package user

// SetAfterStep makes f run after each step of an account's erasure; an
// error stops the pass there, as a crash would.
func SetAfterStep(s *Service, f func(step string) error) { s.afterStep = f }
