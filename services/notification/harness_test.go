package notification_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	"github.com/beepchat/beep/authz/inprocess"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	"github.com/beepchat/beep/gen/beep/chat/v1/chatv1connect"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
	"github.com/beepchat/beep/gen/beep/community/v1/communityv1connect"
	notificationv1 "github.com/beepchat/beep/gen/beep/notification/v1"
	"github.com/beepchat/beep/gen/beep/notification/v1/notificationv1connect"
	"github.com/beepchat/beep/internal/pgtest"
	"github.com/beepchat/beep/services/chat"
	"github.com/beepchat/beep/services/community"
	"github.com/beepchat/beep/services/notification"
)

// harness is the notification service with the chat and community services
// it depends on, each on its own database and HTTP server, one in-process
// SpiceDB, talking as in production: through generated clients, the
// principal signed with the internal key.
type harness struct {
	authz        *authz.Client
	community    communityv1connect.CommunityServiceClient
	chat         chatv1connect.ChatServiceClient
	stream       chatv1connect.StreamServiceClient
	notification notificationv1connect.NotificationServiceClient
	// erasure is the internal ErasureService's client, signing the
	// context's principal.
	erasure notificationv1connect.ErasureServiceClient
	chatURL string
	url     string // the notification service's HTTP server
	signer  *connectauthz.Signer
	db      *pgxpool.Pool
	// newInstance makes another instance of the notification service on
	// the same database, not running.
	newInstance func() *notification.Service
	// stop stops the running instance; start starts a new one.
	stop  func()
	start func()
}

// testAuthentication stands in for the gateway: the user named in a header.
func testAuthentication(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u := r.Header.Get("Test-User"); u != "" {
			r = r.WithContext(authz.WithPrincipal(r.Context(), authz.Principal{UserID: u}))
		}
		next.ServeHTTP(w, r)
	})
}

// run runs f until stopped.
func run(t *testing.T, f func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

func start(t *testing.T) *harness {
	t.Helper()
	ctx := t.Context()
	spice, err := inprocess.Start(ctx, inprocess.Config{Schema: authz.SchemaText})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = spice.Close() })
	pool := func(prefix string) *pgxpool.Pool {
		p, err := pgxpool.New(ctx, pgtest.NewDatabase(t, prefix))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	signer, err := connectauthz.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	checks := connect.WithInterceptors(connectauthz.New(spice.Client(), log, connectauthz.WithSigner(signer)))
	forward := connect.WithInterceptors(connectauthz.Forward(signer))

	comm, err := community.New(ctx, pool("beep_notification_test_community"), spice.Client(), log)
	if err != nil {
		t.Fatal(err)
	}
	communityMux := http.NewServeMux()
	communityMux.Handle(comm.Handler(checks))
	communitySrv := httptest.NewServer(testAuthentication(communityMux))
	t.Cleanup(communitySrv.Close)

	chatSvc, err := chat.New(ctx, chat.Config{DB: pool("beep_notification_test_chat"), Authz: spice.Client(), Log: log,
		Community: communityv1connect.NewCommunityServiceClient(communitySrv.Client(), communitySrv.URL, forward)})
	if err != nil {
		t.Fatal(err)
	}
	run(t, chatSvc.Stream().Run)
	chatMux := http.NewServeMux()
	chatMux.Handle(chatSvc.Handler(checks))
	chatMux.Handle(chatSvc.Stream().Handler(checks))
	chatMux.Handle(chatSvc.Feed().Handler(checks))
	chatSrv := httptest.NewServer(testAuthentication(chatMux))
	t.Cleanup(chatSrv.Close)

	h := &harness{authz: spice.Client(), signer: signer, chatURL: chatSrv.URL, db: pool("beep_notification_test"),
		community: communityv1connect.NewCommunityServiceClient(communitySrv.Client(), communitySrv.URL),
		chat:      chatv1connect.NewChatServiceClient(chatSrv.Client(), chatSrv.URL),
		stream:    chatv1connect.NewStreamServiceClient(chatSrv.Client(), chatSrv.URL)}
	h.newInstance = func() *notification.Service {
		svc, err := notification.New(ctx, notification.Config{DB: h.db, Authz: spice.Client(), Log: log, Retry: 100 * time.Millisecond,
			Feed: chatv1connect.NewEventFeedServiceClient(chatSrv.Client(), chatSrv.URL, forward)})
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	svc := h.newInstance()
	mux := http.NewServeMux()
	mux.Handle(svc.Handler(checks))
	mux.Handle(svc.InternalHandler(checks))
	srv := httptest.NewServer(testAuthentication(mux))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	h.notification = notificationv1connect.NewNotificationServiceClient(srv.Client(), srv.URL)
	h.erasure = notificationv1connect.NewErasureServiceClient(srv.Client(), srv.URL, forward)
	h.start = func() { h.stop = run(t, h.newInstance().Run) }
	h.stop = run(t, svc.Run)
	return h
}

// as makes a request from user, at least as fresh as token.
func as[T any](user, token string, msg *T) *connect.Request[T] {
	req := connect.NewRequest(msg)
	if user != "" {
		req.Header().Set("Test-User", user)
	}
	if token != "" {
		req.Header().Set(connectauthz.TokenHeader, token)
	}
	return req
}

// must is for calls that set a test up: their failure ends the run.
func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("unexpected error: %v", err))
	}
	return v
}

