package notification

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/beepchat/beep/authz"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	notificationv1 "github.com/beepchat/beep/gen/beep/notification/v1"
)

// The kinds of notifications, as stored.
const (
	kindMention = "mention"
	kindReply   = "reply"
)

// leaderLock is the advisory lock whose holder consumes the feed.
var leaderLock = func() int64 {
	h := fnv.New64a()
	h.Write([]byte("beep_notification_feed"))
	return int64(h.Sum64())
}()

// leading counts the instances of this process that consume (tests).
var leading atomic.Int32

// Run consumes the chat service's feed until ctx ends, while this
// instance holds the lead: one instance at a time, elected by a
// session-level advisory lock on a dedicated connection, which another
// instance takes over when the holder dies (its session ends with it).
func (s *Service) Run(ctx context.Context) error {
	ctx = authz.WithPrincipal(ctx, authz.ServicePrincipal(ServiceName))
	for ctx.Err() == nil {
		err := s.lead(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.log.WarnContext(ctx, "notification feed", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(s.retry):
		}
	}
	return nil
}

// lead takes the lead if nobody holds it and consumes while it holds it.
func (s *Service) lead(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, s.db.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, leaderLock).Scan(&got); err != nil {
		return err
	}
	if !got {
		return nil // another instance consumes
	}
	s.log.InfoContext(ctx, "notification feed: this instance consumes")
	leading.Add(1)
	defer leading.Add(-1)
	ctx, cancel := context.WithCancelCause(ctx)
	var pinger sync.WaitGroup
	defer pinger.Wait() // before the connection closes (deferred first)
	defer cancel(nil)
	// The lead is lost with the session: stop consuming as soon as the
	// lock's connection fails.
	pinger.Add(1)
	go func() {
		defer pinger.Done()
		t := time.NewTicker(s.retry)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := conn.Ping(ctx); err != nil && ctx.Err() == nil {
					cancel(fmt.Errorf("the lead's connection failed: %w", err))
					return
				}
			}
		}
	}()
	for ctx.Err() == nil {
		err := s.follow(ctx)
		if ctx.Err() != nil {
			break
		}
		s.log.WarnContext(ctx, "notification feed: following", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(s.retry):
		}
	}
	if cause := context.Cause(ctx); !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}

// follow follows the feed from the cursor until it fails.
func (s *Service) follow(ctx context.Context) error {
	after, err := s.cursor(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	stream, err := s.feed.Follow(ctx, connect.NewRequest(&chatv1.FollowRequest{After: after}))
	if err != nil {
		cancel()
		return err
	}
	defer func() {
		cancel()
		_ = stream.Close()
	}()
	var (
		saved   = time.Now() // when the cursor was last written
		unsaved string       // handled, changing nothing, the cursor not moved yet
	)
	for stream.Receive() {
		msg := stream.Msg()
		if start := msg.GetStart(); start != nil {
			if start.Missed {
				s.log.WarnContext(ctx, "notification feed: events after the cursor were pruned from the chat log before they were handled; going on from the oldest kept", "after", after)
			}
			continue
		}
		e := msg.GetEvent()
		if e == nil {
			continue
		}
		stored, err := s.handle(ctx, e)
		if err != nil {
			return err
		}
		if stored {
			saved, unsaved = time.Now(), ""
			continue
		}
		// Most events (a message that mentions nobody) change nothing
		// here: their position is written at most once per cursorEvery,
		// not in a transaction each. After a restart the consumer handles
		// those events again, which changes nothing again.
		unsaved = e.GetEvent().GetId()
		if time.Since(saved) >= cursorEvery {
			if err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error { return advance(ctx, tx, unsaved) }); err != nil {
				return err
			}
			saved, unsaved = time.Now(), ""
		}
	}
	if err := stream.Err(); err != nil {
		return err
	}
	return errors.New("the feed ended")
}

// cursor is the position after which the feed is followed ("" at first:
// from the oldest event the chat service keeps).
func (s *Service) cursor(ctx context.Context) (string, error) {
	var pos string
	err := s.db.QueryRow(ctx, `SELECT xid::text || '.' || id FROM feed_cursor`).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return pos, err
}

// advance records that the feed was handled through pos, in tx; the
// cursor only moves forward (a former leader cannot move it back).
func advance(ctx context.Context, tx pgx.Tx, pos string) error {
	x, i, ok := strings.Cut(pos, ".")
	xid, err1 := strconv.ParseUint(x, 10, 64)
	id, err2 := strconv.ParseInt(i, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return fmt.Errorf("feed: %q is not an event id", pos)
	}
	_, err := tx.Exec(ctx, `INSERT INTO feed_cursor (xid, id) VALUES ($1, $2)
		ON CONFLICT (one) DO UPDATE SET xid = excluded.xid, id = excluded.id
		WHERE (feed_cursor.xid, feed_cursor.id) < (excluded.xid, excluded.id)`, strconv.FormatUint(xid, 10), id)
	return err
}

// made is a notification just committed, to deliver.
type made struct {
	user string
	n    *notificationv1.Notification
}

