package chat

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/beepchat/beep/authz"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
)

// Limits of a message.
const (
	maxContent     = 4000 // characters, after trimming
	maxNonce       = 64
	defaultPage    = 50
	maxPage        = 100
	maxUnreadCount = 1000
)

// messageRow is a message as stored.
type messageRow struct {
	id        uuid.UUID
	conv      conversation
	authorID  string
	content   string
	createdAt time.Time
	editedAt  *time.Time
	replyTo   *uuid.UUID
	nonce     *string
	mentions  mentions
	pinned    bool
}

const messageColumns = `m.id, m.conv_type, m.conv_id, m.author_id, m.content, m.created_at, m.edited_at, m.reply_to, m.nonce,
	m.mention_everyone, m.mention_here, m.mention_users, m.mention_roles, EXISTS (SELECT 1 FROM pins p WHERE p.message_id = m.id)`

// scanner is a row to scan: pgx.Row or pgx.CollectableRow.
type scanner interface{ Scan(dest ...any) error }

func scanMessage(row scanner) (messageRow, error) {
	var r messageRow
	var typ string
	err := row.Scan(&r.id, &typ, &r.conv.id, &r.authorID, &r.content, &r.createdAt, &r.editedAt, &r.replyTo, &r.nonce,
		&r.mentions.everyone, &r.mentions.here, &r.mentions.users, &r.mentions.roles, &r.pinned)
	r.conv.typ = authz.ObjectType(typ)
	if len(r.mentions.users) == 0 {
		r.mentions.users = nil
	}
	if len(r.mentions.roles) == 0 {
		r.mentions.roles = nil
	}
	return r, err
}

// proto is the message as me sees it (the nonce is its author's).
func (r messageRow) proto(me string, reactions []*chatv1.Reaction) *chatv1.Message {
	out := &chatv1.Message{Id: r.id.String(), Conversation: r.conv.String(), AuthorId: r.authorID, Content: r.content,
		CreatedAt: timestamppb.New(r.createdAt), Mentions: r.mentions.proto(), Reactions: reactions, Pinned: r.pinned}
	if r.editedAt != nil {
		out.EditedAt = timestamppb.New(*r.editedAt)
	}
	if r.replyTo != nil {
		out.ReplyToId = r.replyTo.String()
	}
	if r.nonce != nil && me == r.authorID {
		out.Nonce = *r.nonce
	}
	return out
}

// shared are reactions as everyone may be told them: the counts, without
// the caller's own (Reaction.me).
func shared(reactions []*chatv1.Reaction) []*chatv1.Reaction {
	out := make([]*chatv1.Reaction, len(reactions))
	for i, r := range reactions {
		out[i] = &chatv1.Reaction{Emoji: r.Emoji, Count: r.Count}
	}
	return out
}

// validContent trims a message's text and checks its length.
func validContent(s string) (string, error) {
	s = strings.TrimSpace(s)
	if n := utf8.RuneCountInString(s); n < 1 || n > maxContent {
		return "", invalid("content: 1 to %d characters", maxContent)
	}
	if strings.ContainsRune(s, 0) {
		return "", invalid("content: no NUL characters")
	}
	return s, nil
}

// nonNil makes an empty array of a nil slice (NULL is not an empty array).
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// getMessage reads one message of a conversation.
func getMessage(ctx context.Context, q querier, c conversation, id uuid.UUID) (messageRow, error) {
	r, err := scanMessage(q.QueryRow(ctx, `SELECT `+messageColumns+` FROM messages m WHERE m.id = $1 AND m.conv_type = $2 AND m.conv_id = $3`,
		id, string(c.typ), c.id))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, connect.NewError(connect.CodeNotFound, errors.New("no such message in this conversation"))
	}
	return r, err
}

// authorOf is a message's author; NotFound when the message is not in the conversation.
func authorOf(ctx context.Context, q querier, c conversation, id uuid.UUID) (string, error) {
	var author string
	err := q.QueryRow(ctx, `SELECT author_id FROM messages WHERE id = $1 AND conv_type = $2 AND conv_id = $3`, id, string(c.typ), c.id).Scan(&author)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", connect.NewError(connect.CodeNotFound, errors.New("no such message in this conversation"))
	}
	return author, err
}

