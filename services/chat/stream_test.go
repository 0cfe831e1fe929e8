package chat_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	"github.com/beepchat/beep/gen/beep/chat/v1/chatv1connect"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

// live is one subscriber's stream, read in the background.
type live struct {
	user   string
	events chan *chatv1.StreamEvent
	ended  chan error
	cancel context.CancelFunc
	// ready is the Ready event; replayed are the events before it.
	ready    *chatv1.Ready
	replayed []*chatv1.StreamEvent
	resync   bool
}

// subscribe opens user's stream on client (resuming after an event id if
// given) and waits for its Ready.
func subscribe(t *testing.T, client chatv1connect.StreamServiceClient, user, resumeAfter string) *live {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithCancel(t.Context())
		stream, err := client.Subscribe(ctx, as(user, "", &chatv1.SubscribeRequest{ResumeAfter: resumeAfter}))
		if err == nil {
			l := &live{user: user, events: make(chan *chatv1.StreamEvent, 1000), ended: make(chan error, 1), cancel: cancel}
			for stream.Receive() {
				ev := stream.Msg()
				switch {
				case ev.GetReady() != nil:
					l.ready = ev.GetReady()
				case ev.GetResync() != nil:
					l.resync = true
					continue
				default:
					l.replayed = append(l.replayed, ev)
					continue
				}
				break
			}
			if l.ready != nil {
				go func() {
					for stream.Receive() {
						l.events <- stream.Msg()
					}
					l.ended <- stream.Err()
				}()
				t.Cleanup(cancel)
				return l
			}
			err = stream.Err()
		}
		cancel()
		if connect.CodeOf(err) != connect.CodeUnavailable || time.Now().After(deadline) {
			t.Fatalf("%s subscribes: %v", user, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// next is the next event of kind want (the others are skipped), or fails.
func (l *live) next(t *testing.T, want func(*chatv1.StreamEvent) bool) *chatv1.StreamEvent {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev := <-l.events:
			if want(ev) {
				return ev
			}
		case err := <-l.ended:
			t.Fatalf("%s's stream ended: %v", l.user, err)
		case <-timeout:
			t.Fatalf("%s received no such event in 5s", l.user)
		}
	}
}

// messages are the MessageCreated events that arrive within d.
func (l *live) messages(d time.Duration) []*chatv1.Message {
	var out []*chatv1.Message
	timeout := time.After(d)
	for {
		select {
		case ev := <-l.events:
			if mc := ev.GetMessageCreated(); mc != nil {
				out = append(out, mc.Message)
			}
		case <-timeout:
			return out
		}
	}
}

// messagesUntil collects the messages received up to and including last
// (events come in the order they were written).
func (l *live) messagesUntil(t *testing.T, last string) []string {
	t.Helper()
	var got []string
	for timeout := time.After(10 * time.Second); len(got) == 0 || got[len(got)-1] != last; {
		select {
		case ev := <-l.events:
			if mc := ev.GetMessageCreated(); mc != nil {
				got = append(got, mc.Message.Content)
			}
		case <-timeout:
			t.Fatalf("%s received %q and not %q in 10s", l.user, got, last)
		}
	}
	return got
}

func created(content string) func(*chatv1.StreamEvent) bool {
	return func(ev *chatv1.StreamEvent) bool { return ev.GetMessageCreated().GetMessage().GetContent() == content }
}

func contents(msgs []*chatv1.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Content
	}
	return out
}

