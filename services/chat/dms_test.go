package chat_test

import (
	"errors"
	"slices"
	"testing"

	"connectrpc.com/connect"

	"github.com/beepchat/beep/authz"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	"github.com/beepchat/beep/services/chat"
)

func TestOpenDM(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	first := must(h.chat.OpenDM(ctx, as("ann", "", &chatv1.OpenDMRequest{UserId: "bob"})))
	dm := first.Msg.DmChannel
	if !first.Msg.Created || dm.Kind != chatv1.DMKind_DM_KIND_DIRECT || !slices.Equal(dm.MemberIds, []string{"ann", "bob"}) || dm.OwnerId != "" ||
		dm.Conversation != "dm_channel:"+dm.Id || first.Msg.ZedToken == "" {
		t.Fatalf("opened %+v", first.Msg)
	}
	if ev := h.events.take(); len(ev) != 1 || ev[0].Kind != chat.DMUpdated || ev[0].ZedToken == "" {
		t.Fatalf("published %+v", ev)
	}
	// Either side opens the same one.
	again := must(h.chat.OpenDM(ctx, as("bob", "", &chatv1.OpenDMRequest{UserId: "ann"})))
	if again.Msg.Created || again.Msg.DmChannel.Id != dm.Id {
		t.Fatalf("bob opened %+v", again.Msg)
	}
	zed := again.Msg.ZedToken
	h.send(t, "bob", zed, dm.Conversation, "hi ann")
	h.send(t, "ann", zed, dm.Conversation, "hi bob")
	for _, user := range []string{"carl", "zoe"} {
		_, err := h.chat.ListMessages(ctx, as(user, zed, &chatv1.ListMessagesRequest{Conversation: dm.Conversation}))
		code(t, err, connect.CodePermissionDenied)
		_, err = h.chat.GetDM(ctx, as(user, zed, &chatv1.GetDMRequest{DmChannelId: dm.Id}))
		code(t, err, connect.CodePermissionDenied)
	}
	for _, bad := range []string{"ann", "", "a b"} {
		_, err := h.chat.OpenDM(ctx, as("ann", "", &chatv1.OpenDMRequest{UserId: bad}))
		code(t, err, connect.CodeInvalidArgument)
	}
	// Concurrent first opens make one DM.
	ids := make(chan string, 6)
	for range 6 {
		go func() {
			resp, err := h.chat.OpenDM(ctx, as("carl", "", &chatv1.OpenDMRequest{UserId: "dina"}))
			if err != nil {
				t.Error(err)
				ids <- ""
				return
			}
			ids <- resp.Msg.DmChannel.Id
		}()
	}
	var got []string
	for range 6 {
		got = append(got, <-ids)
	}
	if !allEqual(got) {
		t.Fatalf("concurrent opens made %v", got)
	}
}

// TestBlockedDMs: a block, either way, refuses opening a DM and sending in
// an existing one (both people); history stays readable; group DMs refuse
// people who blocked the one adding them.
func TestBlockedDMs(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	dm := must(h.chat.OpenDM(ctx, as("ann", "", &chatv1.OpenDMRequest{UserId: "bob"}))).Msg
	conv := dm.DmChannel.Conversation
	before := h.send(t, "ann", dm.ZedToken, conv, "before the block")
	blocked := h.block(t, "bob", "ann") // bob blocks ann
	for _, pair := range [][2]string{{"ann", "bob"}, {"bob", "ann"}} {
		_, err := h.chat.OpenDM(ctx, as(pair[0], blocked, &chatv1.OpenDMRequest{UserId: pair[1]}))
		code(t, err, connect.CodePermissionDenied)
		_, err = h.chat.SendMessage(ctx, as(pair[0], blocked, &chatv1.SendMessageRequest{Conversation: conv, Content: "hello?"}))
		code(t, err, connect.CodePermissionDenied)
		if got := h.list(t, pair[0], blocked, &chatv1.ListMessagesRequest{Conversation: conv}); !slices.Equal(got, []string{before.Id}) {
			t.Fatalf("%s's history after the block: %v", pair[0], got)
		}
	}
	_, err := h.chat.AddReaction(ctx, as("bob", blocked, &chatv1.AddReactionRequest{Conversation: conv, MessageId: before.Id, Emoji: unicode("👍")}))
	code(t, err, connect.CodePermissionDenied)
	_, err = h.chat.CreateGroupDM(ctx, as("ann", blocked, &chatv1.CreateGroupDMRequest{UserIds: []string{"carl", "bob"}}))
	code(t, err, connect.CodePermissionDenied)
	group := must(h.chat.CreateGroupDM(ctx, as("ann", blocked, &chatv1.CreateGroupDMRequest{UserIds: []string{"carl"}}))).Msg
	_, err = h.chat.AddGroupDMMember(ctx, as("ann", group.ZedToken, &chatv1.AddGroupDMMemberRequest{DmChannelId: group.DmChannel.Id, UserId: "bob"}))
	code(t, err, connect.CodePermissionDenied)
	// Unblocked, they talk again.
	lifted, err := h.authz.Write(ctx, []authz.Update{
		authz.Delete(authz.Relationship{Relation: authz.User.Blocked, ResourceID: "bob", Subject: authz.UserSubject("ann")}),
		authz.Delete(authz.Relationship{Relation: authz.User.BlockedBy, ResourceID: "ann", Subject: authz.UserSubject("bob")}),
	})
	if err != nil {
		t.Fatal(err)
	}
	h.send(t, "bob", string(lifted), conv, "sorry")
}