// loadReactions gathers the reactions of messages, by message, each emoji
// in the order it was first used.
func loadReactions(ctx context.Context, q querier, ids []uuid.UUID, me string) (map[uuid.UUID][]*chatv1.Reaction, error) {
	out := map[uuid.UUID][]*chatv1.Reaction{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT message_id, emoji, count(*), bool_or(user_id = $2) FROM reactions
		WHERE message_id = ANY($1) GROUP BY message_id, emoji ORDER BY message_id, min(created_at), emoji`, ids, me)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id uuid.UUID
		var key string
		var count int64
		var mine bool
		if err := rows.Scan(&id, &key, &count, &mine); err != nil {
			return nil, err
		}
		out[id] = append(out[id], &chatv1.Reaction{Emoji: emojiProto(key), Count: uint32(count), Me: mine})
	}
	return out, rows.Err()
}

// protos is messages as me sees them, with their reactions.
func protos(ctx context.Context, q querier, rows []messageRow, me string) ([]*chatv1.Message, error) {
	ids := make([]uuid.UUID, len(rows))
	for i, r := range rows {
		ids[i] = r.id
	}
	reactions, err := loadReactions(ctx, q, ids, me)
	if err != nil {
		return nil, err
	}
	out := make([]*chatv1.Message, len(rows))
	for i, r := range rows {
		out[i] = r.proto(me, reactions[r.id])
	}
	return out, nil
}

// SendMessage posts a message (the interceptor checked send_messages).
func (s *Service) SendMessage(ctx context.Context, req *connect.Request[chatv1.SendMessageRequest]) (*connect.Response[chatv1.SendMessageResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	c, err := parseConversation(req.Msg.Conversation)
	if err != nil {
		return nil, err
	}
	content, err := validContent(req.Msg.Content)
	if err != nil {
		return nil, err
	}
	var replyTo *uuid.UUID
	if req.Msg.ReplyToId != "" {
		id, err := parseID("reply_to_id", req.Msg.ReplyToId)
		if err != nil {
			return nil, err
		}
		replyTo = &id
	}
	if utf8.RuneCountInString(req.Msg.Nonce) > maxNonce || strings.ContainsRune(req.Msg.Nonce, 0) {
		return nil, invalid("nonce: at most %d characters", maxNonce)
	}
	if err := s.requireTextChannel(ctx, c, req.Header()); err != nil {
		return nil, err
	}
	m, err := s.gate(ctx, p, c, parseMentions(content), freshness(req.Header()))
	if err != nil {
		return nil, s.internal(ctx, "send", err)
	}
	row, duplicate, err := s.insert(ctx, p.UserID, c, content, replyTo, req.Msg.Nonce, m, tokenOf(req.Header()))
	if err != nil {
		return nil, s.internal(ctx, "send", err)
	}
	if duplicate {
		first, err := getMessage(ctx, s.db, c, row.id)
		if err != nil {
			return nil, s.internal(ctx, "send", err)
		}
		msgs, err := protos(ctx, s.db, []messageRow{first}, p.UserID)
		if err != nil {
			return nil, s.internal(ctx, "send", err)
		}
		return connect.NewResponse(&chatv1.SendMessageResponse{Message: msgs[0], Duplicate: true}), nil
	}
	msg := row.proto(p.UserID, nil)
	// The stream's log has it already, from the same transaction.
	s.committed(ctx, row.created(tokenOf(req.Header())))
	return connect.NewResponse(&chatv1.SendMessageResponse{Message: msg}), nil
}

// insert stores a message in one transaction, under the conversation's
// lock: the id is taken and committed in order (nextID), a nonce already
// used by the author there answers with its message (duplicate), and the
// author's read state moves to it, and the stream's log records it (to be
// filtered at least as fresh as token).
//
// Most sends take one round trip (insertAtOnce): the id is this clock's,
// and one statement, run once the lock is held, writes everything if the
// nonce is new, the reply is there and the id is after the conversation's
// last. When the id is not (another instance's clock is ahead, or a send
// that took its id later committed first), nothing is written and the send
// is made again in two round trips, the id taken after reading the last
// (insertInTurn).
func (s *Service) insert(ctx context.Context, author string, c conversation, content string, replyTo *uuid.UUID, nonce string, m mentions, token authz.ZedToken) (messageRow, bool, error) {
	var noncePtr *string
	if nonce != "" {
		noncePtr = &nonce
	}
	row, duplicate, inOrder, err := s.insertAtOnce(ctx, author, c, content, replyTo, noncePtr, m, token)
	if err != nil || inOrder {
		return row, duplicate, err
	}
	return s.insertInTurn(ctx, author, c, content, replyTo, noncePtr, m, token)
}

// insertAtOnce is insert in one round trip; inOrder is false when the id it
// took is not after the conversation's last, and it wrote nothing.
func (s *Service) insertAtOnce(ctx context.Context, author string, c conversation, content string, replyTo *uuid.UUID, nonce *string, m mentions, token authz.ZedToken) (row messageRow, duplicate, inOrder bool, err error) {
	row = messageRow{id: newID(), conv: c, authorID: author, content: content, createdAt: time.Now().UTC().Truncate(time.Microsecond),
		replyTo: replyTo, nonce: nonce, mentions: m}
	conv, audience, ev := streamEvent(row.created(token))
	payload, err := proto.Marshal(ev)
	if err != nil {
		return messageRow{}, false, false, err
	}
	var (
		prior    *uuid.UUID
		replyOK  bool
		inserted bool
	)
	err = s.pipelined(ctx, func(conn *pgxpool.Conn) (bool, error) {
		b := &pgx.Batch{}
		b.Queue(`BEGIN`)
		// The lock first, on its own: the statement after it reads the
		// last id in a snapshot taken once the lock is held.
		b.Queue(lockConversationSQL, c.String())
		b.Queue(sendAtOnceSQL, string(c.typ), c.id, author, nonce, replyTo, row.id, content,
			m.everyone, m.here, nonNil(m.users), nonNil(m.roles), row.createdAt, nonNil(m.pinged(author)),
			conv, audience, string(token), payload)
		b.Queue(`COMMIT`)
		results := conn.SendBatch(ctx, b)
		err := func() error {
			for range 2 { // BEGIN, the lock
				if _, err := results.Exec(); err != nil {
					return err
				}
			}
			if err := results.QueryRow().Scan(&prior, &replyOK, &inOrder, &inserted); err != nil {
				return err
			}
			_, err := results.Exec() // COMMIT
			return err
		}()
		if cerr := results.Close(); err == nil {
			err = cerr
		}
		return err == nil, err
	})
	switch {
	case err != nil:
		return messageRow{}, false, false, err
	case prior != nil:
		return messageRow{id: *prior}, true, true, nil
	case !replyOK:
		return messageRow{}, false, true, invalid("reply_to_id: no such message in this conversation")
	case !inserted:
		return messageRow{}, false, false, nil
	}
	return row, false, true, nil
}

// sendAtOnceSQL writes a message, its pings, the conversation's last id,
// the author's read state and the stream's event, all or nothing: only
// when the nonce ($4, if any) is new to the author there, the message
// replied to ($5, if any) is in the conversation, and the id ($6) is after
// the conversation's last. It answers which held: the earlier message of
// the nonce, the reply found, the id in order, and whether it wrote.
const sendAtOnceSQL = `WITH conv AS (
	SELECT last_id FROM conversations WHERE conv_type = $1 AND conv_id = $2
), verdict AS (
	SELECT (SELECT id FROM messages WHERE $4::text IS NOT NULL AND author_id = $3 AND conv_type = $1 AND conv_id = $2 AND nonce = $4 LIMIT 1) AS prior_id,
		($5::uuid IS NULL OR EXISTS (SELECT 1 FROM messages WHERE id = $5 AND conv_type = $1 AND conv_id = $2)) AS reply_ok,
		NOT EXISTS (SELECT 1 FROM conv WHERE last_id >= $6::uuid) AS in_order
), m AS (
	INSERT INTO messages (id, conv_type, conv_id, author_id, content, reply_to, nonce, mention_everyone, mention_here, mention_users, mention_roles, created_at)
	SELECT $6, $1, $2, $3, $7, $5, $4, $8, $9, $10, $11, $12 FROM verdict WHERE prior_id IS NULL AND reply_ok AND in_order
	RETURNING id
), pinged AS (
	INSERT INTO message_mentions (user_id, conv_type, conv_id, message_id) SELECT u, $1, $2, m.id FROM m, unnest($13::text[]) u
), last AS (
	INSERT INTO conversations (conv_type, conv_id, last_id) SELECT $1, $2, id FROM m
	ON CONFLICT (conv_type, conv_id) DO UPDATE SET last_id = EXCLUDED.last_id
), read AS (
	INSERT INTO read_states (user_id, conv_type, conv_id, last_read_id) SELECT $3, $1, $2, id FROM m
	ON CONFLICT (user_id, conv_type, conv_id) DO UPDATE SET last_read_id = GREATEST(read_states.last_read_id, EXCLUDED.last_read_id), updated_at = now()
), logged AS (
	INSERT INTO stream_events (conversation, audience, zed_token, payload) SELECT $14, $15, $16, $17 FROM m
)
SELECT prior_id, reply_ok, in_order, EXISTS (SELECT 1 FROM m) FROM verdict`

// insertInTurn is insert in two round trips: the last id read under the
// lock, then the id taken after it and everything written.
func (s *Service) insertInTurn(ctx context.Context, author string, c conversation, content string, replyTo *uuid.UUID, noncePtr *string, m mentions, token authz.ZedToken) (messageRow, bool, error) {
	var (
		row       messageRow
		duplicate bool
	)
	// Two round trips: the transaction's reads, opened by its BEGIN, then
	// its writes, closed by its COMMIT.
	err := s.pipelined(ctx, func(conn *pgxpool.Conn) (bool, error) {
		b := &pgx.Batch{}
		b.Queue(`BEGIN`)
		b.Queue(lockConversationSQL, c.String())
		b.Queue(`SELECT last_id FROM conversations WHERE conv_type = $1 AND conv_id = $2`, string(c.typ), c.id)
		if noncePtr != nil {
			b.Queue(`SELECT id FROM messages WHERE author_id = $1 AND conv_type = $2 AND conv_id = $3 AND nonce = $4`, author, string(c.typ), c.id, *noncePtr)
		}
		if replyTo != nil {
			b.Queue(`SELECT EXISTS (SELECT 1 FROM messages WHERE id = $1 AND conv_type = $2 AND conv_id = $3)`, *replyTo, string(c.typ), c.id)
		}
		results := conn.SendBatch(ctx, b)
		var (
			last, earlier uuid.UUID
			found         bool
			replyExists   = true
		)
		err := func() error {
			for range 2 { // BEGIN, the lock
				if _, err := results.Exec(); err != nil {
					return err
				}
			}
			if err := results.QueryRow().Scan(&last); err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			if noncePtr != nil {
				err := results.QueryRow().Scan(&earlier)
				if err != nil && !errors.Is(err, pgx.ErrNoRows) {
					return err
				}
				found = err == nil
			}
			if replyTo != nil {
				return results.QueryRow().Scan(&replyExists)
			}
			return nil
		}()
		if cerr := results.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return false, err
		}
		if found {
			row.id, duplicate = earlier, true
			return false, nil // nothing written: rolled back
		}
		if !replyExists {
			return false, invalid("reply_to_id: no such message in this conversation")
		}
		row = messageRow{id: nextID(last), conv: c, authorID: author, content: content, createdAt: time.Now().UTC().Truncate(time.Microsecond),
			replyTo: replyTo, nonce: noncePtr, mentions: m}
		b = &pgx.Batch{}
		b.Queue(`INSERT INTO messages (id, conv_type, conv_id, author_id, content, reply_to, nonce, mention_everyone, mention_here, mention_users, mention_roles, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			row.id, string(c.typ), c.id, author, content, replyTo, noncePtr, m.everyone, m.here, nonNil(m.users), nonNil(m.roles), row.createdAt)
		if pinged := m.pinged(author); len(pinged) > 0 {
			b.Queue(`INSERT INTO message_mentions (user_id, conv_type, conv_id, message_id) SELECT u, $2, $3, $4 FROM unnest($1::text[]) u`,
				pinged, string(c.typ), c.id, row.id)
		}
		b.Queue(`INSERT INTO conversations (conv_type, conv_id, last_id) VALUES ($1, $2, $3)
			ON CONFLICT (conv_type, conv_id) DO UPDATE SET last_id = EXCLUDED.last_id`, string(c.typ), c.id, row.id)
		b.Queue(`INSERT INTO read_states (user_id, conv_type, conv_id, last_read_id) VALUES ($1, $2, $3, $4)
			ON CONFLICT (user_id, conv_type, conv_id) DO UPDATE SET last_read_id = GREATEST(read_states.last_read_id, EXCLUDED.last_read_id), updated_at = now()`,
			author, string(c.typ), c.id, row.id)
		conv, audience, ev := streamEvent(row.created(token))
		if err := queueEvent(b, conv, audience, token, ev); err != nil {
			return false, err
		}
		b.Queue(`COMMIT`)
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			return false, err
		}
		return true, nil
	})
	return row, duplicate, err
}

