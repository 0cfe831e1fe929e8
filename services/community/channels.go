package community

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/beepchat/beep/authz"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

var channelKinds = map[communityv1.ChannelKind]string{
	communityv1.ChannelKind_CHANNEL_KIND_TEXT:         "text",
	communityv1.ChannelKind_CHANNEL_KIND_VOICE:        "voice",
	communityv1.ChannelKind_CHANNEL_KIND_ANNOUNCEMENT: "announcement",
}

func channelProto(c channelRow, overwrites []overwriteRow) *communityv1.Channel {
	out := &communityv1.Channel{Id: c.id.String(), ServerId: c.serverID.String(), Name: c.name, Position: int32(c.position), Synced: c.synced,
		Overwrites: overwritesProto(overwrites)}
	for k, v := range channelKinds {
		if v == c.kind {
			out.Kind = k
		}
	}
	if c.categoryID != nil {
		out.CategoryId = c.categoryID.String()
	}
	return out
}

// channelGraph is every relationship a channel holds itself: its edges and
// its own overwrites.
func channelGraph(c channelRow, own []overwriteRow) ([]authz.Relationship, error) {
	rels, err := overwriteSetRelationships(own)
	return append(channelRelationships(c), rels...), err
}

// channelState is a channel as a mutation reads it: its row, its own
// overwrites and, when synced, its category's.
type channelState struct {
	row       channelRow
	own       []overwriteRow
	inherited []overwriteRow
}

// effective are the overwrites that apply to the channel.
func (c channelState) effective() []overwriteRow {
	if c.row.synced {
		return c.inherited
	}
	return c.own
}

func (c channelState) proto() *communityv1.Channel { return channelProto(c.row, c.effective()) }

func (s *Service) loadChannel(ctx context.Context, q querier, id uuid.UUID) (channelState, error) {
	var st channelState
	var err error
	if st.row, err = getChannel(ctx, q, id); err != nil {
		return st, err
	}
	if st.own, err = channelOverwrites(ctx, q, id); err != nil {
		return st, err
	}
	if st.row.synced {
		st.inherited, err = channelOverwrites(ctx, q, *st.row.categoryID)
	}
	return st, err
}

// expectChannel locks a channel in tx and checks that it and the overwrites
// that apply to it are still as read.
func expectChannel(ctx context.Context, tx pgx.Tx, st channelState) error {
	var (
		category *uuid.UUID
		synced   bool
	)
	err := tx.QueryRow(ctx, `SELECT category_id, synced FROM channels WHERE id = $1 FOR UPDATE`, st.row.id).Scan(&category, &synced)
	if errors.Is(err, pgx.ErrNoRows) {
		return errConflict
	}
	if err != nil {
		return err
	}
	if synced != st.row.synced || !sameID(category, st.row.categoryID) {
		return errConflict
	}
	if err := expectOverwrites(ctx, tx, st.row.id, st.own); err != nil {
		return err
	}
	if st.row.synced {
		return expectOverwrites(ctx, tx, *st.row.categoryID, st.inherited)
	}
	return nil
}

// expectCategory checks in tx that a category read before is still there,
// and keeps it there until tx ends.
func expectCategory(ctx context.Context, tx pgx.Tx, id uuid.UUID) error {
	err := tx.QueryRow(ctx, `SELECT id FROM categories WHERE id = $1 FOR SHARE`, id).Scan(new(uuid.UUID))
	if errors.Is(err, pgx.ErrNoRows) {
		return errConflict
	}
	return err
}

