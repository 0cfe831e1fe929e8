package chat

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/beepchat/beep/authz"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
)

// maxGroupDM is how many people a group DM holds, its owner included.
const maxGroupDM = 10

// dmRow is a DM conversation as stored.
type dmRow struct {
	id        uuid.UUID
	kind      string // "direct" or "group"
	name      string
	ownerID   string // a group's
	createdAt time.Time
	members   []string // in join order
	lastID    *uuid.UUID
}

// loadDM reads a DM, locking its row when lock is set: every change of a
// DM's membership, and every write of its relationships to SpiceDB, holds
// that lock.
func loadDM(ctx context.Context, q querier, id uuid.UUID, lock bool) (dmRow, error) {
	d := dmRow{id: id}
	sql := `SELECT kind, name, coalesce(owner_id, ''), created_at FROM dm_channels WHERE id = $1`
	if lock {
		sql += ` FOR UPDATE`
	}
	err := q.QueryRow(ctx, sql, id).Scan(&d.kind, &d.name, &d.ownerID, &d.createdAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, errNotFound
	}
	if err != nil {
		return d, err
	}
	rows, err := q.Query(ctx, `SELECT user_id FROM dm_members WHERE dm_id = $1 ORDER BY position`, id)
	if err != nil {
		return d, err
	}
	if d.members, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return d, err
	}
	err = q.QueryRow(ctx, `SELECT last_id FROM conversations WHERE conv_type = 'dm_channel' AND conv_id = $1`, id).Scan(&d.lastID)
	if errors.Is(err, pgx.ErrNoRows) {
		err = nil
	}
	return d, err
}

// relationships are what the graph holds for the DM: a 1:1 DM's two
// participants; a group's members and owner.
func (d *dmRow) relationships() []authz.Relationship {
	if d == nil {
		return nil
	}
	var out []authz.Relationship
	rel := authz.DmChannel.Participant
	if d.kind == "group" {
		rel = authz.DmChannel.Member
		out = append(out, authz.Relationship{Relation: authz.DmChannel.Owner, ResourceID: d.id.String(), Subject: authz.UserSubject(d.ownerID)})
	}
	for _, u := range d.members {
		out = append(out, authz.Relationship{Relation: rel, ResourceID: d.id.String(), Subject: authz.UserSubject(u)})
	}
	return out
}

func (d dmRow) proto() *chatv1.DMChannel {
	out := &chatv1.DMChannel{Id: d.id.String(), Conversation: dmConversation(d.id).String(), Kind: chatv1.DMKind_DM_KIND_DIRECT,
		Name: d.name, OwnerId: d.ownerID, MemberIds: d.members, CreatedAt: timestamppb.New(d.createdAt)}
	if d.kind == "group" {
		out.Kind = chatv1.DMKind_DM_KIND_GROUP
	}
	if d.lastID != nil {
		out.LastMessageId = d.lastID.String()
	}
	return out
}

// diff is what to add to have and what to remove from it to get want.
func diff(want, have []authz.Relationship) (missing, extra []authz.Relationship) {
	in := func(set []authz.Relationship, r authz.Relationship) bool {
		return slices.ContainsFunc(set, func(x authz.Relationship) bool { return x.String() == r.String() })
	}
	for _, r := range want {
		if !in(have, r) {
			missing = append(missing, r)
		}
	}
	for _, r := range have {
		if !in(want, r) {
			extra = append(extra, r)
		}
	}
	return missing, extra
}

