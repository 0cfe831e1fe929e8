// Package notification is Beep's notification service: each person's
// inbox of the mentions of them and the replies to their messages, counted
// per server and per conversation, and what they muted.
//
// It learns of messages by following the chat service's event log over a
// direct server stream (beep.chat.v1.EventFeedService Follow), one instance
// at a time (a PostgreSQL advisory lock elects it), and records how far it
// went in the same transaction as the notifications it makes, so a restart
// neither loses nor repeats one. New notifications reach their recipient's
// stream through the chat service (EventFeedService Deliver) and a Pusher,
// the port for mobile push. No broker is involved. docs/notifications.md
// tells the whole story.
package notification

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	"github.com/beepchat/beep/gen/beep/chat/v1/chatv1connect"
	notificationv1 "github.com/beepchat/beep/gen/beep/notification/v1"
	"github.com/beepchat/beep/gen/beep/notification/v1/notificationv1connect"
	"github.com/beepchat/beep/services/notification/migrations"
)

// ServiceName is the principal the service acts as towards the chat
// service's internal API (authz.ServicePrincipal).
const ServiceName = "notification"

// Service implements notificationv1connect.NotificationServiceHandler and
// runs the feed's consumer (Run).
type Service struct {
	db     *pgxpool.Pool
	authz  *authz.Client
	log    *slog.Logger
	feed   chatv1connect.EventFeedServiceClient
	pusher Pusher
	retry  time.Duration
	places *placeCache
}

var _ notificationv1connect.NotificationServiceHandler = (*Service)(nil)

// Config is what the notification service runs with.
type Config struct {
	DB    *pgxpool.Pool
	Authz *authz.Client
	Log   *slog.Logger
	// Feed is the chat service's internal event feed: its generated client,
	// signing the context's principal (connectauthz.Forward). Required.
	Feed chatv1connect.EventFeedServiceClient
	// Pusher is told of every notification once it is committed (the port
	// for mobile push); nil: nobody is.
	Pusher Pusher
	// Retry is how long the consumer waits before trying again to take the
	// lead or to follow the feed (default 2 seconds).
	Retry time.Duration
}

// New migrates the database and returns the service; Run it to consume
// the feed.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Feed == nil {
		return nil, errors.New("notification: the chat service's feed client is required")
	}
	if err := migrations.Up(ctx, cfg.DB); err != nil {
		return nil, err
	}
	if cfg.Pusher == nil {
		cfg.Pusher = NopPusher{}
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 2 * time.Second
	}
	return &Service{db: cfg.DB, authz: cfg.Authz, log: cfg.Log, feed: cfg.Feed, pusher: cfg.Pusher, retry: cfg.Retry,
		places: newPlaceCache(cfg.Authz)}, nil
}

// Handler returns the path and the Connect handler of the service.
func (s *Service) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	return notificationv1connect.NewNotificationServiceHandler(s, opts...)
}

func caller(ctx context.Context) (authz.Principal, error) {
	p, ok := authz.PrincipalFrom(ctx)
	if !ok {
		return p, connect.NewError(connect.CodeUnauthenticated, errors.New("sign in first"))
	}
	return p, nil
}

func invalid(format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}

func parseID(field, s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return uuid.Nil, invalid("%s: not a valid id", field)
	}
	return id, nil
}

// internal maps an error to what the caller may see, logging the unexpected.
func (s *Service) internal(ctx context.Context, op string, err error) error {
	var cerr *connect.Error
	switch {
	case errors.As(err, &cerr):
		return cerr
	case errors.Is(err, authz.ErrUnavailable):
		s.log.ErrorContext(ctx, op, "err", err)
		return connect.NewError(connect.CodeUnavailable, errors.New("authorization is unavailable; try again"))
	}
	s.log.ErrorContext(ctx, op, "err", err)
	return connect.NewError(connect.CodeInternal, fmt.Errorf("%s failed", op))
}

// conversationTypes are what a notification's conversation can be, and
// muteTypes what can be muted.
var (
	conversationTypes = []string{string(authz.TypeChannel), string(authz.TypeThread), string(authz.TypeDmChannel)}
	muteTypes         = append([]string{string(authz.TypeServer)}, conversationTypes...)
)

