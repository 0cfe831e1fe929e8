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
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/beepchat/beep/authz"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

func threadProto(t threadRow) *communityv1.Thread {
	return &communityv1.Thread{Id: t.id.String(), ChannelId: t.channelID.String(), Name: t.name, CreatorId: t.creatorID,
		Private: t.private, Locked: t.locked, Archived: t.archived, CreatedAt: timestamppb.New(t.createdAt)}
}

// threadSet is the threads of a channel (or one thread) as a mutation read
// them, with every relationship they hold.
type threadSet struct {
	column       string // "channel_id" or "id"
	key          uuid.UUID
	threads      int
	participants int
	rels         []authz.Relationship
}

// threadGraph reads the threads whose column equals key.
func (s *Service) threadGraph(ctx context.Context, q querier, column string, key uuid.UUID) (threadSet, error) {
	set := threadSet{column: column, key: key}
	rows, err := q.Query(ctx, `SELECT `+threadColumns+` FROM threads WHERE `+column+` = $1`, key)
	if err != nil {
		return set, err
	}
	threads, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (threadRow, error) { return scanThread(row) })
	if err != nil {
		return set, err
	}
	set.threads = len(threads)
	for _, t := range threads {
		set.rels = append(set.rels, threadRelationships(t)...)
	}
	rows, err = q.Query(ctx, `SELECT p.thread_id, p.user_id FROM thread_participants p JOIN threads t ON t.id = p.thread_id WHERE t.`+column+` = $1`, key)
	if err != nil {
		return set, err
	}
	participants, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (participantRow, error) {
		var p participantRow
		return p, row.Scan(&p.threadID, &p.userID)
	})
	set.participants = len(participants)
	for _, p := range participants {
		set.rels = append(set.rels, participantRelationship(p))
	}
	return set, err
}

// expect locks the threads in tx and checks that none came or went.
func (set threadSet) expect(ctx context.Context, tx pgx.Tx) error {
	var threads, participants int
	err := tx.QueryRow(ctx, `SELECT count(DISTINCT t.id), count(p.user_id) FROM threads t LEFT JOIN thread_participants p ON p.thread_id = t.id
		WHERE t.`+set.column+` = $1`, set.key).Scan(&threads, &participants)
	if err != nil {
		return err
	}
	if threads != set.threads || participants != set.participants {
		return errConflict
	}
	return nil
}

// CreateThread starts a thread; its creator is its first participant.
func (s *Service) CreateThread(ctx context.Context, req *connect.Request[communityv1.CreateThreadRequest]) (*connect.Response[communityv1.CreateThreadResponse], error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	channelID, err := parseID("channel_id", req.Msg.ChannelId)
	if err != nil {
		return nil, err
	}
	if err := validName("name", req.Msg.Name, 1, 100); err != nil {
		return nil, err
	}
	ch, err := getChannel(ctx, s.db, channelID)
	if err != nil {
		return nil, s.internal(ctx, "create thread", err)
	}
	if ch.kind == "voice" {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("voice channels have no threads"))
	}
	t := threadRow{id: newID(), serverID: ch.serverID, channelID: ch.id, creatorID: p.UserID, name: strings.TrimSpace(req.Msg.Name),
		private: req.Msg.Private, createdAt: time.Now().UTC().Truncate(time.Microsecond)}
	creator := participantRow{threadID: t.id, userID: p.UserID}
	d := delta{add: append(threadRelationships(t), participantRelationship(creator))}
	token, err := s.commit(ctx, ch.serverID, d, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO threads (`+threadColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			t.id, t.serverID, t.channelID, t.creatorID, t.name, t.private, t.locked, t.archived, t.createdAt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO thread_participants (thread_id, server_id, user_id) VALUES ($1, $2, $3)`, t.id, t.serverID, p.UserID)
		return err
	})
	if err != nil {
		return nil, s.internal(ctx, "create thread", err)
	}
	return connect.NewResponse(&communityv1.CreateThreadResponse{Thread: threadProto(t), ZedToken: string(token)}), nil
}

// maxThreadsListed bounds one ListThreads answer.
const maxThreadsListed = 200

// ListThreads lists the threads of a channel the caller sees, newest first.
func (s *Service) ListThreads(ctx context.Context, req *connect.Request[communityv1.ListThreadsRequest]) (*connect.Response[communityv1.ListThreadsResponse], error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	channelID, err := parseID("channel_id", req.Msg.ChannelId)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `SELECT `+threadColumns+` FROM threads WHERE channel_id = $1 AND (NOT archived OR $2)
		ORDER BY created_at DESC, id LIMIT $3`, channelID, req.Msg.IncludeArchived, maxThreadsListed)
	if err != nil {
		return nil, s.internal(ctx, "list threads", err)
	}
	threads, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (threadRow, error) { return scanThread(row) })
	if err != nil {
		return nil, s.internal(ctx, "list threads", err)
	}
	checks := make([]authz.Check, len(threads))
	for i, t := range threads {
		checks[i] = authz.Check{Subject: p.Subject(), Permission: authz.Thread.ViewChannel, ResourceID: t.id.String()}
	}
	decisions, err := s.authz.CheckBulk(ctx, checks, freshness(req.Header()))
	if err != nil {
		return nil, s.internal(ctx, "list threads", err)
	}
	out := &communityv1.ListThreadsResponse{}
	for i, t := range threads {
		if decisions[i].Allowed {
			out.Threads = append(out.Threads, threadProto(t))
		}
	}
	return connect.NewResponse(out), nil
}

