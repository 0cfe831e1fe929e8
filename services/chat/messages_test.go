package chat_test

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
	"github.com/beepchat/beep/services/chat"
)

func TestSendMessage(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()
	first := h.send(t, "bob", w.token, ch(w.general), "first")
	elsewhere := h.send(t, "bob", w.token, w.thread, "in the thread")
	tests := []struct {
		name      string
		user      string
		req       *chatv1.SendMessageRequest
		want      connect.Code // 0: sent
		wantText  string
		wantReply string
	}{
		{"a text channel, trimmed", "bob", &chatv1.SendMessageRequest{Conversation: ch(w.general), Content: "  **hello**\n "}, 0, "**hello**", ""},
		{"an announcement channel", "ann", &chatv1.SendMessageRequest{Conversation: ch(w.news), Content: "news"}, 0, "news", ""},
		{"a thread", "carl", &chatv1.SendMessageRequest{Conversation: w.thread, Content: "in the thread"}, 0, "in the thread", ""},
		{"a DM", "bob", &chatv1.SendMessageRequest{Conversation: w.dm, Content: "hi ann"}, 0, "hi ann", ""},
		{"4000 characters", "bob", &chatv1.SendMessageRequest{Conversation: ch(w.general), Content: strings.Repeat("é", 4000)}, 0, strings.Repeat("é", 4000), ""},
		{"a reply", "ann", &chatv1.SendMessageRequest{Conversation: ch(w.general), Content: "re", ReplyToId: first.Id}, 0, "re", first.Id},
		{"4001 characters", "bob", &chatv1.SendMessageRequest{Conversation: ch(w.general), Content: strings.Repeat("a", 4001)}, connect.CodeInvalidArgument, "", ""},
		{"only spaces", "bob", &chatv1.SendMessageRequest{Conversation: ch(w.general), Content: " \n\t "}, connect.CodeInvalidArgument, "", ""},
		{"a reply elsewhere", "bob", &chatv1.SendMessageRequest{Conversation: ch(w.general), Content: "re", ReplyToId: elsewhere.Id}, connect.CodeInvalidArgument, "", ""},
		{"a reply to nothing", "bob", &chatv1.SendMessageRequest{Conversation: ch(w.general), Content: "re", ReplyToId: uuid.NewString()}, connect.CodeInvalidArgument, "", ""},
		{"a nonce too long", "bob", &chatv1.SendMessageRequest{Conversation: ch(w.general), Content: "x", Nonce: strings.Repeat("n", 65)}, connect.CodeInvalidArgument, "", ""},
		{"a voice channel", "bob", &chatv1.SendMessageRequest{Conversation: ch(w.lounge), Content: "x"}, connect.CodeFailedPrecondition, "", ""},
		{"a server, not a conversation", "bob", &chatv1.SendMessageRequest{Conversation: "server:" + w.server, Content: "x"}, connect.CodeInvalidArgument, "", ""},
		{"a channel id that is no UUID", "bob", &chatv1.SendMessageRequest{Conversation: "channel:general", Content: "x"}, connect.CodePermissionDenied, "", ""},
		{"someone else's DM", "carl", &chatv1.SendMessageRequest{Conversation: w.dm, Content: "x"}, connect.CodePermissionDenied, "", ""},
		{"a channel carl does not see", "carl", &chatv1.SendMessageRequest{Conversation: ch(w.staff), Content: "x"}, connect.CodePermissionDenied, "", ""},
		{"a stranger", "zoe", &chatv1.SendMessageRequest{Conversation: ch(w.general), Content: "x"}, connect.CodePermissionDenied, "", ""},
		{"anonymous", "", &chatv1.SendMessageRequest{Conversation: ch(w.general), Content: "x"}, connect.CodeUnauthenticated, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.events.take()
			resp, err := h.chat.SendMessage(ctx, as(tt.user, w.token, tt.req))
			if tt.want != 0 {
				code(t, err, tt.want)
				if ev := h.events.take(); len(ev) != 0 {
					t.Fatalf("a refused send published %v", ev)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m := resp.Msg.Message
			if m.Content != tt.wantText || m.AuthorId != tt.user || m.Conversation != tt.req.Conversation || m.ReplyToId != tt.wantReply || m.EditedAt != nil || resp.Msg.Duplicate {
				t.Fatalf("sent %+v", m)
			}
			if _, err := uuid.Parse(m.Id); err != nil || uuid.MustParse(m.Id).Version() != 7 {
				t.Fatalf("id %q is not a UUIDv7", m.Id)
			}
			got := must(h.chat.GetMessage(ctx, as(tt.user, w.token, &chatv1.GetMessageRequest{Conversation: m.Conversation, MessageId: m.Id})))
			if got.Msg.Message.Content != tt.wantText {
				t.Fatalf("stored %+v", got.Msg.Message)
			}
			ev := h.events.take()
			if len(ev) != 1 || ev[0].Kind != chat.MessageCreated || ev[0].MessageID != m.Id || ev[0].Conversation != m.Conversation {
				t.Fatalf("published %+v", ev)
			}
		})
	}
	// A message named in another conversation is not found there.
	_, err := h.chat.GetMessage(ctx, as("bob", w.token, &chatv1.GetMessageRequest{Conversation: w.thread, MessageId: first.Id}))
	code(t, err, connect.CodeNotFound)
}

// TestNonceIdempotency: concurrent retries of one send (same author,
// conversation and nonce) post one message, and all answer with it.
func TestNonceIdempotency(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()
	const retries = 12
	ids := make([]string, retries)
	duplicates := make([]bool, retries)
	var wg sync.WaitGroup
	for i := range retries {
		wg.Go(func() {
			resp, err := h.chat.SendMessage(ctx, as("bob", w.token, &chatv1.SendMessageRequest{Conversation: ch(w.general), Content: "once", Nonce: "n-1"}))
			if err != nil {
				t.Error(err)
				return
			}
			ids[i], duplicates[i] = resp.Msg.Message.Id, resp.Msg.Duplicate
			if resp.Msg.Message.Nonce != "n-1" {
				t.Errorf("the author does not see the nonce: %+v", resp.Msg.Message)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if !allEqual(ids) {
		t.Fatalf("retries answered different messages: %v", ids)
	}
	if n := len(slices.DeleteFunc(slices.Clone(duplicates), func(d bool) bool { return d })); n != 1 {
		t.Fatalf("%d retries say they posted", n)
	}
	if got := h.list(t, "bob", w.token, &chatv1.ListMessagesRequest{Conversation: ch(w.general)}); !slices.Equal(got, ids[:1]) {
		t.Fatalf("history %v, want the one message %s", got, ids[0])
	}
	if ev := h.events.take(); len(ev) != 1 {
		t.Fatalf("%d events for one message", len(ev))
	}
	// Others do not see the nonce; another author, or another conversation,
	// with the same nonce, is another message.
	seen := must(h.chat.GetMessage(ctx, as("carl", w.token, &chatv1.GetMessageRequest{Conversation: ch(w.general), MessageId: ids[0]})))
	if seen.Msg.Message.Nonce != "" {
		t.Fatal("carl sees bob's nonce")
	}
	other := must(h.chat.SendMessage(ctx, as("carl", w.token, &chatv1.SendMessageRequest{Conversation: ch(w.general), Content: "once", Nonce: "n-1"})))
	there := must(h.chat.SendMessage(ctx, as("bob", w.token, &chatv1.SendMessageRequest{Conversation: w.thread, Content: "once", Nonce: "n-1"})))
	if other.Msg.Duplicate || there.Msg.Duplicate || other.Msg.Message.Id == ids[0] || there.Msg.Message.Id == ids[0] {
		t.Fatal("a nonce is per author and conversation")
	}
	// A retry answers with the first message even if its text differs.
	again := must(h.chat.SendMessage(ctx, as("bob", w.token, &chatv1.SendMessageRequest{Conversation: ch(w.general), Content: "twice?", Nonce: "n-1"})))
	if !again.Msg.Duplicate || again.Msg.Message.Id != ids[0] || again.Msg.Message.Content != "once" {
		t.Fatalf("retry: %+v", again.Msg)
	}
}

func allEqual(s []string) bool {
	for _, x := range s {
		if x != s[0] {
			return false
		}
	}
	return true
}

func TestEditMessage(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()
	older := h.send(t, "bob", w.token, ch(w.general), "older")
	mine := h.send(t, "bob", w.token, ch(w.general), "typo")
	newer := h.send(t, "carl", w.token, ch(w.general), "newer")
	inStaff := h.send(t, "bob", w.token, ch(w.staff), "secret")
	tests := []struct {
		name, user, conv, id, content string
		want                          connect.Code
	}{
		{"its author", "bob", ch(w.general), mine.Id, "fixed <@carl>", 0},
		{"the owner, not its author", "ann", ch(w.general), mine.Id, "x", connect.CodePermissionDenied},
		{"a moderator, not its author", "mo", ch(w.general), mine.Id, "x", connect.CodePermissionDenied},
		{"named in another conversation", "bob", w.thread, mine.Id, "x", connect.CodeNotFound},
		{"no such message", "bob", ch(w.general), uuid.NewString(), "x", connect.CodeNotFound},
		{"empty", "bob", ch(w.general), mine.Id, "  ", connect.CodeInvalidArgument},
		{"a stranger", "zoe", ch(w.general), mine.Id, "x", connect.CodePermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := h.chat.EditMessage(ctx, as(tt.user, w.token, &chatv1.EditMessageRequest{Conversation: tt.conv, MessageId: tt.id, Content: tt.content}))
			if tt.want != 0 {
				code(t, err, tt.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m := resp.Msg.Message
			if m.Content != tt.content || m.EditedAt == nil || m.Id != mine.Id || !m.CreatedAt.AsTime().Equal(mine.CreatedAt.AsTime()) ||
				!slices.Equal(m.Mentions.UserIds, []string{"carl"}) {
				t.Fatalf("edited: %+v", m)
			}
		})
	}
	// It keeps its place in history.
	if got := h.list(t, "carl", w.token, &chatv1.ListMessagesRequest{Conversation: ch(w.general)}); !slices.Equal(got, []string{newer.Id, mine.Id, older.Id}) {
		t.Fatalf("history after an edit: %v", got)
	}
	// An author who no longer sees the channel cannot edit there.
	removed := must(h.community.RemoveMemberRole(ctx, as("ann", w.token, &communityv1.RemoveMemberRoleRequest{RoleId: w.crew, UserId: "bob"})))
	_, err := h.chat.EditMessage(ctx, as("bob", removed.Msg.ZedToken, &chatv1.EditMessageRequest{Conversation: ch(w.staff), MessageId: inStaff.Id, Content: "x"}))
	code(t, err, connect.CodePermissionDenied)
}

func TestDeleteMessage(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()
	type msg struct{ conv, id string }
	post := func(user, conv string) msg { return msg{conv, h.send(t, user, w.token, conv, "text").Id} }
	bobs, carls, bobsAgain := post("bob", ch(w.general)), post("carl", ch(w.general)), post("bob", ch(w.general))
	inThread, inDM := post("carl", w.thread), post("ann", w.dm)
	// With a reaction and a pin, deleted with it.
	must(h.chat.AddReaction(ctx, as("carl", w.token, &chatv1.AddReactionRequest{Conversation: bobsAgain.conv, MessageId: bobsAgain.id, Emoji: unicode("👍")})))
	must(h.chat.PinMessage(ctx, as("mo", w.token, &chatv1.PinMessageRequest{Conversation: bobsAgain.conv, MessageId: bobsAgain.id})))
	tests := []struct {
		name, user string
		m          msg
		want       connect.Code
	}{
		{"someone else's, without manage_messages", "carl", bobs, connect.CodePermissionDenied},
		{"the other person's in a DM", "bob", inDM, connect.CodePermissionDenied},
		{"its author", "bob", bobs, 0},
		{"again", "bob", bobs, connect.CodeNotFound},
		{"a moderator, someone else's", "mo", carls, 0},
		{"a moderator, in a thread of the channel", "mo", inThread, 0},
		{"the owner", "ann", bobsAgain, 0},
		{"its author, in a DM", "ann", inDM, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.events.take()
			_, err := h.chat.DeleteMessage(ctx, as(tt.user, w.token, &chatv1.DeleteMessageRequest{Conversation: tt.m.conv, MessageId: tt.m.id}))
			if tt.want != 0 {
				code(t, err, tt.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = h.chat.GetMessage(ctx, as(tt.user, w.token, &chatv1.GetMessageRequest{Conversation: tt.m.conv, MessageId: tt.m.id}))
			code(t, err, connect.CodeNotFound)
			if ev := h.events.take(); len(ev) != 1 || ev[0].Kind != chat.MessageDeleted || ev[0].MessageID != tt.m.id {
				t.Fatalf("published %+v", ev)
			}
		})
	}
	var left int
	if err := h.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM reactions) + (SELECT count(*) FROM pins)`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d reactions and pins outlive their message (%v)", left, err)
	}
}

// TestViewChannelRequired: a member who does not see a channel can neither
// send nor read there, and learns nothing of it.
func TestViewChannelRequired(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()
	secret := h.send(t, "bob", w.token, ch(w.staff), "crew only")
	c := ch(w.staff)
	calls := map[string]func() error{
		"SendMessage": func() error {
			_, err := h.chat.SendMessage(ctx, as("carl", w.token, &chatv1.SendMessageRequest{Conversation: c, Content: "x"}))
			return err
		},
		"ListMessages": func() error {
			_, err := h.chat.ListMessages(ctx, as("carl", w.token, &chatv1.ListMessagesRequest{Conversation: c}))
			return err
		},
		"GetMessage": func() error {
			_, err := h.chat.GetMessage(ctx, as("carl", w.token, &chatv1.GetMessageRequest{Conversation: c, MessageId: secret.Id}))
			return err
		},
		"ListPins": func() error {
			_, err := h.chat.ListPins(ctx, as("carl", w.token, &chatv1.ListPinsRequest{Conversation: c}))
			return err
		},
		"MarkRead": func() error {
			_, err := h.chat.MarkRead(ctx, as("carl", w.token, &chatv1.MarkReadRequest{Conversation: c, MessageId: secret.Id}))
			return err
		},
		"AddReaction": func() error {
			_, err := h.chat.AddReaction(ctx, as("carl", w.token, &chatv1.AddReactionRequest{Conversation: c, MessageId: secret.Id, Emoji: unicode("👀")}))
			return err
		},
		"DeleteMessage": func() error {
			_, err := h.chat.DeleteMessage(ctx, as("carl", w.token, &chatv1.DeleteMessageRequest{Conversation: c, MessageId: secret.Id}))
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) { code(t, call(), connect.CodePermissionDenied) })
	}
	states := must(h.chat.GetReadStates(ctx, as("carl", w.token, &chatv1.GetReadStatesRequest{Conversations: []string{c, ch(w.general)}})))
	if len(states.Msg.States) != 1 || states.Msg.States[0].Conversation != ch(w.general) {
		t.Fatalf("carl's read states name a channel he does not see: %v", states.Msg.States)
	}
}

// TestReadHistoryRequired: in #archive, where @everyone lacks
// read_message_history, members send but do not read the history, nor
// react (message#add_reactions needs message#view).
func TestReadHistoryRequired(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()
	c := ch(w.archive)
	sent := h.send(t, "carl", w.token, c, "into the void")
	_, err := h.chat.ListMessages(ctx, as("carl", w.token, &chatv1.ListMessagesRequest{Conversation: c}))
	code(t, err, connect.CodePermissionDenied)
	_, err = h.chat.GetMessage(ctx, as("carl", w.token, &chatv1.GetMessageRequest{Conversation: c, MessageId: sent.Id}))
	code(t, err, connect.CodePermissionDenied)
	_, err = h.chat.AddReaction(ctx, as("carl", w.token, &chatv1.AddReactionRequest{Conversation: c, MessageId: sent.Id, Emoji: unicode("👍")}))
	code(t, err, connect.CodePermissionDenied)
	// The owner reads it.
	if got := h.list(t, "ann", w.token, &chatv1.ListMessagesRequest{Conversation: c}); !slices.Equal(got, []string{sent.Id}) {
		t.Fatalf("the owner's view of #archive: %v", got)
	}
}

func unicode(e string) *chatv1.Emoji { return &chatv1.Emoji{Kind: &chatv1.Emoji_Unicode{Unicode: e}} }

// TestSendAfterAnIdAhead: when the conversation's last id is ahead of this
// instance's clock (another instance's clock runs fast), a send still
// takes the id right after it, and writes the message, its ping, its event
// and the author's read state once (the send made at once writes nothing
// and is made again in turn).
func TestSendAfterAnIdAhead(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()
	first := h.send(t, "bob", w.token, ch(w.general), "first")
	const ahead = "7fffffff-ffff-7000-8000-000000000000"
	h.exec(t, `UPDATE conversations SET last_id = $1 WHERE conv_type = 'channel' AND conv_id = $2`, ahead, w.general)
	count := func(sql string, args ...any) int {
		t.Helper()
		var n int
		if err := h.db.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	events := count(`SELECT count(*) FROM stream_events WHERE conversation = $1`, ch(w.general))
	h.events.take()

	sent := must(h.chat.SendMessage(ctx, as("bob", w.token, &chatv1.SendMessageRequest{
		Conversation: ch(w.general), Content: "second <@carl>", Nonce: "n-ahead", ReplyToId: first.Id}))).Msg
	if sent.Duplicate || sent.Message.Id != "7fffffff-ffff-7000-8000-000000000001" {
		t.Fatalf("sent %+v, want the id right after %s", sent, ahead)
	}
	if got := h.list(t, "bob", w.token, &chatv1.ListMessagesRequest{Conversation: ch(w.general)}); !slices.Equal(got, []string{sent.Message.Id, first.Id}) {
		t.Fatalf("history %v, want the second after the first", got)
	}
	if n := count(`SELECT count(*) FROM stream_events WHERE conversation = $1`, ch(w.general)) - events; n != 1 {
		t.Errorf("%d events logged for one message", n)
	}
	if n := len(h.events.take()); n != 1 {
		t.Errorf("%d events published for one message", n)
	}
	if n := count(`SELECT count(*) FROM message_mentions WHERE message_id = $1`, sent.Message.Id); n != 1 {
		t.Errorf("carl pinged %d times", n)
	}
	if n := count(`SELECT count(*) FROM read_states WHERE user_id = 'bob' AND conv_id = $1 AND last_read_id = $2`, w.general, sent.Message.Id); n != 1 {
		t.Error("bob's read state did not move to his message")
	}
	again := must(h.chat.SendMessage(ctx, as("bob", w.token, &chatv1.SendMessageRequest{Conversation: ch(w.general), Content: "second <@carl>", Nonce: "n-ahead"}))).Msg
	if !again.Duplicate || again.Message.Id != sent.Message.Id {
		t.Fatalf("the retry: %+v", again)
	}
}
