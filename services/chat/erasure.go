package chat

import (
	"context"
	"errors"
	"net/http"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/beepchat/beep/authz"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	"github.com/beepchat/beep/gen/beep/chat/v1/chatv1connect"
)

// ForgottenAuthor is the author of the messages of an erased account. No
// account can have it: it is not a user id of the graph.
const ForgottenAuthor = "~deleted"

// Erasure is the chat service's internal erasure API
// (beep.chat.v1.ChatErasureService), served beside it for the user service.
type Erasure struct{ s *Service }

var _ chatv1connect.ChatErasureServiceHandler = Erasure{}

// Erasure returns the service's internal erasure API.
func (s *Service) Erasure() Erasure { return Erasure{s} }

// Handler returns the path and the Connect handler of the erasure API.
func (e Erasure) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	return chatv1connect.NewChatErasureServiceHandler(e, opts...)
}

// EraseUser removes a person from the chat service (only the user service
// may call it: the interceptor checked). Running it again finishes what a
// crash interrupted, and then does nothing.
func (e Erasure) EraseUser(ctx context.Context, req *connect.Request[chatv1.EraseUserRequest]) (*connect.Response[chatv1.EraseUserResponse], error) {
	s, user := e.s, req.Msg.UserId
	if err := validUser("user_id", user); err != nil {
		return nil, err
	}
	out := &chatv1.EraseUserResponse{}
	rows, err := s.db.Query(ctx, `SELECT d.id, d.kind FROM dm_members m JOIN dm_channels d ON d.id = m.dm_id WHERE m.user_id = $1`, user)
	if err != nil {
		return nil, s.internal(ctx, "erase", err)
	}
	type dm struct {
		id   uuid.UUID
		kind string
	}
	dms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (dm, error) {
		var d dm
		return d, r.Scan(&d.id, &d.kind)
	})
	if err != nil {
		return nil, s.internal(ctx, "erase", err)
	}
	for _, d := range dms {
		if d.kind == "group" {
			token, _, err := s.leaveGroup(ctx, d.id, user)
			if err != nil && !errors.Is(err, errNotFound) {
				return nil, s.internal(ctx, "erase", err)
			}
			out.GroupsLeft++
			out.ZedToken = string(token)
			continue
		}
		token, err := s.deleteDirect(ctx, d.id, user)
		if err != nil {
			return nil, s.internal(ctx, "erase", err)
		}
		out.DirectDeleted++
		out.ZedToken = string(token)
	}
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`DELETE FROM reactions WHERE user_id = $1`, user)
		b.Queue(`DELETE FROM read_states WHERE user_id = $1`, user)
		b.Queue(`DELETE FROM message_mentions WHERE user_id = $1`, user)
		b.Queue(`DELETE FROM presence_spans WHERE user_id = $1`, user)
		b.Queue(`UPDATE messages SET mention_users = array_remove(mention_users, $1),
			content = replace(replace(content, '<@' || $1 || '>', '<@`+ForgottenAuthor+`>'), '<@!' || $1 || '>', '<@`+ForgottenAuthor+`>')
			WHERE $1 = ANY(mention_users) OR strpos(content, '<@' || $1 || '>') > 0 OR strpos(content, '<@!' || $1 || '>') > 0`, user)
		b.Queue(`UPDATE messages SET author_id = '`+ForgottenAuthor+`', nonce = NULL WHERE author_id = $1`, user)
		b.Queue(`UPDATE pins SET pinned_by = '`+ForgottenAuthor+`' WHERE pinned_by = $1`, user)
		b.Queue(`DELETE FROM stream_events WHERE $1 = ANY(audience) OR position(convert_to($1, 'UTF8') IN payload) > 0`, user)
		b.Queue(`DELETE FROM stream_pending WHERE $1 = ANY(audience) OR position(convert_to($1, 'UTF8') IN payload) > 0`, user)
		results := tx.SendBatch(ctx, b)
		for i := range b.Len() {
			tag, err := results.Exec()
			if err != nil {
				results.Close()
				return err
			}
			if i == 5 {
				out.MessagesAnonymized = tag.RowsAffected()
			}
		}
		return results.Close()
	})
	if err != nil {
		return nil, s.internal(ctx, "erase", err)
	}
	return connect.NewResponse(out), nil
}

// deleteDirect deletes a 1:1 DM of who, with its messages, and the graph's
// edges of it; the other person is told.
func (s *Service) deleteDirect(ctx context.Context, id uuid.UUID, who string) (authz.ZedToken, error) {
	c := dmConversation(id)
	var others []string
	token, _, err := s.commitDM(ctx, id, func(tx pgx.Tx, before *dmRow) error {
		if before == nil {
			return nil
		}
		for _, m := range before.members {
			if m != who {
				others = append(others, m)
			}
		}
		return deleteConversation(ctx, tx, c)
	}, func(_, _ *dmRow) []Event {
		if len(others) == 0 {
			return nil
		}
		return []Event{{Kind: DMDeleted, Conversation: c.String(), ActorID: who, Removed: others}}
	})
	if err != nil {
		return "", err
	}
	return token, nil
}
