package community

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/beepchat/beep/authz"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

const (
	defaultInviteAge = 7 * 24 * time.Hour
	maxInviteAge     = 30 * 24 * time.Hour
	inviteAlphabet   = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
)

type inviteRow struct {
	code              string
	serverID, channel uuid.UUID
	creatorID         string
	expiresAt         *time.Time
	maxUses, uses     int32
	revoked           bool
}

const inviteColumns = `code, server_id, channel_id, creator_id, expires_at, max_uses, uses, revoked`

func scanInvite(row scanner) (inviteRow, error) {
	var i inviteRow
	err := row.Scan(&i.code, &i.serverID, &i.channel, &i.creatorID, &i.expiresAt, &i.maxUses, &i.uses, &i.revoked)
	return i, err
}

// usable is whether the invite still lets people join.
func (i inviteRow) usable(now time.Time) bool {
	return !i.revoked && (i.maxUses == 0 || i.uses < i.maxUses) && (i.expiresAt == nil || i.expiresAt.After(now))
}

func usableRelationship(i inviteRow) authz.Relationship {
	r := rel(authz.Invite.Usable, i.code, authz.Wildcard(authz.TypeUser))
	if i.expiresAt != nil {
		r.ExpiresAt = i.expiresAt.UTC().Truncate(time.Second)
	}
	return r
}

// inviteRelationships are an invite's edges; usable only while it is.
func inviteRelationships(i inviteRow, now time.Time) []authz.Relationship {
	out := []authz.Relationship{
		rel(authz.Invite.Server, i.code, authz.TypeServer.Object(i.serverID.String()).Subject()),
		rel(authz.Invite.Channel, i.code, authz.TypeChannel.Object(i.channel.String()).Subject()),
	}
	if i.creatorID != "" { // empty once the creator's account is erased
		out = append(out, rel(authz.Invite.Creator, i.code, authz.UserSubject(i.creatorID)))
	}
	if i.usable(now) {
		out = append(out, usableRelationship(i))
	}
	return out
}

func newInviteCode() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = inviteAlphabet[int(b[i])%len(inviteAlphabet)]
	}
	return string(b)
}

func getInvite(ctx context.Context, q querier, code string) (inviteRow, error) {
	i, err := scanInvite(q.QueryRow(ctx, `SELECT `+inviteColumns+` FROM invites WHERE code = $1`, code))
	if errors.Is(err, pgx.ErrNoRows) {
		return i, errNotFound
	}
	return i, err
}

func inviteProto(i inviteRow) *communityv1.Invite {
	out := &communityv1.Invite{Code: i.code, ServerId: i.serverID.String(), ChannelId: i.channel.String(), CreatorId: i.creatorID,
		MaxUses: i.maxUses, Uses: i.uses, Revoked: i.revoked}
	if i.expiresAt != nil {
		out.ExpiresAt = timestamppb.New(*i.expiresAt)
	}
	return out
}