func sameID(a, b *uuid.UUID) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// rewire takes a channel from st to its category and sync in after, with
// afterOwn as its own overwrites, in both stores; more, when set, runs in
// the same transaction. It returns the channel as it then is.
func (s *Service) rewire(ctx context.Context, st channelState, after channelRow, afterOwn []overwriteRow, more func(pgx.Tx) error) (channelState, authz.ZedToken, error) {
	before, err := channelGraph(st.row, st.own)
	if err != nil {
		return st, "", err
	}
	now, err := channelGraph(after, afterOwn)
	if err != nil {
		return st, "", err
	}
	token, err := s.commit(ctx, st.row.serverID, change(before, now), func(tx pgx.Tx) error {
		if err := expectChannel(ctx, tx, st); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE channels SET category_id = $2, synced = $3 WHERE id = $1`, st.row.id, after.categoryID, after.synced); err != nil {
			return err
		}
		if more != nil {
			if err := more(tx); err != nil {
				return err
			}
		}
		return replaceOverwrites(ctx, tx, st.row.serverID, st.row.id, afterOwn)
	})
	if err != nil {
		return st, "", err
	}
	updated, err := s.loadChannel(ctx, s.db, st.row.id)
	return updated, token, err
}

// destination reads the category a channel is created in or moved to, which
// must be of the same server; the caller needs manage_channels in it.
func (s *Service) destination(ctx context.Context, p authz.Principal, serverID uuid.UUID, categoryID string, c authz.Consistency) (*categoryRow, error) {
	if categoryID == "" {
		return nil, nil
	}
	id, err := parseID("category_id", categoryID)
	if err != nil {
		return nil, err
	}
	cat, err := getCategory(ctx, s.db, id)
	if errors.Is(err, errNotFound) || (err == nil && cat.serverID != serverID) {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("category_id: no such category in this server"))
	}
	if err != nil {
		return nil, err
	}
	if err := s.authz.Require(ctx, authz.Check{Subject: p.Subject(), Permission: authz.Category.ManageChannels, ResourceID: cat.id.String()}, c); err != nil {
		return nil, err
	}
	return &cat, nil
}

// place puts channel id at position among the channels of category (nil:
// outside categories), renumbering them.
func place(ctx context.Context, tx pgx.Tx, serverID, id uuid.UUID, category *uuid.UUID, position int) (int, error) {
	rows, err := tx.Query(ctx, `SELECT id FROM channels WHERE server_id = $1 AND category_id IS NOT DISTINCT FROM $2 AND id <> $3
		ORDER BY position, id FOR UPDATE`, serverID, category, id)
	if err != nil {
		return 0, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return 0, err
	}
	position = min(max(position, 0), len(ids))
	ids = slices.Insert(ids, position, id)
	_, err = tx.Exec(ctx, `UPDATE channels c SET position = o.n - 1 FROM unnest($1::uuid[]) WITH ORDINALITY AS o(id, n) WHERE c.id = o.id`, ids)
	return position, err
}

// CreateChannel adds a channel to a server, at the end of its category.
func (s *Service) CreateChannel(ctx context.Context, req *connect.Request[communityv1.CreateChannelRequest]) (*connect.Response[communityv1.CreateChannelResponse], error) {
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
	kind, ok := channelKinds[req.Msg.Kind]
	if !ok {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("kind must be text, voice or announcement"))
	}
	srv, err := getServer(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "create channel", err)
	}
	consistency := freshness(req.Header())
	cat, err := s.destination(ctx, p, id, req.Msg.CategoryId, consistency)
	if err != nil {
		return nil, s.internal(ctx, "create channel", err)
	}
	ch := channelRow{id: newID(), serverID: id, kind: kind, name: strings.TrimSpace(req.Msg.Name)}
	own, touched, err := s.overwritesFromProto(ctx, srv, "channel", ch.id, req.Msg.Overwrites)
	if err != nil {
		return nil, err
	}
	var inherited []overwriteRow
	if cat != nil {
		ch.categoryID = &cat.id
		if inherited, err = channelOverwrites(ctx, s.db, cat.id); err != nil {
			return nil, s.internal(ctx, "create channel", err)
		}
		if len(req.Msg.Overwrites) == 0 {
			ch.synced = true
		} else {
			base := movedTo(inherited, "channel", ch.id)
			for _, o := range own {
				base = withOverwrite(base, o)
			}
			own = base
		}
	}
	if len(req.Msg.Overwrites) > 0 {
		where := authz.TypeServer.Object(id.String())
		if cat != nil {
			where = authz.TypeCategory.Object(cat.id.String())
		}
		if err := s.requireOverwrite(ctx, where, p, touched, consistency); err != nil {
			return nil, s.internal(ctx, "create channel", err)
		}
	}
	rels, err := channelGraph(ch, own)
	if err != nil {
		return nil, s.internal(ctx, "create channel", err)
	}
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_CHANNEL_CREATED, "channel", ch.id.String(), "",
		append(changed(field("name", "", ch.name), field("kind", "", ch.kind)), overwriteChanges(nil, own)...)...)
	token, err := s.commit(ctx, id, delta{add: rels}, func(tx pgx.Tx) error {
		if cat != nil {
			// The category must still be there, with the overwrites read.
			if err := expectCategory(ctx, tx, cat.id); err != nil {
				return err
			}
			if err := expectOverwrites(ctx, tx, cat.id, inherited); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO channels (id, server_id, category_id, kind, name, synced, position)
			VALUES ($1, $2, $3, $4, $5, $6, (SELECT COALESCE(MAX(position), -1) + 1 FROM channels WHERE server_id = $2 AND category_id IS NOT DISTINCT FROM $3))`,
			ch.id, id, ch.categoryID, ch.kind, ch.name, ch.synced); err != nil {
			return err
		}
		return replaceOverwrites(ctx, tx, id, ch.id, own)
	})
	if err != nil {
		return nil, s.internal(ctx, "create channel", err)
	}
	created, err := s.loadChannel(ctx, s.db, ch.id)
	if err != nil {
		return nil, s.internal(ctx, "create channel", err)
	}
	return connect.NewResponse(&communityv1.CreateChannelResponse{Channel: created.proto(), ZedToken: string(token)}), nil
}

