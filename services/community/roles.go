package community

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"

	"github.com/beepchat/beep/authz"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

// manageableRole loads a role the caller may manage: strictly below their
// highest role (the interceptor checked manage_roles).
func (s *Service) manageableRole(ctx context.Context, roleID string) (authz.Principal, authz.Rank, roleRow, serverRow, error) {
	p, err := principal(ctx)
	if err != nil {
		return p, authz.Rank{}, roleRow{}, serverRow{}, err
	}
	id, err := parseID("role_id", roleID)
	if err != nil {
		return p, authz.Rank{}, roleRow{}, serverRow{}, err
	}
	role, err := getRole(ctx, s.db, id)
	if err != nil {
		return p, authz.Rank{}, role, serverRow{}, err
	}
	srv, err := getServer(ctx, s.db, role.serverID)
	if err != nil {
		return p, authz.Rank{}, role, srv, err
	}
	actor, err := s.rank(ctx, srv, p.UserID)
	if err != nil {
		return p, actor, role, srv, err
	}
	if err := actor.RequireOutranksRole(role.position); err != nil {
		return p, actor, role, srv, connect.NewError(connect.CodePermissionDenied, err)
	}
	return p, actor, role, srv, nil
}

// UpdateRole changes a role.
func (s *Service) UpdateRole(ctx context.Context, req *connect.Request[communityv1.UpdateRoleRequest]) (*connect.Response[communityv1.UpdateRoleResponse], error) {
	p, _, role, srv, err := s.manageableRole(ctx, req.Msg.RoleId)
	if err != nil {
		return nil, s.internal(ctx, "update role", err)
	}
	everyone := role.id == srv.everyoneRoleID
	was := role
	before, err := roleRelationships(srv.id, role, everyone)
	if err != nil {
		return nil, s.internal(ctx, "update role", err)
	}
	had := role.permissions
	if req.Msg.Name != nil {
		if everyone {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("@everyone cannot be renamed"))
		}
		if err := validName("name", *req.Msg.Name, 1, 100); err != nil {
			return nil, err
		}
		role.name = strings.TrimSpace(*req.Msg.Name)
	}
	if req.Msg.SetPermissions {
		wanted, err := authz.ParseFlags(req.Msg.Permissions)
		if err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, err)
		}
		had, _ := authz.ParseFlags(had)
		held, err := s.heldFlags(ctx, srv.id, p, freshness(req.Header()))
		if err != nil {
			return nil, s.internal(ctx, "update role", err)
		}
		// Only what is added must be held; anyone who may manage the role
		// may take permissions away.
		if err := authz.RequireGrantable(held, wanted.Without(had)); err != nil {
			return nil, connect.NewError(connect.CodePermissionDenied, err)
		}
		role.permissions = wanted.Names()
	}
	if req.Msg.Color != nil {
		role.color = *req.Msg.Color
	}
	if req.Msg.Hoist != nil {
		role.hoist = *req.Msg.Hoist
	}
	if req.Msg.Mentionable != nil {
		role.mentionable = *req.Msg.Mentionable
	}
	after, err := roleRelationships(srv.id, role, everyone)
	if err != nil {
		return nil, s.internal(ctx, "update role", err)
	}
	var d delta
	d.add, d.remove = diff(after, before)
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_ROLE_UPDATED, "role", role.id.String(), "", changed(
		field("name", was.name, role.name), field("permissions", nameList(was.permissions), nameList(role.permissions)),
		field("color", fmt.Sprint(was.color), fmt.Sprint(role.color)), field("hoist", fmt.Sprint(was.hoist), fmt.Sprint(role.hoist)),
		field("mentionable", fmt.Sprint(was.mentionable), fmt.Sprint(role.mentionable)))...)
	token, err := s.commit(ctx, srv.id, d, func(tx pgx.Tx) error {
		// Only if what its relationships derive from (its permissions and
		// whether it is mentionable) is still what the delta was computed from.
		tag, err := tx.Exec(ctx, `UPDATE roles SET name = $2, permissions = $3, color = $4, hoist = $5, mentionable = $6 WHERE id = $1 AND permissions = $7 AND mentionable = $8`,
			role.id, role.name, role.permissions, role.color, role.hoist, role.mentionable, had, was.mentionable)
		if err == nil && tag.RowsAffected() == 0 {
			return errConflict
		}
		return err
	})
	if err != nil {
		return nil, s.internal(ctx, "update role", err)
	}
	return connect.NewResponse(&communityv1.UpdateRoleResponse{Role: roleProto(role), ZedToken: string(token)}), nil
}