// TestStreamDeliversOnlyToWhoSees: a message in #staff reaches Crew and the
// owner, never carl, who is a member without the role; a DM reaches its two
// people only; the nonce goes back to its author alone.
func TestStreamDeliversOnlyToWhoSees(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ann, bob, carl := subscribe(t, h.stream, "ann", ""), subscribe(t, h.stream, "bob", ""), subscribe(t, h.stream, "carl", "")
	zoe := subscribe(t, h.stream, "zoe", "") // in no server

	ctx := t.Context()
	must(h.chat.SendMessage(ctx, as("ann", w.token, &chatv1.SendMessageRequest{Conversation: ch(w.staff), Content: "crew only", Nonce: "n-1"})))
	h.send(t, "bob", w.token, w.dm, "just us")
	h.send(t, "carl", w.token, ch(w.general), "hello all")

	if ev := ann.next(t, created("crew only")); ev.GetMessageCreated().Nonce != "n-1" {
		t.Errorf("the author's own event lacks its nonce: %v", ev)
	}
	if ev := bob.next(t, created("crew only")); ev.GetMessageCreated().Nonce != "" {
		t.Errorf("bob sees ann's nonce: %v", ev)
	}
	ann.next(t, created("just us"))
	bob.next(t, created("hello all"))
	ann.next(t, created("hello all"))
	if got := contents(carl.messages(time.Second)); len(got) != 1 || got[0] != "hello all" {
		t.Errorf("carl received %q, want only the #general message", got)
	}
	if got := zoe.messages(200 * time.Millisecond); len(got) != 0 {
		t.Errorf("zoe, in no server, received %q", contents(got))
	}
}

// TestStreamGoesQuietAtRevocation: bob receives #staff while he holds Crew;
// once ann removes the role, a send carrying the removal's ZedToken never
// reaches him, nor does one a second later carrying a token older than the
// removal (the Watch has invalidated what the stream cached). #general
// still reaches him.
func TestStreamGoesQuietAtRevocation(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	bob := subscribe(t, h.stream, "bob", "")
	ctx := t.Context()

	h.send(t, "ann", w.token, ch(w.staff), "before")
	bob.next(t, created("before"))

	removed := must(h.community.RemoveMemberRole(ctx, as("ann", w.token, &communityv1.RemoveMemberRoleRequest{RoleId: w.crew, UserId: "bob"})))
	zed := removed.Msg.ZedToken
	h.send(t, "ann", zed, ch(w.staff), "right after, with the token")
	time.Sleep(time.Second)
	h.send(t, "ann", w.token, ch(w.staff), "a second after, with an older token")
	h.send(t, "ann", zed, ch(w.general), "still here")
	// Events come in the order they were written: by "still here", the
	// #staff ones would have come.
	var got []string
	told := false
	for timeout := time.After(10 * time.Second); len(got) == 0 || got[len(got)-1] != "still here"; {
		select {
		case ev := <-bob.events:
			if mc := ev.GetMessageCreated(); mc != nil {
				got = append(got, mc.Message.Content)
			}
			if sc := ev.GetServerChanged(); sc.GetChange() == chatv1.ServerChange_SERVER_CHANGE_PERMISSIONS && sc.GetObject() == "role:"+w.crew {
				told = true
			}
		case <-timeout:
			t.Fatalf("bob received %q and not #general's message in 10s", got)
		}
	}
	if len(got) != 1 || got[0] != "still here" {
		t.Fatalf("after losing Crew bob received %q, want only the #general message", got)
	}
	if !told {
		t.Error("bob was not told that the permissions of his server changed")
	}
}

// TestStreamCacheFollowsTheWatch: without ZedTokens, the fan-out answers
// from its cache; once the Watch reports that bob lost Crew (he is told),
// #staff's messages no longer reach him, and #general's still do.
func TestStreamCacheFollowsTheWatch(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	bob := subscribe(t, h.stream, "bob", "")
	h.sendLatest(t, "ann", ch(w.staff), "cached")
	bob.next(t, created("cached"))

	must(h.community.RemoveMemberRole(t.Context(), as("ann", w.token, &communityv1.RemoveMemberRoleRequest{RoleId: w.crew, UserId: "bob"})))
	bob.next(t, func(ev *chatv1.StreamEvent) bool {
		sc := ev.GetServerChanged()
		return sc.GetChange() == chatv1.ServerChange_SERVER_CHANGE_PERMISSIONS && sc.GetObject() == "role:"+w.crew
	})
	h.sendLatest(t, "ann", ch(w.staff), "not for bob")
	h.sendLatest(t, "ann", ch(w.general), "for everyone")
	if got := bob.messagesUntil(t, "for everyone"); len(got) != 1 {
		t.Fatalf("after the Watch reported the removal bob received %q", got)
	}
}

