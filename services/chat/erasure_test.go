package chat_test

import (
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/beepchat/beep/authz"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	"github.com/beepchat/beep/internal/pgtest"
	"github.com/beepchat/beep/services/chat"
)

// asService makes an internal request from a Beep service.
func asService[T any](service string, msg *T) *connect.Request[T] {
	req := connect.NewRequest(msg)
	req.Header().Set("Test-Service", service)
	return req
}

// TestChatEraseUserIsInternal: only the user service, on its own behalf,
// erases; a person (even the one erased), another service and an
// anonymous caller are refused, and nothing is erased.
func TestChatEraseUserIsInternal(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()
	mine := h.send(t, "bob", w.token, ch(w.general), "mine")
	for _, req := range []*connect.Request[chatv1.EraseUserRequest]{
		as("bob", w.token, &chatv1.EraseUserRequest{UserId: "bob"}),
		asService("community", &chatv1.EraseUserRequest{UserId: "bob"}),
	} {
		_, err := h.erasure.EraseUser(ctx, req)
		code(t, err, connect.CodePermissionDenied)
	}
	_, err := h.erasure.EraseUser(ctx, connect.NewRequest(&chatv1.EraseUserRequest{UserId: "bob"}))
	code(t, err, connect.CodeUnauthenticated)
	_, err = h.erasure.EraseUser(ctx, asService("user", &chatv1.EraseUserRequest{}))
	code(t, err, connect.CodeInvalidArgument)
	got := must(h.chat.GetMessage(ctx, as("ann", w.token, &chatv1.GetMessageRequest{Conversation: ch(w.general), MessageId: mine.Id})))
	if got.Msg.Message.AuthorId != "bob" {
		t.Fatalf("the author is %q after refused erasures", got.Msg.Message.AuthorId)
	}
}

// TestChatEraseUser: bob, with messages, a nonce, reactions, a pin, read
// states, mentions of him, presence, a 1:1 DM and a group he owns, is erased: no
// row of the chat database names him, his messages stay with the author
// forgotten (and nobody may edit them), the group passes to its next
// member, the DM is gone from the graph too, and erasing again does
// nothing more.
func TestChatEraseUser(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()
	first := must(h.chat.SendMessage(ctx, as("bob", w.token, &chatv1.SendMessageRequest{Conversation: ch(w.general), Content: "hello", Nonce: "n1"}))).Msg.Message
	h.send(t, "bob", w.token, w.thread, "in the thread")
	h.send(t, "bob", w.token, w.dm, "psst") // goes with the DM
	about := h.send(t, "ann", w.token, ch(w.general), "hi <@bob> and <@!bob>")
	must(h.chat.AddReaction(ctx, as("bob", w.token, &chatv1.AddReactionRequest{Conversation: ch(w.general), MessageId: about.Id, Emoji: unicode("👍")})))
	must(h.chat.PinMessage(ctx, as("mo", w.token, &chatv1.PinMessageRequest{Conversation: ch(w.general), MessageId: first.Id})))
	must(h.chat.MarkRead(ctx, as("bob", w.token, &chatv1.MarkReadRequest{Conversation: ch(w.general), MessageId: about.Id})))
	group := must(h.chat.CreateGroupDM(ctx, as("bob", w.token, &chatv1.CreateGroupDMRequest{UserIds: []string{"carl", "ann"}}))).Msg
	h.send(t, "carl", group.ZedToken, group.DmChannel.Conversation, "hey group")
	// He was online a while (his presence spans name him).
	subscribe(t, h.stream, "bob", "").cancel()
	eventually(t, "bob's stream ends", func() bool { return !h.online(t, "bob", time.Now()) })

	erased := must(h.erasure.EraseUser(ctx, asService("user", &chatv1.EraseUserRequest{UserId: "bob"}))).Msg
	if erased.MessagesAnonymized != 2 || erased.GroupsLeft != 1 || erased.DirectDeleted != 1 {
		t.Fatalf("erased: %+v", erased)
	}
	if found := pgtest.Find(t, dbName(t, h), "bob"); len(found) > 0 {
		t.Fatalf("bob is still in %v", found)
	}
	kept := must(h.chat.GetMessage(ctx, as("ann", w.token, &chatv1.GetMessageRequest{Conversation: ch(w.general), MessageId: first.Id}))).Msg.Message
	if kept.AuthorId != chat.ForgottenAuthor || kept.Content != "hello" {
		t.Fatalf("bob's message after erasure: %v", kept)
	}
	mention := must(h.chat.GetMessage(ctx, as("ann", w.token, &chatv1.GetMessageRequest{Conversation: ch(w.general), MessageId: about.Id}))).Msg.Message
	if strings.Contains(mention.Content, "bob") || len(mention.GetMentions().GetUserIds()) != 0 || len(mention.Reactions) != 0 {
		t.Fatalf("ann's message mentioning bob: %v", mention)
	}
	_, err := h.chat.EditMessage(ctx, as("ann", w.token, &chatv1.EditMessageRequest{Conversation: ch(w.general), MessageId: first.Id, Content: "mine now"}))
	code(t, err, connect.CodePermissionDenied)
	zed := erased.ZedToken
	dm := must(h.chat.GetDM(ctx, as("carl", zed, &chatv1.GetDMRequest{DmChannelId: group.DmChannel.Id}))).Msg.DmChannel
	if dm.OwnerId != "carl" || strings.Join(dm.MemberIds, ",") != "carl,ann" {
		t.Fatalf("the group after bob: owner %q, members %v", dm.OwnerId, dm.MemberIds)
	}
	_, err = h.chat.ListMessages(ctx, as("ann", zed, &chatv1.ListMessagesRequest{Conversation: w.dm}))
	code(t, err, connect.CodePermissionDenied)
	for _, rel := range []authz.Relation{authz.DmChannel.Participant, authz.DmChannel.Member, authz.DmChannel.Owner} {
		for r, err := range h.authz.ReadRelationships(ctx, authz.Filter{ResourceType: rel.ResourceType, Relation: rel.Name,
			Subject: &authz.SubjectFilter{Type: authz.TypeUser, ID: "bob"}}, authz.FullyConsistent()) {
			if err != nil {
				t.Fatal(err)
			}
			t.Errorf("the graph still has %s", r)
		}
	}
	again := must(h.erasure.EraseUser(ctx, asService("user", &chatv1.EraseUserRequest{UserId: "bob"}))).Msg
	if again.MessagesAnonymized != 0 || again.GroupsLeft != 0 || again.DirectDeleted != 0 {
		t.Fatalf("erasing again: %+v", again)
	}
}

// dbName is the name of the harness's chat database.
func dbName(t *testing.T, h *harness) string {
	t.Helper()
	var name string
	if err := h.db.QueryRow(t.Context(), `SELECT current_database()`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}
