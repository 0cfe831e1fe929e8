package community

import (
	"context"
	"errors"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/beepchat/beep/authz"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

// maxTimeout is Discord's longest timeout.
const maxTimeout = 28 * 24 * time.Hour

// departure is what a member leaving (leave, kick, ban) removes from the
// graph: the membership, role memberships and any timeout.
func (s *Service) departure(ctx context.Context, serverID uuid.UUID, userID string) (delta, error) {
	d := delta{remove: memberRelationships(serverID, memberRow{userID: userID}, time.Now())}
	roles, err := memberRoles(ctx, s.db, serverID, userID)
	if err != nil {
		return d, err
	}
	for _, r := range roles {
		d.remove = append(d.remove, memberRoleRelationship(r, userID))
	}
	var until *time.Time
	err = s.db.QueryRow(ctx, `SELECT timed_out_until FROM members WHERE server_id = $1 AND user_id = $2`, serverID, userID).Scan(&until)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return d, err
	}
	if until != nil && until.After(time.Now()) {
		d.remove = append(d.remove, authz.Timeout(serverID.String(), userID, until.UTC().Truncate(time.Second)))
	}
	return d, nil
}

// moderation loads what acting on another member needs, and checks that the
// caller outranks the target (owner and self are refused).
func (s *Service) moderation(ctx context.Context, serverID, userID string) (authz.Principal, serverRow, error) {
	p, err := principal(ctx)
	if err != nil {
		return p, serverRow{}, err
	}
	id, err := parseID("server_id", serverID)
	if err != nil {
		return p, serverRow{}, err
	}
	if userID == "" || userID == p.UserID {
		return p, serverRow{}, connect.NewError(connect.CodeInvalidArgument, errors.New("user_id must name someone else"))
	}
	srv, err := getServer(ctx, s.db, id)
	if err != nil {
		return p, srv, err
	}
	actor, err := s.rank(ctx, srv, p.UserID)
	if err != nil {
		return p, srv, err
	}
	target, err := s.rank(ctx, srv, userID)
	if err != nil {
		return p, srv, err
	}
	if err := actor.RequireOutranks(target); err != nil {
		return p, srv, connect.NewError(connect.CodePermissionDenied, err)
	}
	return p, srv, nil
}

func (s *Service) requireMember(ctx context.Context, serverID uuid.UUID, userID string) error {
	ok, err := isMember(ctx, s.db, serverID, userID)
	if err != nil {
		return err
	}
	if !ok {
		return connect.NewError(connect.CodeNotFound, errors.New("that user is not a member of the server"))
	}
	return nil
}

// ListMembers pages through a server's members by join time.
func (s *Service) ListMembers(ctx context.Context, req *connect.Request[communityv1.ListMembersRequest]) (*connect.Response[communityv1.ListMembersResponse], error) {
	id, err := parseID("server_id", req.Msg.ServerId)
	if err != nil {
		return nil, err
	}
	size, err := pageSize(req.Msg.PageSize, 100, 1000)
	if err != nil {
		return nil, err
	}
	after, afterUser := time.Time{}, ""
	if t := req.Msg.PageToken; t != "" {
		var err error
		if after, afterUser, err = decodeCursor(t); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("page_token is not one this service gave"))
		}
	}
	rows, err := s.db.Query(ctx, `SELECT m.user_id, COALESCE(m.nickname, ''), m.joined_at, m.timed_out_until,
			COALESCE(array_agg(mr.role_id) FILTER (WHERE mr.role_id IS NOT NULL), '{}')
		FROM members m LEFT JOIN member_roles mr ON mr.server_id = m.server_id AND mr.user_id = m.user_id
		WHERE m.server_id = $1 AND (m.joined_at, m.user_id) > ($2, $3)
		GROUP BY m.user_id, m.nickname, m.joined_at, m.timed_out_until
		ORDER BY m.joined_at, m.user_id LIMIT $4`, id, after, afterUser, size+1)
	if err != nil {
		return nil, s.internal(ctx, "list members", err)
	}
	type member struct {
		proto  *communityv1.Member
		joined time.Time
	}
	now := time.Now()
	members, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (member, error) {
		var (
			m     member
			until *time.Time
			roles []uuid.UUID
		)
		m.proto = &communityv1.Member{}
		if err := row.Scan(&m.proto.UserId, &m.proto.Nickname, &m.joined, &until, &roles); err != nil {
			return m, err
		}
		m.proto.JoinedAt = timestamppb.New(m.joined)
		if until != nil && until.After(now) {
			m.proto.TimedOutUntil = timestamppb.New(*until)
		}
		for _, r := range roles {
			m.proto.RoleIds = append(m.proto.RoleIds, r.String())
		}
		return m, nil
	})
	if err != nil {
		return nil, s.internal(ctx, "list members", err)
	}
	resp := &communityv1.ListMembersResponse{}
	if len(members) > size {
		last := members[size-1]
		resp.NextPageToken = encodeCursor(last.joined, last.proto.UserId)
		members = members[:size]
	}
	for _, m := range members {
		resp.Members = append(resp.Members, m.proto)
	}
	return connect.NewResponse(resp), nil
}

