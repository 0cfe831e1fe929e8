// Package chat is Beep's chat service: the messages of conversations (a
// server's text or announcement channel, a thread, a direct-message
// conversation), their mentions, reactions and pins, each person's read
// state, and the DM conversations themselves.
//
// Rights on a message are decided from the authorization graph's permissions
// on its conversation plus the author column kept here, exactly as the
// schema's message definition states them (rights.go): no relationship is
// written per message, so a send costs SpiceDB one check and PostgreSQL one
// transaction. DM membership is in the graph (dm_channel#participant,
// member, owner), kept in agreement with the rows here without a queue
// (dms.go). docs/chat.md tells the whole story.
package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	"github.com/beepchat/beep/gen/beep/chat/v1/chatv1connect"
	"github.com/beepchat/beep/gen/beep/community/v1/communityv1connect"
	"github.com/beepchat/beep/services/chat/migrations"
)

// Service implements chatv1connect.ChatServiceHandler.
type Service struct {
	db        *pgxpool.Pool
	authz     *authz.Client
	log       *slog.Logger
	community communityv1connect.CommunityServiceClient
	deletions communityv1connect.ErasureServiceClient
	publisher Publisher
	stream    *Stream
	kinds     *kindCache
	// afterCommit, in tests, runs between a DM change's database commit
	// and the write that brings SpiceDB to it; an error simulates a crash
	// there.
	afterCommit func() error
}

var _ chatv1connect.ChatServiceHandler = (*Service)(nil)

// ServiceName is the chat service's name as a Beep principal, when it acts
// on its own behalf.
const ServiceName = "chat"

// Config is what the chat service runs with.
type Config struct {
	DB    *pgxpool.Pool
	Authz *authz.Client
	Log   *slog.Logger
	// Community tells which kind a channel is (text and announcement
	// channels have messages, voice channels do not): the community
	// service's generated client, forwarding the caller's principal
	// (connectauthz.Forward). Required.
	Community communityv1connect.CommunityServiceClient
	// Deletions lists the channels and threads the community service
	// deleted, whose messages RunDeletions erases: the generated client of
	// its internal ErasureService, signing the context's principal. Nil:
	// they are never erased.
	Deletions communityv1connect.ErasureServiceClient
	// Publisher is told of every committed change (the seam for the
	// real-time stream); nil: nobody is told.
	Publisher Publisher
	// Stream tunes the real-time stream.
	Stream StreamConfig
}

// New checks that the schema has every permission the service relies on,
// migrates the database and returns the service.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Community == nil {
		return nil, errors.New("chat: the community service's client is required")
	}
	for _, t := range conversationTypes {
		for _, name := range conversationPermissions {
			if p := (authz.Permission{ResourceType: authz.ObjectType(t), Name: name}); !p.InSchema() {
				return nil, fmt.Errorf("chat: the schema lacks %s", p)
			}
		}
	}
	if err := migrations.Up(ctx, cfg.DB); err != nil {
		return nil, err
	}
	pub := cfg.Publisher
	if pub == nil {
		pub = NopPublisher{}
	}
	return &Service{db: cfg.DB, authz: cfg.Authz, log: cfg.Log, community: cfg.Community, deletions: cfg.Deletions, publisher: pub, kinds: newKindCache(),
		stream: newStream(cfg.DB, cfg.Authz, cfg.Log, cfg.Stream)}, nil
}

// Stream is the service's real-time stream, served beside it
// (beep.chat.v1.StreamService). Run it with Run.
func (s *Service) Stream() *Stream { return s.stream }

// Handler returns the path and the Connect handler of the service.
func (s *Service) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	return chatv1connect.NewChatServiceHandler(s, opts...)
}

// The permissions a conversation has in the graph, under the same names in
// the three definitions a conversation can be.
const (
	permView            = "view_channel"
	permHistory         = "read_message_history"
	permSend            = "send_messages"
	permReact           = "add_reactions"
	permManageMessages  = "manage_messages"
	permMentionEveryone = "mention_everyone"
	permStaff           = "moderate_as_staff"
)

var conversationPermissions = []string{permView, permHistory, permSend, permReact, permManageMessages, permMentionEveryone, permStaff}

var errNotFound = errors.New("not found")

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

func validUser(field, id string) error {
	if !authz.ValidUserID(id) {
		return invalid("%s: not a user id", field)
	}
	return nil
}

func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// freshness is the consistency of the caller's checks: at least as fresh
// as the ZedToken they sent.
func freshness(h http.Header) authz.Consistency {
	return authz.AtLeastAsFresh(authz.ZedToken(h.Get(connectauthz.TokenHeader)))
}

// internal maps an error to what the caller may see, logging the unexpected.
func (s *Service) internal(ctx context.Context, op string, err error) error {
	var cerr *connect.Error
	switch {
	case errors.As(err, &cerr):
		return cerr
	case errors.Is(err, errNotFound), errors.Is(err, pgx.ErrNoRows):
		return connect.NewError(connect.CodeNotFound, fmt.Errorf("%s: not found", op))
	case errors.Is(err, authz.ErrDenied):
		return connect.NewError(connect.CodePermissionDenied, err)
	case errors.Is(err, authz.ErrUnavailable):
		s.log.ErrorContext(ctx, op, "err", err)
		return connect.NewError(connect.CodeUnavailable, errors.New("authorization is unavailable; try again"))
	}
	s.log.ErrorContext(ctx, op, "err", err)
	return connect.NewError(connect.CodeInternal, fmt.Errorf("%s failed", op))
}

// querier is a pool, a transaction or a connection.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}
