package chat_test

import (
	"fmt"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	"github.com/beepchat/beep/services/chat"
)

func custom(id string) *chatv1.Emoji {
	return &chatv1.Emoji{Kind: &chatv1.Emoji_CustomId{CustomId: id}}
}

// summary renders reactions as "emoji:count[*]" (* when the caller reacted).
func summary(rs []*chatv1.Reaction) []string {
	var out []string
	for _, r := range rs {
		e := r.Emoji.GetUnicode()
		if e == "" {
			e = "custom"
		}
		s := fmt.Sprintf("%s:%d", e, r.Count)
		if r.Me {
			s += "*"
		}
		out = append(out, s)
	}
	return out
}

func TestReactions(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()
	c := ch(w.general)
	m := h.send(t, "ann", w.token, c, "react to me")
	emoji := uuid.NewString()
	react := func(user string, e *chatv1.Emoji) ([]string, error) {
		resp, err := h.chat.AddReaction(ctx, as(user, w.token, &chatv1.AddReactionRequest{Conversation: c, MessageId: m.Id, Emoji: e}))
		if err != nil {
			return nil, err
		}
		return summary(resp.Msg.Reactions), nil
	}
	tests := []struct {
		name, user string
		emoji      *chatv1.Emoji
		want       string // the reactions as user sees them, or the error code
	}{
		{"bob likes it", "bob", unicode("👍"), "[👍:1*]"},
		{"carl too", "carl", unicode("👍"), "[👍:2*]"},
		{"carl again: one per person", "carl", unicode("👍"), "[👍:2*]"},
		{"a flag", "carl", unicode("🇫🇷"), "[👍:2* 🇫🇷:1*]"},
		{"a ZWJ family", "ann", unicode("👨‍👩‍👧‍👦"), "[👍:2 🇫🇷:1 👨‍👩‍👧‍👦:1*]"},
		{"a keycap", "ann", unicode("1️⃣"), "[👍:2 🇫🇷:1 👨‍👩‍👧‍👦:1* 1️⃣:1*]"},
		{"a skin tone", "bob", unicode("👋🏽"), "[👍:2* 🇫🇷:1 👨‍👩‍👧‍👦:1 1️⃣:1 👋🏽:1*]"},
		{"a custom emoji", "bob", custom(emoji), "[👍:2* 🇫🇷:1 👨‍👩‍👧‍👦:1 1️⃣:1 👋🏽:1* custom:1*]"},
		{"text is no emoji", "bob", unicode("lol"), "invalid_argument"},
		{"a digit alone is no emoji", "bob", unicode("1"), "invalid_argument"},
		{"a custom emoji id that is no id", "bob", custom("party"), "invalid_argument"},
		{"no emoji", "bob", nil, "invalid_argument"},
		{"a stranger", "zoe", unicode("👍"), "permission_denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := react(tt.user, tt.emoji)
			if err != nil {
				if connect.CodeOf(err).String() != tt.want {
					t.Fatalf("got %v, want %s", err, tt.want)
				}
				return
			}
			if fmt.Sprint(got) != tt.want {
				t.Fatalf("got %v, want %s", got, tt.want)
			}
		})
	}
	// Reactions come with the message, as each caller sees them.
	listed := must(h.chat.ListMessages(ctx, as("carl", w.token, &chatv1.ListMessagesRequest{Conversation: c})))
	if got := fmt.Sprint(summary(listed.Msg.Messages[0].Reactions)); got != "[👍:2* 🇫🇷:1* 👨‍👩‍👧‍👦:1 1️⃣:1 👋🏽:1 custom:1]" {
		t.Fatalf("carl lists %s", got)
	}
	h.events.take()
	removed := must(h.chat.RemoveReaction(ctx, as("carl", w.token, &chatv1.RemoveReactionRequest{Conversation: c, MessageId: m.Id, Emoji: unicode("🇫🇷")})))
	if got := fmt.Sprint(summary(removed.Msg.Reactions)); got != "[👍:2* 👨‍👩‍👧‍👦:1 1️⃣:1 👋🏽:1 custom:1]" {
		t.Fatalf("after removing: %s", got)
	}
	must(h.chat.RemoveReaction(ctx, as("carl", w.token, &chatv1.RemoveReactionRequest{Conversation: c, MessageId: m.Id, Emoji: unicode("🇫🇷")})))
	if ev := h.events.take(); len(ev) != 1 || ev[0].Kind != chat.ReactionRemoved || ev[0].Emoji.GetUnicode() != "🇫🇷" {
		t.Fatalf("published %+v", ev)
	}
	// At most 20 different emoji; more of one already there is fine.
	for i := 5; i < 20; i++ { // 5 different ones are there
		if _, err := react("ann", custom(uuid.NewString())); err != nil {
			t.Fatalf("reaction %d: %v", i+1, err)
		}
	}
	_, err := react("ann", unicode("🎉"))
	code(t, err, connect.CodeFailedPrecondition)
	if _, err := react("mo", unicode("👍")); err != nil {
		t.Fatalf("joining an existing reaction at the limit: %v", err)
	}
	// Where @everyone lacks add_reactions, members cannot react; in a DM,
	// its two people can.
	quiet := h.send(t, "ann", w.token, ch(w.quiet), "no reactions")
	_, err = h.chat.AddReaction(ctx, as("bob", w.token, &chatv1.AddReactionRequest{Conversation: ch(w.quiet), MessageId: quiet.Id, Emoji: unicode("👍")}))
	code(t, err, connect.CodePermissionDenied)
	inDM := h.send(t, "ann", w.token, w.dm, "hi")
	if _, err := h.chat.AddReaction(ctx, as("bob", w.token, &chatv1.AddReactionRequest{Conversation: w.dm, MessageId: inDM.Id, Emoji: unicode("👋")})); err != nil {
		t.Fatal(err)
	}
}