func TestGroupDMs(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	nine := []string{"u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9"}
	for _, bad := range [][]string{nil, append(slices.Clone(nine), "u10"), {"ann"}, {"no one"}} {
		_, err := h.chat.CreateGroupDM(ctx, as("ann", "", &chatv1.CreateGroupDMRequest{UserIds: bad}))
		code(t, err, connect.CodeInvalidArgument)
	}
	full := must(h.chat.CreateGroupDM(ctx, as("ann", "", &chatv1.CreateGroupDMRequest{UserIds: append(slices.Clone(nine), "u1"), Name: " Ten "}))).Msg
	if d := full.DmChannel; len(d.MemberIds) != 10 || d.MemberIds[0] != "ann" || d.OwnerId != "ann" || d.Name != "Ten" || d.Kind != chatv1.DMKind_DM_KIND_GROUP {
		t.Fatalf("created %+v", d)
	}
	_, err := h.chat.AddGroupDMMember(ctx, as("ann", full.ZedToken, &chatv1.AddGroupDMMemberRequest{DmChannelId: full.DmChannel.Id, UserId: "u10"}))
	code(t, err, connect.CodeFailedPrecondition)

	created := must(h.chat.CreateGroupDM(ctx, as("ann", "", &chatv1.CreateGroupDMRequest{UserIds: []string{"bob", "carl"}}))).Msg
	id, conv, zed := created.DmChannel.Id, created.DmChannel.Conversation, created.ZedToken
	h.send(t, "carl", zed, conv, "hello group")
	add := func(actor, user, zed string) (*chatv1.DMChannel, string, error) {
		resp, err := h.chat.AddGroupDMMember(ctx, as(actor, zed, &chatv1.AddGroupDMMemberRequest{DmChannelId: id, UserId: user}))
		if err != nil {
			return nil, "", err
		}
		return resp.Msg.DmChannel, resp.Msg.ZedToken, nil
	}
	remove := func(actor, user, zed string) (*chatv1.DMChannel, string, error) {
		resp, err := h.chat.RemoveGroupDMMember(ctx, as(actor, zed, &chatv1.RemoveGroupDMMemberRequest{DmChannelId: id, UserId: user}))
		if err != nil {
			return nil, "", err
		}
		return resp.Msg.DmChannel, resp.Msg.ZedToken, nil
	}
	// Only the owner adds and removes.
	_, _, err = add("bob", "dina", zed)
	code(t, err, connect.CodePermissionDenied)
	_, _, err = remove("bob", "carl", zed)
	code(t, err, connect.CodePermissionDenied)
	d, zed, err := add("ann", "dina", zed)
	if err != nil || !slices.Equal(d.MemberIds, []string{"ann", "bob", "carl", "dina"}) {
		t.Fatalf("added dina: %+v %v", d, err)
	}
	if again, _, err := add("ann", "dina", zed); err != nil || len(again.MemberIds) != 4 {
		t.Fatalf("adding a member again: %+v %v", again, err)
	}
	h.send(t, "dina", zed, conv, "hi all") // dina reads and sends at once
	if got := h.list(t, "dina", zed, &chatv1.ListMessagesRequest{Conversation: conv}); len(got) != 2 {
		t.Fatalf("dina sees %d messages", len(got))
	}
	_, _, err = remove("ann", "ann", zed)
	code(t, err, connect.CodeInvalidArgument)
	_, _, err = remove("ann", "zoe", zed)
	code(t, err, connect.CodeNotFound)
	d, zed, err = remove("ann", "carl", zed)
	if err != nil || !slices.Equal(d.MemberIds, []string{"ann", "bob", "dina"}) {
		t.Fatalf("removed carl: %+v %v", d, err)
	}
	_, err = h.chat.ListMessages(ctx, as("carl", zed, &chatv1.ListMessagesRequest{Conversation: conv}))
	code(t, err, connect.CodePermissionDenied)

	// The owner leaves: bob, who joined earliest of those left, owns it.
	h.events.take()
	left := must(h.chat.LeaveGroupDM(ctx, as("ann", zed, &chatv1.LeaveGroupDMRequest{DmChannelId: id}))).Msg
	zed = left.ZedToken
	got := must(h.chat.GetDM(ctx, as("bob", zed, &chatv1.GetDMRequest{DmChannelId: id}))).Msg.DmChannel
	if left.Deleted || got.OwnerId != "bob" || !slices.Equal(got.MemberIds, []string{"bob", "dina"}) {
		t.Fatalf("after ann left: %+v", got)
	}
	if ev := h.events.take(); len(ev) != 1 || ev[0].Kind != chat.DMUpdated || !slices.Equal(ev[0].Removed, []string{"ann"}) {
		t.Fatalf("published %+v", ev)
	}
	_, _, err = add("ann", "carl", zed)
	code(t, err, connect.CodePermissionDenied)
	if _, zed, err = add("bob", "carl", zed); err != nil {
		t.Fatalf("the new owner adds: %v", err)
	}
	// 1:1 DMs are not groups.
	direct := must(h.chat.OpenDM(ctx, as("bob", "", &chatv1.OpenDMRequest{UserId: "dina"}))).Msg
	_, err = h.chat.LeaveGroupDM(ctx, as("bob", direct.ZedToken, &chatv1.LeaveGroupDMRequest{DmChannelId: direct.DmChannel.Id}))
	code(t, err, connect.CodeFailedPrecondition)
	_, err = h.chat.AddGroupDMMember(ctx, as("bob", direct.ZedToken, &chatv1.AddGroupDMMemberRequest{DmChannelId: direct.DmChannel.Id, UserId: "carl"}))
	code(t, err, connect.CodePermissionDenied) // nobody owns a 1:1 DM (dm_channel#manage)

	// Everyone leaves: the last one out deletes it, messages and all.
	for _, u := range []string{"dina", "carl", "bob"} {
		resp := must(h.chat.LeaveGroupDM(ctx, as(u, zed, &chatv1.LeaveGroupDMRequest{DmChannelId: id}))).Msg
		zed = resp.ZedToken
		if resp.Deleted != (u == "bob") {
			t.Fatalf("%s left: deleted=%v", u, resp.Deleted)
		}
	}
	_, err = h.chat.GetDM(ctx, as("bob", zed, &chatv1.GetDMRequest{DmChannelId: id}))
	code(t, err, connect.CodePermissionDenied)
	var rows int
	if err := h.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM messages WHERE conv_id = $1) + (SELECT count(*) FROM dm_channels WHERE id = $1)
		+ (SELECT count(*) FROM read_states WHERE conv_id = $1)`, id).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d rows of a deleted group remain (%v)", rows, err)
	}
	rels := 0
	for _, err := range h.authz.ReadRelationships(ctx, authz.Filter{ResourceType: authz.TypeDmChannel, ResourceID: id}, authz.FullyConsistent()) {
		if err != nil {
			t.Fatal(err)
		}
		rels++
	}
	if rels != 0 {
		t.Fatalf("%d relationships of a deleted group remain", rels)
	}
}

func TestListMyDMs(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	var ids []string // in the order made
	for _, other := range []string{"u1", "u2", "u3", "u4", "u5"} {
		resp := must(h.chat.OpenDM(ctx, as("ann", "", &chatv1.OpenDMRequest{UserId: other})))
		ids = append(ids, resp.Msg.DmChannel.Id)
	}
	group := must(h.chat.CreateGroupDM(ctx, as("u9", "", &chatv1.CreateGroupDMRequest{UserIds: []string{"ann", "u1"}}))).Msg
	ids = append(ids, group.DmChannel.Id)
	// A message makes u2's DM the most recent.
	h.send(t, "u2", group.ZedToken, "dm_channel:"+ids[1], "ping")
	want := []string{ids[1], ids[5], ids[4], ids[3], ids[2], ids[0]}
	var got []string
	token := ""
	for {
		resp, err := h.chat.ListMyDMs(ctx, as("ann", "", &chatv1.ListMyDMsRequest{PageSize: 4, PageToken: token}))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range resp.Msg.DmChannels {
			got = append(got, d.Id)
		}
		if token = resp.Msg.NextPageToken; token == "" {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ann's DMs: %v, want %v", got, want)
	}
	if mine := must(h.chat.ListMyDMs(ctx, as("u3", "", &chatv1.ListMyDMsRequest{}))); len(mine.Msg.DmChannels) != 1 || mine.Msg.DmChannels[0].Id != ids[2] {
		t.Fatalf("u3's DMs: %v", mine.Msg.DmChannels)
	}
	_, err := h.chat.ListMyDMs(ctx, as("ann", "", &chatv1.ListMyDMsRequest{PageToken: "garbage"}))
	code(t, err, connect.CodeInvalidArgument)
}

// TestDMCrashBetweenStores: a change committed in PostgreSQL whose SpiceDB
// write never happened (the process died) leaves the graph stricter than
// the rows, never looser, and a dirty mark the reconciler converges.
func TestDMCrashBetweenStores(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	created := must(h.chat.CreateGroupDM(ctx, as("ann", "", &chatv1.CreateGroupDMRequest{UserIds: []string{"bob", "carl"}}))).Msg
	id, conv := created.DmChannel.Id, created.DmChannel.Conversation
	crash := errors.New("crash")
	h.svc.SetAfterCommit(func() error { return crash })
	_, err := h.chat.AddGroupDMMember(ctx, as("ann", created.ZedToken, &chatv1.AddGroupDMMemberRequest{DmChannelId: id, UserId: "dina"}))
	if err == nil {
		t.Fatal("the simulated crash did not stop the change")
	}
	_, err = h.chat.RemoveGroupDMMember(ctx, as("ann", created.ZedToken, &chatv1.RemoveGroupDMMemberRequest{DmChannelId: id, UserId: "carl"}))
	if err == nil {
		t.Fatal("the simulated crash did not stop the change")
	}

	h.svc.SetAfterCommit(nil)
	now := fresh(t, h)
	// dina is in the rows but cannot read yet (stricter); carl is out of
	// both already (his removal was written to SpiceDB before the commit).
	_, err = h.chat.ListMessages(ctx, as("dina", now, &chatv1.ListMessagesRequest{Conversation: conv}))
	code(t, err, connect.CodePermissionDenied)
	_, err = h.chat.ListMessages(ctx, as("carl", now, &chatv1.ListMessagesRequest{Conversation: conv}))
	code(t, err, connect.CodePermissionDenied)
	n, err := h.svc.ReconcileDirty(ctx, 0)
	if err != nil || n != 1 {
		t.Fatalf("reconciled %d DMs: %v", n, err)
	}
	now = fresh(t, h)
	if got := h.list(t, "dina", now, &chatv1.ListMessagesRequest{Conversation: conv}); len(got) != 0 {
		t.Fatalf("dina lists %v", got)
	}
	_, err = h.chat.ListMessages(ctx, as("carl", now, &chatv1.ListMessagesRequest{Conversation: conv}))
	code(t, err, connect.CodePermissionDenied)
	if n, err := h.svc.ReconcileDirty(ctx, 0); err != nil || n != 0 {
		t.Fatalf("marks left: %d %v", n, err)
	}
}

// fresh is a ZedToken of the graph as it is now.
func fresh(t *testing.T, h *harness) string {
	d, err := h.authz.Check(t.Context(), authz.Check{Subject: authz.UserSubject("nobody"), Permission: authz.DmChannel.ViewChannel, ResourceID: "none"}, authz.FullyConsistent())
	if err != nil {
		t.Fatal(err)
	}
	return string(d.CheckedAt)
}