// commitDM changes a DM's membership in PostgreSQL and SpiceDB without a
// queue, in the community service's order:
//
//  1. mark the DM dirty (a committed row), so that a crash anywhere after
//     this leaves a trace for the reconciler;
//  2. in one transaction, lock the DM's row, apply change, and write to
//     SpiceDB the narrowing half: the relationships the change removes (a
//     member leaving, an owner handing over);
//  3. commit;
//  4. bring SpiceDB to the committed rows (syncDM: the widening half, under
//     the row lock again, so that no other change interleaves);
//  5. clear the mark.
//
// Every DM relationship grants, so between any two steps SpiceDB grants no
// more than the rows before or after the change do. A failure after 2
// converges the DM at once, or later by the reconciler. change gets the DM
// as it was (nil when it does not exist yet). It returns the ZedToken of
// the state SpiceDB was brought to, and the DM as it now is (nil if gone).
//
// announce, called in the transaction of step 2 with the DM before and
// after change, names the events of the change (none: nothing to tell).
// They are recorded in that transaction, as pending (stream_pending): they
// carry the ZedToken of step 4, which does not exist before the commit, so
// step 4 moves them to the stream's log with it (syncDM), whoever runs it
// (this call, or the reconciler after a crash). Each is logged once, and
// only if the change committed. The Publisher is told of them once step 4
// is done here.
func (s *Service) commitDM(ctx context.Context, id uuid.UUID, change func(tx pgx.Tx, before *dmRow) error, announce func(before, after *dmRow) []Event) (authz.ZedToken, *dmRow, error) {
	mark := newID()
	if _, err := s.db.Exec(ctx, `INSERT INTO authz_dirty (id, dm_id) VALUES ($1, $2)`, mark, id); err != nil {
		return "", nil, fmt.Errorf("marking DM %s: %w", id, err)
	}
	narrowed := false
	var (
		after  *dmRow
		events []Event
	)
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var before *dmRow
		was, err := loadDM(ctx, tx, id, true)
		switch {
		case err == nil:
			before = &was
		case !errors.Is(err, errNotFound):
			return err
		}
		if err := change(tx, before); err != nil {
			return err
		}
		is, err := loadDM(ctx, tx, id, false)
		switch {
		case err == nil:
			after = &is
		case !errors.Is(err, errNotFound):
			return err
		}
		events = announce(before, after)
		if err := queuePending(ctx, tx, id, events); err != nil {
			return err
		}
		_, removed := diff(after.relationships(), before.relationships())
		if len(removed) == 0 {
			return nil
		}
		updates := make([]authz.Update, len(removed))
		for i, r := range removed {
			updates[i] = authz.Delete(r)
		}
		narrowed = true
		if _, err := s.authz.Write(ctx, updates); err != nil {
			return fmt.Errorf("authorization write: %w", err)
		}
		return nil
	})
	if err != nil {
		if !narrowed {
			s.unmark(ctx, id, mark)
			return "", nil, err
		}
		if _, serr := s.syncDM(context.WithoutCancel(ctx), id); serr != nil {
			s.log.ErrorContext(ctx, "converging a DM after a failed change; the reconciler will retry", "dm", id, "err", serr)
			return "", nil, err
		}
		s.unmark(ctx, id, mark)
		return "", nil, err
	}
	if s.afterCommit != nil {
		if err := s.afterCommit(); err != nil {
			return "", nil, err // a simulated crash: the mark stays
		}
	}
	token, err := s.syncDM(ctx, id)
	if err != nil {
		return "", nil, fmt.Errorf("saved, but applying its permissions failed (they will be applied shortly): %w", err)
	}
	s.unmark(ctx, id, mark)
	for _, e := range events {
		e.ZedToken = token
		s.publisher.Published(ctx, e)
	}
	return token, after, nil
}

