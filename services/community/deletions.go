package community

import (
	"context"
	"errors"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

// deletionsKept is how long a deleted conversation is listed.
const deletionsKept = 30 * 24 * time.Hour

// recordDeleted is the statement recording the conversations that query
// selects ("channel:<id>", "thread:<id>") as deleted, in the deletion's
// transaction.
func recordDeleted(query string) string {
	return `INSERT INTO deleted_conversations (conversation) ` + query + ` ON CONFLICT (conversation) DO NOTHING`
}

// deleteServerSQL deletes the server $1 (its rows cascade), recording its
// channels and threads as deleted.
var deleteServerSQL = `WITH gone AS (` + recordDeleted(`SELECT 'channel:' || id FROM channels WHERE server_id = $1
	UNION ALL SELECT 'thread:' || id FROM threads WHERE server_id = $1`) + `) DELETE FROM servers WHERE id = $1`

// ListDeletedConversations pages through the deleted channels and threads,
// oldest first (only the chat service may ask: the interceptor checked).
func (s *Service) ListDeletedConversations(ctx context.Context, req *connect.Request[communityv1.ListDeletedConversationsRequest]) (*connect.Response[communityv1.ListDeletedConversationsResponse], error) {
	size, err := pageSize(req.Msg.PageSize, 500, 1000)
	if err != nil {
		return nil, err
	}
	after, conv := time.Time{}, ""
	if a := req.Msg.After; a != nil {
		if err := a.DeletedAt.CheckValid(); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("after.deleted_at: required, a valid time"))
		}
		after, conv = a.DeletedAt.AsTime(), a.Conversation
		if conv != "" && !strings.HasPrefix(conv, "channel:") && !strings.HasPrefix(conv, "thread:") {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New(`after.conversation: "channel:<id>", "thread:<id>" or empty`))
		}
	}
	if _, err := s.db.Exec(ctx, `DELETE FROM deleted_conversations WHERE deleted_at < $1`, time.Now().Add(-deletionsKept)); err != nil {
		return nil, s.internal(ctx, "deleted conversations", err)
	}
	rows, err := s.db.Query(ctx, `SELECT conversation, deleted_at FROM deleted_conversations
		WHERE (deleted_at, conversation) > ($1, $2) ORDER BY deleted_at, conversation LIMIT $3`, after, conv, size)
	if err != nil {
		return nil, s.internal(ctx, "deleted conversations", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*communityv1.DeletedConversation, error) {
		var d communityv1.DeletedConversation
		var at time.Time
		if err := r.Scan(&d.Conversation, &at); err != nil {
			return nil, err
		}
		d.DeletedAt = timestamppb.New(at)
		return &d, nil
	})
	if err != nil {
		return nil, s.internal(ctx, "deleted conversations", err)
	}
	return connect.NewResponse(&communityv1.ListDeletedConversationsResponse{Conversations: out}), nil
}