// GetChannel returns a channel with the overwrites that apply to it.
func (s *Service) GetChannel(ctx context.Context, req *connect.Request[communityv1.GetChannelRequest]) (*connect.Response[communityv1.GetChannelResponse], error) {
	id, err := parseID("channel_id", req.Msg.ChannelId)
	if err != nil {
		return nil, err
	}
	st, err := s.loadChannel(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "get channel", err)
	}
	return connect.NewResponse(&communityv1.GetChannelResponse{Channel: st.proto()}), nil
}

// ListChannels lists the categories and channels the caller sees.
func (s *Service) ListChannels(ctx context.Context, req *connect.Request[communityv1.ListChannelsRequest]) (*connect.Response[communityv1.ListChannelsResponse], error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID("server_id", req.Msg.ServerId)
	if err != nil {
		return nil, err
	}
	var (
		categories []categoryRow
		channels   []channelRow
		overwrites []overwriteRow
	)
	err = pgx.BeginTxFunc(ctx, s.db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+categoryColumns+` FROM categories WHERE server_id = $1 ORDER BY position, id`, id)
		if err != nil {
			return err
		}
		if categories, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (categoryRow, error) { return scanCategory(row) }); err != nil {
			return err
		}
		if rows, err = tx.Query(ctx, `SELECT `+channelColumns+` FROM channels WHERE server_id = $1 ORDER BY position, id`, id); err != nil {
			return err
		}
		if channels, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (channelRow, error) { return scanChannel(row) }); err != nil {
			return err
		}
		if rows, err = tx.Query(ctx, `SELECT `+overwriteColumns+` FROM overwrites WHERE server_id = $1 ORDER BY target_kind, target_id`, id); err != nil {
			return err
		}
		overwrites, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (overwriteRow, error) { return scanOverwrite(row) })
		return err
	})
	if err != nil {
		return nil, s.internal(ctx, "list channels", err)
	}
	// One CheckBulk: view_channel on every category and channel.
	checks := make([]authz.Check, 0, len(categories)+len(channels))
	for _, c := range categories {
		checks = append(checks, authz.Check{Subject: p.Subject(), Permission: authz.Category.ViewChannel, ResourceID: c.id.String()})
	}
	for _, c := range channels {
		checks = append(checks, authz.Check{Subject: p.Subject(), Permission: authz.Channel.ViewChannel, ResourceID: c.id.String()})
	}
	decisions, err := s.authz.CheckBulk(ctx, checks, freshness(req.Header()))
	if err != nil {
		return nil, s.internal(ctx, "list channels", err)
	}
	byHolder := map[uuid.UUID][]overwriteRow{}
	for _, o := range overwrites {
		byHolder[o.holderID] = append(byHolder[o.holderID], o)
	}
	position := map[uuid.UUID]int{}
	shown := map[uuid.UUID]bool{}
	for i, c := range categories {
		position[c.id] = i
		shown[c.id] = decisions[i].Allowed
	}
	out := &communityv1.ListChannelsResponse{}
	var visible []channelRow
	for i, c := range channels {
		if decisions[len(categories)+i].Allowed {
			visible = append(visible, c)
			if c.categoryID != nil {
				shown[*c.categoryID] = true
			}
		}
	}
	// Display order: channels outside categories first, then each category's.
	slices.SortStableFunc(visible, func(a, b channelRow) int {
		pa, pb := -1, -1
		if a.categoryID != nil {
			pa = position[*a.categoryID]
		}
		if b.categoryID != nil {
			pb = position[*b.categoryID]
		}
		return cmp.Or(cmp.Compare(pa, pb), cmp.Compare(a.position, b.position))
	})
	for _, c := range categories {
		if shown[c.id] {
			out.Categories = append(out.Categories, categoryProto(c, byHolder[c.id]))
		}
	}
	for _, c := range visible {
		applying := byHolder[c.id]
		if c.synced {
			applying = byHolder[*c.categoryID]
		}
		out.Channels = append(out.Channels, channelProto(c, applying))
	}
	return connect.NewResponse(out), nil
}

