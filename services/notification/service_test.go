package notification_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
	notificationv1 "github.com/beepchat/beep/gen/beep/notification/v1"
	"github.com/beepchat/beep/services/notification"
)

// TestMentionsAndReplies: a mention notifies the member mentioned, never
// the author; a mention of someone who cannot see the channel notifies
// nobody; a reply notifies the author of the message replied to; counts
// are per server and per conversation; marking read.
func TestMentionsAndReplies(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()

	hello := h.send(t, "ann", w.token, ch(w.general), "hello <@bob>, and me <@ann>", "")
	inbox := h.waitFor(t, "bob", hello.Id)
	if got := about(inbox, hello.Id); len(got) != 1 || got[0].Kind != notificationv1.NotificationKind_NOTIFICATION_KIND_MENTION ||
		got[0].AuthorId != "ann" || got[0].Conversation != ch(w.general) || got[0].ServerId != w.server || got[0].ReadAt != nil {
		t.Fatalf("bob's notification of the mention: %v", got)
	}
	// carl cannot see #staff.
	secret := h.send(t, "ann", w.token, ch(w.staff), "<@carl> you will not see this", "")
	// bob replies to ann, and mentions carl in the thread.
	reply := h.send(t, "bob", w.token, ch(w.general), "hi ann", hello.Id)
	inThread := h.send(t, "bob", w.token, w.thread, "<@carl> look", "")
	h.waitFor(t, "carl", inThread.Id)
	inbox = h.waitFor(t, "ann", reply.Id)
	if got := about(inbox, reply.Id); len(got) != 1 || got[0].Kind != notificationv1.NotificationKind_NOTIFICATION_KIND_REPLY || got[0].AuthorId != "bob" {
		t.Fatalf("ann's notification of the reply: %v", got)
	}
	if got := about(inbox, hello.Id); len(got) != 0 {
		t.Fatalf("ann was notified of her own mention of herself: %v", got)
	}
	if got := about(h.inbox(t, "carl"), secret.Id); len(got) != 0 {
		t.Fatalf("carl was notified of a channel he cannot see: %v", got)
	}

	// carl: one in the thread; then one more in #general.
	again := h.send(t, "ann", w.token, ch(w.general), "<@carl> and <@bob>", "")
	h.waitFor(t, "carl", again.Id)
	counts := must(h.notification.GetNotificationCounts(ctx, as("carl", "", &notificationv1.GetNotificationCountsRequest{}))).Msg
	if counts.Total != 2 || len(counts.Servers) != 1 || counts.Servers[0].ServerId != w.server || counts.Servers[0].Unread != 2 {
		t.Fatalf("carl's counts: %v", counts)
	}
	perConv := map[string]uint32{}
	for _, c := range counts.Conversations {
		perConv[c.Conversation] = c.Unread
	}
	if len(perConv) != 2 || perConv[w.thread] != 1 || perConv[ch(w.general)] != 1 {
		t.Fatalf("carl's counts per conversation: %v", counts.Conversations)
	}

	// Marking read: one conversation, then by id, then all up to one.
	marked := must(h.notification.MarkNotificationsRead(ctx, as("carl", "", &notificationv1.MarkNotificationsReadRequest{
		Which: &notificationv1.MarkNotificationsReadRequest_Conversation{Conversation: w.thread}}))).Msg
	if marked.Marked != 1 {
		t.Fatalf("marked %d in the thread, want 1", marked.Marked)
	}
	unread := must(h.notification.ListNotifications(ctx, as("carl", "", &notificationv1.ListNotificationsRequest{UnreadOnly: true}))).Msg
	if len(unread.Notifications) != 1 || unread.Notifications[0].MessageId != again.Id {
		t.Fatalf("carl's unread: %v", unread.Notifications)
	}
	// bob cannot mark carl's.
	if got := must(h.notification.MarkNotificationsRead(ctx, as("bob", "", &notificationv1.MarkNotificationsReadRequest{
		Which: &notificationv1.MarkNotificationsReadRequest_Ids{Ids: &notificationv1.NotificationIds{Ids: []string{unread.Notifications[0].Id}}}}))).Msg; got.Marked != 0 {
		t.Fatalf("bob marked %d of carl's notifications", got.Marked)
	}
	marked = must(h.notification.MarkNotificationsRead(ctx, as("carl", "", &notificationv1.MarkNotificationsReadRequest{
		Which: &notificationv1.MarkNotificationsReadRequest_Ids{Ids: &notificationv1.NotificationIds{Ids: []string{unread.Notifications[0].Id}}}}))).Msg
	if marked.Marked != 1 {
		t.Fatalf("marked %d by id, want 1", marked.Marked)
	}
	if c := must(h.notification.GetNotificationCounts(ctx, as("carl", "", &notificationv1.GetNotificationCountsRequest{}))).Msg; c.Total != 0 || len(c.Servers) != 0 {
		t.Fatalf("carl's counts after reading: %v", c)
	}
	bobs := h.waitFor(t, "bob", again.Id)
	marked = must(h.notification.MarkNotificationsRead(ctx, as("bob", "", &notificationv1.MarkNotificationsReadRequest{
		Which: &notificationv1.MarkNotificationsReadRequest_UpToId{UpToId: bobs[1].Id}}))).Msg
	if marked.Marked != 1 {
		t.Fatalf("bob marked %d up to the older one, want 1", marked.Marked)
	}
	if c := must(h.notification.GetNotificationCounts(ctx, as("bob", "", &notificationv1.GetNotificationCountsRequest{}))).Msg; c.Total != 1 {
		t.Fatalf("bob's unread after marking the older one: %v", c)
	}

	// A deleted message takes its notifications away.
	must(h.chat.DeleteMessage(ctx, as("ann", w.token, &chatv1.DeleteMessageRequest{Conversation: ch(w.general), MessageId: again.Id})))
	h.settle(t, w)
	if got := about(h.inbox(t, "bob"), again.Id); len(got) != 0 {
		t.Fatalf("a deleted message's notification stays: %v", got)
	}
}