// cursorEvery is how often, at most, the consumer writes its cursor for
// events that change nothing.
const cursorEvery = time.Second

// handle handles one event of the feed: a new message notifies, a deleted
// one takes its notifications away; the cursor moves in the same
// transaction. It stores nothing (stored is false) for an event that
// changes nothing. An error (the graph unavailable) leaves the cursor: the
// event is handled again when the feed is followed again.
func (s *Service) handle(ctx context.Context, e *chatv1.FeedEvent) (stored bool, err error) {
	ev := e.GetEvent()
	var (
		notes []made
		msg   *chatv1.Message
		apply func(pgx.Tx) error
	)
	switch {
	case ev.GetMessageCreated() != nil:
		msg = ev.GetMessageCreated().GetMessage()
		var err error
		if notes, err = s.notifications(ctx, e, msg); err != nil {
			return false, err
		}
		if len(notes) == 0 {
			return false, nil
		}
		apply = func(tx pgx.Tx) error {
			kept := notes[:0]
			for _, m := range notes {
				tag, err := tx.Exec(ctx, `INSERT INTO notifications (id, user_id, kind, conversation, server_id, message_id, author_id, created_at)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (user_id, message_id, kind) DO NOTHING`,
					m.n.Id, m.user, kindName(m.n.Kind), m.n.Conversation, m.n.ServerId, m.n.MessageId, m.n.AuthorId, m.n.CreatedAt.AsTime())
				if err != nil {
					return err
				}
				if tag.RowsAffected() == 1 {
					kept = append(kept, m)
				}
			}
			notes = kept
			return nil
		}
	case ev.GetMessageDeleted() != nil:
		id, err := uuid.Parse(ev.GetMessageDeleted().GetMessageId())
		if err != nil {
			break
		}
		apply = func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `DELETE FROM notifications WHERE message_id = $1`, id)
			return err
		}
	}
	if apply == nil {
		return false, nil
	}
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if err := apply(tx); err != nil {
			return err
		}
		return advance(ctx, tx, ev.GetId())
	})
	if err != nil {
		return false, err
	}
	for _, m := range notes {
		s.deliver(ctx, m, msg)
	}
	return true, nil
}

func kindName(k notificationv1.NotificationKind) string {
	if k == notificationv1.NotificationKind_NOTIFICATION_KIND_REPLY {
		return kindReply
	}
	return kindMention
}

// deliver puts a committed notification on its recipient's stream and
// tells the Pusher. A failure is logged: the notification stands, and the
// recipient lists it.
func (s *Service) deliver(ctx context.Context, m made, msg *chatv1.Message) {
	created := &chatv1.NotificationCreated{NotificationId: m.n.Id, Kind: kindName(m.n.Kind), Conversation: m.n.Conversation,
		ServerId: m.n.ServerId, Message: msg}
	_, err := s.feed.Deliver(ctx, connect.NewRequest(&chatv1.DeliverRequest{UserId: m.user, Conversation: m.n.Conversation,
		Event: &chatv1.StreamEvent{Event: &chatv1.StreamEvent_NotificationCreated{NotificationCreated: created}}}))
	if err != nil && ctx.Err() == nil {
		s.log.WarnContext(ctx, "notification: delivering on the stream", "user", m.user, "notification", m.n.Id, "err", err)
	}
	s.pusher.Push(ctx, m.user, m.n, msg)
}

