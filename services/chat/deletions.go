package chat

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/beepchat/beep/authz"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

const (
	// deletionOverlap is how far before its cursor each pass asks again:
	// a deletion committed late (its time is taken inside its transaction)
	// or a message that slipped into a channel as it was deleted is erased
	// by a later pass.
	deletionOverlap = 5 * time.Minute
	// deletionPage is how many deleted conversations one call lists.
	deletionPage = 500
	// erasedAtOnce is how many messages one statement deletes.
	erasedAtOnce = 1000
)

// RunDeletions erases, every interval until ctx ends, the messages of the
// channels and threads the community service deleted. Without the
// community's internal client (Config.Deletions) it does nothing.
func (s *Service) RunDeletions(ctx context.Context, interval time.Duration) {
	if s.deletions == nil {
		return
	}
	ctx = authz.WithPrincipal(ctx, authz.ServicePrincipal(ServiceName))
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.EraseDeleted(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "erasing deleted conversations", "err", err)
		} else if n > 0 {
			s.log.InfoContext(ctx, "erased the messages of deleted conversations", "messages", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// EraseDeleted makes one pass: it pages through the deleted conversations
// from a little before its cursor and erases their messages, read states
// and record, moving the cursor after each page. Erasing is idempotent, so
// instances passing at once, or a pass again after a crash, are harmless.
// It returns how many messages it erased.
func (s *Service) EraseDeleted(ctx context.Context) (int64, error) {
	if s.deletions == nil {
		return 0, errors.New("chat: no client of the community service's deletions")
	}
	var cursor time.Time
	err := s.db.QueryRow(ctx, `SELECT deleted_at FROM deletion_cursor`).Scan(&cursor)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, err
	}
	var after *communityv1.DeletedConversation // nil: from the oldest kept
	if !cursor.IsZero() {
		after = &communityv1.DeletedConversation{DeletedAt: timestamppb.New(cursor.Add(-deletionOverlap))}
	}
	var erased int64
	for {
		resp, err := s.deletions.ListDeletedConversations(ctx, connect.NewRequest(&communityv1.ListDeletedConversationsRequest{After: after, PageSize: deletionPage}))
		if err != nil {
			return erased, fmt.Errorf("listing deleted conversations: %w", err)
		}
		page := resp.Msg.Conversations
		for _, d := range page {
			c, err := parseConversation(d.Conversation)
			if err != nil || c.typ == authz.TypeDmChannel {
				s.log.WarnContext(ctx, "a deleted conversation that is no channel or thread", "conversation", d.Conversation)
				continue
			}
			n, err := s.eraseConversation(ctx, c)
			erased += n
			if err != nil {
				return erased, fmt.Errorf("erasing %s: %w", c, err)
			}
		}
		if len(page) == 0 {
			return erased, nil
		}
		after = page[len(page)-1]
		if _, err := s.db.Exec(ctx, `INSERT INTO deletion_cursor (deleted_at) VALUES ($1)
			ON CONFLICT (only_row) DO UPDATE SET deleted_at = excluded.deleted_at
			WHERE deletion_cursor.deleted_at < excluded.deleted_at`, after.DeletedAt.AsTime()); err != nil {
			return erased, err
		}
		if len(page) < deletionPage {
			return erased, nil
		}
	}
}

// eraseConversation deletes a conversation's messages (their mentions,
// reactions and pins go with them), a thousand at a time, then its read
// states and its record.
func (s *Service) eraseConversation(ctx context.Context, c conversation) (int64, error) {
	var erased int64
	for {
		tag, err := s.db.Exec(ctx, `DELETE FROM messages WHERE id IN
			(SELECT id FROM messages WHERE conv_type = $1 AND conv_id = $2 LIMIT $3)`, string(c.typ), c.id, erasedAtOnce)
		if err != nil {
			return erased, err
		}
		erased += tag.RowsAffected()
		if tag.RowsAffected() < erasedAtOnce {
			break
		}
	}
	b := &pgx.Batch{}
	queueForget(b, c)
	return erased, s.db.SendBatch(ctx, b).Close()
}

// queueForget queues the deletion of a conversation's read states and
// record (its messages gone, or going in the same batch).
func queueForget(b *pgx.Batch, c conversation) {
	b.Queue(`DELETE FROM read_states WHERE conv_type = $1 AND conv_id = $2`, string(c.typ), c.id)
	b.Queue(`DELETE FROM conversations WHERE conv_type = $1 AND conv_id = $2`, string(c.typ), c.id)
}