// queuePending records, in a DM change's transaction, the rows its events
// will have in the stream's log, without their ZedToken (see commitDM).
func queuePending(ctx context.Context, tx pgx.Tx, dm uuid.UUID, events []Event) error {
	b := &pgx.Batch{}
	for _, e := range events {
		for _, r := range logRows(e) {
			payload, err := proto.Marshal(r.event)
			if err != nil {
				return err
			}
			b.Queue(`INSERT INTO stream_pending (dm_id, conversation, audience, payload) VALUES ($1, $2, $3, $4)`, dm, r.conversation, r.audience, payload)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, b).Close()
}

// releasePendingSQL moves a DM's pending events to the stream's log, in
// the order they were recorded, with the ZedToken of the state SpiceDB was
// brought to. Concurrent releases each take a row once (DELETE locks it).
const releasePendingSQL = `WITH p AS (DELETE FROM stream_pending WHERE dm_id = $1 RETURNING id, conversation, audience, payload)
	INSERT INTO stream_events (conversation, audience, zed_token, payload) SELECT conversation, audience, $2, payload FROM p ORDER BY id`

// unmark clears a dirty mark once both stores agree.
func (s *Service) unmark(ctx context.Context, id, mark uuid.UUID) {
	if _, err := s.db.Exec(context.WithoutCancel(ctx), `DELETE FROM authz_dirty WHERE id = $1`, mark); err != nil {
		s.log.WarnContext(ctx, "clearing a dirty mark", "dm", id, "err", err)
	}
}

// syncDM makes SpiceDB hold exactly the relationships the DM's rows call
// for (none for a deleted DM), holding the DM's row lock meanwhile, and
// returns a ZedToken at least as fresh as that state.
//
// It also logs the DM's pending events (those of committed changes, see
// commitDM) with that token. They can only be written after the SpiceDB
// write, whose token they carry: so they are written in this transaction,
// after the write, and leave stream_pending in the same statement. If the
// commit fails, they stay pending, as the dirty mark stays, and the next
// sync logs them; if it succeeds, they are logged once, and only now that
// SpiceDB holds the change.
func (s *Service) syncDM(ctx context.Context, id uuid.UUID) (authz.ZedToken, error) {
	var (
		token    authz.ZedToken
		released bool
	)
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var want []authz.Relationship
		d, err := loadDM(ctx, tx, id, true)
		switch {
		case err == nil:
			want = d.relationships()
		case !errors.Is(err, errNotFound):
			return err
		}
		var have []authz.Relationship
		for r, err := range s.authz.ReadRelationships(ctx, authz.Filter{ResourceType: authz.TypeDmChannel, ResourceID: id.String()}, authz.FullyConsistent()) {
			if err != nil {
				return err
			}
			have = append(have, r)
		}
		missing, extra := diff(want, have)
		if len(missing)+len(extra) == 0 {
			// Nothing to write: a revision at least as fresh as what is there.
			dec, err := s.authz.Check(ctx, authz.Check{Subject: authz.UserSubject("nobody"), Permission: authz.DmChannel.ViewChannel, ResourceID: id.String()}, authz.FullyConsistent())
			if err != nil {
				return err
			}
			token = dec.CheckedAt
		} else {
			updates := make([]authz.Update, 0, len(missing)+len(extra))
			for _, r := range extra {
				updates = append(updates, authz.Delete(r))
			}
			for _, r := range missing {
				updates = append(updates, authz.Touch(r))
			}
			if token, err = s.authz.Write(ctx, updates); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, releasePendingSQL, id, string(token))
		released = tag.RowsAffected() > 0
		return err
	})
	if err == nil && released {
		s.stream.waker.wake()
	}
	return token, err
}

// ReconcileDirty converges every DM marked dirty more than olderThan ago
// (a change that crashed, or whose SpiceDB half failed).
func (s *Service) ReconcileDirty(ctx context.Context, olderThan time.Duration) (int, error) {
	rows, err := s.db.Query(ctx, `SELECT dm_id, array_agg(id) FROM authz_dirty
		WHERE marked_at < now() - make_interval(secs => $1) GROUP BY dm_id`, olderThan.Seconds())
	if err != nil {
		return 0, err
	}
	type dirty struct {
		dm    uuid.UUID
		marks []uuid.UUID
	}
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (dirty, error) {
		var d dirty
		return d, r.Scan(&d.dm, &d.marks)
	})
	if err != nil {
		return 0, err
	}
	for i, d := range found {
		if _, err := s.syncDM(ctx, d.dm); err != nil {
			return i, fmt.Errorf("reconciling DM %s: %w", d.dm, err)
		}
		if _, err := s.db.Exec(ctx, `DELETE FROM authz_dirty WHERE id = ANY($1)`, d.marks); err != nil {
			return i, err
		}
	}
	return len(found), nil
}

