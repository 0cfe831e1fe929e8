package chat

import (
	"context"
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
)

// maxReactionEmoji is how many different emoji one message takes (Discord's 20).
const maxReactionEmoji = 20

// emojiKey is how an emoji is stored: "u:<unicode>" or "c:<custom emoji id>".
func emojiKey(e *chatv1.Emoji) (string, error) {
	switch k := e.GetKind().(type) {
	case *chatv1.Emoji_Unicode:
		if !isEmoji(k.Unicode) {
			return "", invalid("emoji: not a Unicode emoji")
		}
		return "u:" + k.Unicode, nil
	case *chatv1.Emoji_CustomId:
		id, err := parseID("emoji.custom_id", k.CustomId)
		if err != nil {
			return "", err
		}
		return "c:" + id.String(), nil
	}
	return "", invalid("emoji: a Unicode emoji or a custom emoji id is required")
}

func emojiProto(key string) *chatv1.Emoji {
	if id, ok := strings.CutPrefix(key, "c:"); ok {
		return &chatv1.Emoji{Kind: &chatv1.Emoji_CustomId{CustomId: id}}
	}
	return &chatv1.Emoji{Kind: &chatv1.Emoji_Unicode{Unicode: strings.TrimPrefix(key, "u:")}}
}

// isEmoji accepts one emoji as Unicode writes it: pictographs, flags
// (regional indicators, tag sequences), keycaps, skin tones and ZWJ
// sequences; not text.
func isEmoji(s string) bool {
	if s == "" || len(s) > 64 || !utf8.ValidString(s) || utf8.RuneCountInString(s) > 16 {
		return false
	}
	pictograph := false
	for _, r := range s {
		switch {
		case unicode.Is(unicode.So, r), r == 0x203C, r == 0x2049: // symbols, ‼ and ⁉
			pictograph = true
		case r == 0x20E3: // combining enclosing keycap
			pictograph = true
		case r >= 0x1F3FB && r <= 0x1F3FF: // skin tones
		case r == 0x200D, r == 0xFE0F, r == 0xFE0E: // joiner, presentation selectors
		case r >= 0xE0020 && r <= 0xE007F: // tags (subdivision flags)
		case r == '#' || r == '*' || (r >= '0' && r <= '9'): // keycap bases
		default:
			return false
		}
	}
	return pictograph
}

// messageIn checks that a message is in the conversation, locking it
// against other reactions while the transaction lasts.
func messageIn(ctx context.Context, tx pgx.Tx, c conversation, id uuid.UUID) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM messages WHERE id = $1 AND conv_type = $2 AND conv_id = $3 FOR NO KEY UPDATE`, id, string(c.typ), c.id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return connect.NewError(connect.CodeNotFound, errors.New("no such message in this conversation"))
	}
	return err
}

// reactionRequest reads the parts of AddReaction and RemoveReaction.
func reactionRequest(conv, messageID string, e *chatv1.Emoji) (conversation, uuid.UUID, string, error) {
	c, err := parseConversation(conv)
	if err != nil {
		return c, uuid.Nil, "", err
	}
	id, err := parseID("message_id", messageID)
	if err != nil {
		return c, id, "", err
	}
	key, err := emojiKey(e)
	return c, id, key, err
}

// AddReaction adds the caller's reaction. The interceptor checked
// add_reactions; message#add_reactions is view & channel->add_reactions,
// so read_message_history is checked too.
func (s *Service) AddReaction(ctx context.Context, req *connect.Request[chatv1.AddReactionRequest]) (*connect.Response[chatv1.AddReactionResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	c, id, key, err := reactionRequest(req.Msg.Conversation, req.Msg.MessageId, req.Msg.Emoji)
	if err != nil {
		return nil, err
	}
	rights, err := s.conversationRightsOf(ctx, p.Subject(), c, freshness(req.Header()), permHistory)
	if err != nil {
		return nil, s.internal(ctx, "react", err)
	}
	rights.react = true
	if !rightsOn(rights, false).react {
		return nil, connect.NewError(connect.CodePermissionDenied, errors.New("you lack read_message_history on this "+string(c.typ)))
	}
	var (
		reactions []*chatv1.Reaction
		added     bool
	)
	event := Event{Kind: ReactionAdded, ZedToken: tokenOf(req.Header()), Conversation: c.String(), ActorID: p.UserID, MessageID: id.String(), Emoji: emojiProto(key)}
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if err := lockConversation(ctx, tx, c); err != nil {
			return err
		}
		if err := messageIn(ctx, tx, c, id); err != nil {
			return err
		}
		var kinds int
		var used bool
		if err := tx.QueryRow(ctx, `SELECT count(DISTINCT emoji), coalesce(bool_or(emoji = $2), false) FROM reactions WHERE message_id = $1`, id, key).Scan(&kinds, &used); err != nil {
			return err
		}
		if !used && kinds >= maxReactionEmoji {
			return connect.NewError(connect.CodeFailedPrecondition, errors.New("a message takes at most 20 different reactions"))
		}
		tag, err := tx.Exec(ctx, `INSERT INTO reactions (message_id, emoji, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, id, key, p.UserID)
		if err != nil {
			return err
		}
		added = tag.RowsAffected() == 1
		all, err := loadReactions(ctx, tx, []uuid.UUID{id}, p.UserID)
		if err != nil {
			return err
		}
		reactions = all[id]
		if !added {
			return nil
		}
		return recordIn(ctx, tx, event)
	})
	if err != nil {
		return nil, s.internal(ctx, "react", err)
	}
	if added {
		s.committed(ctx, event)
	}
	return connect.NewResponse(&chatv1.AddReactionResponse{Reactions: reactions}), nil
}

// RemoveReaction removes the caller's own reaction, if there is one.
func (s *Service) RemoveReaction(ctx context.Context, req *connect.Request[chatv1.RemoveReactionRequest]) (*connect.Response[chatv1.RemoveReactionResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	c, id, key, err := reactionRequest(req.Msg.Conversation, req.Msg.MessageId, req.Msg.Emoji)
	if err != nil {
		return nil, err
	}
	var (
		reactions []*chatv1.Reaction
		removed   bool
	)
	event := Event{Kind: ReactionRemoved, ZedToken: tokenOf(req.Header()), Conversation: c.String(), ActorID: p.UserID, MessageID: id.String(), Emoji: emojiProto(key)}
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if err := lockConversation(ctx, tx, c); err != nil {
			return err
		}
		if err := messageIn(ctx, tx, c, id); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3`, id, key, p.UserID)
		if err != nil {
			return err
		}
		removed = tag.RowsAffected() == 1
		all, err := loadReactions(ctx, tx, []uuid.UUID{id}, p.UserID)
		if err != nil {
			return err
		}
		reactions = all[id]
		if !removed {
			return nil
		}
		return recordIn(ctx, tx, event)
	})
	if err != nil {
		return nil, s.internal(ctx, "remove reaction", err)
	}
	if removed {
		s.committed(ctx, event)
	}
	return connect.NewResponse(&chatv1.RemoveReactionResponse{Reactions: reactions}), nil
}