// UpdateChannel renames a channel.
func (s *Service) UpdateChannel(ctx context.Context, req *connect.Request[communityv1.UpdateChannelRequest]) (*connect.Response[communityv1.UpdateChannelResponse], error) {
	id, err := parseID("channel_id", req.Msg.ChannelId)
	if err != nil {
		return nil, err
	}
	if err := validName("name", req.Msg.Name, 1, 100); err != nil {
		return nil, err
	}
	was, err := getChannel(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "update channel", err)
	}
	name := strings.TrimSpace(req.Msg.Name)
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_CHANNEL_UPDATED, "channel", id.String(), "")
	err = s.inTx(ctx, was.serverID, func(tx pgx.Tx) error {
		var before string
		err := tx.QueryRow(ctx, `SELECT name FROM channels WHERE id = $1 FOR UPDATE`, id).Scan(&before)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNotFound
		}
		if err != nil {
			return err
		}
		pendingAudit(ctx).changes = changed(field("name", before, name))
		_, err = tx.Exec(ctx, `UPDATE channels SET name = $2 WHERE id = $1`, id, name)
		return err
	})
	if err != nil {
		return nil, s.internal(ctx, "update channel", err)
	}
	st, err := s.loadChannel(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "update channel", err)
	}
	return connect.NewResponse(&communityv1.UpdateChannelResponse{Channel: st.proto()}), nil
}

