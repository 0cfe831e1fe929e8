package chat

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

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

// FollowerQueries are the queries the stream's follower asks again and
// again, by name, with arguments (a position, a limit) for EXPLAIN.
var FollowerQueries = map[string]struct {
	SQL  string
	Args []any
}{
	"readCommitted": {readCommittedSQL, []any{"1", 1, 500}},
}

// ReadLog reads the log as the stream's follower (readCommitted) and as a
// resume or the feed (readBetween, through the newest position) do, from
// the start, limit at a time, and returns the positions read, in order.
func ReadLog(ctx context.Context, db *pgxpool.Pool, limit int) (committed, between []string, err error) {
	through := position{xid: 1<<63 - 1, id: 1<<63 - 1}
	if committed, err = readAll(func(from position) ([]logged, error) {
		batch, _, err := readCommitted(ctx, db, from, limit)
		return batch, err
	}); err != nil {
		return nil, nil, err
	}
	between, err = readAll(func(from position) ([]logged, error) { return readBetween(ctx, db, from, through, limit) })
	return committed, between, err
}

// readAll reads batches from the start, each after the last of the one
// before, until one is empty.
func readAll(read func(from position) ([]logged, error)) ([]string, error) {
	var out []string
	for from := (position{}); ; {
		batch, err := read(from)
		if err != nil || len(batch) == 0 {
			return out, err
		}
		for _, e := range batch {
			out = append(out, e.pos.String())
		}
		from = batch[len(batch)-1].pos
	}
}

// PresenceInstance is the id this instance records its people's presence
// under.
func (s *Stream) PresenceInstance() uuid.UUID { return s.presence.instance }

// BeatPresence beats for the instance now, as its ticker does.
func (s *Stream) BeatPresence(ctx context.Context) error { return s.presence.beat(ctx) }

// PrunePresence prunes presence now, as any instance does every minute.
func (s *Stream) PrunePresence(ctx context.Context) error { return s.presence.prune(ctx) }

// ReadCommitted reads the log from its start as the stream's follower
// does: the positions read, and whether committed events are held back.
func ReadCommitted(ctx context.Context, db *pgxpool.Pool, limit int) ([]string, bool, error) {
	batch, held, err := readCommitted(ctx, db, position{}, limit)
	var out []string
	for _, l := range batch {
		out = append(out, l.pos.String())
	}
	return out, held, err
}
