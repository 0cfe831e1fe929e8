package chat_test

import (
	"slices"
	"testing"
	"time"

	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

// structure are the ServerChanged of server among evs, as "CHANGE object".
func structure(evs []*chatv1.StreamEvent, server string) []string {
	var out []string
	for _, ev := range evs {
		if sc := ev.GetServerChanged(); sc != nil && sc.ServerId == server {
			out = append(out, change(sc.Change, sc.Object))
		}
	}
	return out
}

func change(c chatv1.ServerChange, object string) string { return c.String() + " " + object }

func told(c chatv1.ServerChange, object string) func(*chatv1.StreamEvent) bool {
	return func(ev *chatv1.StreamEvent) bool {
		sc := ev.GetServerChanged()
		return sc.GetChange() == c && sc.GetObject() == object
	}
}

const (
	joinedChange      = chatv1.ServerChange_SERVER_CHANGE_JOINED
	leftChange        = chatv1.ServerChange_SERVER_CHANGE_LEFT
	membersChange     = chatv1.ServerChange_SERVER_CHANGE_MEMBERS
	channelsChange    = chatv1.ServerChange_SERVER_CHANGE_CHANNELS
	permissionsChange = chatv1.ServerChange_SERVER_CHANGE_PERMISSIONS
)

// TestStreamResumeTellsOfServerChanges: while bob, carl, dora and zoe are
// away, bob is given Mods, a channel is made, dora joins, carl is kicked,
// and another channel is made. Resuming, each is told of what they would
// have been told live: bob of everything; carl of what happened while he
// was a member, and that he left, not of the channel made after; dora that
// she joined and what came after, not what came before; zoe, in no
// server, of nothing.
func TestStreamResumeTellsOfServerChanges(t *testing.T) {
	h := start(t)
	// Within one instance, in a test: no slack is needed, and this
	// instance's Watch started less than structuralSlack ago.
	h.svc.Stream().SetStructuralSlack(100 * time.Millisecond)
	w := setUp(t, h)
	ctx := t.Context()
	ann := subscribe(t, h.stream, "ann", "")
	// What was set up is told before the resume points (less the slack):
	// a change after it reaches ann.
	settled := must(h.community.CreateChannel(ctx, as("ann", w.token, &communityv1.CreateChannelRequest{ServerId: w.server, Name: "settled", Kind: communityv1.ChannelKind_CHANNEL_KIND_TEXT})))
	ann.next(t, told(channelsChange, "channel:"+settled.Msg.Channel.Id))
	time.Sleep(300 * time.Millisecond)
	bob, carl, dora, zoe := subscribe(t, h.stream, "bob", ""), subscribe(t, h.stream, "carl", ""), subscribe(t, h.stream, "dora", ""), subscribe(t, h.stream, "zoe", "")
	dm := must(h.chat.OpenDM(ctx, as("dora", "", &chatv1.OpenDMRequest{UserId: "zoe"}))).Msg.DmChannel.Conversation
	h.send(t, "ann", w.token, ch(w.general), "before")
	inDM := func(ev *chatv1.StreamEvent) bool { return ev.GetDmUpdated().GetDmChannel().GetConversation() == dm }
	resumeAt := map[string]string{
		"bob": bob.next(t, created("before")).Id, "carl": carl.next(t, created("before")).Id,
		"dora": dora.next(t, inDM).Id, "zoe": zoe.next(t, inDM).Id,
	}
	for _, l := range []*live{bob, carl, dora, zoe} {
		l.cancel()
	}

	tok := must(h.community.AddMemberRole(ctx, as("ann", w.token, &communityv1.AddMemberRoleRequest{RoleId: w.mods, UserId: "bob"}))).Msg.ZedToken
	text := communityv1.ChannelKind_CHANNEL_KIND_TEXT
	later := must(h.community.CreateChannel(ctx, as("ann", tok, &communityv1.CreateChannelRequest{ServerId: w.server, Name: "later", Kind: text}))).Msg
	tok = must(h.community.JoinServer(ctx, as("dora", later.ZedToken, &communityv1.JoinServerRequest{ServerId: w.server}))).Msg.ZedToken
	tok = must(h.community.KickMember(ctx, as("ann", tok, &communityv1.KickMemberRequest{ServerId: w.server, UserId: "carl"}))).Msg.ZedToken
	last := must(h.community.CreateChannel(ctx, as("ann", tok, &communityv1.CreateChannelRequest{ServerId: w.server, Name: "after-kick", Kind: text}))).Msg
	// ann, connected all along, is told of the last: the stream has seen
	// them all.
	ann.next(t, told(channelsChange, "channel:"+last.Channel.Id))

	mods, madeLater, madeLast := change(permissionsChange, "role:"+w.mods), change(channelsChange, "channel:"+later.Channel.Id), change(channelsChange, "channel:"+last.Channel.Id)
	doraJoined, carlLeft := change(membersChange, "user:dora"), change(membersChange, "user:carl")
	for _, tt := range []struct {
		user      string
		want, not []string
	}{
		{"bob", []string{mods, madeLater, doraJoined, carlLeft, madeLast}, nil},
		{"carl", []string{mods, madeLater, doraJoined, change(leftChange, "user:carl")}, []string{carlLeft, madeLast}},
		{"dora", []string{change(joinedChange, "user:dora"), doraJoined, carlLeft, madeLast},
			[]string{mods, madeLater, change(channelsChange, "channel:"+w.staff), change(membersChange, "user:mo")}},
	} {
		again := subscribe(t, h.stream, tt.user, resumeAt[tt.user])
		if again.resync || !again.ready.Resumed {
			t.Fatalf("%s resumed: resync %v, ready %v; want the changes replayed", tt.user, again.resync, again.ready)
		}
		got := structure(again.replayed, w.server)
		for _, want := range tt.want {
			if !slices.Contains(got, want) {
				t.Errorf("%s resumed without %q: %q", tt.user, want, got)
			}
		}
		for _, not := range tt.not {
			if slices.Contains(got, not) {
				t.Errorf("%s resumed with %q, which they may not know: %q", tt.user, not, got)
			}
		}
		// The replayed ones come in the order they happened.
		if i, j := slices.Index(got, doraJoined), slices.Index(got, carlLeft); tt.user != "carl" && (i < 0 || j < i) {
			t.Errorf("%s was told of the kick before the join: %q", tt.user, got)
		}
		again.cancel()
	}
	again := subscribe(t, h.stream, "zoe", resumeAt["zoe"])
	for _, ev := range again.replayed {
		if ev.GetServerChanged() != nil {
			t.Fatalf("zoe, in no server, was told %v", ev)
		}
	}
	if again.resync || !again.ready.Resumed {
		t.Fatalf("zoe resumed: resync %v, ready %v", again.resync, again.ready)
	}

	// Resumed, bob is told live of what comes next.
	bobAgain := subscribe(t, h.stream, "bob", resumeAt["bob"])
	next := must(h.community.CreateChannel(ctx, as("ann", last.ZedToken, &communityv1.CreateChannelRequest{ServerId: w.server, Name: "next", Kind: text}))).Msg
	bobAgain.next(t, told(channelsChange, "channel:"+next.Channel.Id))
}

// TestStreamResumeResyncsWhenTheHistoryFallsShort: a stream resumed where
// the ServerChanged since its resume point are not all known is told to
// resync, with nothing of them: the instance started after the resume
// point, or its history was trimmed since. An instance that started before
// it replays them, whichever instance the stream was on.
func TestStreamResumeResyncsWhenTheHistoryFallsShort(t *testing.T) {
	h := start(t)
	h.svc.Stream().SetStructuralSlack(100 * time.Millisecond)
	w := setUp(t, h)
	ctx := t.Context()
	ann, bob := subscribe(t, h.stream, "ann", ""), subscribe(t, h.stream, "bob", "")
	h.send(t, "ann", w.token, ch(w.general), "before")
	at := bob.next(t, created("before")).Id
	bob.cancel()
	uncovered := func(l *live) bool {
		return l.resync && l.ready.Resumed && len(structure(l.replayed, w.server)) == 0
	}
	if covered := subscribe(t, h.stream, "bob", at); covered.resync {
		t.Fatal("resumed on the instance it left, whose history covers the resume point: resync")
	}

	// An instance started after the resume point.
	other := h.instance()
	h.others[0].Stream().SetStructuralSlack(100 * time.Millisecond)
	started := time.Now()
	annOnOther := subscribe(t, other, "ann", "")
	if fresh := subscribe(t, other, "bob", at); !uncovered(fresh) {
		t.Fatalf("resumed on an instance younger than the resume point: resync %v, ready %v, told %q",
			fresh.resync, fresh.ready, structure(fresh.replayed, w.server))
	}

	// Trimmed: only the last two changes are kept.
	h.svc.Stream().SetHistoryLimit(2)
	tok := w.token
	var last string
	for _, name := range []string{"one", "two", "three"} {
		c := must(h.community.CreateChannel(ctx, as("ann", tok, &communityv1.CreateChannelRequest{ServerId: w.server, Name: name, Kind: communityv1.ChannelKind_CHANNEL_KIND_TEXT}))).Msg
		tok, last = c.ZedToken, c.Channel.Id
	}
	ann.next(t, told(channelsChange, "channel:"+last))
	if trimmed := subscribe(t, h.stream, "bob", at); !uncovered(trimmed) {
		t.Fatalf("resumed from before the history kept: resync %v, ready %v, told %q", trimmed.resync, trimmed.ready, structure(trimmed.replayed, w.server))
	}

	// Later, the other instance covers a resume point from this one.
	time.Sleep(time.Until(started.Add(time.Second)))
	bob = subscribe(t, h.stream, "bob", "")
	h.send(t, "ann", tok, ch(w.general), "after")
	at = bob.next(t, created("after")).Id
	bob.cancel()
	made := must(h.community.CreateChannel(ctx, as("ann", tok, &communityv1.CreateChannelRequest{ServerId: w.server, Name: "four", Kind: communityv1.ChannelKind_CHANNEL_KIND_TEXT}))).Msg
	annOnOther.next(t, told(channelsChange, "channel:"+made.Channel.Id))
	there := subscribe(t, other, "bob", at)
	if there.resync || !slices.Contains(structure(there.replayed, w.server), change(channelsChange, "channel:"+made.Channel.Id)) {
		t.Fatalf("resumed on the other instance: resync %v, told %q", there.resync, structure(there.replayed, w.server))
	}
}
