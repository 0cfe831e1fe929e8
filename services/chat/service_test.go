package chat_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
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
	"github.com/beepchat/beep/internal/pgtest"
	"github.com/beepchat/beep/services/chat"
	"github.com/beepchat/beep/services/community"
)

// harness is the chat service and the community service it asks, on their
// own databases and one in-process SpiceDB, talking as in production:
// through generated clients, the principal signed with the internal key.
type harness struct {
	svc       *chat.Service
	chat      chatv1connect.ChatServiceClient
	community communityv1connect.CommunityServiceClient
	authz     *authz.Client
	db        *pgxpool.Pool
	url       string // the chat service's HTTP server
	events    *recorder
	stream    chatv1connect.StreamServiceClient
	erasure   chatv1connect.ChatErasureServiceClient
	// instance starts another instance of the service on the same
	// database and returns its stream's client; others are those
	// instances.
	instance func() chatv1connect.StreamServiceClient
	others   []*chat.Service
	// stopSpiceDB stops the authorization graph, as an outage would.
	stopSpiceDB func()
	// feed is the internal event feed's client, signing the context's
	// principal (feed_test.go).
	feed chatv1connect.EventFeedServiceClient
}

// recorder is a Publisher that keeps what it is told.
type recorder struct {
	mu     sync.Mutex
	events []chat.Event
}

func (r *recorder) Published(_ context.Context, e chat.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// kinds are the kinds of the events recorded since the last call.
func (r *recorder) take() []chat.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

// testAuthentication stands in for the gateway: the user named in a header.
func testAuthentication(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u := r.Header.Get("Test-User"); u != "" {
			r = r.WithContext(authz.WithPrincipal(r.Context(), authz.Principal{UserID: u}))
		}
		if s := r.Header.Get("Test-Service"); s != "" {
			r = r.WithContext(authz.WithPrincipal(r.Context(), authz.ServicePrincipal(s)))
		}
		next.ServeHTTP(w, r)
	})
}

// start sets up a harness; tune, if given, adjusts each chat instance's
// configuration.
func start(t *testing.T, tune ...func(*chat.Config)) *harness {
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
	interceptor := connectauthz.New(spice.Client(), log, connectauthz.WithSigner(signer))
	checks := connect.WithInterceptors(interceptor)

	comm, err := community.New(ctx, pool("beep_chat_test_community"), spice.Client(), log)
	if err != nil {
		t.Fatal(err)
	}
	communityMux := http.NewServeMux()
	communityMux.Handle(comm.Handler(checks))
	communityMux.Handle(comm.InternalHandler(checks))
	communitySrv := httptest.NewServer(testAuthentication(communityMux))
	t.Cleanup(communitySrv.Close)

	h := &harness{authz: spice.Client(), db: pool("beep_chat_test"), events: &recorder{},
		community: communityv1connect.NewCommunityServiceClient(communitySrv.Client(), communitySrv.URL)}
	// An instance of the chat service with its stream running, on its own
	// HTTP server.
	instance := func(publisher chat.Publisher) (*chat.Service, *httptest.Server) {
		cfg := chat.Config{DB: h.db, Authz: spice.Client(), Log: log, Publisher: publisher,
			Community: communityv1connect.NewCommunityServiceClient(communitySrv.Client(), communitySrv.URL,
				connect.WithInterceptors(connectauthz.Forward(signer))),
			Deletions: communityv1connect.NewErasureServiceClient(communitySrv.Client(), communitySrv.URL,
				connect.WithInterceptors(connectauthz.Forward(signer)))}
		for _, f := range tune {
			f(&cfg)
		}
		svc, err := chat.New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		streamCtx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = svc.Stream().Run(streamCtx) }()
		t.Cleanup(func() { stop(); <-done })
		mux := http.NewServeMux()
		mux.Handle(svc.Handler(checks))
		mux.Handle(svc.Stream().Handler(checks))
		mux.Handle(svc.Stream().WebSocketHandler(interceptor))
		mux.Handle(svc.Erasure().Handler(checks))
		mux.Handle(svc.Feed().Handler(checks))
		srv := httptest.NewServer(testAuthentication(mux))
		t.Cleanup(srv.Close)
		return svc, srv
	}
	var chatSrv *httptest.Server
	h.svc, chatSrv = instance(h.events)
	h.url = chatSrv.URL
	h.chat = chatv1connect.NewChatServiceClient(chatSrv.Client(), chatSrv.URL)
	h.stream = chatv1connect.NewStreamServiceClient(chatSrv.Client(), chatSrv.URL)
	h.erasure = chatv1connect.NewChatErasureServiceClient(chatSrv.Client(), chatSrv.URL)
	h.stopSpiceDB = func() { _ = spice.Close() }
	h.feed = chatv1connect.NewEventFeedServiceClient(chatSrv.Client(), chatSrv.URL, connect.WithInterceptors(connectauthz.Forward(signer)))
	h.instance = func() chatv1connect.StreamServiceClient {
		svc, srv := instance(nil)
		h.others = append(h.others, svc)
		return chatv1connect.NewStreamServiceClient(srv.Client(), srv.URL)
	}
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

func code(t *testing.T, err error, want connect.Code) {
	t.Helper()
	if connect.CodeOf(err) != want {
		t.Fatalf("got %v, want %v", err, want)
	}
}