// parseRef reads "type:<uuid>" of one of types.
func parseRef(field, ref string, types []string) (authz.Object, error) {
	obj, err := connectauthz.ParseObjectRef(ref, types)
	if err != nil {
		return obj, invalid("%s: %v", field, err)
	}
	id, err := parseID(field, obj.ID)
	if err != nil {
		return obj, err
	}
	obj.ID = id.String()
	return obj, nil
}

const (
	defaultPage = 50
	maxPage     = 100
)

const notificationColumns = `id, kind, conversation, server_id, message_id, author_id, created_at, read_at`

func scanNotification(row pgx.Row) (*notificationv1.Notification, error) {
	var (
		n        notificationv1.Notification
		id, msg  uuid.UUID
		kind     string
		created  time.Time
		readTime *time.Time
	)
	if err := row.Scan(&id, &kind, &n.Conversation, &n.ServerId, &msg, &n.AuthorId, &created, &readTime); err != nil {
		return nil, err
	}
	n.Id, n.MessageId, n.Kind, n.CreatedAt = id.String(), msg.String(), kindProto(kind), timestamppb.New(created)
	if readTime != nil {
		n.ReadAt = timestamppb.New(*readTime)
	}
	return &n, nil
}

func kindProto(k string) notificationv1.NotificationKind {
	switch k {
	case kindMention:
		return notificationv1.NotificationKind_NOTIFICATION_KIND_MENTION
	case kindReply:
		return notificationv1.NotificationKind_NOTIFICATION_KIND_REPLY
	}
	return notificationv1.NotificationKind_NOTIFICATION_KIND_UNSPECIFIED
}

