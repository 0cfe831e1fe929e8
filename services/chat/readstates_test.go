package chat_test

import (
	"fmt"
	"slices"
	"testing"

	"connectrpc.com/connect"

	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

// states renders a caller's read states as "conversation unread/mentions".
func (h *harness) states(t *testing.T, user, token string, convs ...string) map[string]string {
	t.Helper()
	resp, err := h.chat.GetReadStates(t.Context(), as(user, token, &chatv1.GetReadStatesRequest{Conversations: convs}))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range resp.Msg.States {
		out[s.Conversation] = fmt.Sprintf("%d/%d", s.UnreadCount, s.MentionCount)
	}
	return out
}

// TestMentionableRoles: without mention_everyone, a member pings a role
// only while it is mentionable (Discord's "Allow anyone to @mention this
// role"); with it, every role; in a DM, none.
func TestMentionableRoles(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()
	c := ch(w.general)
	mentionable := func(on bool) {
		w.token = must(h.community.UpdateRole(ctx, as("ann", w.token, &communityv1.UpdateRoleRequest{RoleId: w.crew, Mentionable: &on}))).Msg.ZedToken
	}
	roles := func(user, conv string) []string {
		return h.send(t, user, w.token, conv, fmt.Sprintf("<@&%s> <@&%s> @everyone", w.crew, w.mods)).Mentions.RoleIds
	}
	if got := roles("mo", c); len(got) != 0 {
		t.Errorf("before Crew is mentionable mo pings %v", got)
	}
	mentionable(true)
	if got := roles("mo", c); !slices.Equal(got, []string{w.crew}) {
		t.Errorf("with Crew mentionable mo pings %v, want Crew alone", got)
	}
	if got := h.states(t, "bob", w.token, c)[c]; got != "2/1" {
		t.Errorf("bob (Crew) in #general: %s, want 2 unread, 1 mention", got)
	}
	if got := roles("ann", c); !slices.Equal(got, []string{w.crew, w.mods}) {
		t.Errorf("ann (owner) pings %v, want both roles", got)
	}
	if got := roles("ann", w.dm); len(got) != 0 {
		t.Errorf("in a DM ann pings roles %v", got)
	}
	mentionable(false)
	if got := roles("mo", c); len(got) != 0 {
		t.Errorf("once Crew is no longer mentionable mo pings %v", got)
	}
}

// TestMentionsAndReadStates: mentions ping as on Discord (@everyone, @here
// and roles that are not mentionable only from someone holding
// mention_everyone; @here only those online; nothing in code),
// and feed each person's unread and mention counts.
func TestMentionsAndReadStates(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()
	c := ch(w.general)
	// bob is online (his stream is open), mo is not: @here pings bob alone.
	subscribe(t, h.stream, "bob", "")
	own := h.send(t, "bob", w.token, c, "note to self <@bob>")
	sent := []*chatv1.Message{
		h.send(t, "carl", w.token, c, "@everyone look <@bob> <@bob>"),
		h.send(t, "ann", w.token, c, "@here meeting"),
		h.send(t, "ann", w.token, c, fmt.Sprintf("<@&%s> please", w.mods)),
		h.send(t, "carl", w.token, c, "`@everyone` and ```\n<@bob> @here\n``` and ann@everyone.org"),
		h.send(t, "ann", w.token, c, "hi <@carl>"),
	}
	mentions := func(m *chatv1.Message) string {
		return fmt.Sprintf("users%v roles%v everyone=%v here=%v", m.Mentions.UserIds, m.Mentions.RoleIds, m.Mentions.Everyone, m.Mentions.Here)
	}
	for i, want := range []string{
		"users[bob] roles[] everyone=false here=false", // carl lacks mention_everyone: the message is sent, @everyone does not ping
		"users[] roles[] everyone=false here=true",
		fmt.Sprintf("users[] roles[%s] everyone=false here=false", w.mods),
		"users[] roles[] everyone=false here=false",
		"users[carl] roles[] everyone=false here=false",
	} {
		if got := mentions(sent[i]); got != want {
			t.Errorf("message %d pings %s, want %s", i, got, want)
		}
	}
	if got := mentions(own); got != "users[bob] roles[] everyone=false here=false" {
		t.Errorf("bob's own message: %s", got)
	}

	// bob read up to his own message (sending marks it read); mo read nothing.
	for user, want := range map[string]string{
		"bob":  "5/2", // carl's <@bob> and ann's @here
		"mo":   "6/1", // the Mods role (mo was offline at ann's @here)
		"carl": "1/1", // what follows his own message: ann's <@carl>
		"ann":  "0/0",
	} {
		if got := h.states(t, user, w.token, c)[c]; got != want {
			t.Errorf("%s in #general: %s, want %s", user, got, want)
		}
	}
	// mo, without mention_everyone, pings neither a role nor @everyone.
	theirs := h.send(t, "mo", w.token, c, fmt.Sprintf("<@&%s> @everyone", w.crew))
	if got := mentions(theirs); got != "users[] roles[] everyone=false here=false" {
		t.Errorf("mo's message pings %s", got)
	}
	if got := h.states(t, "bob", w.token, c)[c]; got != "6/2" {
		t.Errorf("bob after mo's message: %s", got)
	}
	// Reading moves forward only.
	read := must(h.chat.MarkRead(ctx, as("bob", w.token, &chatv1.MarkReadRequest{Conversation: c, MessageId: sent[2].Id})))
	if s := read.Msg.State; s.LastReadMessageId != sent[2].Id || s.UnreadCount != 3 || s.MentionCount != 0 || s.LastMessageId != theirs.Id {
		t.Fatalf("after reading to the 3rd: %+v", s)
	}
	back := must(h.chat.MarkRead(ctx, as("bob", w.token, &chatv1.MarkReadRequest{Conversation: c, MessageId: sent[0].Id})))
	if back.Msg.State.LastReadMessageId != sent[2].Id {
		t.Fatalf("read state moved back: %+v", back.Msg.State)
	}
	_, err := h.chat.MarkRead(ctx, as("bob", w.token, &chatv1.MarkReadRequest{Conversation: w.thread, MessageId: sent[0].Id}))
	code(t, err, connect.CodeNotFound)

	// A DM: @everyone means nothing there; names do.
	h.send(t, "ann", w.token, w.dm, "@everyone <@bob> hello")
	// Several at once: those bob cannot see are left out, duplicates once.
	got := h.states(t, "bob", w.token, c, w.thread, w.dm, ch(w.staff), c, "dm_channel:"+w.server)
	want := map[string]string{c: "3/0", w.thread: "0/0", w.dm: "1/1", ch(w.staff): "0/0"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("bob's read states: %v, want %v", got, want)
	}
	if _, ok := h.states(t, "carl", w.token, ch(w.staff), c)[ch(w.staff)]; ok {
		t.Fatal("carl gets the read state of a channel he does not see")
	}
	for _, bad := range [][]string{nil, slices.Repeat([]string{c}, 101), {"channel:nope"}, {"server:" + w.server}} {
		_, err := h.chat.GetReadStates(ctx, as("bob", w.token, &chatv1.GetReadStatesRequest{Conversations: bad}))
		code(t, err, connect.CodeInvalidArgument)
	}
}