// TestStreamResyncsWhenTheGraphCannotSay: when SpiceDB cannot answer who
// may receive an event, nobody receives it (fail closed), and those who
// might have are told to resync, with nothing of the event.
func TestStreamResyncsWhenTheGraphCannotSay(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	bob := subscribe(t, h.stream, "bob", "")
	h.send(t, "ann", w.token, ch(w.general), "before the outage") // the stream learns #general's server
	bob.next(t, created("before the outage"))

	h.stopSpiceDB()
	// An event another instance recorded meanwhile (this one cannot send:
	// its checks need SpiceDB too).
	payload, err := proto.Marshal(&chatv1.StreamEvent{Event: &chatv1.StreamEvent_MessageCreated{MessageCreated: &chatv1.MessageCreated{
		Message: &chatv1.Message{Id: "01900000-0000-7000-8000-000000000000", Conversation: ch(w.general), AuthorId: "ann", Content: "during the outage"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.Exec(t.Context(), `INSERT INTO stream_events (conversation, payload) VALUES ($1, $2)`, ch(w.general), payload); err != nil {
		t.Fatal(err)
	}
	ev := bob.next(t, func(ev *chatv1.StreamEvent) bool { return ev.GetResync() != nil || ev.GetMessageCreated() != nil })
	if ev.GetResync() == nil {
		t.Fatalf("with SpiceDB down bob received %v", ev)
	}
}

// TestStreamTellsOfServerChanges: a new channel and a new member are told
// to the connected members; the one who joins is told they joined and
// receives the server's messages from then on.
func TestStreamTellsOfServerChanges(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ann, dora := subscribe(t, h.stream, "ann", ""), subscribe(t, h.stream, "dora", "")
	ctx := t.Context()
	c := must(h.community.CreateChannel(ctx, as("ann", w.token, &communityv1.CreateChannelRequest{ServerId: w.server, Name: "new", Kind: communityv1.ChannelKind_CHANNEL_KIND_TEXT})))
	ann.next(t, func(ev *chatv1.StreamEvent) bool {
		sc := ev.GetServerChanged()
		return sc.GetServerId() == w.server && sc.GetChange() == chatv1.ServerChange_SERVER_CHANGE_CHANNELS && sc.GetObject() == "channel:"+c.Msg.Channel.Id
	})
	if got := dora.messages(300 * time.Millisecond); len(got) != 0 {
		t.Fatalf("dora, not yet a member, received %q", contents(got))
	}
	joined := must(h.community.JoinServer(ctx, as("dora", c.Msg.ZedToken, &communityv1.JoinServerRequest{ServerId: w.server})))
	dora.next(t, func(ev *chatv1.StreamEvent) bool {
		return ev.GetServerChanged().GetChange() == chatv1.ServerChange_SERVER_CHANGE_JOINED && ev.GetServerChanged().GetServerId() == w.server
	})
	ann.next(t, func(ev *chatv1.StreamEvent) bool {
		return ev.GetServerChanged().GetChange() == chatv1.ServerChange_SERVER_CHANGE_MEMBERS && ev.GetServerChanged().GetObject() == "user:dora"
	})
	h.send(t, "ann", joined.Msg.ZedToken, ch(w.general), "welcome dora")
	dora.next(t, created("welcome dora"))
}

// TestStreamAcrossInstances: a message sent through instance A reaches a
// subscriber of instance B, with the same event id, and B's subscriber
// resumes on A.
func TestStreamAcrossInstances(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	other := h.instance()
	bobOnB := subscribe(t, other, "bob", "")
	bobOnA := subscribe(t, h.stream, "bob", "")
	h.send(t, "ann", w.token, ch(w.general), "from A")
	onB, onA := bobOnB.next(t, created("from A")), bobOnA.next(t, created("from A"))
	if onA.Id == "" || onA.Id != onB.Id {
		t.Fatalf("event ids differ between instances: %q and %q", onA.Id, onB.Id)
	}
	bobOnB.cancel()
	h.send(t, "ann", w.token, ch(w.general), "while away")
	again := subscribe(t, h.stream, "bob", onB.Id)
	// Replayed if A had dispatched it already, else live: once either way.
	var got []string
	for _, ev := range again.replayed {
		got = append(got, ev.GetMessageCreated().GetMessage().GetContent())
	}
	got = append(got, contents(again.messages(500*time.Millisecond))...)
	if !again.ready.Resumed || len(got) != 1 || got[0] != "while away" {
		t.Fatalf("resumed on A after B's event: ready %v, got %q, want [while away]", again.ready, got)
	}
}

// TestStreamResumes: a reconnecting client gets what it missed, in order,
// then Ready; a member without read_message_history in #archive gets
// #archive's messages live but not replayed (Discord's rule); an unknown
// position is invalid, and one older than the window is a Resync.
func TestStreamResumes(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	carl, ann := subscribe(t, h.stream, "carl", ""), subscribe(t, h.stream, "ann", "")
	h.send(t, "ann", w.token, ch(w.archive), "live in archive")
	first := carl.next(t, created("live in archive"))
	carl.cancel()

	h.send(t, "ann", w.token, ch(w.general), "one")
	h.send(t, "ann", w.token, ch(w.archive), "missed in archive")
	h.send(t, "ann", w.token, ch(w.general), "two")
	h.send(t, "ann", w.token, ch(w.staff), "not for carl")
	ann.next(t, created("not for carl")) // all four are dispatched: carl's are to replay

	again := subscribe(t, h.stream, "carl", first.Id)
	var got []string
	for _, ev := range again.replayed {
		got = append(got, ev.GetMessageCreated().GetMessage().GetContent())
	}
	if !again.ready.Resumed || len(got) != 2 || got[0] != "one" || got[1] != "two" {
		t.Fatalf("carl resumed with %q (ready %v), want [one two]", got, again.ready)
	}
	h.send(t, "ann", w.token, ch(w.general), "three")
	again.next(t, created("three"))

	stream, err := h.stream.Subscribe(t.Context(), as("carl", "", &chatv1.SubscribeRequest{ResumeAfter: "yesterday"}))
	if err == nil {
		for stream.Receive() {
		}
		err = stream.Err()
	}
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("resume after a malformed id: %v, want invalid_argument", err)
	}
	if _, err := h.db.Exec(t.Context(), `DELETE FROM stream_events; INSERT INTO stream_pruned (xid, id) VALUES (pg_current_xact_id(), 1 << 40)`); err != nil {
		t.Fatal(err)
	}
	if old := subscribe(t, h.stream, "carl", first.Id); !old.resync || old.ready.Resumed {
		t.Errorf("resume from before the window: resync %v, ready %v; want a Resync and not resumed", old.resync, old.ready)
	}
}

// TestTyping: who sees the conversation is told, the typist and outsiders
// are not; without send_messages typing is refused.
func TestTyping(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ann, bob, carl := subscribe(t, h.stream, "ann", ""), subscribe(t, h.stream, "bob", ""), subscribe(t, h.stream, "carl", "")
	ctx := t.Context()
	must(h.stream.SendTyping(ctx, as("bob", w.token, &chatv1.SendTypingRequest{Conversation: ch(w.staff)})))
	typing := func(ev *chatv1.StreamEvent) bool { return ev.GetTyping().GetUserId() == "bob" }
	if ev := ann.next(t, typing); ev.GetTyping().GetConversation() != ch(w.staff) || ev.Id != "" {
		t.Errorf("ann was told %v", ev)
	}
	for _, l := range []*live{bob, carl} {
		select {
		case ev := <-l.events:
			if typing(ev) {
				t.Errorf("%s was told bob types in #staff", l.user)
			}
		case <-time.After(300 * time.Millisecond):
		}
	}
	_, err := h.stream.SendTyping(ctx, as("zoe", w.token, &chatv1.SendTypingRequest{Conversation: ch(w.general)}))
	code(t, err, connect.CodePermissionDenied)
}

// TestSubscribeNeedsSignIn: an anonymous caller has no stream.
func TestSubscribeNeedsSignIn(t *testing.T) {
	h := start(t)
	stream, err := h.stream.Subscribe(t.Context(), connect.NewRequest(&chatv1.SubscribeRequest{}))
	if err == nil {
		for stream.Receive() {
			t.Fatalf("an anonymous caller received %v", stream.Msg())
		}
		err = stream.Err()
	}
	var cerr *connect.Error
	if !errors.As(err, &cerr) || cerr.Code() != connect.CodeUnauthenticated {
		t.Fatalf("anonymous subscribe: %v, want unauthenticated", err)
	}
}
