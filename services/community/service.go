// Package community is Beep's community service: servers, members, roles,
// channels and permission overwrites, as on Discord. PostgreSQL is the truth
// for structure; SpiceDB holds the relationships derived from it (graph.go),
// kept in agreement without a queue (sync.go). Every RPC's permission is
// declared in schema/proto and enforced by authz/connectauthz before the
// handler runs; handlers add what the graph cannot say (role hierarchy).
package community

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
	"github.com/beepchat/beep/gen/beep/community/v1/communityv1connect"
	"github.com/beepchat/beep/services/community/migrations"
)

// DefaultEveryonePermissions are Discord's defaults for a new server's @everyone.
var DefaultEveryonePermissions = authz.FlagsOf(
	authz.FlagViewChannel, authz.FlagSendMessages, authz.FlagSendMessagesInThreads, authz.FlagCreateThreads,
	authz.FlagReadMessageHistory, authz.FlagEmbedLinks, authz.FlagAttachFiles, authz.FlagAddReactions,
	authz.FlagCreateInvite, authz.FlagChangeNickname, authz.FlagConnect, authz.FlagSpeak, authz.FlagVideo,
)

// Service implements communityv1connect.CommunityServiceHandler.
type Service struct {
	db    *pgxpool.Pool
	authz *authz.Client
	log   *slog.Logger
	// auditor receives a structured record of each audited change.
	auditor connectauthz.Auditor
	// Test hooks. beforeCommit runs inside the database transaction (an
	// error aborts it); afterCommit runs between the database commit and the
	// widening SpiceDB write (an error simulates a crash there).
	beforeCommit, afterCommit func() error
}

var _ communityv1connect.CommunityServiceHandler = (*Service)(nil)

// Option configures the service.
type Option func(*Service)

// WithAuditor sends a structured record of every change the audit log
// keeps (moderation actions, role, channel and server changes) to a, once
// committed.
func WithAuditor(a connectauthz.Auditor) Option {
	return func(s *Service) { s.auditor = a }
}

// New migrates the database and returns the service.
func New(ctx context.Context, db *pgxpool.Pool, client *authz.Client, log *slog.Logger, opts ...Option) (*Service, error) {
	if err := migrations.Up(ctx, db); err != nil {
		return nil, err
	}
	s := &Service{db: db, authz: client, log: log, auditor: connectauthz.Discard}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// principal is the caller; the interceptor has already refused anonymous calls.
func principal(ctx context.Context) (authz.Principal, error) {
	p, ok := authz.PrincipalFrom(ctx)
	if !ok {
		return p, connect.NewError(connect.CodeUnauthenticated, errors.New("sign in first"))
	}
	return p, nil
}

func parseID(field, s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return id, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: not a valid id", field))
	}
	return id, nil
}

func validName(field, s string, min, max int) error {
	n := utf8.RuneCountInString(strings.TrimSpace(s))
	if n < min || n > max {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s must be %d to %d characters", field, min, max))
	}
	return nil
}