// lockConversation takes the conversation's lock (a PostgreSQL advisory
// lock, held to the commit), first in the transaction of a change of its
// messages, before anything is written: the transaction id, hence the place
// of the change's events in the stream's log, is then given under the
// lock, so a conversation's events are in the log in the order their
// changes committed (an edit never overtakes the delete that follows it).
func lockConversation(ctx context.Context, tx pgx.Tx, c conversation) error {
	_, err := tx.Exec(ctx, lockConversationSQL, c.String())
	return err
}

// lockConversationSQL takes the lock of the conversation named $1.
const lockConversationSQL = `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`

// pipelined runs f on a connection of its own, for a transaction that f
// opens and closes in pipelined batches (BEGIN first, COMMIT last);
// unless f says it committed, what it left open is rolled back (harmless
// when nothing is; a broken connection is dropped by the pool on release).
func (s *Service) pipelined(ctx context.Context, f func(conn *pgxpool.Conn) (committed bool, err error)) error {
	conn, err := s.db.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	committed, err := f(conn)
	if !committed {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
	}
	return err
}

// created is the event of a message just sent.
func (r messageRow) created(token authz.ZedToken) Event {
	nonce := ""
	if r.nonce != nil {
		nonce = *r.nonce
	}
	return Event{Kind: MessageCreated, ZedToken: token, Conversation: r.conv.String(), ActorID: r.authorID, MessageID: r.id.String(),
		Message: r.proto("", nil), Nonce: nonce}
}

