package community

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

var errNotFound = errors.New("not found")

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func getServer(ctx context.Context, q querier, id uuid.UUID) (serverRow, error) {
	var s serverRow
	err := q.QueryRow(ctx, `SELECT id, name, owner_id, public, everyone_role_id, created_at FROM servers WHERE id = $1`, id).
		Scan(&s.id, &s.name, &s.ownerID, &s.public, &s.everyoneRoleID, &s.createdAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, errNotFound
	}
	return s, err
}

// scanner is a row to scan: pgx.Row or pgx.CollectableRow.
type scanner interface{ Scan(dest ...any) error }

const roleColumns = `id, server_id, name, position, permissions, color, hoist, mentionable`

func scanRole(row scanner) (roleRow, error) {
	var r roleRow
	err := row.Scan(&r.id, &r.serverID, &r.name, &r.position, &r.permissions, &r.color, &r.hoist, &r.mentionable)
	return r, err
}

const channelColumns = `id, server_id, category_id, kind, name, position, synced`

func scanChannel(row scanner) (channelRow, error) {
	var c channelRow
	err := row.Scan(&c.id, &c.serverID, &c.categoryID, &c.kind, &c.name, &c.position, &c.synced)
	return c, err
}

const categoryColumns = `id, server_id, name, position`

func scanCategory(row scanner) (categoryRow, error) {
	var c categoryRow
	err := row.Scan(&c.id, &c.serverID, &c.name, &c.position)
	return c, err
}

func getCategory(ctx context.Context, q querier, id uuid.UUID) (categoryRow, error) {
	c, err := scanCategory(q.QueryRow(ctx, `SELECT `+categoryColumns+` FROM categories WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, errNotFound
	}
	return c, err
}

const threadColumns = `id, server_id, channel_id, creator_id, name, private, locked, archived, created_at`

func scanThread(row scanner) (threadRow, error) {
	var t threadRow
	err := row.Scan(&t.id, &t.serverID, &t.channelID, &t.creatorID, &t.name, &t.private, &t.locked, &t.archived, &t.createdAt)
	return t, err
}

func getThread(ctx context.Context, q querier, id uuid.UUID) (threadRow, error) {
	t, err := scanThread(q.QueryRow(ctx, `SELECT `+threadColumns+` FROM threads WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return t, errNotFound
	}
	return t, err
}

const overwriteColumns = `holder_id, holder_kind, target_kind, target_id, allow, deny`

func scanOverwrite(row scanner) (overwriteRow, error) {
	var o overwriteRow
	err := row.Scan(&o.holderID, &o.holderKind, &o.targetKind, &o.targetID, &o.allow, &o.deny)
	return o, err
}

func getRole(ctx context.Context, q querier, id uuid.UUID) (roleRow, error) {
	r, err := scanRole(q.QueryRow(ctx, `SELECT `+roleColumns+` FROM roles WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, errNotFound
	}
	return r, err
}

func getChannel(ctx context.Context, q querier, id uuid.UUID) (channelRow, error) {
	c, err := scanChannel(q.QueryRow(ctx, `SELECT `+channelColumns+` FROM channels WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, errNotFound
	}
	return c, err
}

func isMember(ctx context.Context, q querier, serverID uuid.UUID, userID string) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM members WHERE server_id = $1 AND user_id = $2)`, serverID, userID).Scan(&ok)
	return ok, err
}

// topPosition is the position of the member's highest role (0: @everyone only).
func topPosition(ctx context.Context, q querier, serverID uuid.UUID, userID string) (int, error) {
	var top int
	err := q.QueryRow(ctx, `SELECT COALESCE(MAX(r.position), 0) FROM member_roles mr JOIN roles r ON r.id = mr.role_id
		WHERE mr.server_id = $1 AND mr.user_id = $2`, serverID, userID).Scan(&top)
	return top, err
}

func memberRoles(ctx context.Context, q querier, serverID uuid.UUID, userID string) ([]uuid.UUID, error) {
	rows, err := q.Query(ctx, `SELECT role_id FROM member_roles WHERE server_id = $1 AND user_id = $2`, serverID, userID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}

func channelOverwrites(ctx context.Context, q querier, holderID uuid.UUID) ([]overwriteRow, error) {
	rows, err := q.Query(ctx, `SELECT `+overwriteColumns+` FROM overwrites WHERE holder_id = $1 ORDER BY target_kind, target_id`, holderID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (overwriteRow, error) { return scanOverwrite(row) })
}

// loadServerState reads every row of a server the graph derives from.
func loadServerState(ctx context.Context, q querier, id uuid.UUID) (*serverState, error) {
	srv, err := getServer(ctx, q, id)
	if err != nil {
		return nil, err
	}
	st := &serverState{server: srv}
	rows, err := q.Query(ctx, `SELECT user_id, timed_out_until FROM members WHERE server_id = $1`, id)
	if err != nil {
		return nil, err
	}
	if st.members, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (memberRow, error) {
		var m memberRow
		return m, row.Scan(&m.userID, &m.timedOutUntil)
	}); err != nil {
		return nil, err
	}
	if rows, err = q.Query(ctx, `SELECT user_id FROM bans WHERE server_id = $1`, id); err != nil {
		return nil, err
	}
	if st.bans, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return nil, err
	}
	if rows, err = q.Query(ctx, `SELECT `+roleColumns+` FROM roles WHERE server_id = $1`, id); err != nil {
		return nil, err
	}
	if st.roles, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (roleRow, error) { return scanRole(row) }); err != nil {
		return nil, err
	}
	if rows, err = q.Query(ctx, `SELECT role_id, user_id FROM member_roles WHERE server_id = $1`, id); err != nil {
		return nil, err
	}
	if st.memberRoles, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (memberRoleRow, error) {
		var mr memberRoleRow
		return mr, row.Scan(&mr.roleID, &mr.userID)
	}); err != nil {
		return nil, err
	}
	if rows, err = q.Query(ctx, `SELECT `+categoryColumns+` FROM categories WHERE server_id = $1`, id); err != nil {
		return nil, err
	}
	if st.categories, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (categoryRow, error) { return scanCategory(row) }); err != nil {
		return nil, err
	}
	if rows, err = q.Query(ctx, `SELECT `+threadColumns+` FROM threads WHERE server_id = $1`, id); err != nil {
		return nil, err
	}
	if st.threads, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (threadRow, error) { return scanThread(row) }); err != nil {
		return nil, err
	}
	if rows, err = q.Query(ctx, `SELECT thread_id, user_id FROM thread_participants WHERE server_id = $1`, id); err != nil {
		return nil, err
	}
	if st.participants, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (participantRow, error) {
		var p participantRow
		return p, row.Scan(&p.threadID, &p.userID)
	}); err != nil {
		return nil, err
	}
	if rows, err = q.Query(ctx, `SELECT `+channelColumns+` FROM channels WHERE server_id = $1`, id); err != nil {
		return nil, err
	}
	if st.channels, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (channelRow, error) { return scanChannel(row) }); err != nil {
		return nil, err
	}
	if rows, err = q.Query(ctx, `SELECT `+overwriteColumns+` FROM overwrites WHERE server_id = $1`, id); err != nil {
		return nil, err
	}
	if st.overwrites, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (overwriteRow, error) { return scanOverwrite(row) }); err != nil {
		return nil, err
	}
	if rows, err = q.Query(ctx, `SELECT `+inviteColumns+` FROM invites WHERE server_id = $1`, id); err != nil {
		return nil, err
	}
	st.invites, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (inviteRow, error) { return scanInvite(row) })
	return st, err
}
