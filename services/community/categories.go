package community

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/beepchat/beep/authz"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

func categoryProto(c categoryRow, overwrites []overwriteRow) *communityv1.Category {
	return &communityv1.Category{Id: c.id.String(), ServerId: c.serverID.String(), Name: c.name, Position: int32(c.position),
		Overwrites: overwritesProto(overwrites)}
}

// categoryGraph is every relationship a category holds: its server edge and
// its overwrites.
func categoryGraph(c categoryRow, own []overwriteRow) ([]authz.Relationship, error) {
	rels, err := overwriteSetRelationships(own)
	return append([]authz.Relationship{categoryRelationship(c)}, rels...), err
}

// CreateCategory adds a category after the server's others.
func (s *Service) CreateCategory(ctx context.Context, req *connect.Request[communityv1.CreateCategoryRequest]) (*connect.Response[communityv1.CreateCategoryResponse], error) {
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
	srv, err := getServer(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "create category", err)
	}
	cat := categoryRow{id: newID(), serverID: id, name: strings.TrimSpace(req.Msg.Name)}
	own, touched, err := s.overwritesFromProto(ctx, srv, "category", cat.id, req.Msg.Overwrites)
	if err != nil {
		return nil, err
	}
	if len(req.Msg.Overwrites) > 0 {
		if err := s.requireOverwrite(ctx, authz.TypeServer.Object(id.String()), p, touched, freshness(req.Header())); err != nil {
			return nil, s.internal(ctx, "create category", err)
		}
	}
	rels, err := categoryGraph(cat, own)
	if err != nil {
		return nil, s.internal(ctx, "create category", err)
	}
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_CATEGORY_CREATED, "category", cat.id.String(), "",
		append(changed(field("name", "", cat.name)), overwriteChanges(nil, own)...)...)
	token, err := s.commit(ctx, id, delta{add: rels}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO categories (id, server_id, name, position)
			VALUES ($1, $2, $3, (SELECT COALESCE(MAX(position), -1) + 1 FROM categories WHERE server_id = $2)) RETURNING position`,
			cat.id, id, cat.name).Scan(&cat.position); err != nil {
			return err
		}
		return replaceOverwrites(ctx, tx, id, cat.id, own)
	})
	if err != nil {
		return nil, s.internal(ctx, "create category", err)
	}
	return connect.NewResponse(&communityv1.CreateCategoryResponse{Category: categoryProto(cat, own), ZedToken: string(token)}), nil
}

// UpdateCategory renames a category.
func (s *Service) UpdateCategory(ctx context.Context, req *connect.Request[communityv1.UpdateCategoryRequest]) (*connect.Response[communityv1.UpdateCategoryResponse], error) {
	id, err := parseID("category_id", req.Msg.CategoryId)
	if err != nil {
		return nil, err
	}
	if err := validName("name", req.Msg.Name, 1, 100); err != nil {
		return nil, err
	}
	was, err := getCategory(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "update category", err)
	}
	var cat categoryRow
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_CATEGORY_UPDATED, "category", id.String(), "")
	err = s.inTx(ctx, was.serverID, func(tx pgx.Tx) error {
		var before string
		err := tx.QueryRow(ctx, `SELECT name FROM categories WHERE id = $1 FOR UPDATE`, id).Scan(&before)
		if err == nil {
			cat, err = scanCategory(tx.QueryRow(ctx, `UPDATE categories SET name = $2 WHERE id = $1 RETURNING `+categoryColumns, id, strings.TrimSpace(req.Msg.Name)))
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return errNotFound
		}
		pendingAudit(ctx).changes = changed(field("name", before, cat.name))
		return err
	})
	if err != nil {
		return nil, s.internal(ctx, "update category", err)
	}
	own, err := channelOverwrites(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "update category", err)
	}
	return connect.NewResponse(&communityv1.UpdateCategoryResponse{Category: categoryProto(cat, own)}), nil
}

// MoveCategory reorders a server's categories.
func (s *Service) MoveCategory(ctx context.Context, req *connect.Request[communityv1.MoveCategoryRequest]) (*connect.Response[communityv1.MoveCategoryResponse], error) {
	id, err := parseID("category_id", req.Msg.CategoryId)
	if err != nil {
		return nil, err
	}
	cat, err := getCategory(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "move category", err)
	}
	var categories []categoryRow
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_CATEGORY_UPDATED, "category", id.String(), "")
	err = s.inTx(ctx, cat.serverID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id FROM categories WHERE server_id = $1 AND id <> $2 ORDER BY position, id FOR UPDATE`, cat.serverID, id)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return err
		}
		ids = slices.Insert(ids, min(max(int(req.Msg.Position), 0), len(ids)), id)
		if _, err := tx.Exec(ctx, `UPDATE categories c SET position = o.n - 1 FROM unnest($1::uuid[]) WITH ORDINALITY AS o(id, n) WHERE c.id = o.id`, ids); err != nil {
			return err
		}
		if rows, err = tx.Query(ctx, `SELECT `+categoryColumns+` FROM categories WHERE server_id = $1 ORDER BY position`, cat.serverID); err != nil {
			return err
		}
		categories, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (categoryRow, error) { return scanCategory(row) })
		for _, c := range categories {
			if c.id == id {
				pendingAudit(ctx).changes = changed(field("position", fmt.Sprint(cat.position), fmt.Sprint(c.position)))
			}
		}
		return err
	})
	if err != nil {
		return nil, s.internal(ctx, "move category", err)
	}
	out := &communityv1.MoveCategoryResponse{}
	for _, c := range categories {
		out.Categories = append(out.Categories, categoryProto(c, nil))
	}
	return connect.NewResponse(out), nil
}