// LeaveServer leaves a server.
func (s *Service) LeaveServer(ctx context.Context, req *connect.Request[communityv1.LeaveServerRequest]) (*connect.Response[communityv1.LeaveServerResponse], error) {
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
		return nil, s.internal(ctx, "leave", err)
	}
	if srv.ownerID == p.UserID {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("the owner cannot leave: transfer the server first"))
	}
	return removeMember(s, ctx, id, p.UserID, "leave", func(token authz.ZedToken) *connect.Response[communityv1.LeaveServerResponse] {
		return connect.NewResponse(&communityv1.LeaveServerResponse{ZedToken: string(token)})
	}, nil)
}

// KickMember removes a member below the caller.
func (s *Service) KickMember(ctx context.Context, req *connect.Request[communityv1.KickMemberRequest]) (*connect.Response[communityv1.KickMemberResponse], error) {
	p, srv, err := s.moderation(ctx, req.Msg.ServerId, req.Msg.UserId)
	if err != nil {
		return nil, s.internal(ctx, "kick", err)
	}
	if err := s.requireMember(ctx, srv.id, req.Msg.UserId); err != nil {
		return nil, err
	}
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_MEMBER_KICKED, "user", req.Msg.UserId, req.Msg.Reason)
	resp, err := removeMember(s, ctx, srv.id, req.Msg.UserId, "kick", func(token authz.ZedToken) *connect.Response[communityv1.KickMemberResponse] {
		return connect.NewResponse(&communityv1.KickMemberResponse{ZedToken: string(token)})
	}, nil)
	if err == nil {
		s.log.InfoContext(ctx, "member kicked", "server", srv.id, "user", req.Msg.UserId, "by", p.UserID, "reason", req.Msg.Reason)
	}
	return resp, err
}

