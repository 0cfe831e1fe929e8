package chat_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/beepchat/beep/authz"
	authzv1 "github.com/beepchat/beep/gen/beep/authz/v1"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
)

// following is a Follow of the feed, read in the background.
type following struct {
	events chan *chatv1.FeedEvent
	start  *chatv1.FeedStart
}

func follow(t *testing.T, h *harness, after string) *following {
	t.Helper()
	ctx, cancel := context.WithCancel(authz.WithPrincipal(t.Context(), authz.ServicePrincipal("notification")))
	t.Cleanup(cancel)
	deadline := time.Now().Add(10 * time.Second)
	for {
		stream, err := h.feed.Follow(ctx, connect.NewRequest(&chatv1.FollowRequest{After: after}))
		if err == nil && stream.Receive() {
			f := &following{events: make(chan *chatv1.FeedEvent, 1000), start: stream.Msg().GetStart()}
			if f.start == nil {
				t.Fatalf("the feed did not start with a FeedStart: %v", stream.Msg())
			}
			go func() {
				for stream.Receive() {
					f.events <- stream.Msg().GetEvent()
				}
				close(f.events)
			}()
			return f
		}
		if err == nil {
			err = stream.Err()
		}
		if connect.CodeOf(err) != connect.CodeUnavailable || time.Now().After(deadline) {
			t.Fatalf("following the feed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// messages are the contents of the next n MessageCreated events (the
// others skipped), and the id of the last.
func (f *following) messages(t *testing.T, n int) ([]string, []*chatv1.FeedEvent) {
	t.Helper()
	var got []string
	var events []*chatv1.FeedEvent
	timeout := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case e, ok := <-f.events:
			if !ok {
				t.Fatalf("the feed ended after %q", got)
			}
			if m := e.GetEvent().GetMessageCreated().GetMessage(); m != nil {
				got = append(got, m.Content)
				events = append(events, e)
			}
		case <-timeout:
			t.Fatalf("the feed gave %q in 10s, want %d messages", got, n)
		}
	}
	return got, events
}

// TestFeedFollowsTheWholeLog: the feed replays the log, then goes on live
// without a gap or a repeat, unfiltered (a channel nobody follows, a DM),
// with the author a reply answers; following again after an event resumes
// right after it.
func TestFeedFollowsTheWholeLog(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	h.send(t, "ann", w.token, ch(w.staff), "staff only")
	feed := follow(t, h, "")
	if feed.start.Missed {
		t.Fatal("a feed from the start missed events")
	}
	h.send(t, "bob", w.token, w.dm, "in the dm")
	parent := h.send(t, "bob", w.token, ch(w.general), "parent")
	child, err := h.chat.SendMessage(t.Context(), as("carl", w.token, &chatv1.SendMessageRequest{Conversation: ch(w.general), Content: "child", ReplyToId: parent.Id}))
	if err != nil {
		t.Fatal(err)
	}
	got, events := feed.messages(t, 4)
	if want := []string{"staff only", "in the dm", "parent", "child"}; len(got) != 4 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Fatalf("the feed: %q, want %q", got, want)
	}
	last := events[3]
	if last.ReplyToAuthorId != "bob" || last.Conversation != ch(w.general) || last.GetEvent().GetMessageCreated().GetMessage().GetId() != child.Msg.Message.Id {
		t.Fatalf("the reply's event: %v", last)
	}
	if events[1].Conversation != w.dm || events[0].ReplyToAuthorId != "" {
		t.Fatalf("the DM's event: %v; the first: %v", events[1], events[0])
	}
	// Resuming after "parent": "child" first, then what comes next.
	again := follow(t, h, events[2].GetEvent().GetId())
	h.send(t, "ann", w.token, ch(w.general), "later")
	if got, _ := again.messages(t, 2); got[0] != "child" || got[1] != "later" {
		t.Fatalf("resumed after parent: %q", got)
	}
}

// TestFeedDelivers: a notification delivered for bob reaches his stream
// (and is replayed on resume), never carl's.
func TestFeedDelivers(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	bob, carl := subscribe(t, h.stream, "bob", ""), subscribe(t, h.stream, "carl", "")
	ctx := authz.WithPrincipal(t.Context(), authz.ServicePrincipal("notification"))
	m := h.send(t, "ann", w.token, ch(w.general), "<@bob>")
	_, err := h.feed.Deliver(ctx, connect.NewRequest(&chatv1.DeliverRequest{UserId: "bob", Conversation: ch(w.general),
		Event: &chatv1.StreamEvent{Id: "9.9", Event: &chatv1.StreamEvent_NotificationCreated{NotificationCreated: &chatv1.NotificationCreated{
			NotificationId: "n1", Kind: "mention", Conversation: ch(w.general), Message: m}}}}))
	if err != nil {
		t.Fatal(err)
	}
	ev := bob.next(t, func(ev *chatv1.StreamEvent) bool { return ev.GetNotificationCreated() != nil })
	if ev.GetNotificationCreated().NotificationId != "n1" || ev.Id == "" || ev.Id == "9.9" {
		t.Fatalf("bob's notification: %v", ev)
	}
	h.send(t, "ann", w.token, ch(w.general), "after")
	carl.next(t, created("after"))
	for len(carl.events) > 0 {
		if e := <-carl.events; e.GetNotificationCreated() != nil {
			t.Fatalf("carl received bob's notification: %v", e)
		}
	}
	if resumed := subscribe(t, h.stream, "bob", "0.0"); len(resumed.replayed) == 0 ||
		func() bool {
			for _, e := range resumed.replayed {
				if e.GetNotificationCreated() != nil {
					return false
				}
			}
			return true
		}() {
		t.Fatalf("the notification was not replayed to bob")
	}
}

// TestFeedRefusesPeopleAndOtherServices: every RPC of EventFeedService,
// read from its descriptor, declares the notification service alone, and
// refuses anonymous callers, people (the owner of everything included)
// and another Beep service.
func TestFeedRefusesPeopleAndOtherServices(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	service := chatv1.File_beep_chat_v1_feed_proto.Services().ByName("EventFeedService")
	for i := range service.Methods().Len() {
		m := service.Methods().Get(i)
		req, _ := proto.GetExtension(m.Options(), authzv1.E_Requires).(*authzv1.Requirement)
		if req.GetService() != "notification" {
			t.Fatalf("%s requires %v, want the notification service", m.Name(), req)
		}
		for _, c := range []struct {
			name string
			ctx  context.Context
			want connect.Code
		}{
			{"anonymous", t.Context(), connect.CodeUnauthenticated},
			{"the server's owner", authz.WithPrincipal(t.Context(), authz.Principal{UserID: "ann"}), connect.CodePermissionDenied},
			{"the user service", authz.WithPrincipal(t.Context(), authz.ServicePrincipal("user")), connect.CodePermissionDenied},
		} {
			var err error
			switch m.Name() {
			case "Follow":
				var stream *connect.ServerStreamForClient[chatv1.FollowResponse]
				if stream, err = h.feed.Follow(c.ctx, connect.NewRequest(&chatv1.FollowRequest{})); err == nil {
					if stream.Receive() {
						t.Fatalf("%s followed the feed: %v", c.name, stream.Msg())
					}
					err = stream.Err()
				}
			case "Deliver":
				_, err = h.feed.Deliver(c.ctx, connect.NewRequest(&chatv1.DeliverRequest{UserId: "bob", Conversation: ch(w.general),
					Event: &chatv1.StreamEvent{Event: &chatv1.StreamEvent_NotificationCreated{NotificationCreated: &chatv1.NotificationCreated{}}}}))
			case "Online":
				_, err = h.feed.Online(c.ctx, connect.NewRequest(&chatv1.OnlineRequest{UserIds: []string{"bob"}, At: timestamppb.Now()}))
			default:
				t.Fatalf("a new RPC %s: call it here", m.Name())
			}
			if connect.CodeOf(err) != c.want {
				t.Errorf("%s, %s: %v, want %v", m.Name(), c.name, err, c.want)
			}
		}
	}
}

// TestFeedSaysWhatWasPruned: following from a position the log no longer
// keeps starts with FeedStart.missed, then goes on from the oldest kept.
func TestFeedSaysWhatWasPruned(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	h.send(t, "ann", w.token, ch(w.general), "kept")
	if _, err := h.db.Exec(t.Context(), `INSERT INTO stream_pruned (xid, id) VALUES ('2'::xid8, 2)
		ON CONFLICT (one) DO UPDATE SET xid = excluded.xid, id = excluded.id`); err != nil {
		t.Fatal(err)
	}
	feed := follow(t, h, "1.1")
	if !feed.start.Missed {
		t.Fatal("a follow from before what was pruned was not told it missed events")
	}
	if got, _ := feed.messages(t, 1); got[0] != "kept" {
		t.Fatalf("after the gap: %q", got)
	}
	if again := follow(t, h, "2.2"); again.start.Missed {
		t.Fatal("a follow from the pruned position itself was told it missed events")
	}
}