// SetCategoryPermissionOverwrite replaces one overwrite of a category.
func (s *Service) SetCategoryPermissionOverwrite(ctx context.Context, req *connect.Request[communityv1.SetCategoryPermissionOverwriteRequest]) (*connect.Response[communityv1.SetCategoryPermissionOverwriteResponse], error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID("category_id", req.Msg.CategoryId)
	if err != nil {
		return nil, err
	}
	if req.Msg.Overwrite == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("overwrite is required"))
	}
	cat, err := getCategory(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "set category overwrite", err)
	}
	srv, err := getServer(ctx, s.db, cat.serverID)
	if err != nil {
		return nil, s.internal(ctx, "set category overwrite", err)
	}
	row, touched, err := s.overwriteFromProto(ctx, srv, "category", id, req.Msg.Overwrite)
	if err != nil {
		return nil, err
	}
	if err := s.requireOverwrite(ctx, authz.TypeCategory.Object(id.String()), p, touched, freshness(req.Header())); err != nil {
		return nil, s.internal(ctx, "set category overwrite", err)
	}
	own, err := channelOverwrites(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "set category overwrite", err)
	}
	after := withOverwrite(own, row)
	before, err := overwriteSetRelationships(own)
	if err != nil {
		return nil, s.internal(ctx, "set category overwrite", err)
	}
	now, err := overwriteSetRelationships(after)
	if err != nil {
		return nil, s.internal(ctx, "set category overwrite", err)
	}
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_OVERWRITES_UPDATED, "category", id.String(), "", overwriteChanges(own, after)...)
	token, err := s.commit(ctx, cat.serverID, change(before, now), func(tx pgx.Tx) error {
		if err := expectOverwrites(ctx, tx, id, own); err != nil {
			return err
		}
		return replaceOverwrites(ctx, tx, cat.serverID, id, after)
	})
	if err != nil {
		return nil, s.internal(ctx, "set category overwrite", err)
	}
	return connect.NewResponse(&communityv1.SetCategoryPermissionOverwriteResponse{Category: categoryProto(cat, after), ZedToken: string(token)}), nil
}

// DeleteCategory deletes a category; its channels stay, outside categories,
// with the permissions they had.
func (s *Service) DeleteCategory(ctx context.Context, req *connect.Request[communityv1.DeleteCategoryRequest]) (*connect.Response[communityv1.DeleteCategoryResponse], error) {
	id, err := parseID("category_id", req.Msg.CategoryId)
	if err != nil {
		return nil, err
	}
	cat, err := getCategory(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "delete category", err)
	}
	own, err := channelOverwrites(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "delete category", err)
	}
	rows, err := s.db.Query(ctx, `SELECT id FROM channels WHERE category_id = $1`, id)
	if err != nil {
		return nil, s.internal(ctx, "delete category", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, s.internal(ctx, "delete category", err)
	}
	before, err := categoryGraph(cat, own)
	if err != nil {
		return nil, s.internal(ctx, "delete category", err)
	}
	var (
		after    []authz.Relationship
		channels []channelState
		copies   = map[uuid.UUID][]overwriteRow{}
	)
	for _, chID := range ids {
		st, err := s.loadChannel(ctx, s.db, chID)
		if err != nil {
			return nil, s.internal(ctx, "delete category", err)
		}
		channels = append(channels, st)
		was, err := channelGraph(st.row, st.own)
		if err != nil {
			return nil, s.internal(ctx, "delete category", err)
		}
		moved, movedOwn := st.row, st.own
		moved.categoryID, moved.synced = nil, false
		if st.row.synced {
			movedOwn = movedTo(st.inherited, "channel", chID)
			copies[chID] = movedOwn
		}
		is, err := channelGraph(moved, movedOwn)
		if err != nil {
			return nil, s.internal(ctx, "delete category", err)
		}
		before, after = append(before, was...), append(after, is...)
	}
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_CATEGORY_DELETED, "category", id.String(), "", field("name", cat.name, ""))
	token, err := s.commit(ctx, cat.serverID, change(before, after), func(tx pgx.Tx) error {
		if err := expectOverwrites(ctx, tx, id, own); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM channels WHERE category_id = $1`, id).Scan(&n); err != nil {
			return err
		}
		if n != len(channels) {
			return errConflict
		}
		for _, st := range channels {
			if err := expectChannel(ctx, tx, st); err != nil {
				return err
			}
			if st.row.synced {
				if err := replaceOverwrites(ctx, tx, cat.serverID, st.row.id, copies[st.row.id]); err != nil {
					return err
				}
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE channels SET category_id = NULL, synced = false WHERE category_id = $1`, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM overwrites WHERE holder_id = $1`, id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM categories WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return nil, s.internal(ctx, "delete category", err)
	}
	return connect.NewResponse(&communityv1.DeleteCategoryResponse{ZedToken: string(token)}), nil
}
