package community_test

import (
	"slices"
	"testing"

	"connectrpc.com/connect"

	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

// TestDeletedConversationsAreListed: deleting a thread, a channel (with its
// threads) and a server (with its channels and threads) lists them, in
// order, a page at a time; only the chat service may ask, with valid
// bounds.
func TestDeletedConversationsAreListed(t *testing.T) {
	h := start(t)
	f := setUp(t, h)
	ctx := t.Context()
	list := func(after *communityv1.DeletedConversation, size int32) []*communityv1.DeletedConversation {
		t.Helper()
		return must(h.erasure.ListDeletedConversations(ctx, asService("chat", &communityv1.ListDeletedConversationsRequest{After: after, PageSize: size}))).Msg.Conversations
	}
	if got := list(nil, 0); len(got) != 0 {
		t.Fatalf("before any deletion: %v", got)
	}
	thread := func(channel string) string {
		t.Helper()
		made := must(h.client.CreateThread(ctx, as("ann", f.token, &communityv1.CreateThreadRequest{ChannelId: channel, Name: "t"})))
		f.token = made.Msg.ZedToken
		return made.Msg.Thread.Id
	}
	alone, inStaff, inGeneral := thread(f.general), thread(f.staff), thread(f.general)
	f.token = must(h.client.DeleteThread(ctx, as("ann", f.token, &communityv1.DeleteThreadRequest{ThreadId: alone}))).Msg.ZedToken
	f.token = must(h.client.DeleteChannel(ctx, as("ann", f.token, &communityv1.DeleteChannelRequest{ChannelId: f.staff}))).Msg.ZedToken
	f.token = must(h.client.DeleteServer(ctx, as("ann", f.token, &communityv1.DeleteServerRequest{ServerId: f.server}))).Msg.ZedToken

	var got []string
	var after *communityv1.DeletedConversation
	for page := list(after, 1); len(page) > 0; page = list(after, 1) {
		after = page[0]
		got = append(got, after.Conversation)
	}
	all := list(nil, 0)
	if len(all) != 5 || len(got) != 5 {
		t.Fatalf("listed %v one at a time and %d at once, want 5", got, len(all))
	}
	for i, d := range all {
		if d.Conversation != got[i] || (i > 0 && d.DeletedAt.AsTime().Before(all[i-1].DeletedAt.AsTime())) {
			t.Fatalf("out of order or unlike the pages: %v", all)
		}
	}
	want := []string{"thread:" + alone, "channel:" + f.staff, "thread:" + inStaff, "channel:" + f.general, "thread:" + inGeneral}
	if g, w := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want)); !slices.Equal(g, w) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	if got[0] != "thread:"+alone || slices.Index(got, "channel:"+f.staff) > 2 {
		t.Fatalf("not in the order of the deletions: %v", got)
	}

	for name, req := range map[string]*connect.Request[communityv1.ListDeletedConversationsRequest]{
		"a person":         as("ann", "", &communityv1.ListDeletedConversationsRequest{}),
		"the user service": asService("user", &communityv1.ListDeletedConversationsRequest{}),
	} {
		_, err := h.erasure.ListDeletedConversations(ctx, req)
		if connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Errorf("%s: %v, want permission_denied", name, err)
		}
	}
	_, err := h.erasure.ListDeletedConversations(ctx, as("", "", &communityv1.ListDeletedConversationsRequest{}))
	code(t, err, connect.CodeUnauthenticated)
	for name, req := range map[string]*communityv1.ListDeletedConversationsRequest{
		"a page too large": {PageSize: 1001},
		"a page negative":  {PageSize: -1},
		"after no time":    {After: &communityv1.DeletedConversation{Conversation: "channel:" + f.staff}},
		"after a DM":       {After: &communityv1.DeletedConversation{Conversation: "dm_channel:x", DeletedAt: all[0].DeletedAt}},
	} {
		_, err := h.erasure.ListDeletedConversations(ctx, asService("chat", req))
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("%s: %v, want invalid_argument", name, err)
		}
	}
}