// BanMember removes a member below the caller and bans them.
func (s *Service) BanMember(ctx context.Context, req *connect.Request[communityv1.BanMemberRequest]) (*connect.Response[communityv1.BanMemberResponse], error) {
	if len(req.Msg.Reason) > 512 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("reason is at most 512 characters"))
	}
	p, srv, err := s.moderation(ctx, req.Msg.ServerId, req.Msg.UserId)
	if err != nil {
		return nil, s.internal(ctx, "ban", err)
	}
	target := req.Msg.UserId
	ban := func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO bans (server_id, user_id, reason, banned_by) VALUES ($1, $2, $3, $4)
			ON CONFLICT (server_id, user_id) DO UPDATE SET reason = EXCLUDED.reason, banned_by = EXCLUDED.banned_by`, srv.id, target, req.Msg.Reason, p.UserID)
		return err
	}
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_MEMBER_BANNED, "user", target, req.Msg.Reason)
	resp, err := removeMember(s, ctx, srv.id, target, "ban", func(token authz.ZedToken) *connect.Response[communityv1.BanMemberResponse] {
		return connect.NewResponse(&communityv1.BanMemberResponse{ZedToken: string(token)})
	}, &extra{add: []authz.Relationship{banRelationship(srv.id, target)}, tx: ban})
	if err == nil {
		s.log.InfoContext(ctx, "member banned", "server", srv.id, "user", target, "by", p.UserID, "reason", req.Msg.Reason)
	}
	return resp, err
}

// extra is more of a removal: relationships to add and rows to write.
type extra struct {
	add []authz.Relationship
	tx  func(pgx.Tx) error
}

// removeMember takes userID out of the server (leave, kick, ban).
func removeMember[T any](s *Service, ctx context.Context, serverID uuid.UUID, userID, op string, respond func(authz.ZedToken) *connect.Response[T], more *extra) (*connect.Response[T], error) {
	d, err := s.departure(ctx, serverID, userID)
	if err != nil {
		return nil, s.internal(ctx, op, err)
	}
	if more != nil {
		d.add = append(d.add, more.add...)
	}
	token, err := s.commit(ctx, serverID, d, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM members WHERE server_id = $1 AND user_id = $2`, serverID, userID); err != nil {
			return err
		}
		if more != nil && more.tx != nil {
			return more.tx(tx)
		}
		return nil
	})
	if err != nil {
		return nil, s.internal(ctx, op, err)
	}
	return respond(token), nil
}

