package community

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/beepchat/beep/authz"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
	"github.com/beepchat/beep/gen/beep/community/v1/communityv1connect"
)

var _ communityv1connect.ErasureServiceHandler = (*Service)(nil)

// InternalHandler returns the path and the Connect handler of the service's
// internal API (ErasureService), which only other Beep services call: the
// gateway does not route it.
func (s *Service) InternalHandler(opts ...connect.HandlerOption) (string, http.Handler) {
	return communityv1connect.NewErasureServiceHandler(s, opts...)
}

// userServers lists every server holding a trace of the user: owned,
// joined, banned from, a ban they issued, an invite or thread they made, a
// thread they are in, an overwrite naming them.
const userServers = `
SELECT id FROM servers WHERE owner_id = $1
UNION SELECT server_id FROM members WHERE user_id = $1
UNION SELECT server_id FROM bans WHERE user_id = $1 OR banned_by = $1
UNION SELECT server_id FROM invites WHERE creator_id = $1
UNION SELECT server_id FROM threads WHERE creator_id = $1
UNION SELECT server_id FROM thread_participants WHERE user_id = $1
UNION SELECT server_id FROM overwrites WHERE target_kind = 'member' AND target_id = $1
UNION SELECT server_id FROM audit_log WHERE actor_id = $1 OR target_id = $1 OR strpos(changes::text, $1) > 0 OR strpos(reason, $1) > 0`

// successor is who inherits a server whose owner's account is erased: the
// member holding the highest role, the longest-standing among equals.
const successor = `
SELECT m.user_id FROM members m
LEFT JOIN member_roles mr ON mr.server_id = m.server_id AND mr.user_id = m.user_id
LEFT JOIN roles r ON r.id = mr.role_id
WHERE m.server_id = $1 AND m.user_id <> $2
GROUP BY m.user_id, m.joined_at
ORDER BY max(r.position) DESC NULLS LAST, m.joined_at, m.user_id
LIMIT 1`

// EraseUser removes every trace of a user, server by server; see the
// ErasureService documentation. Each server is one database transaction,
// then a reconciliation of its graph, under a dirty mark: a crash at any
// point leaves the mark for the reconciler, and running EraseUser again
// finishes what is left.
func (s *Service) EraseUser(ctx context.Context, req *connect.Request[communityv1.EraseUserRequest]) (*connect.Response[communityv1.EraseUserResponse], error) {
	userID := req.Msg.UserId
	if userID == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("user_id is required"))
	}
	rows, err := s.db.Query(ctx, userServers, userID)
	if err != nil {
		return nil, s.internal(ctx, "erase user", err)
	}
	servers, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, s.internal(ctx, "erase user", err)
	}
	resp := &communityv1.EraseUserResponse{Transferred: map[string]string{}}
	for _, id := range servers {
		out, err := s.eraseFromServer(ctx, id, userID)
		if err != nil {
			return nil, s.internal(ctx, "erase user", fmt.Errorf("server %s: %w", id, err))
		}
		switch {
		case out.deleted:
			resp.Deleted = append(resp.Deleted, id.String())
		case out.newOwner != "":
			resp.Transferred[id.String()] = out.newOwner
		}
		if out.wasMember {
			resp.MembershipsRemoved++
		}
		if out.token != "" {
			resp.ZedToken = string(out.token)
		}
	}
	if len(servers) > 0 {
		s.log.InfoContext(ctx, "erased a user", "user", userID, "servers", len(servers),
			"transferred", len(resp.Transferred), "deleted", len(resp.Deleted))
	}
	return connect.NewResponse(resp), nil
}

// erasure is what erasing a user did to one server.
type erasure struct {
	newOwner  string // the server passed to them
	deleted   bool   // nobody else was in it
	wasMember bool
	token     authz.ZedToken
}

// eraseFromServer erases the user's rows of one server in one transaction,
// then brings the server's graph in line with them. The graph is converged
// after the commit, not narrowed before it as other mutations are: what the
// erased user keeps meanwhile is access for an account that can no longer
// sign in, and the successor's new rights are widening.
func (s *Service) eraseFromServer(ctx context.Context, id uuid.UUID, userID string) (erasure, error) {
	var out erasure
	mark := newID()
	if _, err := s.db.Exec(ctx, `INSERT INTO authz_dirty (id, server_id) VALUES ($1, $2)`, mark, id); err != nil {
		return out, fmt.Errorf("marking: %w", err)
	}
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		out = erasure{}
		var owner string
		err := tx.QueryRow(ctx, `SELECT owner_id FROM servers WHERE id = $1 FOR UPDATE`, id).Scan(&owner)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return err
		}
		if owner == userID {
			var next string
			err := tx.QueryRow(ctx, successor, id, userID).Scan(&next)
			if errors.Is(err, pgx.ErrNoRows) {
				out.deleted = true
				_, err = tx.Exec(ctx, deleteServerSQL, id)
				return err
			}
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE servers SET owner_id = $2 WHERE id = $1`, id, next); err != nil {
				return err
			}
			out.newOwner = next
		}
		tag, err := tx.Exec(ctx, `DELETE FROM members WHERE server_id = $1 AND user_id = $2`, id, userID)
		if err != nil {
			return err
		}
		out.wasMember = tag.RowsAffected() > 0
		for _, stmt := range []string{
			`DELETE FROM bans WHERE server_id = $1 AND user_id = $2`,
			`UPDATE bans SET banned_by = '' WHERE server_id = $1 AND banned_by = $2`,
			`DELETE FROM overwrites WHERE server_id = $1 AND target_kind = 'member' AND target_id = $2`,
			`DELETE FROM thread_participants WHERE server_id = $1 AND user_id = $2`,
			`UPDATE threads SET creator_id = '' WHERE server_id = $1 AND creator_id = $2`,
			`UPDATE invites SET creator_id = '' WHERE server_id = $1 AND creator_id = $2`,
			// The audit log keeps the actions, not the person: as actor,
			// target, or named in a change or a reason; nor the nicknames
			// others gave them.
			`UPDATE audit_log SET changes = '[]' WHERE server_id = $1 AND action = 'member_nickname_changed' AND target_kind = 'user' AND target_id = $2`,
			`UPDATE audit_log SET actor_id = '' WHERE server_id = $1 AND actor_id = $2`,
			`UPDATE audit_log SET target_id = '' WHERE server_id = $1 AND target_id = $2`,
			`UPDATE audit_log SET reason = replace(reason, $2, '') WHERE server_id = $1 AND strpos(reason, $2) > 0`,
			`UPDATE audit_log SET changes = (SELECT COALESCE(jsonb_agg(jsonb_build_object(
					'key', replace(c->>'key', $2, ''), 'before', replace(c->>'before', $2, ''), 'after', replace(c->>'after', $2, '')) ORDER BY n), '[]')
				FROM jsonb_array_elements(changes) WITH ORDINALITY AS e(c, n))
				WHERE server_id = $1 AND strpos(changes::text, $2) > 0`,
		} {
			if _, err := tx.Exec(ctx, stmt, id, userID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.unmark(ctx, id, mark) // nothing changed
		return out, err
	}
	if s.afterCommit != nil {
		if err := s.afterCommit(); err != nil {
			return out, err // a simulated crash: the mark stays
		}
	}
	drift, err := s.reconcile(ctx, id, true)
	if err != nil {
		return out, fmt.Errorf("saved, but converging its graph failed (the reconciler will): %w", err)
	}
	out.token = drift.At
	s.unmark(ctx, id, mark)
	return out, nil
}