// GetMessage returns a message (the interceptor checked read_message_history).
func (s *Service) GetMessage(ctx context.Context, req *connect.Request[chatv1.GetMessageRequest]) (*connect.Response[chatv1.GetMessageResponse], error) {
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
	row, err := getMessage(ctx, s.db, c, id)
	if err != nil {
		return nil, s.internal(ctx, "get message", err)
	}
	msgs, err := protos(ctx, s.db, []messageRow{row}, p.UserID)
	if err != nil {
		return nil, s.internal(ctx, "get message", err)
	}
	return connect.NewResponse(&chatv1.GetMessageResponse{Message: msgs[0]}), nil
}

// ListMessages pages through history, newest first (the interceptor
// checked read_message_history). Ids are given in commit order within a
// conversation, so pages never skip or repeat a message while others are
// sent.
func (s *Service) ListMessages(ctx context.Context, req *connect.Request[chatv1.ListMessagesRequest]) (*connect.Response[chatv1.ListMessagesResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	c, err := parseConversation(req.Msg.Conversation)
	if err != nil {
		return nil, err
	}
	limit := int(req.Msg.Limit)
	switch {
	case limit == 0:
		limit = defaultPage
	case limit > maxPage:
		limit = maxPage
	}
	var cursor uuid.UUID
	switch k := req.Msg.Cursor.(type) {
	case *chatv1.ListMessagesRequest_Before:
		cursor, err = parseID("before", k.Before)
	case *chatv1.ListMessagesRequest_After:
		cursor, err = parseID("after", k.After)
	case *chatv1.ListMessagesRequest_Around:
		cursor, err = parseID("around", k.Around)
	}
	if err != nil {
		return nil, err
	}
	const base = `SELECT ` + messageColumns + ` FROM messages m WHERE m.conv_type = $1 AND m.conv_id = $2 `
	var out []*chatv1.Message
	err = pgx.BeginTxFunc(ctx, s.db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		page := func(sql string, args ...any) ([]messageRow, error) {
			rows, err := tx.Query(ctx, base+sql, append([]any{string(c.typ), c.id}, args...)...)
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rows, func(r pgx.CollectableRow) (messageRow, error) { return scanMessage(r) })
		}
		var rows []messageRow
		var err error
		switch req.Msg.Cursor.(type) {
		case nil:
			rows, err = page(`ORDER BY m.id DESC LIMIT $3`, limit)
		case *chatv1.ListMessagesRequest_Before:
			rows, err = page(`AND m.id < $3 ORDER BY m.id DESC LIMIT $4`, cursor, limit)
		case *chatv1.ListMessagesRequest_After:
			rows, err = page(`AND m.id > $3 ORDER BY m.id ASC LIMIT $4`, cursor, limit)
			slices.Reverse(rows)
		case *chatv1.ListMessagesRequest_Around:
			var newer, older []messageRow
			if newer, err = page(`AND m.id > $3 ORDER BY m.id ASC LIMIT $4`, cursor, limit/2); err != nil {
				return err
			}
			slices.Reverse(newer)
			older, err = page(`AND m.id <= $3 ORDER BY m.id DESC LIMIT $4`, cursor, limit-len(newer))
			rows = append(newer, older...)
		}
		if err != nil {
			return err
		}
		out, err = protos(ctx, tx, rows, p.UserID)
		return err
	})
	if err != nil {
		return nil, s.internal(ctx, "list messages", err)
	}
	return connect.NewResponse(&chatv1.ListMessagesResponse{Messages: out}), nil
}

