package community_test

import (
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

func TestServerLifecycle(t *testing.T) {
	h := start(t)
	f := setUp(t, h) // Gophers is public; bob is a mod; carl a member
	ctx := t.Context()

	// Explore lists public servers with their size; a private one is not listed.
	private := must(h.client.CreateServer(ctx, as("dan", f.token, &communityv1.CreateServerRequest{Name: "Hidden"})))
	explored := must(h.client.ExploreServers(ctx, as("zoe", private.Msg.ZedToken, &communityv1.ExploreServersRequest{})))
	if len(explored.Msg.Servers) != 1 || explored.Msg.Servers[0].Server.Id != f.server || explored.Msg.Servers[0].MemberCount != 3 {
		t.Fatalf("explore: %v", explored.Msg.Servers)
	}
	_, err := h.client.ExploreServers(ctx, as("", "", &communityv1.ExploreServersRequest{}))
	code(t, err, connect.CodeUnauthenticated)

	// Making the server private stops strangers from joining.
	_, err = h.client.UpdateServer(ctx, as("carl", f.token, &communityv1.UpdateServerRequest{ServerId: f.server, Public: proto.Bool(false)}))
	code(t, err, connect.CodePermissionDenied)
	updated := must(h.client.UpdateServer(ctx, as("ann", f.token, &communityv1.UpdateServerRequest{ServerId: f.server, Name: proto.String("Gophers HQ"), Public: proto.Bool(false)})))
	if updated.Msg.Server.Name != "Gophers HQ" || updated.Msg.Server.Public {
		t.Fatalf("updated: %v", updated.Msg.Server)
	}
	_, err = h.client.JoinServer(ctx, as("zoe", updated.Msg.ZedToken, &communityv1.JoinServerRequest{ServerId: f.server}))
	code(t, err, connect.CodePermissionDenied)

	// Only the owner transfers; then the old owner is an ordinary member.
	_, err = h.client.TransferOwnership(ctx, as("bob", updated.Msg.ZedToken, &communityv1.TransferOwnershipRequest{ServerId: f.server, NewOwnerId: "bob"}))
	code(t, err, connect.CodePermissionDenied)
	_, err = h.client.TransferOwnership(ctx, as("ann", updated.Msg.ZedToken, &communityv1.TransferOwnershipRequest{ServerId: f.server, NewOwnerId: "zoe"}))
	code(t, err, connect.CodeNotFound)
	moved := must(h.client.TransferOwnership(ctx, as("ann", updated.Msg.ZedToken, &communityv1.TransferOwnershipRequest{ServerId: f.server, NewOwnerId: "carl"})))
	_, err = h.client.UpdateServer(ctx, as("ann", moved.Msg.ZedToken, &communityv1.UpdateServerRequest{ServerId: f.server, Name: proto.String("Mine")}))
	code(t, err, connect.CodePermissionDenied)
	if drift := must(h.svc.CheckDrift(ctx)); len(drift) != 0 {
		t.Fatalf("drift after transfer: %+v", drift)
	}

	// Only the (new) owner deletes; afterwards nothing of it remains in the graph.
	_, err = h.client.DeleteServer(ctx, as("ann", moved.Msg.ZedToken, &communityv1.DeleteServerRequest{ServerId: f.server}))
	code(t, err, connect.CodePermissionDenied)
	deleted := must(h.client.DeleteServer(ctx, as("carl", moved.Msg.ZedToken, &communityv1.DeleteServerRequest{ServerId: f.server})))
	_, err = h.client.GetServer(ctx, as("carl", deleted.Msg.ZedToken, &communityv1.GetServerRequest{ServerId: f.server}))
	code(t, err, connect.CodePermissionDenied)
	_, err = permissions(t, h, "bob", f.staff, deleted.Msg.ZedToken)
	code(t, err, connect.CodePermissionDenied)
	if drift := must(h.svc.CheckDrift(ctx, mustUUID(f.server))); len(drift) != 0 {
		t.Fatalf("relationships left after deletion: %+v", drift)
	}
}