// CreateInvite makes an invite to the channel's server.
func (s *Service) CreateInvite(ctx context.Context, req *connect.Request[communityv1.CreateInviteRequest]) (*connect.Response[communityv1.CreateInviteResponse], error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	chID, err := parseID("channel_id", req.Msg.ChannelId)
	if err != nil {
		return nil, err
	}
	if req.Msg.MaxUses < 0 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("max_uses must be 0 (unlimited) or more"))
	}
	var expires *time.Time
	switch age := time.Duration(req.Msg.MaxAgeSeconds) * time.Second; {
	case req.Msg.MaxAgeSeconds == -1:
	case req.Msg.MaxAgeSeconds == 0:
		t := time.Now().Add(defaultInviteAge).UTC().Truncate(time.Second)
		expires = &t
	case age > 0 && age <= maxInviteAge:
		t := time.Now().Add(age).UTC().Truncate(time.Second)
		expires = &t
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("max_age_seconds must be -1 (never), 0 (7 days) or up to 30 days"))
	}
	ch, err := getChannel(ctx, s.db, chID)
	if err != nil {
		return nil, s.internal(ctx, "create invite", err)
	}
	inv := inviteRow{code: newInviteCode(), serverID: ch.serverID, channel: ch.id, creatorID: p.UserID, expiresAt: expires, maxUses: req.Msg.MaxUses}
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_INVITE_CREATED, "invite", inv.code, "",
		changed(field("channel_id", "", ch.id.String()), field("max_uses", "", fmt.Sprint(inv.maxUses)))...)
	token, err := s.commit(ctx, ch.serverID, delta{add: inviteRelationships(inv, time.Now())}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO invites (`+inviteColumns+`) VALUES ($1, $2, $3, $4, $5, $6, 0, false)`,
			inv.code, inv.serverID, inv.channel, inv.creatorID, inv.expiresAt, inv.maxUses)
		return err
	})
	if err != nil {
		return nil, s.internal(ctx, "create invite", err)
	}
	return connect.NewResponse(&communityv1.CreateInviteResponse{Invite: inviteProto(inv), ZedToken: string(token)}), nil
}

var errInviteUsedUp = connect.NewError(connect.CodeFailedPrecondition, errors.New("this invite is no longer valid"))

// JoinByInvite joins the invite's server (the interceptor checked
// invite#join: usable and not banned) and uses the invite up by one.
func (s *Service) JoinByInvite(ctx context.Context, req *connect.Request[communityv1.JoinByInviteRequest]) (*connect.Response[communityv1.JoinByInviteResponse], error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	inv, err := getInvite(ctx, s.db, req.Msg.Code)
	if err != nil {
		return nil, s.internal(ctx, "join", err)
	}
	if !inv.usable(time.Now()) {
		return nil, errInviteUsedUp
	}
	srv, err := getServer(ctx, s.db, inv.serverID)
	if err != nil {
		return nil, s.internal(ctx, "join", err)
	}
	already, err := isMember(ctx, s.db, inv.serverID, p.UserID)
	if err != nil {
		return nil, s.internal(ctx, "join", err)
	}
	if already {
		return connect.NewResponse(&communityv1.JoinByInviteResponse{Server: serverProto(srv)}), nil
	}
	d := delta{add: memberRelationships(inv.serverID, memberRow{userID: p.UserID}, time.Now())}
	if inv.maxUses > 0 && inv.uses+1 >= inv.maxUses {
		// The last use: the invite stops being usable (before the commit).
		d.remove = append(d.remove, usableRelationship(inv))
	}
	token, err := s.commit(ctx, inv.serverID, d, func(tx pgx.Tx) error {
		locked, err := scanInvite(tx.QueryRow(ctx, `SELECT `+inviteColumns+` FROM invites WHERE code = $1 FOR UPDATE`, inv.code))
		if err != nil {
			return err
		}
		if !locked.usable(time.Now()) || locked.uses != inv.uses {
			return errInviteUsedUp // raced with another join: try again
		}
		var banned bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM bans WHERE server_id = $1 AND user_id = $2)`, inv.serverID, p.UserID).Scan(&banned); err != nil {
			return err
		}
		if banned {
			return connect.NewError(connect.CodePermissionDenied, errors.New("you are banned from this server"))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO members (server_id, user_id) VALUES ($1, $2)`, inv.serverID, p.UserID); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE invites SET uses = uses + 1 WHERE code = $1`, inv.code)
		return err
	})
	if err != nil {
		return nil, s.internal(ctx, "join", err)
	}
	return connect.NewResponse(&communityv1.JoinByInviteResponse{Server: serverProto(srv), ZedToken: string(token)}), nil
}

// RevokeInvite makes an invite unusable.
func (s *Service) RevokeInvite(ctx context.Context, req *connect.Request[communityv1.RevokeInviteRequest]) (*connect.Response[communityv1.RevokeInviteResponse], error) {
	inv, err := getInvite(ctx, s.db, req.Msg.Code)
	if err != nil {
		return nil, s.internal(ctx, "revoke invite", err)
	}
	var d delta
	if inv.usable(time.Now()) {
		d.remove = []authz.Relationship{usableRelationship(inv)}
	}
	ctx = auditing(ctx, req, communityv1.AuditAction_AUDIT_ACTION_INVITE_REVOKED, "invite", inv.code, "")
	token, err := s.commitExec(ctx, inv.serverID, d, `UPDATE invites SET revoked = true WHERE code = $1`, inv.code)
	if err != nil {
		return nil, s.internal(ctx, "revoke invite", err)
	}
	return connect.NewResponse(&communityv1.RevokeInviteResponse{ZedToken: string(token)}), nil
}

// ListInvites lists a server's invites, newest first.
func (s *Service) ListInvites(ctx context.Context, req *connect.Request[communityv1.ListInvitesRequest]) (*connect.Response[communityv1.ListInvitesResponse], error) {
	id, err := parseID("server_id", req.Msg.ServerId)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `SELECT `+inviteColumns+` FROM invites WHERE server_id = $1 ORDER BY created_at DESC LIMIT 1000`, id)
	if err != nil {
		return nil, s.internal(ctx, "list invites", err)
	}
	invites, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (inviteRow, error) { return scanInvite(row) })
	if err != nil {
		return nil, s.internal(ctx, "list invites", err)
	}
	resp := &communityv1.ListInvitesResponse{}
	for _, i := range invites {
		resp.Invites = append(resp.Invites, inviteProto(i))
	}
	return connect.NewResponse(resp), nil
}
