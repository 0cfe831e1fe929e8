package community_test

import (
	"slices"
	"sync"
	"testing"

	"connectrpc.com/connect"

	"github.com/beepchat/beep/authz"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

var (
	everyone = communityv1.TargetKind_TARGET_KIND_EVERYONE
	roleKind = communityv1.TargetKind_TARGET_KIND_ROLE
	member   = communityv1.TargetKind_TARGET_KIND_MEMBER
	text     = communityv1.ChannelKind_CHANNEL_KIND_TEXT
)

// sees reports whether user holds view_channel on the channel.
func sees(t *testing.T, h *harness, user, channel, token string) bool {
	t.Helper()
	perms, err := permissions(t, h, user, channel, token)
	if connect.CodeOf(err) == connect.CodePermissionDenied {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(perms, "view_channel")
}

func noDrift(t *testing.T, h *harness) {
	t.Helper()
	drift, err := h.svc.CheckDrift(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(drift) != 0 {
		t.Fatalf("SpiceDB differs from the database: %+v", drift)
	}
}

// TestCategoriesAndSync follows Discord: a channel created in a category is
// synced with it; editing its overwrites unsyncs it (keeping what it had);
// syncing again drops its own; moving out keeps its permissions; deleting the
// category keeps its channels' permissions.
func TestCategoriesAndSync(t *testing.T) {
	h := start(t)
	f := setUp(t, h)
	ctx := t.Context()

	cat := must(h.client.CreateCategory(ctx, as("ann", f.token, &communityv1.CreateCategoryRequest{ServerId: f.server, Name: "Staff area",
		Overwrites: []*communityv1.PermissionOverwrite{
			{TargetKind: everyone, Deny: []string{"view_channel"}},
			{TargetKind: roleKind, TargetId: f.mods, Allow: []string{"view_channel"}},
		}})))
	catID := cat.Msg.Category.Id
	ch := must(h.client.CreateChannel(ctx, as("bob", cat.Msg.ZedToken, &communityv1.CreateChannelRequest{ServerId: f.server, Name: "mod-log", Kind: text, CategoryId: catID})))
	modLog, zed := ch.Msg.Channel.Id, ch.Msg.ZedToken
	if !ch.Msg.Channel.Synced || ch.Msg.Channel.CategoryId != catID || len(ch.Msg.Channel.Overwrites) != 2 {
		t.Fatalf("a channel created in a category is synced with it: %+v", ch.Msg.Channel)
	}
	if sees(t, h, "carl", modLog, zed) || !sees(t, h, "bob", modLog, zed) {
		t.Fatal("the synced channel should follow the category: bob (Mods) sees it, carl does not")
	}
	list := must(h.client.ListChannels(ctx, as("carl", zed, &communityv1.ListChannelsRequest{ServerId: f.server})))
	for _, c := range list.Msg.Channels {
		if c.Id == modLog || c.Id == f.staff {
			t.Errorf("carl lists hidden channel %s", c.Name)
		}
	}
	if len(list.Msg.Categories) != 0 {
		t.Errorf("carl lists the hidden category: %v", list.Msg.Categories)
	}
	list = must(h.client.ListChannels(ctx, as("bob", zed, &communityv1.ListChannelsRequest{ServerId: f.server})))
	if len(list.Msg.Categories) != 1 || len(list.Msg.Channels) != 3 || list.Msg.Channels[2].Id != modLog {
		t.Fatalf("bob lists %v and %v; want the category and #general, #staff, then #mod-log", list.Msg.Categories, list.Msg.Channels)
	}

	// A category overwrite reaches its synced channels.
	catOw := must(h.client.SetCategoryPermissionOverwrite(ctx, as("ann", zed, &communityv1.SetCategoryPermissionOverwriteRequest{CategoryId: catID,
		Overwrite: &communityv1.PermissionOverwrite{TargetKind: member, TargetId: "carl", Allow: []string{"view_channel"}}})))
	zed = catOw.Msg.ZedToken
	if !sees(t, h, "carl", modLog, zed) {
		t.Fatal("carl's category overwrite should let him see the synced channel")
	}

	// Editing the channel's overwrites unsyncs it, keeping the category's.
	set := must(h.client.SetPermissionOverwrite(ctx, as("bob", zed, &communityv1.SetPermissionOverwriteRequest{ChannelId: modLog,
		Overwrite: &communityv1.PermissionOverwrite{TargetKind: member, TargetId: "carl", Allow: []string{"view_channel"}, Deny: []string{"send_messages"}}})))
	zed = set.Msg.ZedToken
	if set.Msg.Channel.Synced || len(set.Msg.Channel.Overwrites) != 3 {
		t.Fatalf("after an edit the channel is unsynced with the category's overwrites and the edit: %+v", set.Msg.Channel)
	}
	perms := must(permissions(t, h, "carl", modLog, zed))
	if !slices.Contains(perms, "view_channel") || slices.Contains(perms, "send_messages") {
		t.Fatalf("carl in the unsynced channel: %v, want view without send", perms)
	}
	// The category changes; the unsynced channel does not follow.
	catOw = must(h.client.SetCategoryPermissionOverwrite(ctx, as("ann", zed, &communityv1.SetCategoryPermissionOverwriteRequest{CategoryId: catID,
		Overwrite: &communityv1.PermissionOverwrite{TargetKind: member, TargetId: "carl"}})))
	zed = catOw.Msg.ZedToken
	if !sees(t, h, "carl", modLog, zed) {
		t.Fatal("an unsynced channel keeps its own overwrites when its category changes")
	}
	// Syncing again drops them.
	synced := must(h.client.SyncChannel(ctx, as("ann", zed, &communityv1.SyncChannelRequest{ChannelId: modLog})))
	zed = synced.Msg.ZedToken
	if !synced.Msg.Channel.Synced || sees(t, h, "carl", modLog, zed) {
		t.Fatal("a synced channel follows its category again: carl no longer sees it")
	}
	noDrift(t, h)

	// Moving out of the category without sync keeps the permissions.
	moved := must(h.client.MoveChannel(ctx, as("bob", zed, &communityv1.MoveChannelRequest{ChannelId: modLog, Position: 0})))
	zed = moved.Msg.ZedToken
	if moved.Msg.Channel.CategoryId != "" || moved.Msg.Channel.Synced || moved.Msg.Channel.Position != 0 || len(moved.Msg.Channel.Overwrites) != 2 {
		t.Fatalf("moved out: %+v", moved.Msg.Channel)
	}
	if sees(t, h, "carl", modLog, zed) || !sees(t, h, "bob", modLog, zed) {
		t.Fatal("a channel moved out of its category keeps the permissions it had")
	}
	list = must(h.client.ListChannels(ctx, as("bob", zed, &communityv1.ListChannelsRequest{ServerId: f.server})))
	if list.Msg.Channels[0].Id != modLog {
		t.Errorf("position 0 should list #mod-log first, got %v", list.Msg.Channels)
	}

	// #general moves into the category and syncs: now hidden from carl.
	moved = must(h.client.MoveChannel(ctx, as("ann", zed, &communityv1.MoveChannelRequest{ChannelId: f.general, CategoryId: catID, Sync: true})))
	zed = moved.Msg.ZedToken
	if !moved.Msg.Channel.Synced || sees(t, h, "carl", f.general, zed) {
		t.Fatal("a channel moved into a category with sync takes its overwrites")
	}
	noDrift(t, h)

	// Deleting the category: #general stays, outside, still hidden from carl.
	deleted := must(h.client.DeleteCategory(ctx, as("ann", zed, &communityv1.DeleteCategoryRequest{CategoryId: catID})))
	zed = deleted.Msg.ZedToken
	got := must(h.client.GetChannel(ctx, as("bob", zed, &communityv1.GetChannelRequest{ChannelId: f.general})))
	if got.Msg.Channel.CategoryId != "" || got.Msg.Channel.Synced || len(got.Msg.Channel.Overwrites) != 2 {
		t.Fatalf("after its category is deleted: %+v", got.Msg.Channel)
	}
	if sees(t, h, "carl", f.general, zed) || !sees(t, h, "bob", f.general, zed) {
		t.Fatal("a synced channel keeps its category's permissions when the category is deleted")
	}
	noDrift(t, h)
}

func TestChannelLifecycle(t *testing.T) {
	h := start(t)
	f := setUp(t, h)
	ctx := t.Context()
	renamed := must(h.client.UpdateChannel(ctx, as("bob", f.token, &communityv1.UpdateChannelRequest{ChannelId: f.general, Name: " chat "})))
	if renamed.Msg.Channel.Name != "chat" {
		t.Errorf("renamed to %q", renamed.Msg.Channel.Name)
	}
	_, err := h.client.UpdateChannel(ctx, as("bob", f.token, &communityv1.UpdateChannelRequest{ChannelId: f.general, Name: ""}))
	code(t, err, connect.CodeInvalidArgument)

	invite := must(h.client.CreateInvite(ctx, as("carl", f.token, &communityv1.CreateInviteRequest{ChannelId: f.general})))
	thread := must(h.client.CreateThread(ctx, as("carl", invite.Msg.ZedToken, &communityv1.CreateThreadRequest{ChannelId: f.general, Name: "hello"})))
	deleted := must(h.client.DeleteChannel(ctx, as("bob", thread.Msg.ZedToken, &communityv1.DeleteChannelRequest{ChannelId: f.general})))
	zed := deleted.Msg.ZedToken
	_, err = h.client.GetChannel(ctx, as("ann", zed, &communityv1.GetChannelRequest{ChannelId: f.general}))
	code(t, err, connect.CodePermissionDenied) // nothing left in the graph to see
	_, err = h.client.JoinByInvite(ctx, as("zoe", zed, &communityv1.JoinByInviteRequest{Code: invite.Msg.Invite.Code}))
	code(t, err, connect.CodePermissionDenied)
	for _, rel := range []authz.ObjectType{authz.TypeThread, authz.TypeInvite} {
		id := thread.Msg.Thread.Id
		if rel == authz.TypeInvite {
			id = invite.Msg.Invite.Code
		}
		for r, err := range h.authz.ReadRelationships(ctx, authz.Filter{ResourceType: rel, ResourceID: id}, authz.FullyConsistent()) {
			if err != nil {
				t.Fatal(err)
			}
			t.Errorf("left behind after deleting the channel: %s", r)
		}
	}
	noDrift(t, h)
}

// TestThreads: public threads follow their channel; private ones are seen by
// participants and manage_threads holders; creators rename, moderators lock.
func TestThreads(t *testing.T) {
	h := start(t)
	f := setUp(t, h)
	ctx := t.Context()
	pub := must(h.client.CreateThread(ctx, as("carl", f.token, &communityv1.CreateThreadRequest{ChannelId: f.general, Name: "lunch"})))
	priv := must(h.client.CreateThread(ctx, as("carl", pub.Msg.ZedToken, &communityv1.CreateThreadRequest{ChannelId: f.general, Name: "secret", Private: true})))
	zed := priv.Msg.ZedToken
	listed := func(user string) []string {
		var names []string
		for _, th := range must(h.client.ListThreads(ctx, as(user, zed, &communityv1.ListThreadsRequest{ChannelId: f.general}))).Msg.Threads {
			names = append(names, th.Name)
		}
		slices.Sort(names)
		return names
	}
	join := must(h.client.JoinServer(ctx, as("dina", zed, &communityv1.JoinServerRequest{ServerId: f.server})))
	zed = join.Msg.ZedToken
	if got := listed("dina"); !slices.Equal(got, []string{"lunch"}) {
		t.Errorf("dina lists %v, want only the public thread", got)
	}
	if got := listed("carl"); !slices.Equal(got, []string{"lunch", "secret"}) {
		t.Errorf("carl (creator) lists %v", got)
	}
	added := must(h.client.AddThreadParticipant(ctx, as("carl", zed, &communityv1.AddThreadParticipantRequest{ThreadId: priv.Msg.Thread.Id, UserId: "dina"})))
	zed = added.Msg.ZedToken
	if got := listed("dina"); !slices.Equal(got, []string{"lunch", "secret"}) {
		t.Errorf("dina, added to the private thread, lists %v", got)
	}
	_, err := h.client.AddThreadParticipant(ctx, as("carl", zed, &communityv1.AddThreadParticipantRequest{ThreadId: priv.Msg.Thread.Id, UserId: "zoe"}))
	code(t, err, connect.CodeInvalidArgument) // not a member of the server

	// The creator renames; locking is for manage_threads holders.
	renamed := must(h.client.UpdateThread(ctx, as("carl", zed, &communityv1.UpdateThreadRequest{ThreadId: pub.Msg.Thread.Id, Name: new("lunch plans")})))
	if renamed.Msg.Thread.Name != "lunch plans" {
		t.Errorf("renamed to %q", renamed.Msg.Thread.Name)
	}
	_, err = h.client.UpdateThread(ctx, as("carl", zed, &communityv1.UpdateThreadRequest{ThreadId: pub.Msg.Thread.Id, Locked: new(true)}))
	code(t, err, connect.CodePermissionDenied)
	_, err = h.client.UpdateThread(ctx, as("dina", zed, &communityv1.UpdateThreadRequest{ThreadId: pub.Msg.Thread.Id, Name: new("mine")}))
	code(t, err, connect.CodePermissionDenied)
	locked := must(h.client.UpdateThread(ctx, as("ann", zed, &communityv1.UpdateThreadRequest{ThreadId: pub.Msg.Thread.Id, Locked: new(true)})))
	zed = locked.Msg.ZedToken
	sends := func(user string) bool {
		d, err := h.authz.Check(ctx, authz.Check{Subject: authz.UserSubject(user), Permission: authz.Thread.SendMessages, ResourceID: pub.Msg.Thread.Id}, authz.AtLeastAsFresh(authz.ZedToken(zed)))
		if err != nil {
			t.Fatal(err)
		}
		return d.Allowed
	}
	if sends("carl") || !sends("ann") {
		t.Error("in a locked thread only manage_threads holders send")
	}

	_, err = h.client.DeleteThread(ctx, as("carl", zed, &communityv1.DeleteThreadRequest{ThreadId: priv.Msg.Thread.Id}))
	code(t, err, connect.CodePermissionDenied)
	gone := must(h.client.DeleteThread(ctx, as("ann", zed, &communityv1.DeleteThreadRequest{ThreadId: priv.Msg.Thread.Id})))
	zed = gone.Msg.ZedToken
	if got := listed("carl"); !slices.Equal(got, []string{"lunch plans"}) {
		t.Errorf("after deleting the private thread carl lists %v", got)
	}
	_, err = h.client.CreateThread(ctx, as("carl", zed, &communityv1.CreateThreadRequest{ChannelId: f.staff, Name: "x"}))
	code(t, err, connect.CodePermissionDenied) // carl does not see #staff
	noDrift(t, h)
}

// TestChannelRefusals: every channel, category and thread RPC refuses a
// member without its permission, and checks what the graph cannot.
func TestChannelRefusals(t *testing.T) {
	h := start(t)
	f := setUp(t, h)
	ctx := t.Context()
	cat := must(h.client.CreateCategory(ctx, as("ann", f.token, &communityv1.CreateCategoryRequest{ServerId: f.server, Name: "Info"})))
	thread := must(h.client.CreateThread(ctx, as("bob", cat.Msg.ZedToken, &communityv1.CreateThreadRequest{ChannelId: f.staff, Name: "mods", Private: true})))
	zed := thread.Msg.ZedToken
	catID, threadID := cat.Msg.Category.Id, thread.Msg.Thread.Id
	ow := &communityv1.PermissionOverwrite{TargetKind: member, TargetId: "carl", Allow: []string{"view_channel"}}
	tests := []struct {
		name string
		call func() error
		want connect.Code
	}{
		{"member lists channels of a server they are not in", func() error {
			_, err := h.client.ListChannels(ctx, as("zoe", zed, &communityv1.ListChannelsRequest{ServerId: f.server}))
			return err
		}, connect.CodePermissionDenied},
		{"member gets a hidden channel", func() error {
			_, err := h.client.GetChannel(ctx, as("carl", zed, &communityv1.GetChannelRequest{ChannelId: f.staff}))
			return err
		}, connect.CodePermissionDenied},
		{"member renames a channel", func() error {
			_, err := h.client.UpdateChannel(ctx, as("carl", zed, &communityv1.UpdateChannelRequest{ChannelId: f.general, Name: "x"}))
			return err
		}, connect.CodePermissionDenied},
		{"member moves a channel", func() error {
			_, err := h.client.MoveChannel(ctx, as("carl", zed, &communityv1.MoveChannelRequest{ChannelId: f.general, Position: 3}))
			return err
		}, connect.CodePermissionDenied},
		{"member syncs a channel", func() error {
			_, err := h.client.SyncChannel(ctx, as("carl", zed, &communityv1.SyncChannelRequest{ChannelId: f.general}))
			return err
		}, connect.CodePermissionDenied},
		{"member deletes a channel", func() error {
			_, err := h.client.DeleteChannel(ctx, as("carl", zed, &communityv1.DeleteChannelRequest{ChannelId: f.general}))
			return err
		}, connect.CodePermissionDenied},
		{"member creates a category", func() error {
			_, err := h.client.CreateCategory(ctx, as("carl", zed, &communityv1.CreateCategoryRequest{ServerId: f.server, Name: "x"}))
			return err
		}, connect.CodePermissionDenied},
		{"member renames a category", func() error {
			_, err := h.client.UpdateCategory(ctx, as("carl", zed, &communityv1.UpdateCategoryRequest{CategoryId: catID, Name: "x"}))
			return err
		}, connect.CodePermissionDenied},
		{"member moves a category", func() error {
			_, err := h.client.MoveCategory(ctx, as("carl", zed, &communityv1.MoveCategoryRequest{CategoryId: catID}))
			return err
		}, connect.CodePermissionDenied},
		{"member deletes a category", func() error {
			_, err := h.client.DeleteCategory(ctx, as("carl", zed, &communityv1.DeleteCategoryRequest{CategoryId: catID}))
			return err
		}, connect.CodePermissionDenied},
		{"member sets a category overwrite", func() error {
			_, err := h.client.SetCategoryPermissionOverwrite(ctx, as("carl", zed, &communityv1.SetCategoryPermissionOverwriteRequest{CategoryId: catID, Overwrite: ow}))
			return err
		}, connect.CodePermissionDenied},
		{"member creates a thread in a hidden channel", func() error {
			_, err := h.client.CreateThread(ctx, as("carl", zed, &communityv1.CreateThreadRequest{ChannelId: f.staff, Name: "x"}))
			return err
		}, connect.CodePermissionDenied},
		{"member lists threads of a hidden channel", func() error {
			_, err := h.client.ListThreads(ctx, as("carl", zed, &communityv1.ListThreadsRequest{ChannelId: f.staff}))
			return err
		}, connect.CodePermissionDenied},
		{"member renames a thread they cannot see", func() error {
			_, err := h.client.UpdateThread(ctx, as("carl", zed, &communityv1.UpdateThreadRequest{ThreadId: threadID, Name: new("x")}))
			return err
		}, connect.CodePermissionDenied},
		{"member adds themself to a private thread", func() error {
			_, err := h.client.AddThreadParticipant(ctx, as("carl", zed, &communityv1.AddThreadParticipantRequest{ThreadId: threadID, UserId: "carl"}))
			return err
		}, connect.CodePermissionDenied},
		{"member deletes a thread", func() error {
			_, err := h.client.DeleteThread(ctx, as("carl", zed, &communityv1.DeleteThreadRequest{ThreadId: threadID}))
			return err
		}, connect.CodePermissionDenied},
		// Beyond the graph: only what one holds, and the right targets.
		{"mod allows what they do not hold", func() error {
			_, err := h.client.SetPermissionOverwrite(ctx, as("bob", zed, &communityv1.SetPermissionOverwriteRequest{ChannelId: f.general,
				Overwrite: &communityv1.PermissionOverwrite{TargetKind: member, TargetId: "carl", Allow: []string{"manage_messages"}}}))
			return err
		}, connect.CodePermissionDenied},
		{"an overwrite naming the @everyone role as a role", func() error {
			srv := must(h.client.GetServer(ctx, as("ann", zed, &communityv1.GetServerRequest{ServerId: f.server})))
			_, err := h.client.SetPermissionOverwrite(ctx, as("ann", zed, &communityv1.SetPermissionOverwriteRequest{ChannelId: f.general,
				Overwrite: &communityv1.PermissionOverwrite{TargetKind: roleKind, TargetId: srv.Msg.Server.EveryoneRoleId, Deny: []string{"send_messages"}}}))
			return err
		}, connect.CodeInvalidArgument},
		{"two overwrites for one target", func() error {
			_, err := h.client.CreateCategory(ctx, as("ann", zed, &communityv1.CreateCategoryRequest{ServerId: f.server, Name: "x",
				Overwrites: []*communityv1.PermissionOverwrite{ow, ow}}))
			return err
		}, connect.CodeInvalidArgument},
		{"sync without a category", func() error {
			_, err := h.client.MoveChannel(ctx, as("ann", zed, &communityv1.MoveChannelRequest{ChannelId: f.general, Sync: true}))
			return err
		}, connect.CodeInvalidArgument},
		{"sync a channel in no category", func() error {
			_, err := h.client.SyncChannel(ctx, as("ann", zed, &communityv1.SyncChannelRequest{ChannelId: f.general}))
			return err
		}, connect.CodeFailedPrecondition},
		{"a channel in another server's category", func() error {
			other := must(h.client.CreateServer(ctx, as("ann", "", &communityv1.CreateServerRequest{Name: "Other"})))
			_, err := h.client.CreateChannel(ctx, as("ann", other.Msg.ZedToken, &communityv1.CreateChannelRequest{ServerId: other.Msg.Server.Id,
				Name: "x", Kind: text, CategoryId: catID}))
			return err
		}, connect.CodeInvalidArgument},
		{"a thread in a voice channel", func() error {
			voice := must(h.client.CreateChannel(ctx, as("ann", zed, &communityv1.CreateChannelRequest{ServerId: f.server, Name: "Lounge",
				Kind: communityv1.ChannelKind_CHANNEL_KIND_VOICE})))
			_, err := h.client.CreateThread(ctx, as("ann", voice.Msg.ZedToken, &communityv1.CreateThreadRequest{ChannelId: voice.Msg.Channel.Id, Name: "x"}))
			return err
		}, connect.CodeFailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { code(t, tt.call(), tt.want) })
	}
}

// TestConcurrentOverwrites: racing edits of one channel's overwrites either
// apply or are refused as Aborted, and SpiceDB always ends equal to the
// database.
func TestConcurrentOverwrites(t *testing.T) {
	h := start(t)
	f := setUp(t, h)
	ctx := t.Context()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		outcome = map[connect.Code]int{}
	)
	for i := range 8 {
		wg.Go(func() {
			target, deny := "bob", []string{"add_reactions", "attach_files", "embed_links", "send_messages"}[i%4]
			if i%2 == 1 {
				target = "carl"
			}
			_, err := h.client.SetPermissionOverwrite(ctx, as("ann", f.token, &communityv1.SetPermissionOverwriteRequest{ChannelId: f.general,
				Overwrite: &communityv1.PermissionOverwrite{TargetKind: member, TargetId: target, Deny: []string{deny}}}))
			mu.Lock()
			if err == nil {
				outcome[0]++
			} else {
				outcome[connect.CodeOf(err)]++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	for c := range outcome {
		if c != 0 && c != connect.CodeAborted {
			t.Fatalf("outcomes %v: only success or Aborted are acceptable", outcome)
		}
	}
	if outcome[0] == 0 {
		t.Fatalf("outcomes %v: at least one edit must apply", outcome)
	}
	t.Logf("outcomes (0 = applied): %v", outcome)
	noDrift(t, h)
}

// TestRebuildCategoriesAndThreads: the reconciler restores the relationships
// of categories, synced channels and private threads from the database.
func TestRebuildCategoriesAndThreads(t *testing.T) {
	h := start(t)
	f := setUp(t, h)
	ctx := t.Context()
	cat := must(h.client.CreateCategory(ctx, as("ann", f.token, &communityv1.CreateCategoryRequest{ServerId: f.server, Name: "Ops",
		Overwrites: []*communityv1.PermissionOverwrite{{TargetKind: member, TargetId: "carl", Deny: []string{"send_messages"}}}})))
	ch := must(h.client.CreateChannel(ctx, as("ann", cat.Msg.ZedToken, &communityv1.CreateChannelRequest{ServerId: f.server, Name: "ops", Kind: text, CategoryId: cat.Msg.Category.Id})))
	th := must(h.client.CreateThread(ctx, as("ann", ch.Msg.ZedToken, &communityv1.CreateThreadRequest{ChannelId: ch.Msg.Channel.Id, Name: "oncall", Private: true})))
	must(h.client.AddThreadParticipant(ctx, as("ann", th.Msg.ZedToken, &communityv1.AddThreadParticipantRequest{ThreadId: th.Msg.Thread.Id, UserId: "carl"})))
	for _, obj := range []authz.Object{authz.TypeCategory.Object(cat.Msg.Category.Id), authz.TypeThread.Object(th.Msg.Thread.Id)} {
		if _, err := h.authz.DeleteMatching(ctx, authz.Filter{ResourceType: obj.Type, ResourceID: obj.ID}); err != nil {
			t.Fatal(err)
		}
	}
	drift, err := h.svc.CheckDrift(ctx)
	if err != nil || len(drift) != 1 || len(drift[0].Missing) != 6 || len(drift[0].Extra) != 0 {
		t.Fatalf("drift = %+v (%v); want the category's 2 and the private thread's 4 relationships missing", drift, err)
	}
	rebuilt := must(h.svc.Reconcile(ctx, mustUUID(drift[0].ServerID)))
	zed := string(rebuilt.At)
	perms := must(permissions(t, h, "carl", ch.Msg.Channel.Id, zed))
	if slices.Contains(perms, "send_messages") {
		t.Errorf("the category's deny is back: carl may not send in #ops, got %v", perms)
	}
	threads := must(h.client.ListThreads(ctx, as("carl", zed, &communityv1.ListThreadsRequest{ChannelId: ch.Msg.Channel.Id})))
	if len(threads.Msg.Threads) != 1 {
		t.Errorf("carl, a participant, sees the private thread again: %v", threads.Msg.Threads)
	}
	noDrift(t, h)
}