// UnbanMember lifts a ban.
func (s *Service) UnbanMember(ctx context.Context, req *connect.Request[communityv1.UnbanMemberRequest]) (*connect.Response[communityv1.UnbanMemberResponse], error) {
	id, err := parseID("server_id", req.Msg.ServerId)
	if err != nil {
		return nil, err
	}
	var banned bool
	if err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM bans WHERE server_id = $1 AND user_id = $2)`, id, req.Msg.UserId).Scan(&banned); err != nil {
		return nil, s.internal(ctx, "unban", err)
	}
	if !banned {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("that user is not banned"))
	}
	if len(req.Msg.Reason) > 512 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("reason is at most 512 characters"))
	}
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_MEMBER_UNBANNED, "user", req.Msg.UserId, req.Msg.Reason)
	token, err := s.commitExec(ctx, id, delta{remove: []authz.Relationship{banRelationship(id, req.Msg.UserId)}}, `DELETE FROM bans WHERE server_id = $1 AND user_id = $2`, id, req.Msg.UserId)
	if err != nil {
		return nil, s.internal(ctx, "unban", err)
	}
	return connect.NewResponse(&communityv1.UnbanMemberResponse{ZedToken: string(token)}), nil
}

// TimeoutMember times a member out, or ends their timeout.
func (s *Service) TimeoutMember(ctx context.Context, req *connect.Request[communityv1.TimeoutMemberRequest]) (*connect.Response[communityv1.TimeoutMemberResponse], error) {
	_, srv, err := s.moderation(ctx, req.Msg.ServerId, req.Msg.UserId)
	if err != nil {
		return nil, s.internal(ctx, "timeout", err)
	}
	target := req.Msg.UserId
	if err := s.requireMember(ctx, srv.id, target); err != nil {
		return nil, err
	}
	var until *time.Time
	var d delta
	if req.Msg.Until != nil {
		// Discord: administrators cannot be timed out (it would not bind them).
		admin, err := s.authz.Check(ctx, authz.Check{Subject: authz.UserSubject(target), Permission: authz.Server.Administrator, ResourceID: srv.id.String()}, freshness(req.Header()))
		if err != nil {
			return nil, s.internal(ctx, "timeout", err)
		}
		if admin.Allowed {
			return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("administrators cannot be timed out"))
		}
		t := req.Msg.Until.AsTime().UTC().Truncate(time.Second)
		if !t.After(time.Now()) || t.After(time.Now().Add(maxTimeout)) {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("until must be in the future, at most 28 days ahead"))
		}
		until = &t
		// Touching replaces an earlier timeout (expiration is not part of
		// a relationship's identity).
		d.add = []authz.Relationship{authz.Timeout(srv.id.String(), target, t)}
	} else {
		var current *time.Time
		if err := s.db.QueryRow(ctx, `SELECT timed_out_until FROM members WHERE server_id = $1 AND user_id = $2`, srv.id, target).Scan(&current); err != nil {
			return nil, s.internal(ctx, "timeout", err)
		}
		if current != nil && current.After(time.Now()) {
			d.remove = []authz.Relationship{authz.Timeout(srv.id.String(), target, current.UTC().Truncate(time.Second))}
		}
	}
	if len(req.Msg.Reason) > 512 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("reason is at most 512 characters"))
	}
	untilText := ""
	if until != nil {
		untilText = until.Format(time.RFC3339)
	}
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_MEMBER_TIMED_OUT, "user", target, req.Msg.Reason, field("timed_out_until", "", untilText))
	token, err := s.commitExec(ctx, srv.id, d, `UPDATE members SET timed_out_until = $3 WHERE server_id = $1 AND user_id = $2`, srv.id, target, until)
	if err != nil {
		return nil, s.internal(ctx, "timeout", err)
	}
	return connect.NewResponse(&communityv1.TimeoutMemberResponse{ZedToken: string(token)}), nil
}

func validNickname(n string) error {
	if utf8.RuneCountInString(n) > 32 {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("nickname is at most 32 characters"))
	}
	return nil
}

// setNickname changes a nickname; by someone else, it is audited, with the
// nickname before and after.
func (s *Service) setNickname(ctx context.Context, req connect.AnyRequest, serverID uuid.UUID, userID, nickname string, audit bool) error {
	var nick *string
	if nickname != "" {
		nick = &nickname
	}
	if audit {
		ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_MEMBER_NICKNAME_CHANGED, "user", userID, "")
	}
	err := s.inTx(ctx, serverID, func(tx pgx.Tx) error {
		var before *string
		err := tx.QueryRow(ctx, `SELECT nickname FROM members WHERE server_id = $1 AND user_id = $2 FOR UPDATE`, serverID, userID).Scan(&before)
		if errors.Is(err, pgx.ErrNoRows) {
			return connect.NewError(connect.CodeNotFound, errors.New("that user is not a member of the server"))
		}
		if err != nil {
			return err
		}
		if e := pendingAudit(ctx); e != nil {
			was := ""
			if before != nil {
				was = *before
			}
			e.changes = changed(field("nickname", was, nickname))
		}
		_, err = tx.Exec(ctx, `UPDATE members SET nickname = $3 WHERE server_id = $1 AND user_id = $2`, serverID, userID, nick)
		return err
	})
	if err != nil {
		return s.internal(ctx, "nickname", err)
	}
	return nil
}

// SetMyNickname changes the caller's nickname.
func (s *Service) SetMyNickname(ctx context.Context, req *connect.Request[communityv1.SetMyNicknameRequest]) (*connect.Response[communityv1.SetMyNicknameResponse], error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID("server_id", req.Msg.ServerId)
	if err != nil {
		return nil, err
	}
	if err := validNickname(req.Msg.Nickname); err != nil {
		return nil, err
	}
	if err := s.setNickname(ctx, req, id, p.UserID, req.Msg.Nickname, false); err != nil {
		return nil, err
	}
	return connect.NewResponse(&communityv1.SetMyNicknameResponse{}), nil
}

// SetMemberNickname changes the nickname of a member below the caller.
func (s *Service) SetMemberNickname(ctx context.Context, req *connect.Request[communityv1.SetMemberNicknameRequest]) (*connect.Response[communityv1.SetMemberNicknameResponse], error) {
	if err := validNickname(req.Msg.Nickname); err != nil {
		return nil, err
	}
	_, srv, err := s.moderation(ctx, req.Msg.ServerId, req.Msg.UserId)
	if err != nil {
		return nil, s.internal(ctx, "nickname", err)
	}
	if err := s.setNickname(ctx, req, srv.id, req.Msg.UserId, req.Msg.Nickname, true); err != nil {
		return nil, err
	}
	return connect.NewResponse(&communityv1.SetMemberNicknameResponse{}), nil
}