// DeleteRole deletes a role, its memberships and the overwrites naming it.
func (s *Service) DeleteRole(ctx context.Context, req *connect.Request[communityv1.DeleteRoleRequest]) (*connect.Response[communityv1.DeleteRoleResponse], error) {
	_, _, role, srv, err := s.manageableRole(ctx, req.Msg.RoleId)
	if err != nil {
		return nil, s.internal(ctx, "delete role", err)
	}
	if role.id == srv.everyoneRoleID {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("@everyone cannot be deleted"))
	}
	var d delta
	if d.remove, err = roleRelationships(srv.id, role, false); err != nil {
		return nil, s.internal(ctx, "delete role", err)
	}
	st, err := loadServerState(ctx, s.db, srv.id)
	if err != nil {
		return nil, s.internal(ctx, "delete role", err)
	}
	holders, overwrites := 0, 0
	for _, mr := range st.memberRoles {
		if mr.roleID == role.id {
			holders++
			d.remove = append(d.remove, memberRoleRelationship(mr.roleID, mr.userID))
		}
	}
	for _, o := range st.overwrites {
		if o.targetKind == "role" && o.targetID == role.id.String() {
			overwrites++
			rels, err := overwriteRelationships(o)
			if err != nil {
				return nil, s.internal(ctx, "delete role", err)
			}
			d.remove = append(d.remove, rels...)
		}
	}
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_ROLE_DELETED, "role", role.id.String(), "",
		changed(field("name", role.name, ""), field("permissions", nameList(role.permissions), ""))...)
	token, err := s.commit(ctx, srv.id, d, func(tx pgx.Tx) error {
		// Only if no one was given the role, and no overwrite named it, meanwhile.
		var nowHolders, nowOverwrites int
		if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM member_roles WHERE role_id = $1),
			(SELECT count(*) FROM overwrites WHERE server_id = $2 AND target_kind = 'role' AND target_id = $3)`,
			role.id, srv.id, role.id.String()).Scan(&nowHolders, &nowOverwrites); err != nil {
			return err
		}
		if nowHolders != holders || nowOverwrites != overwrites {
			return errConflict
		}
		if _, err := tx.Exec(ctx, `DELETE FROM overwrites WHERE server_id = $1 AND target_kind = 'role' AND target_id = $2`, srv.id, role.id.String()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM roles WHERE id = $1`, role.id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE roles SET position = position - 1 WHERE server_id = $1 AND position > $2`, srv.id, role.position)
		return err
	})
	if err != nil {
		return nil, s.internal(ctx, "delete role", err)
	}
	return connect.NewResponse(&communityv1.DeleteRoleResponse{ZedToken: string(token)}), nil
}

// MoveRole moves a role to a new position, shifting the roles between.
// Positions are not in the graph: only the database changes.
func (s *Service) MoveRole(ctx context.Context, req *connect.Request[communityv1.MoveRoleRequest]) (*connect.Response[communityv1.MoveRoleResponse], error) {
	_, actor, role, srv, err := s.manageableRole(ctx, req.Msg.RoleId)
	if err != nil {
		return nil, s.internal(ctx, "move role", err)
	}
	if role.id == srv.everyoneRoleID {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("@everyone stays at the bottom"))
	}
	to := int(req.Msg.Position)
	if to < 1 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("position must be 1 or more"))
	}
	if err := actor.RequireOutranksRole(to); err != nil {
		return nil, connect.NewError(connect.CodePermissionDenied, err)
	}
	var roles []roleRow
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_ROLE_UPDATED, "role", role.id.String(), "")
	err = s.inTx(ctx, srv.id, func(tx pgx.Tx) error {
		var top int
		if err := tx.QueryRow(ctx, `SELECT MAX(position) FROM roles WHERE server_id = $1`, srv.id).Scan(&top); err != nil {
			return err
		}
		if to > top {
			to = top
		}
		if _, err := tx.Exec(ctx, `UPDATE roles SET position = position - 1 WHERE server_id = $1 AND position > $2`, srv.id, role.position); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE roles SET position = position + 1 WHERE server_id = $1 AND position >= $2 AND id <> $3`, srv.id, to, role.id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE roles SET position = $2 WHERE id = $1`, role.id, to); err != nil {
			return err
		}
		if e := pendingAudit(ctx); e != nil {
			e.changes = changed(field("position", fmt.Sprint(role.position), fmt.Sprint(to)))
		}
		rows, err := tx.Query(ctx, `SELECT `+roleColumns+` FROM roles WHERE server_id = $1 ORDER BY position DESC`, srv.id)
		if err != nil {
			return err
		}
		roles, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (roleRow, error) { return scanRole(row) })
		return err
	})
	if err != nil {
		return nil, s.internal(ctx, "move role", err)
	}
	resp := &communityv1.MoveRoleResponse{}
	for _, r := range roles {
		resp.Roles = append(resp.Roles, roleProto(r))
	}
	if !slices.ContainsFunc(roles, func(r roleRow) bool { return r.id == role.id && r.position == to }) {
		return nil, s.internal(ctx, "move role", errors.New("role not at its new position"))
	}
	return connect.NewResponse(resp), nil
}