// notifications are the notifications a new message makes: for the people
// it mentions (by name; by a role, @everyone or @here when its mentions
// ping them) and the author of the message it replies to, never its
// author, and only for those who view the conversation as of the event,
// have not blocked the author, and have not muted it.
func (s *Service) notifications(ctx context.Context, e *chatv1.FeedEvent, msg *chatv1.Message) ([]made, error) {
	author, conv := msg.GetAuthorId(), msg.GetConversation()
	if conv == "" {
		conv = e.Conversation
	}
	typ, convID, _ := strings.Cut(conv, ":")
	if author == "" || convID == "" {
		return nil, nil
	}
	consistency := authz.FullyConsistent()
	if e.ZedToken != "" {
		consistency = authz.AtLeastAsFresh(authz.ZedToken(e.ZedToken))
	}
	where, err := s.places.of(ctx, conv)
	if err != nil {
		return nil, err
	}
	kinds := map[string]string{} // user -> kind
	var order []string
	add := func(u, kind string) {
		if u == "" || u == author {
			return
		}
		if _, ok := kinds[u]; !ok {
			order = append(order, u)
			kinds[u] = kind
		}
	}
	mentions := msg.GetMentions()
	for _, u := range mentions.GetUserIds() {
		add(u, kindMention)
	}
	if mentions.GetEveryone() || mentions.GetHere() {
		// Everyone who views the conversation: a server's members, a DM's
		// people; for @here alone, those of them online as it was sent.
		perm, id := authz.Server.Member.Name, where.server
		resource := authz.TypeServer
		if authz.ObjectType(typ) == authz.TypeDmChannel {
			resource, perm, id = authz.TypeDmChannel, "view_channel", convID
		}
		if id != "" {
			users, err := s.subjects(ctx, authz.Permission{ResourceType: resource, Name: perm}, id, consistency)
			if err != nil {
				return nil, err
			}
			if !mentions.GetEveryone() {
				if users, err = s.online(ctx, users, msg.GetCreatedAt()); err != nil {
					return nil, err
				}
			}
			for _, u := range users {
				add(u, kindMention)
			}
		}
	}
	for _, role := range mentions.GetRoleIds() {
		users, err := s.subjects(ctx, authz.Permission{ResourceType: authz.TypeRole, Name: authz.Role.Member.Name}, role, consistency)
		if err != nil {
			return nil, err
		}
		for _, u := range users {
			add(u, kindMention)
		}
	}
	add(e.ReplyToAuthorId, kindReply)
	if len(order) == 0 {
		return nil, nil
	}
	allowed, err := s.allowed(ctx, authz.ObjectType(typ), convID, author, order, consistency)
	if err != nil {
		return nil, err
	}
	muted, err := s.muted(ctx, allowed, conv, where)
	if err != nil {
		return nil, err
	}
	var out []made
	for _, u := range allowed {
		if muted[u] {
			continue
		}
		kind := notificationv1.NotificationKind_NOTIFICATION_KIND_MENTION
		if kinds[u] == kindReply {
			kind = notificationv1.NotificationKind_NOTIFICATION_KIND_REPLY
		}
		created := msg.GetCreatedAt()
		if created == nil {
			created = timestamppb.Now()
		}
		out = append(out, made{user: u, n: &notificationv1.Notification{Id: uuid.Must(uuid.NewV7()).String(), Kind: kind,
			Conversation: conv, ServerId: where.server, MessageId: msg.GetId(), AuthorId: author, CreatedAt: created}})
	}
	return out, nil
}

// subjects are the users holding perm on the resource id.
func (s *Service) subjects(ctx context.Context, perm authz.Permission, id string, consistency authz.Consistency) ([]string, error) {
	found, err := s.authz.LookupSubjects(ctx, perm, id, authz.TypeUser, consistency)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(found.Found))
	for _, f := range found.Found {
		if !f.Conditional {
			out = append(out, f.ID)
		}
	}
	return out, nil
}

// onlineChunk is how many people one Online call asks about.
const onlineChunk = 1000

// online keeps those of users who were online at (now when unknown), as
// the chat service, whose streams they hold, recorded.
func (s *Service) online(ctx context.Context, users []string, at *timestamppb.Timestamp) ([]string, error) {
	if at == nil {
		at = timestamppb.Now()
	}
	var out []string
	for start := 0; start < len(users); start += onlineChunk {
		res, err := s.feed.Online(ctx, connect.NewRequest(&chatv1.OnlineRequest{UserIds: users[start:min(start+onlineChunk, len(users))], At: at}))
		if err != nil {
			return nil, fmt.Errorf("who is online: %w", err)
		}
		out = append(out, res.Msg.UserIds...)
	}
	return out, nil
}

// checkChunk is how many users one CheckBulk asks about (two checks each).
const checkChunk = 50

// allowed keeps the users who view the conversation and have not blocked
// the author.
func (s *Service) allowed(ctx context.Context, typ authz.ObjectType, convID, author string, users []string, consistency authz.Consistency) ([]string, error) {
	view := authz.Permission{ResourceType: typ, Name: "view_channel"}
	var out []string
	for start := 0; start < len(users); start += checkChunk {
		chunk := users[start:min(start+checkChunk, len(users))]
		checks := make([]authz.Check, 0, 2*len(chunk))
		for _, u := range chunk {
			checks = append(checks,
				authz.Check{Subject: authz.UserSubject(u), Permission: view, ResourceID: convID},
				authz.Check{Subject: authz.UserSubject(author), Permission: authz.Permission{ResourceType: authz.TypeUser, Name: authz.User.Blocked.Name}, ResourceID: u})
		}
		decisions, err := s.authz.CheckBulk(ctx, checks, consistency)
		if err != nil {
			return nil, err
		}
		for i, u := range chunk {
			if decisions[2*i].Allowed && !decisions[2*i+1].Allowed {
				out = append(out, u)
			}
		}
	}
	return out, nil
}

// muted are the users who muted the conversation, its thread's channel or
// its server.
func (s *Service) muted(ctx context.Context, users []string, conv string, where place) (map[string]bool, error) {
	if len(users) == 0 {
		return nil, nil
	}
	targets := []string{conv}
	if where.channel != "" {
		targets = append(targets, where.channel)
	}
	if where.server != "" {
		targets = append(targets, string(authz.TypeServer)+":"+where.server)
	}
	rows, err := s.db.Query(ctx, `SELECT DISTINCT user_id FROM mutes
		WHERE user_id = ANY($1) AND target = ANY($2) AND (until IS NULL OR until > now())`, users, targets)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out[u] = true
	}
	return out, rows.Err()
}