func ch(id string) string { return "channel:" + id }

// world: ann owns Gophers; bob, carl and dee are members. #general is
// open; #staff is seen by ann alone. bob started a thread in #general.
type world struct {
	server, general, staff, thread string
	token                          string
}

func setUp(t *testing.T, h *harness) *world {
	t.Helper()
	ctx := t.Context()
	w := &world{}
	created := must(h.community.CreateServer(ctx, as("ann", "", &communityv1.CreateServerRequest{Name: "Gophers", Public: true})))
	w.server, w.general, w.token = created.Msg.Server.Id, created.Msg.GeneralChannel.Id, created.Msg.ZedToken
	staff := must(h.community.CreateChannel(ctx, as("ann", w.token, &communityv1.CreateChannelRequest{ServerId: w.server, Name: "staff",
		Kind: communityv1.ChannelKind_CHANNEL_KIND_TEXT, Overwrites: []*communityv1.PermissionOverwrite{
			{TargetKind: communityv1.TargetKind_TARGET_KIND_EVERYONE, Deny: []string{"view_channel"}},
		}})))
	w.staff, w.token = staff.Msg.Channel.Id, staff.Msg.ZedToken
	for _, u := range []string{"bob", "carl", "dee"} {
		w.token = must(h.community.JoinServer(ctx, as(u, w.token, &communityv1.JoinServerRequest{ServerId: w.server}))).Msg.ZedToken
	}
	thread := must(h.community.CreateThread(ctx, as("bob", w.token, &communityv1.CreateThreadRequest{ChannelId: w.general, Name: "plans"})))
	w.thread, w.token = "thread:"+thread.Msg.Thread.Id, thread.Msg.ZedToken
	return w
}

// send posts a message and returns it.
func (h *harness) send(t *testing.T, user, token, conv, content, replyTo string) *chatv1.Message {
	t.Helper()
	resp, err := h.chat.SendMessage(t.Context(), as(user, token, &chatv1.SendMessageRequest{Conversation: conv, Content: content, ReplyToId: replyTo}))
	if err != nil {
		t.Fatalf("%s sends %q in %s: %v", user, content, conv, err)
	}
	return resp.Msg.Message
}

// inbox is user's notifications, newest first.
func (h *harness) inbox(t *testing.T, user string) []*notificationv1.Notification {
	t.Helper()
	resp, err := h.notification.ListNotifications(t.Context(), as(user, "", &notificationv1.ListNotificationsRequest{}))
	if err != nil {
		t.Fatalf("%s lists notifications: %v", user, err)
	}
	return resp.Msg.Notifications
}

// waitFor waits until user has a notification of message and returns
// their inbox then.
func (h *harness) waitFor(t *testing.T, user, message string) []*notificationv1.Notification {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		inbox := h.inbox(t, user)
		for _, n := range inbox {
			if n.MessageId == message {
				return inbox
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was never notified of %s; inbox: %v", user, message, inbox)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settle sends a mention of dee by ann in #general and waits for it: the
// feed is handled in order, so every event before it was handled too.
func (h *harness) settle(t *testing.T, w *world) {
	t.Helper()
	m := h.send(t, "ann", w.token, ch(w.general), "<@dee> ping", "")
	h.waitFor(t, "dee", m.Id)
}

// about are the notifications of message among inbox.
func about(inbox []*notificationv1.Notification, message string) []*notificationv1.Notification {
	var out []*notificationv1.Notification
	for _, n := range inbox {
		if n.MessageId == message {
			out = append(out, n)
		}
	}
	return out
}

// block makes a block, as the user service writes it.
func (h *harness) block(t *testing.T, who, whom string) string {
	t.Helper()
	token, err := h.authz.Write(t.Context(), []authz.Update{
		authz.Touch(authz.Relationship{Relation: authz.User.Blocked, ResourceID: who, Subject: authz.UserSubject(whom)}),
		authz.Touch(authz.Relationship{Relation: authz.User.BlockedBy, ResourceID: whom, Subject: authz.UserSubject(who)}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(token)
}
