package community_test

import (
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

// TestModeration: kick, timeout, unban, leave and nicknames, with the role
// hierarchy and the refusals of each RPC.
func TestModeration(t *testing.T) {
	h := start(t)
	f := setUp(t, h) // ann owns; bob holds Mods (manage_roles, ban, view, manage_channels); carl plain
	ctx := t.Context()

	// Give Mods the moderation permissions they lack, and check refusals first.
	_, err := h.client.KickMember(ctx, as("carl", f.token, &communityv1.KickMemberRequest{ServerId: f.server, UserId: "bob"}))
	code(t, err, connect.CodePermissionDenied)
	_, err = h.client.TimeoutMember(ctx, as("bob", f.token, &communityv1.TimeoutMemberRequest{ServerId: f.server, UserId: "carl",
		Until: timestamppb.New(time.Now().Add(time.Hour))}))
	code(t, err, connect.CodePermissionDenied) // Mods lack moderate_members
	_, err = h.client.SetMemberNickname(ctx, as("carl", f.token, &communityv1.SetMemberNicknameRequest{ServerId: f.server, UserId: "bob", Nickname: "x"}))
	code(t, err, connect.CodePermissionDenied)
	_, err = h.client.UnbanMember(ctx, as("carl", f.token, &communityv1.UnbanMemberRequest{ServerId: f.server, UserId: "zed"}))
	code(t, err, connect.CodePermissionDenied)
	_, err = h.client.ListMembers(ctx, as("zoe", f.token, &communityv1.ListMembersRequest{ServerId: f.server}))
	code(t, err, connect.CodePermissionDenied)
	_, err = h.client.LeaveServer(ctx, as("zoe", f.token, &communityv1.LeaveServerRequest{ServerId: f.server}))
	code(t, err, connect.CodePermissionDenied)

	// The owner times carl out: he still reads #general but cannot send.
	until := time.Now().Add(time.Hour)
	timed := must(h.client.TimeoutMember(ctx, as("ann", f.token, &communityv1.TimeoutMemberRequest{ServerId: f.server, UserId: "carl", Until: timestamppb.New(until)})))
	perms, err := permissions(t, h, "carl", f.general, timed.Msg.ZedToken)
	if err != nil || !slices.Contains(perms, "view_channel") || slices.Contains(perms, "send_messages") {
		t.Fatalf("timed-out carl holds %v (%v)", perms, err)
	}
	_, err = h.client.SetMyNickname(ctx, as("carl", timed.Msg.ZedToken, &communityv1.SetMyNicknameRequest{ServerId: f.server, Nickname: "c"}))
	code(t, err, connect.CodePermissionDenied) // timed out: no change_nickname
	_, err = h.client.TimeoutMember(ctx, as("ann", timed.Msg.ZedToken, &communityv1.TimeoutMemberRequest{ServerId: f.server, UserId: "carl",
		Until: timestamppb.New(time.Now().Add(29 * 24 * time.Hour))}))
	code(t, err, connect.CodeInvalidArgument)
	listed := must(h.client.ListMembers(ctx, as("bob", timed.Msg.ZedToken, &communityv1.ListMembersRequest{ServerId: f.server})))
	var carl *communityv1.Member
	for _, m := range listed.Msg.Members {
		if m.UserId == "carl" {
			carl = m
		}
	}
	if len(listed.Msg.Members) != 3 || carl == nil || carl.TimedOutUntil == nil {
		t.Fatalf("members: %v", listed.Msg.Members)
	}
	if drift := must(h.svc.CheckDrift(ctx)); len(drift) != 0 {
		t.Fatalf("drift with a timeout: %+v", drift)
	}

	// Ending the timeout gives everything back.
	ended := must(h.client.TimeoutMember(ctx, as("ann", timed.Msg.ZedToken, &communityv1.TimeoutMemberRequest{ServerId: f.server, UserId: "carl"})))
	perms, err = permissions(t, h, "carl", f.general, ended.Msg.ZedToken)
	if err != nil || !slices.Contains(perms, "send_messages") {
		t.Fatalf("carl after his timeout: %v (%v)", perms, err)
	}
	must(h.client.SetMyNickname(ctx, as("carl", ended.Msg.ZedToken, &communityv1.SetMyNicknameRequest{ServerId: f.server, Nickname: "Carlito"})))

	// Nicknames of others: only below one's highest role.
	_, err = h.client.SetMemberNickname(ctx, as("ann", ended.Msg.ZedToken, &communityv1.SetMemberNicknameRequest{ServerId: f.server, UserId: "bob", Nickname: "Bobby"}))
	if err != nil {
		t.Fatal(err)
	}

	// Kick: a mod cannot kick (no kick_members); the owner can; carl is then out.
	_, err = h.client.KickMember(ctx, as("bob", ended.Msg.ZedToken, &communityv1.KickMemberRequest{ServerId: f.server, UserId: "carl"}))
	code(t, err, connect.CodePermissionDenied)
	kicked := must(h.client.KickMember(ctx, as("ann", ended.Msg.ZedToken, &communityv1.KickMemberRequest{ServerId: f.server, UserId: "carl", Reason: "test"})))
	_, err = permissions(t, h, "carl", f.general, kicked.Msg.ZedToken)
	code(t, err, connect.CodePermissionDenied)
	_, err = h.client.KickMember(ctx, as("ann", kicked.Msg.ZedToken, &communityv1.KickMemberRequest{ServerId: f.server, UserId: "carl"}))
	code(t, err, connect.CodeNotFound)
	// A kicked member may come back (the server is public); a banned one may not until unbanned.
	back := must(h.client.JoinServer(ctx, as("carl", kicked.Msg.ZedToken, &communityv1.JoinServerRequest{ServerId: f.server})))
	banned := must(h.client.BanMember(ctx, as("bob", back.Msg.ZedToken, &communityv1.BanMemberRequest{ServerId: f.server, UserId: "carl"})))
	_, err = h.client.JoinServer(ctx, as("carl", banned.Msg.ZedToken, &communityv1.JoinServerRequest{ServerId: f.server}))
	code(t, err, connect.CodePermissionDenied)
	unbanned := must(h.client.UnbanMember(ctx, as("bob", banned.Msg.ZedToken, &communityv1.UnbanMemberRequest{ServerId: f.server, UserId: "carl"})))
	must(h.client.JoinServer(ctx, as("carl", unbanned.Msg.ZedToken, &communityv1.JoinServerRequest{ServerId: f.server})))
	_, err = h.client.UnbanMember(ctx, as("bob", unbanned.Msg.ZedToken, &communityv1.UnbanMemberRequest{ServerId: f.server, UserId: "carl"}))
	code(t, err, connect.CodeNotFound)

	// Leaving: members may, the owner may not.
	left := must(h.client.LeaveServer(ctx, as("bob", unbanned.Msg.ZedToken, &communityv1.LeaveServerRequest{ServerId: f.server})))
	_, err = permissions(t, h, "bob", f.staff, left.Msg.ZedToken)
	code(t, err, connect.CodePermissionDenied)
	_, err = h.client.LeaveServer(ctx, as("ann", left.Msg.ZedToken, &communityv1.LeaveServerRequest{ServerId: f.server}))
	code(t, err, connect.CodeFailedPrecondition)

	if drift := must(h.svc.CheckDrift(ctx)); len(drift) != 0 {
		t.Fatalf("drift after moderation: %+v", drift)
	}
}

// TestAdministratorsCannotBeTimedOut: as on Discord, a timeout would not bind
// an administrator, so it is refused.
func TestAdministratorsCannotBeTimedOut(t *testing.T) {
	h := start(t)
	f := setUp(t, h)
	ctx := t.Context()
	admins := must(h.client.CreateRole(ctx, as("ann", f.token, &communityv1.CreateRoleRequest{ServerId: f.server, Name: "Admins", Permissions: []string{"administrator"}})))
	given := must(h.client.AddMemberRole(ctx, as("ann", admins.Msg.ZedToken, &communityv1.AddMemberRoleRequest{RoleId: admins.Msg.Role.Id, UserId: "carl"})))
	_, err := h.client.TimeoutMember(ctx, as("ann", given.Msg.ZedToken, &communityv1.TimeoutMemberRequest{ServerId: f.server, UserId: "carl",
		Until: timestamppb.New(time.Now().Add(time.Hour))}))
	code(t, err, connect.CodeFailedPrecondition)
}
