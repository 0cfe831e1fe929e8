package community_test

import (
	"testing"

	"connectrpc.com/connect"

	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

func TestInvites(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	created := must(h.client.CreateServer(ctx, as("ann", "", &communityv1.CreateServerRequest{Name: "Private club"})))
	server, general, zed := created.Msg.Server.Id, created.Msg.GeneralChannel.Id, created.Msg.ZedToken

	// Nobody joins a private server without an invite.
	_, err := h.client.JoinServer(ctx, as("bob", zed, &communityv1.JoinServerRequest{ServerId: server}))
	code(t, err, connect.CodePermissionDenied)

	inv := must(h.client.CreateInvite(ctx, as("ann", zed, &communityv1.CreateInviteRequest{ChannelId: general, MaxUses: 2})))
	if inv.Msg.Invite.ExpiresAt == nil || inv.Msg.Invite.MaxUses != 2 {
		t.Fatalf("invite: %+v", inv.Msg.Invite)
	}
	invite := inv.Msg.Invite.Code
	zed = inv.Msg.ZedToken

	joined := must(h.client.JoinByInvite(ctx, as("bob", zed, &communityv1.JoinByInviteRequest{Code: invite})))
	if joined.Msg.Server.Id != server {
		t.Fatalf("joined %v", joined.Msg.Server)
	}
	// Joining again does not use the invite up.
	again := must(h.client.JoinByInvite(ctx, as("bob", joined.Msg.ZedToken, &communityv1.JoinByInviteRequest{Code: invite})))
	_ = again
	last := must(h.client.JoinByInvite(ctx, as("carl", joined.Msg.ZedToken, &communityv1.JoinByInviteRequest{Code: invite})))
	// The second use was the last: the invite is gone from the graph.
	_, err = h.client.JoinByInvite(ctx, as("dave", last.Msg.ZedToken, &communityv1.JoinByInviteRequest{Code: invite}))
	code(t, err, connect.CodePermissionDenied)

	listed := must(h.client.ListInvites(ctx, as("ann", last.Msg.ZedToken, &communityv1.ListInvitesRequest{ServerId: server})))
	if len(listed.Msg.Invites) != 1 || listed.Msg.Invites[0].Uses != 2 {
		t.Fatalf("invites: %+v", listed.Msg.Invites)
	}

	// Banned users are refused, even with a valid invite.
	open := must(h.client.CreateInvite(ctx, as("ann", last.Msg.ZedToken, &communityv1.CreateInviteRequest{ChannelId: general, MaxAgeSeconds: -1})))
	banned := must(h.client.BanMember(ctx, as("ann", open.Msg.ZedToken, &communityv1.BanMemberRequest{ServerId: server, UserId: "carl"})))
	_, err = h.client.JoinByInvite(ctx, as("carl", banned.Msg.ZedToken, &communityv1.JoinByInviteRequest{Code: open.Msg.Invite.Code}))
	code(t, err, connect.CodePermissionDenied)

	// Refusals of each invite RPC to a caller without its permission.
	_, err = h.client.RevokeInvite(ctx, as("bob", banned.Msg.ZedToken, &communityv1.RevokeInviteRequest{Code: open.Msg.Invite.Code}))
	code(t, err, connect.CodePermissionDenied)
	_, err = h.client.ListInvites(ctx, as("bob", banned.Msg.ZedToken, &communityv1.ListInvitesRequest{ServerId: server}))
	code(t, err, connect.CodePermissionDenied)
	_, err = h.client.CreateInvite(ctx, as("zoe", banned.Msg.ZedToken, &communityv1.CreateInviteRequest{ChannelId: general}))
	code(t, err, connect.CodePermissionDenied)
	_, err = h.client.CreateInvite(ctx, as("ann", banned.Msg.ZedToken, &communityv1.CreateInviteRequest{ChannelId: general, MaxAgeSeconds: 365 * 24 * 3600}))
	code(t, err, connect.CodeInvalidArgument)
	_, err = h.client.JoinByInvite(ctx, as("dave", banned.Msg.ZedToken, &communityv1.JoinByInviteRequest{Code: "no-such-code"}))
	code(t, err, connect.CodePermissionDenied)

	// A revoked invite lets nobody in.
	revoked := must(h.client.RevokeInvite(ctx, as("ann", banned.Msg.ZedToken, &communityv1.RevokeInviteRequest{Code: open.Msg.Invite.Code})))
	_, err = h.client.JoinByInvite(ctx, as("dave", revoked.Msg.ZedToken, &communityv1.JoinByInviteRequest{Code: open.Msg.Invite.Code}))
	code(t, err, connect.CodePermissionDenied)

	// Members without create_invite in the channel cannot make one.
	denied := must(h.client.SetPermissionOverwrite(ctx, as("ann", revoked.Msg.ZedToken, &communityv1.SetPermissionOverwriteRequest{ChannelId: general,
		Overwrite: &communityv1.PermissionOverwrite{TargetKind: communityv1.TargetKind_TARGET_KIND_EVERYONE, Deny: []string{"create_invite"}}})))
	_, err = h.client.CreateInvite(ctx, as("bob", denied.Msg.ZedToken, &communityv1.CreateInviteRequest{ChannelId: general}))
	code(t, err, connect.CodePermissionDenied)

	if drift := must(h.svc.CheckDrift(ctx)); len(drift) != 0 {
		t.Fatalf("drift after invites: %+v", drift)
	}
}
