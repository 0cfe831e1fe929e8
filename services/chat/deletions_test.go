package chat_test

import (
	"testing"

	"connectrpc.com/connect"

	"github.com/beepchat/beep/authz"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
	"github.com/beepchat/beep/services/chat"
)

// TestDeletedConversationsAreErased: the messages (with their reactions
// and pins) and read states of a deleted thread, of a deleted channel and
// its threads, and of a deleted server's channels are erased by the next
// pass, and only theirs; a pass again erases nothing more.
func TestDeletedConversationsAreErased(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()
	count := func(c string) (messages, states int) {
		t.Helper()
		if err := h.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM messages WHERE conv_type || ':' || conv_id = $1),
			(SELECT count(*) FROM read_states WHERE conv_type || ':' || conv_id = $1)
			+ (SELECT count(*) FROM conversations WHERE conv_type || ':' || conv_id = $1)`, c).Scan(&messages, &states); err != nil {
			t.Fatal(err)
		}
		return messages, states
	}
	pass := func(want int64) {
		t.Helper()
		n, err := h.svc.EraseDeleted(authz.WithPrincipal(ctx, authz.ServicePrincipal(chat.ServiceName)))
		if err != nil || n != want {
			t.Fatalf("a pass erased %d messages (%v), want %d", n, err, want)
		}
	}
	quiet := ch(w.quiet)
	h.send(t, "ann", w.token, quiet, "in #quiet")
	inThread := h.send(t, "bob", w.token, w.thread, "in the thread")
	must(h.chat.AddReaction(ctx, as("ann", w.token, &chatv1.AddReactionRequest{Conversation: w.thread, MessageId: inThread.Id, Emoji: unicode("👍")})))
	h.send(t, "bob", w.token, ch(w.general), "in #general")
	staff := h.send(t, "ann", w.token, ch(w.staff), "in #staff")
	must(h.chat.PinMessage(ctx, as("ann", w.token, &chatv1.PinMessageRequest{Conversation: ch(w.staff), MessageId: staff.Id})))
	pass(0) // nothing deleted yet

	// The thread alone, then #general (and so its other threads).
	threadID := w.thread[len("thread:"):]
	w.token = must(h.community.DeleteThread(ctx, as("ann", w.token, &communityv1.DeleteThreadRequest{ThreadId: threadID}))).Msg.ZedToken
	pass(1)
	if m, s := count(w.thread); m != 0 || s != 0 {
		t.Fatalf("the deleted thread keeps %d messages, %d read states and records", m, s)
	}
	var reactions int
	if err := h.db.QueryRow(ctx, `SELECT count(*) FROM reactions`).Scan(&reactions); err != nil || reactions != 0 {
		t.Fatalf("%d reactions remain (%v)", reactions, err)
	}
	other := must(h.community.CreateThread(ctx, as("bob", w.token, &communityv1.CreateThreadRequest{ChannelId: w.general, Name: "more"})))
	w.token = other.Msg.ZedToken
	h.send(t, "bob", w.token, "thread:"+other.Msg.Thread.Id, "in another thread")
	w.token = must(h.community.DeleteChannel(ctx, as("ann", w.token, &communityv1.DeleteChannelRequest{ChannelId: w.general}))).Msg.ZedToken
	pass(2)
	if m, _ := count("thread:" + other.Msg.Thread.Id); m != 0 {
		t.Fatal("the deleted channel's thread keeps its messages")
	}
	if m, _ := count(quiet); m != 1 {
		t.Fatalf("#quiet, not deleted, has %d messages, want 1", m)
	}
	pass(0)

	// The server: #quiet and #staff go (the pin with it); the DM stays.
	w.token = must(h.community.DeleteServer(ctx, as("ann", w.token, &communityv1.DeleteServerRequest{ServerId: w.server}))).Msg.ZedToken
	pass(2)
	var left, pins int
	if err := h.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM messages WHERE conv_type <> 'dm_channel'), (SELECT count(*) FROM pins)`).Scan(&left, &pins); err != nil {
		t.Fatal(err)
	}
	if left != 0 || pins != 0 {
		t.Fatalf("after the server's deletion %d messages of its channels and %d pins remain", left, pins)
	}
	h.send(t, "ann", w.token, w.dm, "still here")
	pass(0)
	if m, _ := count(w.dm); m != 1 {
		t.Fatalf("the DM has %d messages, want 1", m)
	}
}

// TestDeletionsAreForTheChatServiceOnly: ListDeletedConversations is
// refused to people and to other services.
func TestDeletionsAreForTheChatServiceOnly(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	for _, p := range []authz.Principal{{UserID: "ann"}, authz.ServicePrincipal("user"), authz.ServicePrincipal("notification")} {
		_, err := h.svc.EraseDeleted(authz.WithPrincipal(ctx, p))
		code(t, err, connect.CodePermissionDenied)
	}
}
