// Package user is Beep's user service: each person's profile (the identity
// itself is Kratos') and whom they block. Profiles are visible to the
// person and to whoever shares a server with them (user#view_profile);
// blocks feed the direct-message rule of the graph (user#dm_blocked).
package user

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/gen/beep/chat/v1/chatv1connect"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
	"github.com/beepchat/beep/gen/beep/community/v1/communityv1connect"
	"github.com/beepchat/beep/gen/beep/notification/v1/notificationv1connect"
	userv1 "github.com/beepchat/beep/gen/beep/user/v1"
	"github.com/beepchat/beep/gen/beep/user/v1/userv1connect"
	"github.com/beepchat/beep/services/user/migrations"
)

// Service implements userv1connect.UserServiceHandler.
type Service struct {
	db    *pgxpool.Pool
	authz *authz.Client
	log   *slog.Logger
	// community answers for the caller about their servers (its generated
	// client, forwarding the caller's principal); nil when not configured.
	community communityv1connect.CommunityServiceClient
	// erasure erases a user from the community service; nil when not
	// configured (account deletion then stays pending).
	erasure communityv1connect.ErasureServiceClient
	// chatErasure erases a user from the chat service; nil when the chat
	// service is not deployed with this one.
	chatErasure chatv1connect.ChatErasureServiceClient
	// notificationErasure erases a user from the notification service; nil
	// when it is not deployed with this one.
	notificationErasure notificationv1connect.ErasureServiceClient
	// identities is Kratos' admin API; nil when accounts are not Kratos'.
	identities Identities
	// grace is how long after the identity is deleted a credential may
	// still be honoured somewhere (the gateway's session cache).
	grace time.Duration
	// afterStep, in tests, runs after each step of an erasure; an error
	// stops the pass there, as a crash would.
	afterStep func(step string) error
}

// Identities is the identity server's administration: Kratos' admin API
// (kratos.Identities).
type Identities interface {
	// Identity returns what the identity server keeps of an identity,
	// without secrets; found is false when it has none.
	Identity(ctx context.Context, id string) (record map[string]any, found bool, err error)
	// DeleteIdentity deletes an identity and its sessions; deleting one
	// that does not exist succeeds.
	DeleteIdentity(ctx context.Context, id string) error
}

var _ userv1connect.UserServiceHandler = (*Service)(nil)

// Config is what the user service runs with.
type Config struct {
	DB    *pgxpool.Pool
	Authz *authz.Client
	Log   *slog.Logger
	// Community is the community service's client; it must forward the
	// caller's principal (connectauthz.Forward). Optional: without it,
	// ExportMyData is unavailable.
	Community communityv1connect.CommunityServiceClient
	// Erasure is the community service's internal client, forwarding the
	// principal likewise. Optional: without it, account deletions stay
	// pending.
	Erasure communityv1connect.ErasureServiceClient
	// ChatErasure is the chat service's internal erasure client, forwarding
	// the principal likewise. Optional: without it (no chat service in the
	// deployment), erasures skip the chat step.
	ChatErasure chatv1connect.ChatErasureServiceClient
	// NotificationErasure is the notification service's internal erasure
	// client, likewise optional.
	NotificationErasure notificationv1connect.ErasureServiceClient
	// Identities is Kratos' admin API. Optional: without it, accounts are
	// not Kratos' (an external OIDC issuer's, or development tokens).
	Identities Identities
	// DeletionGrace is how long after deleting an identity a credential of
	// it may still be honoured (the gateway's -session-cache-ttl): an
	// erasure makes one more pass after it, so that nothing written in the
	// meantime remains.
	DeletionGrace time.Duration
}

// New migrates the database and returns the service.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := migrations.Up(ctx, cfg.DB); err != nil {
		return nil, err
	}
	return &Service{db: cfg.DB, authz: cfg.Authz, log: cfg.Log, community: cfg.Community, erasure: cfg.Erasure, chatErasure: cfg.ChatErasure, notificationErasure: cfg.NotificationErasure,
		identities: cfg.Identities, grace: cfg.DeletionGrace}, nil
}

// Handler returns the path and the Connect handler of the service.
func (s *Service) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	return userv1connect.NewUserServiceHandler(s, opts...)
}

var (
	usernamePattern = regexp.MustCompile(`^[a-z0-9_.]{2,32}$`)
	localePattern   = regexp.MustCompile(`^[A-Za-z0-9-]{2,35}$`)
)

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

type profile struct {
	userID                      string
	username                    *string
	displayName, locale, status string
	updatedAt                   time.Time
}

func (p profile) proto() *userv1.Profile {
	out := &userv1.Profile{UserId: p.userID, DisplayName: p.displayName, Locale: p.locale, Status: p.status}
	if p.username != nil {
		out.Username = *p.username
	}
	if !p.updatedAt.IsZero() {
		out.UpdatedAt = timestamppb.New(p.updatedAt)
	}
	return out
}

