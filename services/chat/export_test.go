package chat

import (
	"context"
	"time"

	"github.com/beepchat/beep/authz"
)

// Test hooks, reachable from the external test package.

// SetAfterCommit makes f run between a DM change's commit and its SpiceDB
// write; an error stops it there, as a crash would.
func (s *Service) SetAfterCommit(f func() error) { s.afterCommit = f }

// MessageRights are the rights the service grants userID on a message of
// conversation written by authorID, named as the schema's message
// permissions.
func (s *Service) MessageRights(ctx context.Context, userID, conv, authorID string, consistency authz.Consistency) (map[string]bool, error) {
	c, err := parseConversation(conv)
	if err != nil {
		return nil, err
	}
	held, err := s.conversationRightsOf(ctx, authz.UserSubject(userID), c, consistency, permView, permHistory, permReact, permManageMessages, permStaff)
	if err != nil {
		return nil, err
	}
	r := rightsOn(held, userID == authorID)
	return map[string]bool{"view": r.view, "edit_message": r.edit, "delete_message": r.delete, "add_reactions": r.react, "pin": r.pin}, nil
}

// SetHistoryLimit makes the stream keep at most n structural changes
// (StreamConfig.History) from its next one on.
func (s *Stream) SetHistoryLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.history.limit = n
}

// SetStructuralSlack sets how far before its resume point a stream's
// ServerChanged are replayed from (structuralSlack).
func (s *Stream) SetStructuralSlack(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.history.slack = d
}
