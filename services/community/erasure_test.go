package community_test

import (
	"testing"

	"connectrpc.com/connect"

	"github.com/beepchat/beep/authz"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

// asService makes an internal request from a Beep service.
func asService[T any](service string, msg *T) *connect.Request[T] {
	req := connect.NewRequest(msg)
	if service != "" {
		req.Header().Set("Test-Service", service)
	}
	return req
}

// TestEraseUserIsInternal: only the user service, on its own behalf, erases.
func TestEraseUserIsInternal(t *testing.T) {
	h := start(t)
	f := setUp(t, h)
	ctx := t.Context()
	// The server's owner herself, a person, is refused.
	_, err := h.erasure.EraseUser(ctx, as("ann", f.token, &communityv1.EraseUserRequest{UserId: "ann"}))
	code(t, err, connect.CodePermissionDenied)
	_, err = h.erasure.EraseUser(ctx, as("", "", &communityv1.EraseUserRequest{UserId: "ann"}))
	code(t, err, connect.CodeUnauthenticated)
	// Another service too.
	_, err = h.erasure.EraseUser(ctx, asService("chat", &communityv1.EraseUserRequest{UserId: "ann"}))
	code(t, err, connect.CodePermissionDenied)
	// An empty id would match every anonymised row.
	_, err = h.erasure.EraseUser(ctx, asService("user", &communityv1.EraseUserRequest{}))
	code(t, err, connect.CodeInvalidArgument)
	// Nothing was erased.
	if got := must(h.client.GetServer(ctx, as("ann", f.token, &communityv1.GetServerRequest{ServerId: f.server}))); got.Msg.Server.OwnerId != "ann" {
		t.Fatalf("owner %q", got.Msg.Server.OwnerId)
	}
}

// TestEraseUserPassesServersOn: the member with the highest role inherits,
// whoever joined first; among equals the longest-standing; nobody else
// there, the server goes.
func TestEraseUserPassesServersOn(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	created := must(h.client.CreateServer(ctx, as("ann", "", &communityv1.CreateServerRequest{Name: "Ranks", Public: true})))
	server, zed := created.Msg.Server.Id, created.Msg.ZedToken
	// A new role goes just above @everyone: high, then low below it.
	high := must(h.client.CreateRole(ctx, as("ann", zed, &communityv1.CreateRoleRequest{ServerId: server, Name: "high"})))
	low := must(h.client.CreateRole(ctx, as("ann", high.Msg.ZedToken, &communityv1.CreateRoleRequest{ServerId: server, Name: "low"})))
	zed = low.Msg.ZedToken
	for _, u := range []string{"early", "late", "later"} {
		zed = must(h.client.JoinServer(ctx, as(u, zed, &communityv1.JoinServerRequest{ServerId: server}))).Msg.ZedToken
	}
	zed = must(h.client.AddMemberRole(ctx, as("ann", zed, &communityv1.AddMemberRoleRequest{RoleId: low.Msg.Role.Id, UserId: "early"}))).Msg.ZedToken
	zed = must(h.client.AddMemberRole(ctx, as("ann", zed, &communityv1.AddMemberRoleRequest{RoleId: high.Msg.Role.Id, UserId: "late"}))).Msg.ZedToken
	lonely := must(h.client.CreateServer(ctx, as("ann", zed, &communityv1.CreateServerRequest{Name: "Alone"})))

	erased := must(h.erasure.EraseUser(ctx, asService("user", &communityv1.EraseUserRequest{UserId: "ann"})))
	if got := erased.Msg.Transferred[server]; got != "late" {
		t.Fatalf("passed to %q, want late (the highest role)", got)
	}
	if len(erased.Msg.Deleted) != 1 || erased.Msg.Deleted[0] != lonely.Msg.Server.Id {
		t.Fatalf("deleted %v", erased.Msg.Deleted)
	}
	// Its #general is listed as deleted, for the chat service to erase.
	gone := must(h.erasure.ListDeletedConversations(ctx, asService("chat", &communityv1.ListDeletedConversationsRequest{}))).Msg.Conversations
	if len(gone) != 1 || gone[0].Conversation != "channel:"+lonely.Msg.GeneralChannel.Id {
		t.Fatalf("deleted conversations after the erasure: %v", gone)
	}
	zed = erased.Msg.ZedToken
	// late owns it in the graph too: only the owner deletes a server.
	if d, err := h.authz.Check(ctx, authz.Check{Subject: authz.UserSubject("late"), Permission: authz.Server.DeleteServer, ResourceID: server}, authz.AtLeastAsFresh(authz.ZedToken(zed))); err != nil || !d.Allowed {
		t.Fatalf("late may not delete the server: %+v %v", d, err)
	}

	// late's account goes too: among the rest, nobody holds a role above
	// @everyone but early's low one.
	erased = must(h.erasure.EraseUser(ctx, asService("user", &communityv1.EraseUserRequest{UserId: "late"})))
	if got := erased.Msg.Transferred[server]; got != "early" {
		t.Fatalf("passed to %q, want early", got)
	}
	// Among equals (no role), the longest-standing.
	must(h.client.RemoveMemberRole(ctx, as("early", erased.Msg.ZedToken, &communityv1.RemoveMemberRoleRequest{RoleId: low.Msg.Role.Id, UserId: "early"})))
	zed = must(h.client.JoinServer(ctx, as("latest", erased.Msg.ZedToken, &communityv1.JoinServerRequest{ServerId: server}))).Msg.ZedToken
	_ = zed
	erased = must(h.erasure.EraseUser(ctx, asService("user", &communityv1.EraseUserRequest{UserId: "early"})))
	if got := erased.Msg.Transferred[server]; got != "later" {
		t.Fatalf("passed to %q, want later (joined before latest)", got)
	}
	if drift := must(h.svc.CheckDrift(ctx)); len(drift) != 0 {
		t.Fatalf("drift: %+v", drift)
	}
}

// TestEraseUserAfterACrash: a crash between the database commit and the
// graph's convergence leaves the server marked; the reconciler converges
// it, and erasing again finds nothing left to do.
func TestEraseUserAfterACrash(t *testing.T) {
	h := start(t)
	f := setUp(t, h)
	ctx := t.Context()
	h.svc.SetAfterCommit(func() error { return errCrash })
	if _, err := h.erasure.EraseUser(ctx, asService("user", &communityv1.EraseUserRequest{UserId: "ann"})); err == nil {
		t.Fatal("the crashed erasure reported success")
	}
	h.svc.SetAfterCommit(nil)
	if drift := must(h.svc.CheckDrift(ctx)); len(drift) != 1 {
		t.Fatalf("drift after the crash: %+v", drift)
	}
	if n := must(h.svc.ReconcileDirty(ctx, 0)); n != 1 {
		t.Fatalf("reconciled %d servers, want 1", n)
	}
	again := must(h.erasure.EraseUser(ctx, asService("user", &communityv1.EraseUserRequest{UserId: "ann"})))
	if len(again.Msg.Transferred)+len(again.Msg.Deleted) != 0 || again.Msg.MembershipsRemoved != 0 {
		t.Fatalf("erasing again did more: %+v", again.Msg)
	}
	left, err := h.authz.RelationshipsOfUser(ctx, "ann", authz.FullyConsistent())
	if err != nil || len(left) != 0 {
		t.Fatalf("relationships of ann left: %v %v", left, err)
	}
	// bob, the only one holding a role, owns the server.
	got := must(h.client.GetServer(ctx, as("bob", f.token, &communityv1.GetServerRequest{ServerId: f.server})))
	if got.Msg.Server.OwnerId != "bob" {
		t.Fatalf("owner %q, want bob", got.Msg.Server.OwnerId)
	}
}
