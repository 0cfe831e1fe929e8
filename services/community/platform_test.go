package community_test

import (
	"testing"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	"github.com/beepchat/beep/authz"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

// TestPlatformServers: staff inspect any server and list a user's servers;
// only admins remove a server; its owner and members are refused all three.
func TestPlatformServers(t *testing.T) {
	h := start(t)
	f := setUp(t, h) // ann owns Gophers; bob and carl are members
	ctx := t.Context()
	private := must(h.client.CreateServer(ctx, as("carl", f.token, &communityv1.CreateServerRequest{Name: "Carl's"})))
	zed, err := h.authz.Write(ctx, []authz.Update{
		authz.Touch(authz.Relationship{Relation: authz.Platform.Staff, ResourceID: authz.PlatformID, Subject: authz.UserSubject("sam")}),
		authz.Touch(authz.Relationship{Relation: authz.Platform.Admin, ResourceID: authz.PlatformID, Subject: authz.UserSubject("root")}),
	})
	if err != nil {
		t.Fatal(err)
	}
	token := string(zed)

	got := must(h.client.InspectServer(ctx, as("sam", token, &communityv1.InspectServerRequest{ServerId: private.Msg.Server.Id})))
	if got.Msg.Server.OwnerId != "carl" || got.Msg.Members != 1 || got.Msg.Channels != 1 || got.Msg.Roles != 1 {
		t.Fatalf("inspect a private server: %v", got.Msg)
	}
	got = must(h.client.InspectServer(ctx, as("root", token, &communityv1.InspectServerRequest{ServerId: f.server})))
	if got.Msg.Members != 3 || got.Msg.Roles != 2 || got.Msg.Channels != 2 || got.Msg.AuditLogEntries == 0 {
		t.Fatalf("inspect Gophers: %v", got.Msg)
	}
	_, err = h.client.InspectServer(ctx, as("sam", token, &communityv1.InspectServerRequest{ServerId: uuid.NewString()}))
	code(t, err, connect.CodeNotFound)

	servers := must(h.client.ListUserServers(ctx, as("sam", token, &communityv1.ListUserServersRequest{UserId: "carl"})))
	if len(servers.Msg.Servers) != 2 || servers.Msg.Servers[0].Server.Id != f.server || servers.Msg.Servers[0].Owner ||
		servers.Msg.Servers[1].Server.Id != private.Msg.Server.Id || !servers.Msg.Servers[1].Owner {
		t.Fatalf("carl's servers: %v", servers.Msg.Servers)
	}
	_, err = h.client.ListUserServers(ctx, as("sam", token, &communityv1.ListUserServersRequest{}))
	code(t, err, connect.CodeInvalidArgument)

	// Staff read, admins remove; the owner is no platform admin.
	for _, u := range []string{"ann", "carl"} {
		_, err = h.client.InspectServer(ctx, as(u, token, &communityv1.InspectServerRequest{ServerId: f.server}))
		code(t, err, connect.CodePermissionDenied)
		_, err = h.client.ListUserServers(ctx, as(u, token, &communityv1.ListUserServersRequest{UserId: "carl"}))
		code(t, err, connect.CodePermissionDenied)
	}
	for _, u := range []string{"sam", "carl"} {
		_, err = h.client.RemoveServer(ctx, as(u, token, &communityv1.RemoveServerRequest{ServerId: private.Msg.Server.Id}))
		code(t, err, connect.CodePermissionDenied)
	}
	removed := must(h.client.RemoveServer(ctx, as("root", token, &communityv1.RemoveServerRequest{ServerId: private.Msg.Server.Id, Reason: "abuse"})))
	_, err = h.client.GetServer(ctx, as("carl", removed.Msg.ZedToken, &communityv1.GetServerRequest{ServerId: private.Msg.Server.Id}))
	code(t, err, connect.CodePermissionDenied)
	_, err = h.client.InspectServer(ctx, as("sam", removed.Msg.ZedToken, &communityv1.InspectServerRequest{ServerId: private.Msg.Server.Id}))
	code(t, err, connect.CodeNotFound)
	if drift := must(h.svc.CheckDrift(ctx)); len(drift) != 0 {
		t.Fatalf("drift after removing a server: %+v", drift)
	}
}
