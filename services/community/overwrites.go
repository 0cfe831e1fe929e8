package community

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/beepchat/beep/authz"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

// Permission overwrites live on a holder: a channel or a category. A synced
// channel has none of its own and takes its category's.

// errConflict reports that what a mutation was computed from changed before
// it committed; nothing was changed.
var errConflict = connect.NewError(connect.CodeAborted, errors.New("changed by someone else meanwhile: read it again and retry"))

var targetKinds = map[string]communityv1.TargetKind{
	"everyone": communityv1.TargetKind_TARGET_KIND_EVERYONE,
	"role":     communityv1.TargetKind_TARGET_KIND_ROLE,
	"member":   communityv1.TargetKind_TARGET_KIND_MEMBER,
}

func overwritesProto(rows []overwriteRow) []*communityv1.PermissionOverwrite {
	out := make([]*communityv1.PermissionOverwrite, 0, len(rows))
	for _, o := range rows {
		out = append(out, &communityv1.PermissionOverwrite{TargetKind: targetKinds[o.targetKind], TargetId: o.targetID, Allow: o.allow, Deny: o.deny})
	}
	return out
}

// overwriteFromProto validates an overwrite for a holder of server srv.
func (s *Service) overwriteFromProto(ctx context.Context, srv serverRow, holderKind string, holderID uuid.UUID, o *communityv1.PermissionOverwrite) (overwriteRow, authz.Flags, error) {
	row := overwriteRow{holderID: holderID, holderKind: holderKind, targetID: o.GetTargetId()}
	bad := func(format string, args ...any) (overwriteRow, authz.Flags, error) {
		return row, 0, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
	}
	switch o.GetTargetKind() {
	case communityv1.TargetKind_TARGET_KIND_EVERYONE:
		row.targetKind, row.targetID = "everyone", ""
	case communityv1.TargetKind_TARGET_KIND_ROLE:
		row.targetKind = "role"
		roleID, err := uuid.Parse(row.targetID)
		if err != nil {
			return bad("overwrite target_id is not a role id")
		}
		if roleID == srv.everyoneRoleID {
			return bad("the @everyone role's overwrite has target_kind TARGET_KIND_EVERYONE")
		}
		role, err := getRole(ctx, s.db, roleID)
		if err != nil || role.serverID != srv.id {
			return bad("overwrite names a role of another server")
		}
		row.targetID = roleID.String()
	case communityv1.TargetKind_TARGET_KIND_MEMBER:
		row.targetKind = "member"
		if ok, err := isMember(ctx, s.db, srv.id, row.targetID); err != nil || !ok {
			return bad("overwrite names a user who is not a member")
		}
	default:
		return bad("overwrite target_kind is required")
	}
	allow, err := authz.ParseFlags(o.GetAllow())
	if err != nil {
		return bad("%v", err)
	}
	deny, err := authz.ParseFlags(o.GetDeny())
	if err != nil {
		return bad("%v", err)
	}
	// Validates overwritability and allow/deny overlap.
	if _, err := authz.Overwrite(authz.ObjectType(holderKind).Object(holderID.String()), authz.EveryoneTarget(), allow, deny); err != nil {
		return bad("%v", err)
	}
	row.allow, row.deny = allow.Names(), deny.Names()
	return row, allow | deny, nil
}

// overwritesFromProto validates a holder's initial overwrites, one per target.
func (s *Service) overwritesFromProto(ctx context.Context, srv serverRow, holderKind string, holderID uuid.UUID, in []*communityv1.PermissionOverwrite) ([]overwriteRow, authz.Flags, error) {
	var (
		rows    []overwriteRow
		touched authz.Flags
	)
	for _, o := range in {
		row, flags, err := s.overwriteFromProto(ctx, srv, holderKind, holderID, o)
		if err != nil {
			return nil, 0, err
		}
		if slices.ContainsFunc(rows, func(r overwriteRow) bool { return sameTarget(r, row) }) {
			return nil, 0, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("two overwrites for the same %s", row.targetKind))
		}
		if len(row.allow)+len(row.deny) > 0 {
			rows = append(rows, row)
		}
		touched |= flags
	}
	return rows, touched, nil
}

