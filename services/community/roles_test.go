package community_test

import (
	"slices"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

func TestRoleManagement(t *testing.T) {
	h := start(t)
	f := setUp(t, h) // Mods (manage_roles, ban_members, view_channel, manage_channels) at 1, held by bob
	ctx := t.Context()

	helpers := must(h.client.CreateRole(ctx, as("ann", f.token, &communityv1.CreateRoleRequest{ServerId: f.server, Name: "Helpers"})))
	helpersID, zed := helpers.Msg.Role.Id, helpers.Msg.ZedToken // Helpers at 1, Mods moved to 2

	// Bob (top 2) manages Helpers (1): he may add what he holds, not more.
	must(h.client.UpdateRole(ctx, as("bob", zed, &communityv1.UpdateRoleRequest{RoleId: helpersID, SetPermissions: true, Permissions: []string{"view_channel"}})))
	_, err := h.client.UpdateRole(ctx, as("bob", zed, &communityv1.UpdateRoleRequest{RoleId: helpersID, SetPermissions: true, Permissions: []string{"view_channel", "kick_members"}}))
	code(t, err, connect.CodePermissionDenied)
	// Not his own role, nor anyone else's without manage_roles.
	_, err = h.client.UpdateRole(ctx, as("bob", zed, &communityv1.UpdateRoleRequest{RoleId: f.mods, Name: proto.String("Gods")}))
	code(t, err, connect.CodePermissionDenied)
	_, err = h.client.UpdateRole(ctx, as("carl", zed, &communityv1.UpdateRoleRequest{RoleId: helpersID, Name: proto.String("x")}))
	code(t, err, connect.CodePermissionDenied)
	_, err = h.client.DeleteRole(ctx, as("carl", zed, &communityv1.DeleteRoleRequest{RoleId: helpersID}))
	code(t, err, connect.CodePermissionDenied)
	_, err = h.client.MoveRole(ctx, as("carl", zed, &communityv1.MoveRoleRequest{RoleId: helpersID, Position: 2}))
	code(t, err, connect.CodePermissionDenied)
	// Bob cannot move a role up to his own level.
	_, err = h.client.MoveRole(ctx, as("bob", zed, &communityv1.MoveRoleRequest{RoleId: helpersID, Position: 2}))
	code(t, err, connect.CodePermissionDenied)

	// Editing @everyone changes every member at once.
	everyoneID := must(h.client.GetServer(ctx, as("ann", zed, &communityv1.GetServerRequest{ServerId: f.server}))).Msg.Server.EveryoneRoleId
	quiet := must(h.client.UpdateRole(ctx, as("ann", zed, &communityv1.UpdateRoleRequest{RoleId: everyoneID, SetPermissions: true,
		Permissions: []string{"view_channel", "read_message_history"}})))
	perms, err := permissions(t, h, "carl", f.general, quiet.Msg.ZedToken)
	if err != nil || slices.Contains(perms, "send_messages") || !slices.Contains(perms, "view_channel") {
		t.Fatalf("carl after @everyone lost send: %v %v", perms, err)
	}
	_, err = h.client.DeleteRole(ctx, as("ann", quiet.Msg.ZedToken, &communityv1.DeleteRoleRequest{RoleId: everyoneID}))
	code(t, err, connect.CodeInvalidArgument)

	// The owner moves Helpers above Mods: now Bob cannot touch it.
	moved := must(h.client.MoveRole(ctx, as("ann", quiet.Msg.ZedToken, &communityv1.MoveRoleRequest{RoleId: helpersID, Position: 2})))
	var order []string
	for _, r := range moved.Msg.Roles {
		order = append(order, r.Name)
	}
	if !slices.Equal(order, []string{"Helpers", "Mods", "@everyone"}) {
		t.Fatalf("order after move: %v", order)
	}
	_, err = h.client.UpdateRole(ctx, as("bob", quiet.Msg.ZedToken, &communityv1.UpdateRoleRequest{RoleId: helpersID, Name: proto.String("x")}))
	code(t, err, connect.CodePermissionDenied)

	// Deleting Mods takes #staff away from Bob, with the overwrite naming it.
	deleted := must(h.client.DeleteRole(ctx, as("ann", quiet.Msg.ZedToken, &communityv1.DeleteRoleRequest{RoleId: f.mods})))
	_, err = permissions(t, h, "bob", f.staff, deleted.Msg.ZedToken)
	code(t, err, connect.CodePermissionDenied)
	if drift := must(h.svc.CheckDrift(ctx)); len(drift) != 0 {
		t.Fatalf("drift after role changes: %+v", drift)
	}
}
