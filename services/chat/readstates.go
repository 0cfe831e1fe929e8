package chat

import (
	"bytes"
	"context"
	"errors"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/beepchat/beep/authz"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
)

// maxReadStates is how many conversations one GetReadStates names.
const maxReadStates = 100

// MarkRead moves the caller's read state forward to a message (the
// interceptor checked view_channel).
func (s *Service) MarkRead(ctx context.Context, req *connect.Request[chatv1.MarkReadRequest]) (*connect.Response[chatv1.MarkReadResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	c, err := parseConversation(req.Msg.Conversation)
	if err != nil {
		return nil, err
	}
	id, err := parseID("message_id", req.Msg.MessageId)
	if err != nil {
		return nil, err
	}
	var (
		state *chatv1.ReadState
		event Event
	)
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := authorOf(ctx, tx, c, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO read_states (user_id, conv_type, conv_id, last_read_id) VALUES ($1, $2, $3, $4)
			ON CONFLICT (user_id, conv_type, conv_id) DO UPDATE SET last_read_id = GREATEST(read_states.last_read_id, EXCLUDED.last_read_id), updated_at = now()`,
			p.UserID, string(c.typ), c.id, id); err != nil {
			return err
		}
		if state, err = s.readState(ctx, tx, p, c, freshness(req.Header())); err != nil {
			return err
		}
		event = Event{Kind: ReadStateUpdated, Conversation: c.String(), ActorID: p.UserID, ReadState: state}
		return recordIn(ctx, tx, event)
	})
	if err != nil {
		return nil, s.internal(ctx, "mark read", err)
	}
	s.committed(ctx, event)
	return connect.NewResponse(&chatv1.MarkReadResponse{State: state}), nil
}

// GetReadStates answers for the conversations named that the caller sees
// (view_channel, in one CheckBulk); the others are left out.
func (s *Service) GetReadStates(ctx context.Context, req *connect.Request[chatv1.GetReadStatesRequest]) (*connect.Response[chatv1.GetReadStatesResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if n := len(req.Msg.Conversations); n < 1 || n > maxReadStates {
		return nil, invalid("conversations: 1 to %d", maxReadStates)
	}
	var convs []conversation
	seen := map[string]bool{}
	for _, ref := range req.Msg.Conversations {
		c, err := parseConversation(ref)
		if err != nil {
			return nil, err
		}
		if !seen[c.String()] {
			seen[c.String()] = true
			convs = append(convs, c)
		}
	}
	consistency := freshness(req.Header())
	checks := make([]authz.Check, len(convs))
	for i, c := range convs {
		checks[i] = c.check(p.Subject(), permView)
	}
	decisions, err := s.authz.CheckBulk(ctx, checks, consistency)
	if err != nil {
		return nil, s.internal(ctx, "read states", err)
	}
	out := &chatv1.GetReadStatesResponse{}
	err = pgx.BeginTxFunc(ctx, s.db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		for i, c := range convs {
			if !decisions[i].Allowed {
				continue
			}
			state, err := s.readState(ctx, tx, p, c, consistency)
			if err != nil {
				return err
			}
			out.States = append(out.States, state)
		}
		return nil
	})
	if err != nil {
		return nil, s.internal(ctx, "read states", err)
	}
	return connect.NewResponse(out), nil
}

// readState counts, for who, the messages of others after their last read
// one, and those of them that ping who: by name, by @everyone, by @here
// when who was online as it was sent (both kept only when their author
// held mention_everyone), or by a role who holds (asked of the graph,
// role#member, for the roles those messages name).
func (s *Service) readState(ctx context.Context, tx pgx.Tx, who authz.Principal, c conversation, consistency authz.Consistency) (*chatv1.ReadState, error) {
	state := &chatv1.ReadState{Conversation: c.String()}
	var lastRead, last *uuid.UUID
	if err := tx.QueryRow(ctx, `SELECT (SELECT last_read_id FROM read_states WHERE user_id = $1 AND conv_type = $2 AND conv_id = $3),
		(SELECT last_id FROM conversations WHERE conv_type = $2 AND conv_id = $3)`, who.UserID, string(c.typ), c.id).Scan(&lastRead, &last); err != nil {
		return nil, err
	}
	if lastRead != nil {
		state.LastReadMessageId = lastRead.String()
	}
	if last == nil {
		return state, nil
	}
	state.LastMessageId = last.String()
	after := uuid.Nil
	if lastRead != nil {
		after = *lastRead
	}
	if bytes.Compare(after[:], last[:]) >= 0 {
		return state, nil // all read
	}
	args := []any{who.UserID, string(c.typ), c.id, after}
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM messages
		WHERE conv_type = $2 AND conv_id = $3 AND id > $4 AND author_id <> $1 LIMIT $5) unread`,
		append(args, maxUnreadCount)...).Scan(&state.UnreadCount); err != nil {
		return nil, err
	}
	if state.UnreadCount == 0 {
		return state, nil
	}
	// The roles that unread messages ping, and which of them who holds.
	rows, err := tx.Query(ctx, `SELECT DISTINCT r FROM messages, unnest(mention_roles) r
		WHERE conv_type = $2 AND conv_id = $3 AND id > $4 AND author_id <> $1
		AND (mention_everyone OR mention_here OR mention_roles <> '{}') LIMIT 100`, args...)
	if err != nil {
		return nil, err
	}
	roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	held := []string{}
	if len(roles) > 0 {
		checks := make([]authz.Check, len(roles))
		for i, r := range roles {
			checks[i] = authz.Check{Subject: who.Subject(), Permission: authz.Permission{ResourceType: authz.TypeRole, Name: authz.Role.Member.Name}, ResourceID: r}
		}
		decisions, err := s.authz.CheckBulk(ctx, checks, consistency)
		if err != nil {
			return nil, err
		}
		for i, d := range decisions {
			if d.Allowed {
				held = append(held, roles[i])
			}
		}
	}
	err = tx.QueryRow(ctx, `SELECT count(*) FROM (
		(SELECT message_id FROM message_mentions WHERE user_id = $1 AND conv_type = $2 AND conv_id = $3 AND message_id > $4)
		UNION
		(SELECT id FROM messages WHERE conv_type = $2 AND conv_id = $3 AND id > $4 AND author_id <> $1
			AND (mention_everyone OR mention_here OR mention_roles <> '{}')
			AND (mention_everyone OR mention_roles && $5::text[] OR (mention_here AND `+wasOnlineSQL("$1", "messages.created_at")+`)))
		LIMIT $6) pings`, append(args, held, maxUnreadCount)...).Scan(&state.MentionCount)
	if errors.Is(err, pgx.ErrNoRows) {
		err = nil
	}
	return state, err
}