func sameTarget(a, b overwriteRow) bool {
	return a.targetKind == b.targetKind && a.targetID == b.targetID
}

// withOverwrite is set with row replacing the overwrite of its target (an
// empty row removes it).
func withOverwrite(set []overwriteRow, row overwriteRow) []overwriteRow {
	out := make([]overwriteRow, 0, len(set)+1)
	for _, o := range set {
		if !sameTarget(o, row) {
			out = append(out, o)
		}
	}
	if len(row.allow)+len(row.deny) > 0 {
		out = append(out, row)
	}
	return out
}

// movedTo is set as overwrites of another holder (unsyncing copies a
// category's overwrites to the channel).
func movedTo(set []overwriteRow, holderKind string, holderID uuid.UUID) []overwriteRow {
	out := make([]overwriteRow, len(set))
	for i, o := range set {
		o.holderKind, o.holderID = holderKind, holderID
		out[i] = o
	}
	return out
}

func overwriteSetRelationships(set []overwriteRow) ([]authz.Relationship, error) {
	var out []authz.Relationship
	for _, o := range set {
		rels, err := overwriteRelationships(o)
		if err != nil {
			return nil, err
		}
		out = append(out, rels...)
	}
	return out, nil
}

// change is the delta from one set of relationships to another.
func change(before, after []authz.Relationship) delta {
	add, remove := diff(after, before)
	return delta{add: add, remove: remove}
}

// replaceOverwrites makes set the holder's overwrites in the database.
func replaceOverwrites(ctx context.Context, tx pgx.Tx, serverID, holderID uuid.UUID, set []overwriteRow) error {
	if _, err := tx.Exec(ctx, `DELETE FROM overwrites WHERE holder_id = $1`, holderID); err != nil {
		return err
	}
	for _, o := range set {
		if _, err := tx.Exec(ctx, `INSERT INTO overwrites (server_id, `+overwriteColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			serverID, o.holderID, o.holderKind, o.targetKind, o.targetID, o.allow, o.deny); err != nil {
			return err
		}
	}
	return nil
}

// expectOverwrites locks a holder's overwrites in tx and checks that they
// are still those a mutation was computed from.
func expectOverwrites(ctx context.Context, tx pgx.Tx, holderID uuid.UUID, want []overwriteRow) error {
	rows, err := tx.Query(ctx, `SELECT `+overwriteColumns+` FROM overwrites WHERE holder_id = $1 ORDER BY target_kind, target_id FOR UPDATE`, holderID)
	if err != nil {
		return err
	}
	have, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (overwriteRow, error) { return scanOverwrite(row) })
	if err != nil {
		return err
	}
	key := func(set []overwriteRow) []string {
		out := make([]string, 0, len(set))
		for _, o := range set {
			out = append(out, fmt.Sprint(o.targetKind, o.targetID, o.allow, o.deny))
		}
		slices.Sort(out)
		return out
	}
	if !slices.Equal(key(have), key(want)) {
		return errConflict
	}
	return nil
}

// requireOverwrite checks that p may set overwrites touching flags where
// they apply (a channel, a category, or the server for a new channel):
// editing overwrites needs manage_roles there (Discord's Manage
// Permissions), and one may only allow or deny what one holds there.
func (s *Service) requireOverwrite(ctx context.Context, where authz.Object, p authz.Principal, flags authz.Flags, c authz.Consistency) error {
	var (
		held authz.Flags
		err  error
	)
	switch where.Type {
	case authz.TypeChannel:
		held, err = s.authz.ChannelFlags(ctx, p.Subject(), where.ID, c)
	case authz.TypeCategory:
		held, err = s.authz.CategoryFlags(ctx, p.Subject(), where.ID, c)
	default:
		held, err = s.authz.ServerFlags(ctx, p.Subject(), where.ID, c)
	}
	if err != nil {
		return err
	}
	if !held.Has(authz.FlagManageRoles) && !held.Has(authz.FlagAdministrator) {
		return connect.NewError(connect.CodePermissionDenied, errors.New("setting permission overwrites needs manage_roles"))
	}
	if err := authz.RequireGrantable(held, flags); err != nil {
		return connect.NewError(connect.CodePermissionDenied, err)
	}
	return nil
}