func TestPins(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()
	c := ch(w.general)
	var ids []string
	for i := range 51 {
		ids = append(ids, h.send(t, "bob", w.token, c, fmt.Sprint("pin me ", i)).Id)
	}
	pin := func(user, conv, id string) error {
		_, err := h.chat.PinMessage(ctx, as(user, w.token, &chatv1.PinMessageRequest{Conversation: conv, MessageId: id}))
		return err
	}
	code(t, pin("bob", c, ids[0]), connect.CodePermissionDenied) // no manage_messages
	code(t, pin("mo", w.thread, ids[0]), connect.CodeNotFound)
	for _, id := range ids[:50] {
		if err := pin("mo", c, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := pin("ann", c, ids[10]); err != nil {
		t.Fatalf("pinning a pinned message: %v", err)
	}
	code(t, pin("ann", c, ids[50]), connect.CodeFailedPrecondition)

	pins := must(h.chat.ListPins(ctx, as("carl", w.token, &chatv1.ListPinsRequest{Conversation: c})))
	if n := len(pins.Msg.Pins); n != 50 || pins.Msg.Pins[0].Message.Id != ids[49] || pins.Msg.Pins[0].PinnedBy != "mo" || !pins.Msg.Pins[0].Message.Pinned {
		t.Fatalf("%d pins, the latest %+v", n, pins.Msg.Pins[0])
	}
	got := must(h.chat.GetMessage(ctx, as("carl", w.token, &chatv1.GetMessageRequest{Conversation: c, MessageId: ids[3]})))
	if !got.Msg.Message.Pinned {
		t.Fatal("a pinned message says it is not")
	}
	_, err := h.chat.UnpinMessage(ctx, as("carl", w.token, &chatv1.UnpinMessageRequest{Conversation: c, MessageId: ids[3]}))
	code(t, err, connect.CodePermissionDenied)
	must(h.chat.UnpinMessage(ctx, as("mo", w.token, &chatv1.UnpinMessageRequest{Conversation: c, MessageId: ids[3]})))
	if err := pin("mo", c, ids[50]); err != nil {
		t.Fatalf("pinning after an unpin: %v", err)
	}
	// The schema gives nobody manage_messages in a DM: no pins there.
	inDM := h.send(t, "ann", w.token, w.dm, "hi")
	code(t, pin("ann", w.dm, inDM.Id), connect.CodePermissionDenied)
	if list := must(h.chat.ListPins(ctx, as("bob", w.token, &chatv1.ListPinsRequest{Conversation: w.dm}))); len(list.Msg.Pins) != 0 {
		t.Fatal("pins in a DM")
	}
}