// world: ann owns the public server Gophers. bob, carl and mo are members;
// mo holds Mods (manage_messages), bob holds Crew. #general is open; #staff
// is seen by Crew only; #archive denies @everyone read_message_history;
// #quiet denies @everyone add_reactions; #news is an announcement channel,
// #lounge a voice channel. bob started a public thread in #general. ann and
// bob have a DM.
type world struct {
	server, general, staff, archive, quiet, news, lounge string
	thread, dm                                           string // conversation refs
	mods, crew                                           string // role ids
	token                                                string // the newest ZedToken
}

func ch(id string) string { return "channel:" + id }

func setUp(t *testing.T, h *harness) *world {
	t.Helper()
	ctx := t.Context()
	w := &world{}
	created := must(h.community.CreateServer(ctx, as("ann", "", &communityv1.CreateServerRequest{Name: "Gophers", Public: true})))
	w.server, w.general, w.token = created.Msg.Server.Id, created.Msg.GeneralChannel.Id, created.Msg.ZedToken
	role := func(name string, perms ...string) string {
		r := must(h.community.CreateRole(ctx, as("ann", w.token, &communityv1.CreateRoleRequest{ServerId: w.server, Name: name, Permissions: perms})))
		w.token = r.Msg.ZedToken
		return r.Msg.Role.Id
	}
	w.mods = role("Mods", "manage_messages")
	w.crew = role("Crew")
	channel := func(name string, kind communityv1.ChannelKind, overwrites ...*communityv1.PermissionOverwrite) string {
		c := must(h.community.CreateChannel(ctx, as("ann", w.token, &communityv1.CreateChannelRequest{ServerId: w.server, Name: name, Kind: kind, Overwrites: overwrites})))
		w.token = c.Msg.ZedToken
		return c.Msg.Channel.Id
	}
	everyone := func(deny string) *communityv1.PermissionOverwrite {
		return &communityv1.PermissionOverwrite{TargetKind: communityv1.TargetKind_TARGET_KIND_EVERYONE, Deny: []string{deny}}
	}
	text := communityv1.ChannelKind_CHANNEL_KIND_TEXT
	w.staff = channel("staff", text, everyone("view_channel"),
		&communityv1.PermissionOverwrite{TargetKind: communityv1.TargetKind_TARGET_KIND_ROLE, TargetId: w.crew, Allow: []string{"view_channel"}})
	w.archive = channel("archive", text, everyone("read_message_history"))
	w.quiet = channel("quiet", text, everyone("add_reactions"))
	w.news = channel("news", communityv1.ChannelKind_CHANNEL_KIND_ANNOUNCEMENT)
	w.lounge = channel("lounge", communityv1.ChannelKind_CHANNEL_KIND_VOICE)
	for _, u := range []string{"bob", "carl", "mo"} {
		w.token = must(h.community.JoinServer(ctx, as(u, w.token, &communityv1.JoinServerRequest{ServerId: w.server}))).Msg.ZedToken
	}
	for user, r := range map[string]string{"mo": w.mods, "bob": w.crew} {
		w.token = must(h.community.AddMemberRole(ctx, as("ann", w.token, &communityv1.AddMemberRoleRequest{RoleId: r, UserId: user}))).Msg.ZedToken
	}
	thread := must(h.community.CreateThread(ctx, as("bob", w.token, &communityv1.CreateThreadRequest{ChannelId: w.general, Name: "plans"})))
	w.thread, w.token = "thread:"+thread.Msg.Thread.Id, thread.Msg.ZedToken
	dm := must(h.chat.OpenDM(ctx, as("ann", w.token, &chatv1.OpenDMRequest{UserId: "bob"})))
	w.dm, w.token = dm.Msg.DmChannel.Conversation, dm.Msg.ZedToken
	h.events.take()
	return w
}

// send posts a message and returns it.
func (h *harness) send(t *testing.T, user, token, conv, content string) *chatv1.Message {
	t.Helper()
	resp, err := h.chat.SendMessage(t.Context(), as(user, token, &chatv1.SendMessageRequest{Conversation: conv, Content: content}))
	if err != nil {
		t.Fatalf("%s sends %q in %s: %v", user, content, conv, err)
	}
	return resp.Msg.Message
}

// sendLatest posts a message without a ZedToken, as most sends are: its
// check may be answered at a revision a few seconds old, so it is retried
// while that revision predates what the test set up.
func (h *harness) sendLatest(t *testing.T, user, conv, content string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, err := h.chat.SendMessage(t.Context(), as(user, "", &chatv1.SendMessageRequest{Conversation: conv, Content: content}))
		if err == nil {
			return
		}
		if connect.CodeOf(err) != connect.CodePermissionDenied || time.Now().After(deadline) {
			t.Fatalf("%s sends %q in %s: %v", user, content, conv, err)
		}
	}
}

// list is a page of a conversation's history, as ids.
func (h *harness) list(t *testing.T, user, token string, req *chatv1.ListMessagesRequest) []string {
	t.Helper()
	resp, err := h.chat.ListMessages(t.Context(), as(user, token, req))
	if err != nil {
		t.Fatalf("%s lists %s: %v", user, req.Conversation, err)
	}
	ids := make([]string, len(resp.Msg.Messages))
	for i, m := range resp.Msg.Messages {
		ids[i] = m.Id
	}
	return ids
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