// ListNotifications lists the caller's notifications, newest first.
func (s *Service) ListNotifications(ctx context.Context, req *connect.Request[notificationv1.ListNotificationsRequest]) (*connect.Response[notificationv1.ListNotificationsResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	size := int(req.Msg.PageSize)
	switch {
	case size == 0:
		size = defaultPage
	case size > maxPage:
		return nil, invalid("page_size: at most %d", maxPage)
	}
	var before *uuid.UUID
	if req.Msg.PageToken != "" {
		id, err := parseID("page_token", req.Msg.PageToken)
		if err != nil {
			return nil, err
		}
		before = &id
	}
	rows, err := s.db.Query(ctx, `SELECT `+notificationColumns+` FROM notifications
		WHERE user_id = $1 AND ($2::uuid IS NULL OR id < $2) AND (NOT $3 OR read_at IS NULL)
		ORDER BY id DESC LIMIT $4`, p.UserID, before, req.Msg.UnreadOnly, size+1)
	if err != nil {
		return nil, s.internal(ctx, "list notifications", err)
	}
	defer rows.Close()
	out := &notificationv1.ListNotificationsResponse{}
	for rows.Next() {
		n, err := scanNotification(rows)
		if err != nil {
			return nil, s.internal(ctx, "list notifications", err)
		}
		out.Notifications = append(out.Notifications, n)
	}
	if err := rows.Err(); err != nil {
		return nil, s.internal(ctx, "list notifications", err)
	}
	if len(out.Notifications) > size {
		out.Notifications = out.Notifications[:size]
		out.NextPageToken = out.Notifications[size-1].Id
	}
	// Those of conversations the caller no longer sees are left out (the
	// page may be shorter; the next one goes on from where this one read),
	// asked fully consistent: a notification is never hidden because a
	// revision older than its conversation was read.
	convs := make([]string, 0, len(out.Notifications))
	for _, n := range out.Notifications {
		convs = append(convs, n.Conversation)
	}
	visible, err := s.visible(ctx, p, convs, authz.FullyConsistent())
	if err != nil {
		return nil, s.internal(ctx, "list notifications", err)
	}
	kept := out.Notifications[:0]
	for _, n := range out.Notifications {
		if visible[n.Conversation] {
			kept = append(kept, n)
		}
	}
	out.Notifications = kept
	return connect.NewResponse(out), nil
}

// freshness is the consistency of the caller's checks: at least as fresh
// as the ZedToken they sent.
func freshness(h http.Header) authz.Consistency {
	return authz.AtLeastAsFresh(authz.ZedToken(h.Get(connectauthz.TokenHeader)))
}

// visible is which of convs the caller views now.
func (s *Service) visible(ctx context.Context, p authz.Principal, convs []string, consistency authz.Consistency) (map[string]bool, error) {
	out := map[string]bool{}
	var distinct []string
	for _, c := range convs {
		if _, seen := out[c]; !seen {
			out[c] = false
			distinct = append(distinct, c)
		}
	}
	for start := 0; start < len(distinct); start += checkChunk {
		chunk := distinct[start:min(start+checkChunk, len(distinct))]
		checks := make([]authz.Check, len(chunk))
		for i, c := range chunk {
			typ, id, _ := strings.Cut(c, ":")
			checks[i] = authz.Check{Subject: p.Subject(), Permission: authz.Permission{ResourceType: authz.ObjectType(typ), Name: "view_channel"}, ResourceID: id}
		}
		decisions, err := s.authz.CheckBulk(ctx, checks, consistency)
		if err != nil {
			return nil, err
		}
		for i, d := range decisions {
			out[chunk[i]] = d.Allowed
		}
	}
	return out, nil
}

// MarkNotificationsRead marks the caller's notifications read: those
// named, all up to one, or all of a conversation.
func (s *Service) MarkNotificationsRead(ctx context.Context, req *connect.Request[notificationv1.MarkNotificationsReadRequest]) (*connect.Response[notificationv1.MarkNotificationsReadResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	const update = `UPDATE notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL AND `
	var (
		sql string
		arg any
	)
	switch w := req.Msg.Which.(type) {
	case *notificationv1.MarkNotificationsReadRequest_Ids:
		if len(w.Ids.GetIds()) == 0 || len(w.Ids.GetIds()) > maxPage {
			return nil, invalid("ids: 1 to %d", maxPage)
		}
		ids := make([]uuid.UUID, len(w.Ids.Ids))
		for i, raw := range w.Ids.Ids {
			if ids[i], err = parseID("ids", raw); err != nil {
				return nil, err
			}
		}
		sql, arg = update+`id = ANY($2)`, ids
	case *notificationv1.MarkNotificationsReadRequest_UpToId:
		id, err := parseID("up_to_id", w.UpToId)
		if err != nil {
			return nil, err
		}
		sql, arg = update+`id <= $2`, id
	case *notificationv1.MarkNotificationsReadRequest_Conversation:
		c, err := parseRef("conversation", w.Conversation, conversationTypes)
		if err != nil {
			return nil, err
		}
		sql, arg = update+`conversation = $2`, c.String()
	default:
		return nil, invalid("name the notifications: ids, up_to_id or conversation")
	}
	tag, err := s.db.Exec(ctx, sql, p.UserID, arg)
	if err != nil {
		return nil, s.internal(ctx, "mark notifications read", err)
	}
	return connect.NewResponse(&notificationv1.MarkNotificationsReadResponse{Marked: uint32(tag.RowsAffected())}), nil
}

// GetNotificationCounts counts the caller's unread notifications.
func (s *Service) GetNotificationCounts(ctx context.Context, req *connect.Request[notificationv1.GetNotificationCountsRequest]) (*connect.Response[notificationv1.GetNotificationCountsResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `SELECT conversation, server_id, count(*) FROM notifications
		WHERE user_id = $1 AND read_at IS NULL GROUP BY conversation, server_id ORDER BY server_id, conversation`, p.UserID)
	if err != nil {
		return nil, s.internal(ctx, "count notifications", err)
	}
	var counts []*notificationv1.ConversationCount
	for rows.Next() {
		c := &notificationv1.ConversationCount{}
		var n int64
		if err := rows.Scan(&c.Conversation, &c.ServerId, &n); err != nil {
			rows.Close()
			return nil, s.internal(ctx, "count notifications", err)
		}
		c.Unread = uint32(n)
		counts = append(counts, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.internal(ctx, "count notifications", err)
	}
	convs := make([]string, len(counts))
	for i, c := range counts {
		convs[i] = c.Conversation
	}
	visible, err := s.visible(ctx, p, convs, authz.FullyConsistent()) // as in ListNotifications
	if err != nil {
		return nil, s.internal(ctx, "count notifications", err)
	}
	out := &notificationv1.GetNotificationCountsResponse{}
	servers := map[string]*notificationv1.ServerCount{}
	for _, c := range counts {
		if !visible[c.Conversation] {
			continue // a conversation the caller no longer sees
		}
		out.Conversations = append(out.Conversations, c)
		out.Total += c.Unread
		if c.ServerId == "" {
			continue
		}
		sc := servers[c.ServerId]
		if sc == nil {
			sc = &notificationv1.ServerCount{ServerId: c.ServerId}
			servers[c.ServerId] = sc
			out.Servers = append(out.Servers, sc)
		}
		sc.Unread += c.Unread
	}
	return connect.NewResponse(out), nil
}

// SetMute mutes or unmutes a server or conversation the caller sees.
func (s *Service) SetMute(ctx context.Context, req *connect.Request[notificationv1.SetMuteRequest]) (*connect.Response[notificationv1.SetMuteResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	target, err := parseRef("target", req.Msg.Target, muteTypes)
	if err != nil {
		return nil, err
	}
	var until *time.Time
	if req.Msg.Until != nil {
		if !req.Msg.Muted {
			return nil, invalid("until: only for a mute")
		}
		if err := req.Msg.Until.CheckValid(); err != nil {
			return nil, invalid("until: %v", err)
		}
		t := req.Msg.Until.AsTime()
		if !t.After(time.Now()) {
			return nil, invalid("until: in the past")
		}
		until = &t
	}
	perm := authz.Permission{ResourceType: target.Type, Name: "view_channel"}
	if target.Type == authz.TypeServer {
		perm = authz.Server.View
	}
	d, err := s.authz.Check(ctx, authz.Check{Subject: p.Subject(), Permission: perm, ResourceID: target.ID}, freshness(req.Header()))
	if err != nil {
		return nil, s.internal(ctx, "set mute", err)
	}
	if !d.Allowed {
		return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("you do not see this %s", target.Type))
	}
	out := &notificationv1.SetMuteResponse{}
	if !req.Msg.Muted {
		_, err = s.db.Exec(ctx, `DELETE FROM mutes WHERE user_id = $1 AND target = $2`, p.UserID, target.String())
	} else {
		_, err = s.db.Exec(ctx, `INSERT INTO mutes (user_id, target, until) VALUES ($1, $2, $3)
			ON CONFLICT (user_id, target) DO UPDATE SET until = excluded.until`, p.UserID, target.String(), until)
		out.Mute = &notificationv1.Mute{Target: target.String()}
		if until != nil {
			out.Mute.Until = timestamppb.New(*until)
		}
	}
	if err != nil {
		return nil, s.internal(ctx, "set mute", err)
	}
	return connect.NewResponse(out), nil
}

// ListMutes lists the caller's mutes still in force.
func (s *Service) ListMutes(ctx context.Context, _ *connect.Request[notificationv1.ListMutesRequest]) (*connect.Response[notificationv1.ListMutesResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `SELECT target, until FROM mutes WHERE user_id = $1 AND (until IS NULL OR until > now()) ORDER BY target`, p.UserID)
	if err != nil {
		return nil, s.internal(ctx, "list mutes", err)
	}
	defer rows.Close()
	out := &notificationv1.ListMutesResponse{}
	for rows.Next() {
		m := &notificationv1.Mute{}
		var until *time.Time
		if err := rows.Scan(&m.Target, &until); err != nil {
			return nil, s.internal(ctx, "list mutes", err)
		}
		if until != nil {
			m.Until = timestamppb.New(*until)
		}
		out.Mutes = append(out.Mutes, m)
	}
	if err := rows.Err(); err != nil {
		return nil, s.internal(ctx, "list mutes", err)
	}
	return connect.NewResponse(out), nil
}