// TestPaging: newest first, in pages.
func TestPaging(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	var ids []string
	for range 5 {
		ids = append(ids, h.send(t, "ann", w.token, ch(w.general), "<@bob>", "").Id)
	}
	h.waitFor(t, "bob", ids[4])
	var got []string
	token := ""
	for pages := 0; ; pages++ {
		resp := must(h.notification.ListNotifications(t.Context(), as("bob", "", &notificationv1.ListNotificationsRequest{PageSize: 2, PageToken: token}))).Msg
		for _, n := range resp.Notifications {
			got = append(got, n.MessageId)
		}
		if token = resp.NextPageToken; token == "" {
			break
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if len(got) != 5 || got[0] != ids[4] || got[4] != ids[0] {
		t.Fatalf("pages: %v, want newest first %v", got, ids)
	}
}

// TestSuppressed: nothing for whoever muted the channel, the server or the
// thread's channel, or blocked the author; broad mentions reach the
// others; muting what one cannot see is refused; an expired mute stops.
func TestSuppressed(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()
	must(h.notification.SetMute(ctx, as("bob", w.token, &notificationv1.SetMuteRequest{Target: ch(w.general), Muted: true})))
	must(h.notification.SetMute(ctx, as("carl", w.token, &notificationv1.SetMuteRequest{Target: "server:" + w.server, Muted: true})))
	zed := h.block(t, "dee", "ann")
	// bob muted #general: its thread too.
	muted := h.send(t, "ann", zed, ch(w.general), "<@bob> <@carl> <@dee>", "")
	inThread := h.send(t, "ann", zed, w.thread, "<@bob> in the thread", "")
	// A sentinel everyone else may receive: ann, from carl... whom nobody blocked.
	sentinel := h.send(t, "carl", zed, ch(w.general), "<@ann> ok", "")
	h.waitFor(t, "ann", sentinel.Id)
	for _, u := range []string{"bob", "carl", "dee"} {
		if got := about(h.inbox(t, u), muted.Id); len(got) != 0 {
			t.Errorf("%s was notified despite a mute or block: %v", u, got)
		}
	}
	if got := about(h.inbox(t, "bob"), inThread.Id); len(got) != 0 {
		t.Errorf("bob was notified in a thread of the channel he muted: %v", got)
	}

	mutes := must(h.notification.ListMutes(ctx, as("bob", "", &notificationv1.ListMutesRequest{}))).Msg.Mutes
	if len(mutes) != 1 || mutes[0].Target != ch(w.general) || mutes[0].Until != nil {
		t.Fatalf("bob's mutes: %v", mutes)
	}
	// Unmuted, bob hears again; carl mutes for a moment only.
	must(h.notification.SetMute(ctx, as("bob", w.token, &notificationv1.SetMuteRequest{Target: ch(w.general), Muted: false})))
	must(h.notification.SetMute(ctx, as("carl", w.token, &notificationv1.SetMuteRequest{Target: "server:" + w.server, Muted: true,
		Until: timestamppb.New(time.Now().Add(300 * time.Millisecond))})))
	time.Sleep(400 * time.Millisecond)
	heard := h.send(t, "ann", zed, ch(w.general), "<@bob> <@carl>", "")
	h.waitFor(t, "bob", heard.Id)
	h.waitFor(t, "carl", heard.Id)
	if got := must(h.notification.ListMutes(ctx, as("carl", "", &notificationv1.ListMutesRequest{}))).Msg.Mutes; len(got) != 0 {
		t.Fatalf("carl's expired mute is listed: %v", got)
	}

	// Muting #staff, which bob cannot see, is refused; and nonsense is invalid.
	_, err := h.notification.SetMute(ctx, as("bob", zed, &notificationv1.SetMuteRequest{Target: ch(w.staff), Muted: true}))
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("bob mutes #staff: %v, want permission_denied", err)
	}
	_, err = h.notification.SetMute(ctx, as("zoe", zed, &notificationv1.SetMuteRequest{Target: "server:" + w.server, Muted: true}))
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("a stranger mutes the server: %v, want permission_denied", err)
	}
	_, err = h.notification.SetMute(ctx, as("bob", zed, &notificationv1.SetMuteRequest{Target: "role:" + w.server, Muted: true}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("muting a role: %v, want invalid_argument", err)
	}
}

// TestBroadMentions: @everyone, @here and a role ping their people when
// the author may mention everyone (ann owns the server), @here only those
// online, never those who cannot see the channel.
func TestBroadMentions(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()
	everyone := h.send(t, "ann", w.token, ch(w.general), "@everyone meeting", "")
	for _, u := range []string{"bob", "carl", "dee"} {
		h.waitFor(t, u, everyone.Id)
	}
	role := must(h.community.CreateRole(ctx, as("ann", w.token, &communityv1.CreateRoleRequest{ServerId: w.server, Name: "Crew"})))
	zed := must(h.community.AddMemberRole(ctx, as("ann", role.Msg.ZedToken, &communityv1.AddMemberRoleRequest{RoleId: role.Msg.Role.Id, UserId: "carl"}))).Msg.ZedToken
	crew := h.send(t, "ann", zed, ch(w.general), "<@&"+role.Msg.Role.Id+"> deploy", "")
	h.waitFor(t, "carl", crew.Id)
	// Nobody sees #staff but ann: @everyone there pings nobody.
	hidden := h.send(t, "ann", zed, ch(w.staff), "@everyone secret", "")
	h.settle(t, w)
	for _, u := range []string{"bob", "dee"} {
		if got := about(h.inbox(t, u), crew.Id); len(got) != 0 {
			t.Errorf("%s, without the role, was notified of its mention", u)
		}
		if got := about(h.inbox(t, u), hidden.Id); len(got) != 0 {
			t.Errorf("%s was notified of @everyone in a channel they cannot see", u)
		}
	}
	// bob, who may not mention everyone, pings nobody with @everyone.
	plain := h.send(t, "bob", zed, ch(w.general), "@everyone hey", "")
	h.settle(t, w)
	if got := about(h.inbox(t, "carl"), plain.Id); len(got) != 0 {
		t.Errorf("bob's @everyone pinged carl")
	}
	// @here pings those online as it is sent: bob holds a stream, carl and
	// dee do not.
	streaming, cancel := context.WithCancel(ctx)
	defer cancel()
	subscribe(t, streaming, h, "bob", "")
	here := h.send(t, "ann", zed, ch(w.general), "@here standup", "")
	h.waitFor(t, "bob", here.Id)
	h.settle(t, w)
	for _, u := range []string{"carl", "dee"} {
		if got := about(h.inbox(t, u), here.Id); len(got) != 0 {
			t.Errorf("%s, offline, was notified of @here", u)
		}
	}
}

// TestLive: the notification arrives on the recipient's stream, and is
// replayed when they resume.
func TestLive(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	stream := subscribe(t, ctx, h, "bob", "")
	m := h.send(t, "ann", w.token, ch(w.general), "<@bob> live", "")
	var got *chatv1.StreamEvent
	for stream.Receive() {
		if ev := stream.Msg(); ev.GetNotificationCreated() != nil {
			got = ev
			break
		}
	}
	if got == nil {
		t.Fatalf("no NotificationCreated on bob's stream: %v", stream.Err())
	}
	nc := got.GetNotificationCreated()
	if nc.Kind != "mention" || nc.Message.GetId() != m.Id || nc.Conversation != ch(w.general) || nc.ServerId != w.server || nc.NotificationId == "" || got.Id == "" {
		t.Fatalf("NotificationCreated: %v", got)
	}
	if inbox := h.waitFor(t, "bob", m.Id); about(inbox, m.Id)[0].Id != nc.NotificationId {
		t.Fatalf("the live notification is not the listed one")
	}
	// carl's stream never carries bob's notification.
	carl := subscribe(t, ctx, h, "carl", "")
	_ = h.send(t, "ann", w.token, ch(w.general), "<@bob> again", "")
	last := h.send(t, "ann", w.token, ch(w.general), "<@carl> yours", "")
	for carl.Receive() {
		ev := carl.Msg()
		if n := ev.GetNotificationCreated(); n != nil {
			if n.Message.GetId() != last.Id {
				t.Fatalf("carl received someone else's notification: %v", ev)
			}
			break
		}
	}
	// Resuming from the log's start: it is replayed.
	resumed, err := h.stream.Subscribe(ctx, as("bob", "", &chatv1.SubscribeRequest{ResumeAfter: "0.0"}))
	if err != nil {
		t.Fatal(err)
	}
	for resumed.Receive() {
		ev := resumed.Msg()
		if ev.GetReady() != nil {
			break
		}
		if n := ev.GetNotificationCreated(); n != nil && n.NotificationId == nc.NotificationId {
			return
		}
	}
	t.Fatalf("the notification was not replayed on resume: %v", resumed.Err())
}

func subscribe(t *testing.T, ctx context.Context, h *harness, user, resumeAfter string) *connect.ServerStreamForClient[chatv1.StreamEvent] {
	t.Helper()
	stream, err := h.stream.Subscribe(ctx, as(user, "", &chatv1.SubscribeRequest{ResumeAfter: resumeAfter}))
	if err != nil {
		t.Fatal(err)
	}
	for stream.Receive() {
		if stream.Msg().GetReady() != nil {
			return stream
		}
	}
	t.Fatalf("%s's stream: no Ready: %v", user, stream.Err())
	return nil
}

// TestRestart: a notification service stopped while messages are sent
// makes their notifications when it starts again, once each.
func TestRestart(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	before := h.send(t, "ann", w.token, ch(w.general), "<@bob> before", "")
	h.waitFor(t, "bob", before.Id)
	h.stop()
	during := h.send(t, "ann", w.token, ch(w.general), "<@bob> during", "")
	time.Sleep(200 * time.Millisecond)
	if got := about(h.inbox(t, "bob"), during.Id); len(got) != 0 {
		t.Fatalf("notified while stopped: %v", got)
	}
	h.start()
	h.waitFor(t, "bob", during.Id)
	h.stop()
	h.start()
	h.settle(t, w)
	inbox := h.inbox(t, "bob")
	if len(about(inbox, before.Id)) != 1 || len(about(inbox, during.Id)) != 1 || len(inbox) != 2 {
		t.Fatalf("after two restarts bob has %d notifications: %v", len(inbox), inbox)
	}
}

// TestOneConsumer: of two instances, one consumes; when it stops, or its
// session dies, the other takes over.
func TestOneConsumer(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	second := run(t, h.newInstance().Run)
	defer second()
	first := h.send(t, "ann", w.token, ch(w.general), "<@bob> one", "")
	h.waitFor(t, "bob", first.Id)
	if n := notification.Leading(); n != 1 {
		t.Fatalf("%d instances consume, want 1", n)
	}
	h.stop()
	next := h.send(t, "ann", w.token, ch(w.general), "<@bob> two", "")
	h.waitFor(t, "bob", next.Id)
	if n := notification.Leading(); n != 1 {
		t.Fatalf("%d instances consume after the first stopped, want 1", n)
	}
	// The holder's session dies (its connection is cut): it stops, and an
	// instance takes the lead again.
	var killed int
	if err := h.db.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("cutting the lead's session: %d sessions, %v", killed, err)
	}
	third := h.send(t, "ann", w.token, ch(w.general), "<@bob> three", "")
	h.waitFor(t, "bob", third.Id)
	// The former holder notices at its next ping.
	for deadline := time.Now().Add(5 * time.Second); notification.Leading() != 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d instances consume after the lead's session died, want 1", notification.Leading())
		}
	}
	if got := h.inbox(t, "bob"); len(got) != 3 {
		t.Fatalf("bob has %d notifications, want 3", len(got))
	}
}

// TestLeftConversationsAreNotListed: once dee leaves the server, the
// notifications she got there are neither listed nor counted.
func TestLeftConversationsAreNotListed(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()
	m := h.send(t, "ann", w.token, ch(w.general), "<@dee> and <@bob>", "")
	h.waitFor(t, "dee", m.Id)
	left := must(h.community.LeaveServer(ctx, as("dee", w.token, &communityv1.LeaveServerRequest{ServerId: w.server}))).Msg.ZedToken
	list := must(h.notification.ListNotifications(ctx, as("dee", left, &notificationv1.ListNotificationsRequest{}))).Msg
	if len(list.Notifications) != 0 {
		t.Fatalf("dee, gone, lists %v", list.Notifications)
	}
	if c := must(h.notification.GetNotificationCounts(ctx, as("dee", left, &notificationv1.GetNotificationCountsRequest{}))).Msg; c.Total != 0 || len(c.Conversations) != 0 {
		t.Fatalf("dee, gone, counts %v", c)
	}
	if inbox := h.waitFor(t, "bob", m.Id); len(inbox) != 1 {
		t.Fatalf("bob's inbox: %v", inbox)
	}
}