// UpdateThread renames, locks, unlocks, archives or unarchives a thread.
func (s *Service) UpdateThread(ctx context.Context, req *connect.Request[communityv1.UpdateThreadRequest]) (*connect.Response[communityv1.UpdateThreadResponse], error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	id, err := parseID("thread_id", req.Msg.ThreadId)
	if err != nil {
		return nil, err
	}
	t, err := getThread(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "update thread", err)
	}
	after := t
	if req.Msg.Name != nil {
		if err := validName("name", req.Msg.GetName(), 1, 100); err != nil {
			return nil, err
		}
		after.name = strings.TrimSpace(req.Msg.GetName())
	}
	if req.Msg.Archived != nil {
		after.archived = req.Msg.GetArchived()
	}
	var d delta
	if req.Msg.Locked != nil && req.Msg.GetLocked() != t.locked {
		// The creator may rename and archive; locking is moderation.
		if err := s.authz.Require(ctx, authz.Check{Subject: p.Subject(), Permission: authz.Thread.ManageThreads, ResourceID: id.String()}, freshness(req.Header())); err != nil {
			return nil, s.internal(ctx, "update thread", err)
		}
		after.locked = req.Msg.GetLocked()
		if after.locked {
			d.add = []authz.Relationship{lockedRelationship(id)}
		} else {
			d.remove = []authz.Relationship{lockedRelationship(id)}
		}
	}
	token, err := s.commit(ctx, t.serverID, d, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE threads SET name = $2, locked = $3, archived = $4 WHERE id = $1 AND locked = $5`,
			id, after.name, after.locked, after.archived, t.locked)
		if err == nil && tag.RowsAffected() == 0 {
			return errConflict
		}
		return err
	})
	if err != nil {
		return nil, s.internal(ctx, "update thread", err)
	}
	return connect.NewResponse(&communityv1.UpdateThreadResponse{Thread: threadProto(after), ZedToken: string(token)}), nil
}

// AddThreadParticipant adds a server member to a thread.
func (s *Service) AddThreadParticipant(ctx context.Context, req *connect.Request[communityv1.AddThreadParticipantRequest]) (*connect.Response[communityv1.AddThreadParticipantResponse], error) {
	id, err := parseID("thread_id", req.Msg.ThreadId)
	if err != nil {
		return nil, err
	}
	t, err := getThread(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "add thread participant", err)
	}
	if ok, err := isMember(ctx, s.db, t.serverID, req.Msg.UserId); err != nil || !ok {
		if err != nil {
			return nil, s.internal(ctx, "add thread participant", err)
		}
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("user_id: %q is not a member of the server", req.Msg.UserId))
	}
	joined := participantRow{threadID: id, userID: req.Msg.UserId}
	token, err := s.commitExec(ctx, t.serverID, delta{add: []authz.Relationship{participantRelationship(joined)}},
		`INSERT INTO thread_participants (thread_id, server_id, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, id, t.serverID, joined.userID)
	if err != nil {
		return nil, s.internal(ctx, "add thread participant", err)
	}
	return connect.NewResponse(&communityv1.AddThreadParticipantResponse{ZedToken: string(token)}), nil
}

// DeleteThread deletes a thread (recording it as deleted).
func (s *Service) DeleteThread(ctx context.Context, req *connect.Request[communityv1.DeleteThreadRequest]) (*connect.Response[communityv1.DeleteThreadResponse], error) {
	id, err := parseID("thread_id", req.Msg.ThreadId)
	if err != nil {
		return nil, err
	}
	t, err := getThread(ctx, s.db, id)
	if err != nil {
		return nil, s.internal(ctx, "delete thread", err)
	}
	set, err := s.threadGraph(ctx, s.db, "id", id)
	if err != nil {
		return nil, s.internal(ctx, "delete thread", err)
	}
	token, err := s.commit(ctx, t.serverID, delta{remove: set.rels}, func(tx pgx.Tx) error {
		if err := set.expect(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, recordDeleted(`SELECT 'thread:' || $1::uuid`), id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM threads WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return nil, s.internal(ctx, "delete thread", err)
	}
	return connect.NewResponse(&communityv1.DeleteThreadResponse{ZedToken: string(token)}), nil
}