func (s *Service) load(ctx context.Context, userID string) (profile, error) {
	p := profile{userID: userID}
	err := s.db.QueryRow(ctx, `SELECT username, display_name, locale, status, updated_at FROM profiles WHERE user_id = $1`, userID).
		Scan(&p.username, &p.displayName, &p.locale, &p.status, &p.updatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, nil // not set yet: an empty profile
	}
	return p, err
}

func (s *Service) internal(ctx context.Context, op string, err error) error {
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		return cerr
	}
	if errors.Is(err, authz.ErrUnavailable) {
		return connect.NewError(connect.CodeUnavailable, errors.New("authorization is unavailable; try again"))
	}
	s.log.ErrorContext(ctx, op, "err", err)
	return connect.NewError(connect.CodeInternal, fmt.Errorf("%s failed", op))
}

// GetMyProfile returns the caller's profile.
func (s *Service) GetMyProfile(ctx context.Context, _ *connect.Request[userv1.GetMyProfileRequest]) (*connect.Response[userv1.GetMyProfileResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	prof, err := s.load(ctx, p.UserID)
	if err != nil {
		return nil, s.internal(ctx, "get profile", err)
	}
	return connect.NewResponse(&userv1.GetMyProfileResponse{Profile: prof.proto()}), nil
}

// UpdateMyProfile sets the fields given, and makes sure the graph knows the
// caller sees their own profile.
func (s *Service) UpdateMyProfile(ctx context.Context, req *connect.Request[userv1.UpdateMyProfileRequest]) (*connect.Response[userv1.UpdateMyProfileResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	m := req.Msg
	if m.Username != nil && !usernamePattern.MatchString(m.GetUsername()) {
		return nil, invalid("username: 2 to 32 of a-z, 0-9, _ and .")
	}
	if m.DisplayName != nil && utf8.RuneCountInString(strings.TrimSpace(m.GetDisplayName())) > 32 {
		return nil, invalid("display_name: at most 32 characters")
	}
	if m.Locale != nil && m.GetLocale() != "" && !localePattern.MatchString(m.GetLocale()) {
		return nil, invalid("locale: a language tag such as fr-FR")
	}
	if m.Status != nil && utf8.RuneCountInString(m.GetStatus()) > 128 {
		return nil, invalid("status: at most 128 characters")
	}
	// Widening (one more viewer of one's own profile): the database first.
	var prof profile
	err = s.db.QueryRow(ctx, `INSERT INTO profiles (user_id, username, display_name, locale, status)
		VALUES ($1, $2, COALESCE($3, ''), COALESCE($4, ''), COALESCE($5, ''))
		ON CONFLICT (user_id) DO UPDATE SET
			username = COALESCE($2, profiles.username), display_name = COALESCE($3, profiles.display_name),
			locale = COALESCE($4, profiles.locale), status = COALESCE($5, profiles.status), updated_at = now()
		RETURNING username, display_name, locale, status, updated_at`,
		p.UserID, m.Username, trimmed(m.DisplayName), m.Locale, m.Status).Scan(&prof.username, &prof.displayName, &prof.locale, &prof.status, &prof.updatedAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return nil, connect.NewError(connect.CodeAlreadyExists, errors.New("username: taken"))
	}
	if err != nil {
		return nil, s.internal(ctx, "update profile", err)
	}
	prof.userID = p.UserID
	token, err := s.authz.Write(ctx, []authz.Update{authz.Touch(authz.Relationship{Relation: authz.User.Self, ResourceID: p.UserID, Subject: p.Subject()})})
	if err != nil {
		return nil, s.internal(ctx, "update profile", err)
	}
	return connect.NewResponse(&userv1.UpdateMyProfileResponse{Profile: prof.proto(), ZedToken: string(token)}), nil
}

func trimmed(s *string) *string {
	if s == nil {
		return nil
	}
	t := strings.TrimSpace(*s)
	return &t
}

// GetProfile returns someone's profile; the interceptor checked
// user#view_profile.
func (s *Service) GetProfile(ctx context.Context, req *connect.Request[userv1.GetProfileRequest]) (*connect.Response[userv1.GetProfileResponse], error) {
	prof, err := s.load(ctx, req.Msg.UserId)
	if err != nil {
		return nil, s.internal(ctx, "get profile", err)
	}
	return connect.NewResponse(&userv1.GetProfileResponse{Profile: prof.proto()}), nil
}

// blockEdges are the two relationships of a block.
func blockEdges(userID, blockedID string) []authz.Relationship {
	return []authz.Relationship{
		{Relation: authz.User.Blocked, ResourceID: userID, Subject: authz.UserSubject(blockedID)},
		{Relation: authz.User.BlockedBy, ResourceID: blockedID, Subject: authz.UserSubject(userID)},
	}
}

func target(p authz.Principal, userID string) error {
	if !authz.ValidUserID(userID) {
		return invalid("user_id: not a user id")
	}
	if userID == p.UserID {
		return invalid("user_id: you cannot block yourself")
	}
	return nil
}

// BlockUser blocks someone. A block only takes permissions away, so SpiceDB
// is written first: if the database write then fails, the graph is at worst
// stricter than the database, never looser.
func (s *Service) BlockUser(ctx context.Context, req *connect.Request[userv1.BlockUserRequest]) (*connect.Response[userv1.BlockUserResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := target(p, req.Msg.UserId); err != nil {
		return nil, err
	}
	edges := blockEdges(p.UserID, req.Msg.UserId)
	token, err := s.authz.Write(ctx, []authz.Update{authz.Touch(edges[0]), authz.Touch(edges[1])})
	if err != nil {
		return nil, s.internal(ctx, "block", err)
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO blocks (user_id, blocked_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, p.UserID, req.Msg.UserId); err != nil {
		return nil, s.internal(ctx, "block", err)
	}
	return connect.NewResponse(&userv1.BlockUserResponse{ZedToken: string(token)}), nil
}

// UnblockUser lifts a block: the database first, then the graph (the
// reverse order of BlockUser, for the same reason).
func (s *Service) UnblockUser(ctx context.Context, req *connect.Request[userv1.UnblockUserRequest]) (*connect.Response[userv1.UnblockUserResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := target(p, req.Msg.UserId); err != nil {
		return nil, err
	}
	tag, err := s.db.Exec(ctx, `DELETE FROM blocks WHERE user_id = $1 AND blocked_id = $2`, p.UserID, req.Msg.UserId)
	if err != nil {
		return nil, s.internal(ctx, "unblock", err)
	}
	if tag.RowsAffected() == 0 {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("you do not block this user"))
	}
	edges := blockEdges(p.UserID, req.Msg.UserId)
	token, err := s.authz.Write(ctx, []authz.Update{authz.Delete(edges[0]), authz.Delete(edges[1])})
	if err != nil {
		return nil, s.internal(ctx, "unblock", err)
	}
	return connect.NewResponse(&userv1.UnblockUserResponse{ZedToken: string(token)}), nil
}

// ListBlockedUsers lists whom the caller blocks, most recent first.
func (s *Service) ListBlockedUsers(ctx context.Context, _ *connect.Request[userv1.ListBlockedUsersRequest]) (*connect.Response[userv1.ListBlockedUsersResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `SELECT blocked_id FROM blocks WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1000`, p.UserID)
	if err != nil {
		return nil, s.internal(ctx, "list blocks", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.internal(ctx, "list blocks", err)
	}
	return connect.NewResponse(&userv1.ListBlockedUsersResponse{UserIds: ids}), nil
}

// ExportMyData gathers what Beep holds about the caller: this service's
// rows, their identity from Kratos (without secrets), and their servers
// from the community service, asked on their behalf through its client.
func (s *Service) ExportMyData(ctx context.Context, _ *connect.Request[userv1.ExportMyDataRequest]) (*connect.Response[userv1.ExportMyDataResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if s.community == nil {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("the community service is not configured here"))
	}
	prof, err := s.load(ctx, p.UserID)
	if err != nil {
		return nil, s.internal(ctx, "export", err)
	}
	out := &userv1.ExportMyDataResponse{Profile: prof.proto(), ExportedAt: timestamppb.Now()}
	rows, err := s.db.Query(ctx, `SELECT blocked_id FROM blocks WHERE user_id = $1 ORDER BY created_at`, p.UserID)
	if err != nil {
		return nil, s.internal(ctx, "export", err)
	}
	if out.BlockedUserIds, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return nil, s.internal(ctx, "export", err)
	}
	if s.identities != nil && kratosID.MatchString(p.UserID) {
		record, found, err := s.identities.Identity(ctx, p.UserID)
		if err != nil {
			s.log.ErrorContext(ctx, "export: the identity server", "err", err)
			return nil, connect.NewError(connect.CodeUnavailable, errors.New("the identity server did not answer; try again"))
		}
		if found {
			if out.Identity, err = structpb.NewStruct(record); err != nil {
				return nil, s.internal(ctx, "export", err)
			}
		}
	}
	for page := ""; ; {
		resp, err := s.community.ListMyServers(ctx, connect.NewRequest(&communityv1.ListMyServersRequest{PageSize: 200, PageToken: page}))
		if err != nil {
			s.log.ErrorContext(ctx, "export: the community service", "err", err)
			return nil, connect.NewError(connect.CodeUnavailable, errors.New("the community service did not answer; try again"))
		}
		out.Servers = append(out.Servers, resp.Msg.Servers...)
		if page = resp.Msg.NextPageToken; page == "" {
			break
		}
	}
	return connect.NewResponse(out), nil
}