// MoveChannel moves a channel between categories and positions.
func (s *Service) MoveChannel(ctx context.Context, req *connect.Request[communityv1.MoveChannelRequest]) (*connect.Response[communityv1.MoveChannelResponse], error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID("channel_id", req.Msg.ChannelId)
	if err != nil {
		return nil, err
	}
	st, err := s.loadChannel(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "move channel", err)
	}
	consistency := freshness(req.Header())
	var dest *categoryRow
	if req.Msg.CategoryId != "" && (st.row.categoryID == nil || st.row.categoryID.String() != req.Msg.CategoryId) {
		if dest, err = s.destination(ctx, p, st.row.serverID, req.Msg.CategoryId, consistency); err != nil {
			return nil, s.internal(ctx, "move channel", err)
		}
	} else if req.Msg.CategoryId != "" {
		cat, err := getCategory(ctx, s.db, *st.row.categoryID)
		if err != nil {
			return nil, s.internal(ctx, "move channel", err)
		}
		dest = &cat
	}
	after, afterOwn := st.row, st.own
	after.categoryID = nil
	if dest != nil {
		after.categoryID = &dest.id
	}
	switch {
	case req.Msg.Sync:
		if dest == nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("sync needs a category_id"))
		}
		after.synced, afterOwn = true, nil
	case st.row.synced && sameID(after.categoryID, st.row.categoryID):
		// Stays synced with the same category.
	case st.row.synced:
		// Leaving its category: keep the permissions it had through it.
		after.synced, afterOwn = false, movedTo(st.inherited, "channel", id)
	}
	if after.synced && (!st.row.synced || !sameID(after.categoryID, st.row.categoryID)) {
		// Taking other overwrites is editing permissions.
		if err := s.authz.Require(ctx, authz.Check{Subject: p.Subject(), Permission: authz.Channel.ManageRoles, ResourceID: id.String()}, consistency); err != nil {
			return nil, s.internal(ctx, "move channel", err)
		}
	}
	catText := func(id *uuid.UUID) string {
		if id == nil {
			return ""
		}
		return id.String()
	}
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_CHANNEL_UPDATED, "channel", id.String(), "",
		append(changed(field("category_id", catText(st.row.categoryID), catText(after.categoryID)),
			field("position", fmt.Sprint(st.row.position), fmt.Sprint(req.Msg.Position)),
			field("synced", fmt.Sprint(st.row.synced), fmt.Sprint(after.synced))), overwriteChanges(st.own, afterOwn)...)...)
	moved, token, err := s.rewire(ctx, st, after, afterOwn, func(tx pgx.Tx) error {
		if dest != nil {
			if err := expectCategory(ctx, tx, dest.id); err != nil {
				return err
			}
		}
		_, err := place(ctx, tx, st.row.serverID, id, after.categoryID, int(req.Msg.Position))
		return err
	})
	if err != nil {
		return nil, s.internal(ctx, "move channel", err)
	}
	return connect.NewResponse(&communityv1.MoveChannelResponse{Channel: moved.proto(), ZedToken: string(token)}), nil
}

// SyncChannel makes a channel follow its category's overwrites again.
func (s *Service) SyncChannel(ctx context.Context, req *connect.Request[communityv1.SyncChannelRequest]) (*connect.Response[communityv1.SyncChannelResponse], error) {
	id, err := parseID("channel_id", req.Msg.ChannelId)
	if err != nil {
		return nil, err
	}
	st, err := s.loadChannel(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "sync channel", err)
	}
	if st.row.categoryID == nil {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("the channel is in no category"))
	}
	if st.row.synced {
		return connect.NewResponse(&communityv1.SyncChannelResponse{Channel: st.proto()}), nil
	}
	after := st.row
	after.synced = true
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_OVERWRITES_UPDATED, "channel", id.String(), "",
		append(changed(field("synced", "false", "true")), overwriteChanges(st.own, st.inherited)...)...)
	synced, token, err := s.rewire(ctx, st, after, nil, nil)
	if err != nil {
		return nil, s.internal(ctx, "sync channel", err)
	}
	return connect.NewResponse(&communityv1.SyncChannelResponse{Channel: synced.proto(), ZedToken: string(token)}), nil
}