// RunReconciler converges dirty DMs every interval until ctx ends.
func (s *Service) RunReconciler(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.ReconcileDirty(ctx, interval/2); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "reconciler", "err", err)
		} else if n > 0 {
			s.log.InfoContext(ctx, "reconciler converged DMs", "dms", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// blockedWith reports one of others who and the caller blocked one another
// (user#dm_blocked: a block in either direction), or "".
func (s *Service) blockedWith(ctx context.Context, who string, others []string, consistency authz.Consistency) (string, error) {
	checks := make([]authz.Check, len(others))
	for i, o := range others {
		checks[i] = authz.Check{Subject: authz.UserSubject(o), Permission: authz.User.DmBlocked, ResourceID: who}
	}
	decisions, err := s.authz.CheckBulk(ctx, checks, consistency)
	if err != nil {
		return "", err
	}
	for i, d := range decisions {
		if d.Allowed {
			return others[i], nil
		}
	}
	return "", nil
}

func errBlocked() error {
	return connect.NewError(connect.CodePermissionDenied, errors.New("one of you blocked the other"))
}

// errRaced: another request made the same 1:1 DM first.
var errRaced = errors.New("the DM was made meanwhile")

// OpenDM returns the caller's 1:1 DM with someone, making it if need be.
func (s *Service) OpenDM(ctx context.Context, req *connect.Request[chatv1.OpenDMRequest]) (*connect.Response[chatv1.OpenDMResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	other := req.Msg.UserId
	if err := validUser("user_id", other); err != nil {
		return nil, err
	}
	if other == p.UserID {
		return nil, invalid("user_id: a DM is with someone else")
	}
	blocked, err := s.blockedWith(ctx, p.UserID, []string{other}, freshness(req.Header()))
	if err != nil {
		return nil, s.internal(ctx, "open DM", err)
	}
	if blocked != "" {
		return nil, errBlocked()
	}
	low, high := min(p.UserID, other), max(p.UserID, other)
	for range 2 {
		var existing uuid.UUID
		err := s.db.QueryRow(ctx, `SELECT id FROM dm_channels WHERE kind = 'direct' AND pair_low = $1 AND pair_high = $2`, low, high).Scan(&existing)
		if err == nil {
			// Its relationships are there, unless its first write crashed:
			// bring them to the rows either way.
			token, err := s.syncDM(ctx, existing)
			if err != nil {
				return nil, s.internal(ctx, "open DM", err)
			}
			d, err := loadDM(ctx, s.db, existing, false)
			if err != nil {
				return nil, s.internal(ctx, "open DM", err)
			}
			return connect.NewResponse(&chatv1.OpenDMResponse{DmChannel: d.proto(), ZedToken: string(token)}), nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, s.internal(ctx, "open DM", err)
		}
		id := newID()
		token, d, err := s.commitDM(ctx, id, func(tx pgx.Tx, _ *dmRow) error {
			tag, err := tx.Exec(ctx, `INSERT INTO dm_channels (id, kind, pair_low, pair_high) VALUES ($1, 'direct', $2, $3)
				ON CONFLICT (pair_low, pair_high) WHERE kind = 'direct' DO NOTHING`, id, low, high)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return errRaced
			}
			_, err = tx.Exec(ctx, `INSERT INTO dm_members (dm_id, user_id) VALUES ($1, $2), ($1, $3)`, id, p.UserID, other)
			return err
		}, dmUpdated(p.UserID, nil))
		if errors.Is(err, errRaced) {
			continue
		}
		if err != nil {
			return nil, s.internal(ctx, "open DM", err)
		}
		dm := d.proto()
		return connect.NewResponse(&chatv1.OpenDMResponse{DmChannel: dm, Created: true, ZedToken: string(token)}), nil
	}
	return nil, connect.NewError(connect.CodeAborted, errors.New("the DM changed meanwhile; try again"))
}

// CreateGroupDM makes a group DM owned by the caller.
func (s *Service) CreateGroupDM(ctx context.Context, req *connect.Request[chatv1.CreateGroupDMRequest]) (*connect.Response[chatv1.CreateGroupDMResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	var others []string
	for _, u := range req.Msg.UserIds {
		if err := validUser("user_ids", u); err != nil {
			return nil, err
		}
		if u == p.UserID {
			return nil, invalid("user_ids: you are in the group already; name the others")
		}
		if !slices.Contains(others, u) {
			others = append(others, u)
		}
	}
	if n := len(others); n < 1 || n > maxGroupDM-1 {
		return nil, invalid("user_ids: 1 to %d others", maxGroupDM-1)
	}
	name := strings.TrimSpace(req.Msg.Name)
	if utf8.RuneCountInString(name) > 100 {
		return nil, invalid("name: at most 100 characters")
	}
	blocked, err := s.blockedWith(ctx, p.UserID, others, freshness(req.Header()))
	if err != nil {
		return nil, s.internal(ctx, "create group DM", err)
	}
	if blocked != "" {
		return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("you and %s blocked one another", blocked))
	}
	id := newID()
	token, d, err := s.commitDM(ctx, id, func(tx pgx.Tx, _ *dmRow) error {
		if _, err := tx.Exec(ctx, `INSERT INTO dm_channels (id, kind, name, owner_id) VALUES ($1, 'group', $2, $3)`, id, name, p.UserID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO dm_members (dm_id, user_id) SELECT $1, u FROM unnest($2::text[]) WITH ORDINALITY AS x(u, n) ORDER BY n`,
			id, append([]string{p.UserID}, others...))
		return err
	}, dmUpdated(p.UserID, nil))
	if err != nil {
		return nil, s.internal(ctx, "create group DM", err)
	}
	dm := d.proto()
	return connect.NewResponse(&chatv1.CreateGroupDMResponse{DmChannel: dm, ZedToken: string(token)}), nil
}

// GetDM returns a DM (the interceptor checked dm_channel#view_channel).
func (s *Service) GetDM(ctx context.Context, req *connect.Request[chatv1.GetDMRequest]) (*connect.Response[chatv1.GetDMResponse], error) {
	id, err := parseID("dm_channel_id", req.Msg.DmChannelId)
	if err != nil {
		return nil, err
	}
	d, err := loadDM(ctx, s.db, id, false)
	if err != nil {
		return nil, s.internal(ctx, "get DM", err)
	}
	return connect.NewResponse(&chatv1.GetDMResponse{DmChannel: d.proto()}), nil
}

// groupChange checks a change of a group's members by its owner (the
// interceptor checked dm_channel#manage; the lock held makes sure it is
// still so).
func groupChange(before *dmRow, owner string) error {
	switch {
	case before == nil:
		return errNotFound
	case before.kind != "group":
		return connect.NewError(connect.CodeFailedPrecondition, errors.New("a 1:1 DM has two people; make a group DM instead"))
	case before.ownerID != owner:
		return connect.NewError(connect.CodePermissionDenied, errors.New("only the group's owner adds or removes people"))
	}
	return nil
}

// AddGroupDMMember adds someone to a group DM (10 people at most).
func (s *Service) AddGroupDMMember(ctx context.Context, req *connect.Request[chatv1.AddGroupDMMemberRequest]) (*connect.Response[chatv1.AddGroupDMMemberResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID("dm_channel_id", req.Msg.DmChannelId)
	if err != nil {
		return nil, err
	}
	who := req.Msg.UserId
	if err := validUser("user_id", who); err != nil {
		return nil, err
	}
	if who != p.UserID {
		blocked, err := s.blockedWith(ctx, p.UserID, []string{who}, freshness(req.Header()))
		if err != nil {
			return nil, s.internal(ctx, "add to group DM", err)
		}
		if blocked != "" {
			return nil, errBlocked()
		}
	}
	added := false
	token, d, err := s.commitDM(ctx, id, func(tx pgx.Tx, before *dmRow) error {
		if err := groupChange(before, p.UserID); err != nil {
			return err
		}
		if slices.Contains(before.members, who) {
			return nil
		}
		if len(before.members) >= maxGroupDM {
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("a group DM holds at most %d people", maxGroupDM))
		}
		added = true
		_, err := tx.Exec(ctx, `INSERT INTO dm_members (dm_id, user_id) VALUES ($1, $2)`, id, who)
		return err
	}, func(before, after *dmRow) []Event {
		if !added {
			return nil
		}
		return dmUpdated(p.UserID, nil)(before, after)
	})
	if err != nil {
		return nil, s.internal(ctx, "add to group DM", err)
	}
	dm := d.proto()
	return connect.NewResponse(&chatv1.AddGroupDMMemberResponse{DmChannel: dm, ZedToken: string(token)}), nil
}

// RemoveGroupDMMember removes someone else from a group DM.
func (s *Service) RemoveGroupDMMember(ctx context.Context, req *connect.Request[chatv1.RemoveGroupDMMemberRequest]) (*connect.Response[chatv1.RemoveGroupDMMemberResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID("dm_channel_id", req.Msg.DmChannelId)
	if err != nil {
		return nil, err
	}
	who := req.Msg.UserId
	if err := validUser("user_id", who); err != nil {
		return nil, err
	}
	if who == p.UserID {
		return nil, invalid("user_id: to remove yourself, leave the group")
	}
	token, d, err := s.commitDM(ctx, id, func(tx pgx.Tx, before *dmRow) error {
		if err := groupChange(before, p.UserID); err != nil {
			return err
		}
		if !slices.Contains(before.members, who) {
			return connect.NewError(connect.CodeNotFound, errors.New("that user is not in the group"))
		}
		_, err := tx.Exec(ctx, `DELETE FROM dm_members WHERE dm_id = $1 AND user_id = $2`, id, who)
		return err
	}, dmUpdated(p.UserID, []string{who}))
	if err != nil {
		return nil, s.internal(ctx, "remove from group DM", err)
	}
	dm := d.proto()
	return connect.NewResponse(&chatv1.RemoveGroupDMMemberResponse{DmChannel: dm, ZedToken: string(token)}), nil
}

// LeaveGroupDM leaves a group DM: the earliest remaining member owns it if
// the owner leaves; the last one out deletes it, with its messages.
func (s *Service) LeaveGroupDM(ctx context.Context, req *connect.Request[chatv1.LeaveGroupDMRequest]) (*connect.Response[chatv1.LeaveGroupDMResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID("dm_channel_id", req.Msg.DmChannelId)
	if err != nil {
		return nil, err
	}
	token, deleted, err := s.leaveGroup(ctx, id, p.UserID)
	if err != nil {
		return nil, s.internal(ctx, "leave group DM", err)
	}
	return connect.NewResponse(&chatv1.LeaveGroupDMResponse{Deleted: deleted, ZedToken: string(token)}), nil
}

// leaveGroup takes who out of a group DM: the earliest remaining member
// inherits it if who owned it; the last one out deletes it with its
// messages.
func (s *Service) leaveGroup(ctx context.Context, id uuid.UUID, who string) (authz.ZedToken, bool, error) {
	c := dmConversation(id)
	token, d, err := s.commitDM(ctx, id, func(tx pgx.Tx, before *dmRow) error {
		switch {
		case before == nil:
			return errNotFound
		case before.kind != "group":
			return connect.NewError(connect.CodeFailedPrecondition, errors.New("a 1:1 DM cannot be left"))
		case !slices.Contains(before.members, who):
			return connect.NewError(connect.CodeNotFound, errors.New("you are not in this group"))
		}
		if len(before.members) == 1 {
			return deleteConversation(ctx, tx, c)
		}
		b := &pgx.Batch{}
		b.Queue(`DELETE FROM dm_members WHERE dm_id = $1 AND user_id = $2`, id, who)
		if before.ownerID == who {
			b.Queue(`UPDATE dm_channels SET owner_id = (SELECT user_id FROM dm_members WHERE dm_id = $1 ORDER BY position LIMIT 1) WHERE id = $1`, id)
		}
		return tx.SendBatch(ctx, b).Close()
	}, func(before, after *dmRow) []Event {
		if after == nil {
			return []Event{{Kind: DMDeleted, Conversation: c.String(), ActorID: who, Removed: []string{who}}}
		}
		return dmUpdated(who, []string{who})(before, after)
	})
	if err != nil {
		return "", false, err
	}
	return token, d == nil, nil
}

// dmUpdated announces a DM's new state (commitDM), made by actor, who
// removed (or took out themselves) the people removed.
func dmUpdated(actor string, removed []string) func(before, after *dmRow) []Event {
	return func(_, after *dmRow) []Event {
		if after == nil {
			return nil
		}
		dm := after.proto()
		return []Event{{Kind: DMUpdated, Conversation: dm.Conversation, ActorID: actor, DM: dm, Removed: removed}}
	}
}

// deleteConversation deletes a DM with its messages and read states.
func deleteConversation(ctx context.Context, tx pgx.Tx, c conversation) error {
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM messages WHERE conv_type = $1 AND conv_id = $2`, string(c.typ), c.id)
	queueForget(b, c)
	b.Queue(`DELETE FROM dm_channels WHERE id = $1`, c.id)
	return tx.SendBatch(ctx, b).Close()
}

// ListMyDMs pages through the caller's DMs, the most recently active first
// (ids are UUIDv7: a DM's last message id, or its own id, says when).
func (s *Service) ListMyDMs(ctx context.Context, req *connect.Request[chatv1.ListMyDMsRequest]) (*connect.Response[chatv1.ListMyDMsResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	size := int(req.Msg.PageSize)
	switch {
	case size == 0:
		size = defaultPage
	case size < 0 || size > maxPage:
		return nil, invalid("page_size: 1 to %d", maxPage)
	}
	activity, after := uuid.Max, uuid.Max
	if t := req.Msg.PageToken; t != "" {
		if activity, after, err = decodeDMCursor(t); err != nil {
			return nil, invalid("page_token: not one this service gave")
		}
	}
	rows, err := s.db.Query(ctx, `SELECT d.id, d.kind, d.name, coalesce(d.owner_id, ''), d.created_at, c.last_id, GREATEST(d.id, c.last_id) AS activity,
			ARRAY(SELECT x.user_id FROM dm_members x WHERE x.dm_id = d.id ORDER BY x.position)
		FROM dm_members m JOIN dm_channels d ON d.id = m.dm_id
		LEFT JOIN conversations c ON c.conv_type = 'dm_channel' AND c.conv_id = d.id
		WHERE m.user_id = $1 AND (GREATEST(d.id, c.last_id), d.id) < ($2, $3)
		ORDER BY activity DESC, d.id DESC LIMIT $4`, p.UserID, activity, after, size+1)
	if err != nil {
		return nil, s.internal(ctx, "list DMs", err)
	}
	type found struct {
		dm       dmRow
		activity uuid.UUID
	}
	dms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (found, error) {
		var f found
		err := r.Scan(&f.dm.id, &f.dm.kind, &f.dm.name, &f.dm.ownerID, &f.dm.createdAt, &f.dm.lastID, &f.activity, &f.dm.members)
		return f, err
	})
	if err != nil {
		return nil, s.internal(ctx, "list DMs", err)
	}
	resp := &chatv1.ListMyDMsResponse{}
	if len(dms) > size {
		last := dms[size-1]
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(last.activity.String() + "|" + last.dm.id.String()))
		dms = dms[:size]
	}
	for _, f := range dms {
		resp.DmChannels = append(resp.DmChannels, f.dm.proto())
	}
	return connect.NewResponse(resp), nil
}

func decodeDMCursor(tok string) (uuid.UUID, uuid.UUID, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return uuid.Nil, uuid.Nil, err
	}
	a, d, ok := strings.Cut(string(b), "|")
	if !ok {
		return uuid.Nil, uuid.Nil, errors.New("malformed")
	}
	activity, err1 := uuid.Parse(a)
	id, err2 := uuid.Parse(d)
	return activity, id, errors.Join(err1, err2)
}
