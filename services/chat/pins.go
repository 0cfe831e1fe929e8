package chat

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
)

// maxPins is how many messages one conversation pins (Discord's 50).
const maxPins = 50

// PinMessage pins a message (message#pin = channel->manage_messages, which
// the interceptor checked). Pinning a pinned message changes nothing.
func (s *Service) PinMessage(ctx context.Context, req *connect.Request[chatv1.PinMessageRequest]) (*connect.Response[chatv1.PinMessageResponse], error) {
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
	pinned := false
	event := Event{Kind: MessagePinned, ZedToken: tokenOf(req.Header()), Conversation: c.String(), ActorID: p.UserID, MessageID: id.String()}
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		// The conversation's lock: two pins cannot both take the 50th place.
		if err := lockConversation(ctx, tx, c); err != nil {
			return err
		}
		var exists, already bool
		var count int
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM messages WHERE id = $1 AND conv_type = $2 AND conv_id = $3),
			EXISTS (SELECT 1 FROM pins WHERE message_id = $1), (SELECT count(*) FROM pins WHERE conv_type = $2 AND conv_id = $3)`,
			id, string(c.typ), c.id).Scan(&exists, &already, &count); err != nil {
			return err
		}
		switch {
		case !exists:
			return connect.NewError(connect.CodeNotFound, errors.New("no such message in this conversation"))
		case already:
			return nil
		case count >= maxPins:
			return connect.NewError(connect.CodeFailedPrecondition, errors.New("a conversation has at most 50 pins; unpin one first"))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO pins (message_id, conv_type, conv_id, pinned_by) VALUES ($1, $2, $3, $4)`, id, string(c.typ), c.id, p.UserID); err != nil {
			return err
		}
		pinned = true
		return recordIn(ctx, tx, event)
	})
	if err != nil {
		return nil, s.internal(ctx, "pin", err)
	}
	if pinned {
		s.committed(ctx, event)
	}
	return connect.NewResponse(&chatv1.PinMessageResponse{}), nil
}

// UnpinMessage unpins a message; unpinning one that is not pinned changes nothing.
func (s *Service) UnpinMessage(ctx context.Context, req *connect.Request[chatv1.UnpinMessageRequest]) (*connect.Response[chatv1.UnpinMessageResponse], error) {
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
	if _, err := authorOf(ctx, s.db, c, id); err != nil {
		return nil, s.internal(ctx, "unpin", err)
	}
	unpinned := false
	event := Event{Kind: MessageUnpinned, ZedToken: tokenOf(req.Header()), Conversation: c.String(), ActorID: p.UserID, MessageID: id.String()}
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if err := lockConversation(ctx, tx, c); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM pins WHERE message_id = $1 AND conv_type = $2 AND conv_id = $3`, id, string(c.typ), c.id)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		unpinned = true
		return recordIn(ctx, tx, event)
	})
	if err != nil {
		return nil, s.internal(ctx, "unpin", err)
	}
	if unpinned {
		s.committed(ctx, event)
	}
	return connect.NewResponse(&chatv1.UnpinMessageResponse{}), nil
}

// ListPins lists the pins, the latest first (the interceptor checked
// read_message_history).
func (s *Service) ListPins(ctx context.Context, req *connect.Request[chatv1.ListPinsRequest]) (*connect.Response[chatv1.ListPinsResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	c, err := parseConversation(req.Msg.Conversation)
	if err != nil {
		return nil, err
	}
	type pin struct {
		msg messageRow
		by  string
		at  time.Time
	}
	var out []*chatv1.Pin
	err = pgx.BeginTxFunc(ctx, s.db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+messageColumns+`, pn.pinned_by, pn.pinned_at FROM pins pn JOIN messages m ON m.id = pn.message_id
			WHERE pn.conv_type = $1 AND pn.conv_id = $2 ORDER BY pn.pinned_at DESC, pn.message_id DESC`, string(c.typ), c.id)
		if err != nil {
			return err
		}
		pins, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pin, error) {
			var x pin
			var typ string
			err := r.Scan(&x.msg.id, &typ, &x.msg.conv.id, &x.msg.authorID, &x.msg.content, &x.msg.createdAt, &x.msg.editedAt, &x.msg.replyTo, &x.msg.nonce,
				&x.msg.mentions.everyone, &x.msg.mentions.here, &x.msg.mentions.users, &x.msg.mentions.roles, &x.msg.pinned, &x.by, &x.at)
			x.msg.conv.typ = c.typ
			return x, err
		})
		if err != nil {
			return err
		}
		msgs := make([]messageRow, len(pins))
		for i, x := range pins {
			msgs[i] = x.msg
		}
		protos, err := protos(ctx, tx, msgs, p.UserID)
		if err != nil {
			return err
		}
		for i, x := range pins {
			out = append(out, &chatv1.Pin{Message: protos[i], PinnedBy: x.by, PinnedAt: timestamppb.New(x.at)})
		}
		return nil
	})
	if err != nil {
		return nil, s.internal(ctx, "list pins", err)
	}
	return connect.NewResponse(&chatv1.ListPinsResponse{Pins: out}), nil
}
