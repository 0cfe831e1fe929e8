package community

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

// The platform's view of servers: staff (platform#moderate) inspect any
// server and any user's servers; admins remove servers. The interceptor
// checked the platform permission.

// InspectServer returns a server and its counts.
func (s *Service) InspectServer(ctx context.Context, req *connect.Request[communityv1.InspectServerRequest]) (*connect.Response[communityv1.InspectServerResponse], error) {
	id, err := parseID("server_id", req.Msg.ServerId)
	if err != nil {
		return nil, err
	}
	srv, err := getServer(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "inspect server", err)
	}
	out := &communityv1.InspectServerResponse{Server: serverProto(srv)}
	err = s.db.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM members WHERE server_id = $1),
		(SELECT count(*) FROM roles WHERE server_id = $1),
		(SELECT count(*) FROM channels WHERE server_id = $1),
		(SELECT count(*) FROM categories WHERE server_id = $1),
		(SELECT count(*) FROM bans WHERE server_id = $1),
		(SELECT count(*) FROM invites WHERE server_id = $1),
		(SELECT count(*) FROM audit_log WHERE server_id = $1)`, id).
		Scan(&out.Members, &out.Roles, &out.Channels, &out.Categories, &out.Bans, &out.Invites, &out.AuditLogEntries)
	if err != nil {
		return nil, s.internal(ctx, "inspect server", err)
	}
	return connect.NewResponse(out), nil
}

// ListUserServers lists the servers a user is a member of, by join time.
func (s *Service) ListUserServers(ctx context.Context, req *connect.Request[communityv1.ListUserServersRequest]) (*connect.Response[communityv1.ListUserServersResponse], error) {
	if req.Msg.UserId == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("user_id is required"))
	}
	rows, err := s.db.Query(ctx, `SELECT s.id, s.name, s.owner_id, s.public, s.everyone_role_id, s.created_at, m.joined_at
		FROM members m JOIN servers s ON s.id = m.server_id
		WHERE m.user_id = $1 ORDER BY m.joined_at, m.server_id`, req.Msg.UserId)
	if err != nil {
		return nil, s.internal(ctx, "list user servers", err)
	}
	servers, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*communityv1.UserServer, error) {
		var (
			srv    serverRow
			joined time.Time
		)
		if err := row.Scan(&srv.id, &srv.name, &srv.ownerID, &srv.public, &srv.everyoneRoleID, &srv.createdAt, &joined); err != nil {
			return nil, err
		}
		return &communityv1.UserServer{Server: serverProto(srv), JoinedAt: timestamppb.New(joined), Owner: srv.ownerID == req.Msg.UserId}, nil
	})
	if err != nil {
		return nil, s.internal(ctx, "list user servers", err)
	}
	return connect.NewResponse(&communityv1.ListUserServersResponse{Servers: servers}), nil
}

// RemoveServer deletes a server for a platform admin. Its own audit log
// goes with it: the audit record (the sink) keeps who removed it and why.
func (s *Service) RemoveServer(ctx context.Context, req *connect.Request[communityv1.RemoveServerRequest]) (*connect.Response[communityv1.RemoveServerResponse], error) {
	id, err := parseID("server_id", req.Msg.ServerId)
	if err != nil {
		return nil, err
	}
	if len(req.Msg.Reason) > 512 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("reason is at most 512 characters"))
	}
	token, err := s.deleteServer(ctx, id)
	if err != nil {
		return nil, s.internal(ctx, "remove server", err)
	}
	s.audited(ctx, &auditEntry{targetKind: "server", targetID: id.String(), reason: req.Msg.Reason, req: req}, token)
	s.log.InfoContext(ctx, "server removed by the platform", "server", id, "reason", req.Msg.Reason)
	return connect.NewResponse(&communityv1.RemoveServerResponse{ZedToken: string(token)}), nil
}