// EditMessage replaces a message's text: its author's, while they see the
// conversation (the interceptor checked view_channel; message#edit_message
// is author & channel->view_channel).
func (s *Service) EditMessage(ctx context.Context, req *connect.Request[chatv1.EditMessageRequest]) (*connect.Response[chatv1.EditMessageResponse], error) {
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
	content, err := validContent(req.Msg.Content)
	if err != nil {
		return nil, err
	}
	author, err := authorOf(ctx, s.db, c, id)
	if err != nil {
		return nil, s.internal(ctx, "edit message", err)
	}
	if !rightsOn(conversationRights{view: true}, author == p.UserID).edit {
		return nil, connect.NewError(connect.CodePermissionDenied, errors.New("only its author edits a message"))
	}
	m, err := s.gate(ctx, p, c, parseMentions(content), freshness(req.Header()))
	if err != nil {
		return nil, s.internal(ctx, "edit message", err)
	}
	var (
		msg   *chatv1.Message
		event Event
	)
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if err := lockConversation(ctx, tx, c); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE messages SET content = $4, edited_at = clock_timestamp(), mention_everyone = $5, mention_here = $6,
			mention_users = $7, mention_roles = $8 WHERE id = $1 AND conv_type = $2 AND conv_id = $3`,
			id, string(c.typ), c.id, content, m.everyone, m.here, nonNil(m.users), nonNil(m.roles))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return errNotFound // deleted meanwhile
		}
		if _, err := tx.Exec(ctx, `DELETE FROM message_mentions WHERE message_id = $1`, id); err != nil {
			return err
		}
		if pinged := m.pinged(author); len(pinged) > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO message_mentions (user_id, conv_type, conv_id, message_id) SELECT u, $2, $3, $4 FROM unnest($1::text[]) u`,
				pinged, string(c.typ), c.id, id); err != nil {
				return err
			}
		}
		row, err := getMessage(ctx, tx, c, id)
		if err != nil {
			return err
		}
		msgs, err := protos(ctx, tx, []messageRow{row}, p.UserID)
		if err != nil {
			return err
		}
		msg = msgs[0]
		event = Event{Kind: MessageUpdated, ZedToken: tokenOf(req.Header()), Conversation: c.String(), ActorID: p.UserID, MessageID: msg.Id, Message: row.proto("", shared(msg.Reactions))}
		return recordIn(ctx, tx, event)
	})
	if err != nil {
		return nil, s.internal(ctx, "edit message", err)
	}
	s.committed(ctx, event)
	return connect.NewResponse(&chatv1.EditMessageResponse{Message: msg}), nil
}

