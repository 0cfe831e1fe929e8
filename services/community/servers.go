package community

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/beepchat/beep/authz"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

// UpdateServer renames a server or changes whether it is public.
func (s *Service) UpdateServer(ctx context.Context, req *connect.Request[communityv1.UpdateServerRequest]) (*connect.Response[communityv1.UpdateServerResponse], error) {
	id, err := parseID("server_id", req.Msg.ServerId)
	if err != nil {
		return nil, err
	}
	if req.Msg.Name != nil {
		if err := validName("name", *req.Msg.Name, 2, 100); err != nil {
			return nil, err
		}
	}
	srv, err := getServer(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "update server", err)
	}
	before, was := serverRelationships(srv), srv
	if req.Msg.Name != nil {
		srv.name = strings.TrimSpace(*req.Msg.Name)
	}
	if req.Msg.Public != nil {
		srv.public = *req.Msg.Public
	}
	var d delta
	d.add, d.remove = diff(serverRelationships(srv), before)
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_SERVER_UPDATED, "server", id.String(), "",
		changed(field("name", was.name, srv.name), field("public", fmt.Sprint(was.public), fmt.Sprint(srv.public)))...)
	token, err := s.commitExec(ctx, id, d, `UPDATE servers SET name = $2, public = $3 WHERE id = $1`, id, srv.name, srv.public)
	if err != nil {
		return nil, s.internal(ctx, "update server", err)
	}
	return connect.NewResponse(&communityv1.UpdateServerResponse{Server: serverProto(srv), ZedToken: string(token)}), nil
}

// DeleteServer deletes a server and its whole graph.
func (s *Service) DeleteServer(ctx context.Context, req *connect.Request[communityv1.DeleteServerRequest]) (*connect.Response[communityv1.DeleteServerResponse], error) {
	id, err := parseID("server_id", req.Msg.ServerId)
	if err != nil {
		return nil, err
	}
	token, err := s.deleteServer(ctx, id)
	if err != nil {
		return nil, s.internal(ctx, "delete server", err)
	}
	return connect.NewResponse(&communityv1.DeleteServerResponse{ZedToken: string(token)}), nil
}

// deleteServer deletes a server, its rows (the audit log with them) and
// its graph, and records its channels and threads as deleted.
func (s *Service) deleteServer(ctx context.Context, id uuid.UUID) (authz.ZedToken, error) {
	st, err := loadServerState(ctx, s.db, id)
	if err != nil {
		return "", err
	}
	rels, err := st.desired(time.Now())
	if err != nil {
		return "", err
	}
	// Grants go before the rows, denies after: nobody gains access meanwhile.
	return s.commitExec(ctx, id, delta{remove: rels}, deleteServerSQL, id)
}

// TransferOwnership gives the server to another member.
func (s *Service) TransferOwnership(ctx context.Context, req *connect.Request[communityv1.TransferOwnershipRequest]) (*connect.Response[communityv1.TransferOwnershipResponse], error) {
	id, err := parseID("server_id", req.Msg.ServerId)
	if err != nil {
		return nil, err
	}
	srv, err := getServer(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "transfer", err)
	}
	to := req.Msg.NewOwnerId
	if to == "" || to == srv.ownerID {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("new_owner_id must name another member"))
	}
	if err := s.requireMember(ctx, id, to); err != nil {
		return nil, err
	}
	d := delta{
		remove: []authz.Relationship{rel(authz.Server.Owner, id.String(), authz.UserSubject(srv.ownerID))},
		add:    []authz.Relationship{rel(authz.Server.Owner, id.String(), authz.UserSubject(to))},
	}
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_SERVER_OWNERSHIP_TRANSFERRED, "user", to, "", field("owner_id", srv.ownerID, to))
	token, err := s.commit(ctx, id, d, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE servers SET owner_id = $2 WHERE id = $1 AND owner_id = $3`, id, to, srv.ownerID)
		if err == nil && tag.RowsAffected() == 0 {
			return connect.NewError(connect.CodeAborted, errors.New("the server changed owner meanwhile"))
		}
		return err
	})
	if err != nil {
		return nil, s.internal(ctx, "transfer", err)
	}
	srv.ownerID = to
	return connect.NewResponse(&communityv1.TransferOwnershipResponse{Server: serverProto(srv), ZedToken: string(token)}), nil
}

// ExploreServers pages through public servers, newest first.
func (s *Service) ExploreServers(ctx context.Context, req *connect.Request[communityv1.ExploreServersRequest]) (*connect.Response[communityv1.ExploreServersResponse], error) {
	size, err := pageSize(req.Msg.PageSize, 50, 200)
	if err != nil {
		return nil, err
	}
	before, beforeID := time.Now().Add(time.Hour), uuid.Max
	if t := req.Msg.PageToken; t != "" {
		var key string
		var err error
		before, key, err = decodeCursor(t)
		if err == nil {
			beforeID, err = uuid.Parse(key)
		}
		if err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("page_token is not one this service gave"))
		}
	}
	rows, err := s.db.Query(ctx, `SELECT s.id, s.name, s.owner_id, s.public, s.everyone_role_id, s.created_at,
			(SELECT count(*) FROM members m WHERE m.server_id = s.id)
		FROM servers s WHERE s.public AND (s.created_at, s.id) < ($1, $2)
		ORDER BY s.created_at DESC, s.id DESC LIMIT $3`, before, beforeID, size+1)
	if err != nil {
		return nil, s.internal(ctx, "explore", err)
	}
	type found struct {
		srv     serverRow
		members int64
	}
	servers, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (found, error) {
		var f found
		err := row.Scan(&f.srv.id, &f.srv.name, &f.srv.ownerID, &f.srv.public, &f.srv.everyoneRoleID, &f.srv.createdAt, &f.members)
		return f, err
	})
	if err != nil {
		return nil, s.internal(ctx, "explore", err)
	}
	resp := &communityv1.ExploreServersResponse{}
	if len(servers) > size {
		last := servers[size-1].srv
		resp.NextPageToken = encodeCursor(last.createdAt, last.id.String())
		servers = servers[:size]
	}
	for _, f := range servers {
		resp.Servers = append(resp.Servers, &communityv1.ExploredServer{Server: serverProto(f.srv), MemberCount: f.members})
	}
	return connect.NewResponse(resp), nil
}