// SetPermissionOverwrite replaces one overwrite of a channel, unsyncing it
// from its category first.
func (s *Service) SetPermissionOverwrite(ctx context.Context, req *connect.Request[communityv1.SetPermissionOverwriteRequest]) (*connect.Response[communityv1.SetPermissionOverwriteResponse], error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID("channel_id", req.Msg.ChannelId)
	if err != nil {
		return nil, err
	}
	if req.Msg.Overwrite == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("overwrite is required"))
	}
	st, err := s.loadChannel(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "set overwrite", err)
	}
	srv, err := getServer(ctx, s.db, st.row.serverID)
	if err != nil {
		return nil, s.internal(ctx, "set overwrite", err)
	}
	row, touched, err := s.overwriteFromProto(ctx, srv, "channel", id, req.Msg.Overwrite)
	if err != nil {
		return nil, err
	}
	if err := s.requireOverwrite(ctx, authz.TypeChannel.Object(id.String()), p, touched, freshness(req.Header())); err != nil {
		return nil, s.internal(ctx, "set overwrite", err)
	}
	after, base := st.row, st.own
	if st.row.synced {
		after.synced, base = false, movedTo(st.inherited, "channel", id)
	}
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_OVERWRITES_UPDATED, "channel", id.String(), "",
		append(changed(field("synced", fmt.Sprint(st.row.synced), fmt.Sprint(after.synced))), overwriteChanges(st.effective(), withOverwrite(base, row))...)...)
	set, token, err := s.rewire(ctx, st, after, withOverwrite(base, row), nil)
	if err != nil {
		return nil, s.internal(ctx, "set overwrite", err)
	}
	return connect.NewResponse(&communityv1.SetPermissionOverwriteResponse{Channel: set.proto(), ZedToken: string(token)}), nil
}

// DeleteChannel deletes a channel, its threads, overwrites and invites
// (recording the channel and its threads as deleted).
func (s *Service) DeleteChannel(ctx context.Context, req *connect.Request[communityv1.DeleteChannelRequest]) (*connect.Response[communityv1.DeleteChannelResponse], error) {
	id, err := parseID("channel_id", req.Msg.ChannelId)
	if err != nil {
		return nil, err
	}
	st, err := s.loadChannel(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "delete channel", err)
	}
	gone, err := channelGraph(st.row, st.own)
	if err != nil {
		return nil, s.internal(ctx, "delete channel", err)
	}
	threads, err := s.threadGraph(ctx, s.db, `channel_id`, id)
	if err != nil {
		return nil, s.internal(ctx, "delete channel", err)
	}
	gone = append(gone, threads.rels...)
	rows, err := s.db.Query(ctx, `SELECT `+inviteColumns+` FROM invites WHERE channel_id = $1`, id)
	if err != nil {
		return nil, s.internal(ctx, "delete channel", err)
	}
	invites, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (inviteRow, error) { return scanInvite(row) })
	if err != nil {
		return nil, s.internal(ctx, "delete channel", err)
	}
	now := time.Now()
	for _, i := range invites {
		gone = append(gone, inviteRelationships(i, now)...)
		if !i.usable(now) {
			gone = append(gone, usableRelationship(i)) // it may not have expired in SpiceDB yet
		}
	}
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_CHANNEL_DELETED, "channel", id.String(), "",
		changed(field("name", st.row.name, ""), field("kind", st.row.kind, ""))...)
	token, err := s.commit(ctx, st.row.serverID, delta{remove: gone}, func(tx pgx.Tx) error {
		if err := expectChannel(ctx, tx, st); err != nil {
			return err
		}
		if err := threads.expect(ctx, tx); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM invites WHERE channel_id = $1`, id).Scan(&n); err != nil {
			return err
		}
		if n != len(invites) {
			return errConflict
		}
		if _, err := tx.Exec(ctx, `DELETE FROM overwrites WHERE holder_id = $1`, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, recordDeleted(`SELECT 'channel:' || $1::uuid UNION ALL SELECT 'thread:' || id FROM threads WHERE channel_id = $1`), id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM channels WHERE id = $1`, id) // threads and invites cascade
		return err
	})
	if err != nil {
		return nil, s.internal(ctx, "delete channel", err)
	}
	return connect.NewResponse(&communityv1.DeleteChannelResponse{ZedToken: string(token)}), nil
}