// DeleteMessage deletes a message with its reactions, pin and mentions
// (message#delete_message: its author while they see the conversation,
// which the interceptor checked, or manage_messages, or moderate_as_staff).
func (s *Service) DeleteMessage(ctx context.Context, req *connect.Request[chatv1.DeleteMessageRequest]) (*connect.Response[chatv1.DeleteMessageResponse], error) {
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
	author, err := authorOf(ctx, s.db, c, id)
	if err != nil {
		return nil, s.internal(ctx, "delete message", err)
	}
	rights := conversationRights{view: true}
	if author != p.UserID {
		if rights, err = s.conversationRightsOf(ctx, p.Subject(), c, freshness(req.Header()), permManageMessages, permStaff); err != nil {
			return nil, s.internal(ctx, "delete message", err)
		}
		rights.view = true
	}
	if !rightsOn(rights, author == p.UserID).delete {
		return nil, connect.NewError(connect.CodePermissionDenied, errors.New("you lack manage_messages here, and this message is not yours"))
	}
	event := Event{Kind: MessageDeleted, ZedToken: tokenOf(req.Header()), Conversation: c.String(), ActorID: p.UserID, MessageID: id.String()}
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if err := lockConversation(ctx, tx, c); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM messages WHERE id = $1 AND conv_type = $2 AND conv_id = $3`, id, string(c.typ), c.id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return connect.NewError(connect.CodeNotFound, errors.New("no such message in this conversation"))
		}
		return recordIn(ctx, tx, event)
	})
	if err != nil {
		return nil, s.internal(ctx, "delete message", err)
	}
	s.committed(ctx, event)
	return connect.NewResponse(&chatv1.DeleteMessageResponse{}), nil
}