// internal logs err and returns an opaque Internal error.
func (s *Service) internal(ctx context.Context, op string, err error) error {
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		return cerr
	}
	switch {
	case errors.Is(err, errNotFound):
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

func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

func freshness(h interface{ Get(string) string }) authz.Consistency {
	return authz.AtLeastAsFresh(authz.ZedToken(h.Get(connectauthz.TokenHeader)))
}

// CreateServer makes a server owned by the caller.
func (s *Service) CreateServer(ctx context.Context, req *connect.Request[communityv1.CreateServerRequest]) (*connect.Response[communityv1.CreateServerResponse], error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if err := validName("name", req.Msg.Name, 2, 100); err != nil {
		return nil, err
	}
	srv := serverRow{id: newID(), everyoneRoleID: newID(), name: strings.TrimSpace(req.Msg.Name), ownerID: p.UserID, public: req.Msg.Public, createdAt: time.Now().UTC().Truncate(time.Microsecond)}
	everyone := roleRow{id: srv.everyoneRoleID, serverID: srv.id, name: "@everyone", permissions: DefaultEveryonePermissions.Names()}
	general := channelRow{id: newID(), serverID: srv.id, kind: "text", name: "general"}

	var d delta
	d.add = append(d.add, serverRelationships(srv)...)
	d.add = append(d.add, memberRelationships(srv.id, memberRow{userID: p.UserID}, time.Now())...)
	roleRels, err := roleRelationships(srv.id, everyone, true)
	if err != nil {
		return nil, s.internal(ctx, "create server", err)
	}
	d.add = append(d.add, roleRels...)
	d.add = append(d.add, channelRelationships(general)...)

	token, err := s.commit(ctx, srv.id, d, func(tx pgx.Tx) error {
		batch := &pgx.Batch{}
		batch.Queue(`INSERT INTO servers (id, name, owner_id, public, everyone_role_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			srv.id, srv.name, srv.ownerID, srv.public, srv.everyoneRoleID, srv.createdAt)
		batch.Queue(`INSERT INTO members (server_id, user_id) VALUES ($1, $2)`, srv.id, p.UserID)
		batch.Queue(`INSERT INTO roles (id, server_id, name, position, permissions) VALUES ($1, $2, $3, 0, $4)`, everyone.id, srv.id, everyone.name, everyone.permissions)
		batch.Queue(`INSERT INTO channels (id, server_id, kind, name) VALUES ($1, $2, $3, $4)`, general.id, srv.id, general.kind, general.name)
		return tx.SendBatch(ctx, batch).Close()
	})
	if err != nil {
		return nil, s.internal(ctx, "create server", err)
	}
	return connect.NewResponse(&communityv1.CreateServerResponse{Server: serverProto(srv), GeneralChannel: channelProto(general, nil), ZedToken: string(token)}), nil
}

// GetServer returns a server.
func (s *Service) GetServer(ctx context.Context, req *connect.Request[communityv1.GetServerRequest]) (*connect.Response[communityv1.GetServerResponse], error) {
	id, err := parseID("server_id", req.Msg.ServerId)
	if err != nil {
		return nil, err
	}
	srv, err := getServer(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "get server", err)
	}
	return connect.NewResponse(&communityv1.GetServerResponse{Server: serverProto(srv)}), nil
}

// ListMyServers pages through the caller's servers by join time.
func (s *Service) ListMyServers(ctx context.Context, req *connect.Request[communityv1.ListMyServersRequest]) (*connect.Response[communityv1.ListMyServersResponse], error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	size, err := pageSize(req.Msg.PageSize, 100, 200)
	if err != nil {
		return nil, err
	}
	after := time.Time{}
	afterID := uuid.Nil
	if t := req.Msg.PageToken; t != "" {
		var key string
		after, key, err = decodeCursor(t)
		if err == nil {
			afterID, err = uuid.Parse(key)
		}
		if err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("page_token is not one this service gave"))
		}
	}
	rows, err := s.db.Query(ctx, `SELECT s.id, s.name, s.owner_id, s.public, s.everyone_role_id, s.created_at, m.joined_at
		FROM members m JOIN servers s ON s.id = m.server_id
		WHERE m.user_id = $1 AND (m.joined_at, m.server_id) > ($2, $3)
		ORDER BY m.joined_at, m.server_id LIMIT $4`, p.UserID, after, afterID, size+1)
	if err != nil {
		return nil, s.internal(ctx, "list servers", err)
	}
	type page struct {
		srv    serverRow
		joined time.Time
	}
	found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (page, error) {
		var x page
		err := row.Scan(&x.srv.id, &x.srv.name, &x.srv.ownerID, &x.srv.public, &x.srv.everyoneRoleID, &x.srv.createdAt, &x.joined)
		return x, err
	})
	if err != nil {
		return nil, s.internal(ctx, "list servers", err)
	}
	resp := &communityv1.ListMyServersResponse{}
	if len(found) > size {
		last := found[size-1]
		resp.NextPageToken = encodeCursor(last.joined, last.srv.id.String())
		found = found[:size]
	}
	for _, x := range found {
		resp.Servers = append(resp.Servers, serverProto(x.srv))
	}
	return connect.NewResponse(resp), nil
}

// encodeCursor makes a page token of a keyset position (time, key).
func encodeCursor(t time.Time, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(t.UTC().Format(time.RFC3339Nano) + "|" + key))
}

func decodeCursor(tok string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return time.Time{}, "", err
	}
	ts, key, ok := strings.Cut(string(b), "|")
	if !ok || key == "" {
		return time.Time{}, "", errors.New("malformed")
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	return t, key, err
}

// JoinServer joins a public server (the interceptor checked server#join:
// public and not banned).
func (s *Service) JoinServer(ctx context.Context, req *connect.Request[communityv1.JoinServerRequest]) (*connect.Response[communityv1.JoinServerResponse], error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID("server_id", req.Msg.ServerId)
	if err != nil {
		return nil, err
	}
	srv, err := getServer(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "join server", err)
	}
	d := delta{add: memberRelationships(id, memberRow{userID: p.UserID}, time.Now())}
	token, err := s.commit(ctx, id, d, func(tx pgx.Tx) error {
		var banned bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM bans WHERE server_id = $1 AND user_id = $2)`, id, p.UserID).Scan(&banned); err != nil {
			return err
		}
		if banned {
			return connect.NewError(connect.CodePermissionDenied, errors.New("you are banned from this server"))
		}
		_, err := tx.Exec(ctx, `INSERT INTO members (server_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, id, p.UserID)
		return err
	})
	if err != nil {
		return nil, s.internal(ctx, "join server", err)
	}
	return connect.NewResponse(&communityv1.JoinServerResponse{Server: serverProto(srv), ZedToken: string(token)}), nil
}

// rank is a member's place in the server's role hierarchy.
func (s *Service) rank(ctx context.Context, srv serverRow, userID string) (authz.Rank, error) {
	top, err := topPosition(ctx, s.db, srv.id, userID)
	return authz.Rank{Owner: srv.ownerID == userID, Top: top}, err
}

// heldFlags is what the caller holds server-wide, as the graph computes it.
func (s *Service) heldFlags(ctx context.Context, serverID uuid.UUID, p authz.Principal, c authz.Consistency) (authz.Flags, error) {
	return s.authz.ServerFlags(ctx, p.Subject(), serverID.String(), c)
}

// CreateRole adds a role just above @everyone.
func (s *Service) CreateRole(ctx context.Context, req *connect.Request[communityv1.CreateRoleRequest]) (*connect.Response[communityv1.CreateRoleResponse], error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID("server_id", req.Msg.ServerId)
	if err != nil {
		return nil, err
	}
	if err := validName("name", req.Msg.Name, 1, 100); err != nil {
		return nil, err
	}
	flags, err := authz.ParseFlags(req.Msg.Permissions)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	held, err := s.heldFlags(ctx, id, p, freshness(req.Header()))
	if err != nil {
		return nil, s.internal(ctx, "create role", err)
	}
	if err := authz.RequireGrantable(held, flags); err != nil {
		return nil, connect.NewError(connect.CodePermissionDenied, err)
	}
	role := roleRow{id: newID(), serverID: id, name: strings.TrimSpace(req.Msg.Name), position: 1, permissions: flags.Names(),
		color: req.Msg.Color, hoist: req.Msg.Hoist, mentionable: req.Msg.Mentionable}
	rels, err := roleRelationships(id, role, false)
	if err != nil {
		return nil, s.internal(ctx, "create role", err)
	}
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_ROLE_CREATED, "role", role.id.String(), "",
		changed(field("name", "", role.name), field("permissions", "", nameList(role.permissions)))...)
	token, err := s.commit(ctx, id, delta{add: rels}, func(tx pgx.Tx) error {
		// Discord puts a new role just above @everyone.
		if _, err := tx.Exec(ctx, `UPDATE roles SET position = position + 1 WHERE server_id = $1 AND position >= 1`, id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO roles (`+roleColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			role.id, role.serverID, role.name, role.position, role.permissions, role.color, role.hoist, role.mentionable)
		return err
	})
	if err != nil {
		return nil, s.internal(ctx, "create role", err)
	}
	return connect.NewResponse(&communityv1.CreateRoleResponse{Role: roleProto(role), ZedToken: string(token)}), nil
}

// memberRoleChange checks an assignment or removal of a role.
func (s *Service) memberRoleChange(ctx context.Context, roleID, userID string) (roleRow, serverRow, error) {
	p, err := principal(ctx)
	if err != nil {
		return roleRow{}, serverRow{}, err
	}
	id, err := parseID("role_id", roleID)
	if err != nil {
		return roleRow{}, serverRow{}, err
	}
	if userID == "" {
		return roleRow{}, serverRow{}, connect.NewError(connect.CodeInvalidArgument, errors.New("user_id is required"))
	}
	role, err := getRole(ctx, s.db, id)
	if err != nil {
		return role, serverRow{}, err
	}
	srv, err := getServer(ctx, s.db, role.serverID)
	if err != nil {
		return role, srv, err
	}
	if role.id == srv.everyoneRoleID {
		return role, srv, connect.NewError(connect.CodeInvalidArgument, errors.New("everyone holds @everyone"))
	}
	actor, err := s.rank(ctx, srv, p.UserID)
	if err != nil {
		return role, srv, err
	}
	if err := actor.RequireOutranksRole(role.position); err != nil {
		return role, srv, connect.NewError(connect.CodePermissionDenied, err)
	}
	member, err := isMember(ctx, s.db, srv.id, userID)
	if err != nil {
		return role, srv, err
	}
	if !member {
		return role, srv, connect.NewError(connect.CodeNotFound, errors.New("that user is not a member of the server"))
	}
	return role, srv, nil
}

// AddMemberRole gives a member a role.
func (s *Service) AddMemberRole(ctx context.Context, req *connect.Request[communityv1.AddMemberRoleRequest]) (*connect.Response[communityv1.AddMemberRoleResponse], error) {
	role, srv, err := s.memberRoleChange(ctx, req.Msg.RoleId, req.Msg.UserId)
	if err != nil {
		return nil, s.internal(ctx, "add role", err)
	}
	d := delta{add: []authz.Relationship{memberRoleRelationship(role.id, req.Msg.UserId)}}
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_MEMBER_ROLE_ADDED, "user", req.Msg.UserId, "", field("role_id", "", role.id.String()))
	token, err := s.commitExec(ctx, srv.id, d, `INSERT INTO member_roles (server_id, user_id, role_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, srv.id, req.Msg.UserId, role.id)
	if err != nil {
		return nil, s.internal(ctx, "add role", err)
	}
	return connect.NewResponse(&communityv1.AddMemberRoleResponse{ZedToken: string(token)}), nil
}

// RemoveMemberRole takes a role from a member.
func (s *Service) RemoveMemberRole(ctx context.Context, req *connect.Request[communityv1.RemoveMemberRoleRequest]) (*connect.Response[communityv1.RemoveMemberRoleResponse], error) {
	role, srv, err := s.memberRoleChange(ctx, req.Msg.RoleId, req.Msg.UserId)
	if err != nil {
		return nil, s.internal(ctx, "remove role", err)
	}
	d := delta{remove: []authz.Relationship{memberRoleRelationship(role.id, req.Msg.UserId)}}
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_MEMBER_ROLE_REMOVED, "user", req.Msg.UserId, "", field("role_id", role.id.String(), ""))
	token, err := s.commitExec(ctx, srv.id, d, `DELETE FROM member_roles WHERE role_id = $1 AND user_id = $2`, role.id, req.Msg.UserId)
	if err != nil {
		return nil, s.internal(ctx, "remove role", err)
	}
	return connect.NewResponse(&communityv1.RemoveMemberRoleResponse{ZedToken: string(token)}), nil
}

// GetEffectivePermissions computes the caller's permissions in a channel.
func (s *Service) GetEffectivePermissions(ctx context.Context, req *connect.Request[communityv1.GetEffectivePermissionsRequest]) (*connect.Response[communityv1.GetEffectivePermissionsResponse], error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := parseID("channel_id", req.Msg.ChannelId); err != nil {
		return nil, err
	}
	consistency := freshness(req.Header())
	flags, err := s.authz.ChannelFlags(ctx, p.Subject(), req.Msg.ChannelId, consistency)
	if err != nil {
		return nil, s.internal(ctx, "effective permissions", err)
	}
	return connect.NewResponse(&communityv1.GetEffectivePermissionsResponse{Permissions: flags.Names(), ZedToken: req.Header().Get(connectauthz.TokenHeader)}), nil
}

func serverProto(s serverRow) *communityv1.Server {
	return &communityv1.Server{Id: s.id.String(), Name: s.name, OwnerId: s.ownerID, Public: s.public,
		EveryoneRoleId: s.everyoneRoleID.String(), CreatedAt: timestamppb.New(s.createdAt)}
}

func roleProto(r roleRow) *communityv1.Role {
	return &communityv1.Role{Id: r.id.String(), ServerId: r.serverID.String(), Name: r.name, Position: int32(r.position),
		Permissions: r.permissions, Color: r.color, Hoist: r.hoist, Mentionable: r.mentionable}
}

// pageSize is the page size a request asks for: 0 takes byDefault, and
// anything outside 1 to most is invalid.
func pageSize(requested int32, byDefault, most int) (int, error) {
	switch {
	case requested == 0:
		return byDefault, nil
	case requested < 0 || int(requested) > most:
		return 0, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("page_size must be 1 to %d", most))
	}
	return int(requested), nil
}
