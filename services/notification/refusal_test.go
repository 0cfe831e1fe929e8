package notification_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	authzv1 "github.com/beepchat/beep/gen/beep/authz/v1"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	"github.com/beepchat/beep/gen/beep/chat/v1/chatv1connect"
	notificationv1 "github.com/beepchat/beep/gen/beep/notification/v1"
)

func requirement(t *testing.T, m protoreflect.MethodDescriptor) *authzv1.Requirement {
	req, _ := proto.GetExtension(m.Options(), authzv1.E_Requires).(*authzv1.Requirement)
	if req == nil {
		t.Fatalf("%s declares no permission", m.FullName())
	}
	return req
}

// TestEveryRPCRefuses calls every RPC of NotificationService, read from its
// descriptor, anonymously: each is refused (they all need a signed-in
// caller, and act on the caller's own data). An RPC added later is covered
// without editing this test, or fails it if it declares anything else.
func TestEveryRPCRefuses(t *testing.T) {
	h := start(t)
	service := notificationv1.File_beep_notification_v1_notification_proto.Services().ByName("NotificationService")
	for i := range service.Methods().Len() {
		m := service.Methods().Get(i)
		t.Run(string(m.Name()), func(t *testing.T) {
			if !requirement(t, m).GetAuthenticated() {
				t.Fatalf("%s should require a signed-in caller (it acts on the caller's own data): say how to refuse it here", m.Name())
			}
			resp, err := http.Post(h.url+"/"+string(service.FullName())+"/"+string(m.Name()), "application/json", bytes.NewReader([]byte("{}")))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("anonymous: %s %s, want unauthenticated", resp.Status, body)
			}
		})
	}
}

// TestFeedIsForTheNotificationServiceOnly: every RPC of the chat service's
// internal EventFeedService, read from its descriptor, is refused to
// anonymous callers, to people and to another Beep service, and served to
// the notification service.
func TestFeedIsForTheNotificationServiceOnly(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	client := chatv1connect.NewEventFeedServiceClient(http.DefaultClient, h.chatURL, connect.WithInterceptors(connectauthz.Forward(h.signer)))
	callers := []struct {
		name string
		p    *authz.Principal
		want connect.Code
	}{
		{"anonymous", nil, connect.CodeUnauthenticated},
		{"a person", &authz.Principal{UserID: "ann"}, connect.CodePermissionDenied},
		{"the user service", &authz.Principal{Service: "user"}, connect.CodePermissionDenied},
		{"the notification service", &authz.Principal{Service: "notification"}, 0},
	}
	service := chatv1.File_beep_chat_v1_feed_proto.Services().ByName("EventFeedService")
	for i := range service.Methods().Len() {
		m := service.Methods().Get(i)
		if got := requirement(t, m).GetService(); got != "notification" {
			t.Fatalf("%s requires service %q, want notification", m.Name(), got)
		}
		for _, c := range callers {
			t.Run(string(m.Name())+"/"+c.name, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				if c.p != nil {
					ctx = authz.WithPrincipal(ctx, *c.p)
				}
				var err error
				switch m.Name() {
				case "Follow":
					var stream *connect.ServerStreamForClient[chatv1.FollowResponse]
					stream, err = client.Follow(ctx, connect.NewRequest(&chatv1.FollowRequest{}))
					if err == nil {
						if stream.Receive() {
							if stream.Msg().GetStart() == nil {
								t.Fatalf("the first message is not a FeedStart: %v", stream.Msg())
							}
						}
						err = stream.Err()
						stream.Close()
					}
				case "Deliver":
					_, err = client.Deliver(ctx, connect.NewRequest(&chatv1.DeliverRequest{UserId: "bob", Conversation: ch(w.general),
						Event: &chatv1.StreamEvent{Event: &chatv1.StreamEvent_NotificationCreated{NotificationCreated: &chatv1.NotificationCreated{Kind: "mention"}}}}))
				case "Online":
					_, err = client.Online(ctx, connect.NewRequest(&chatv1.OnlineRequest{UserIds: []string{"bob"}, At: timestamppb.Now()}))
				default:
					t.Fatalf("a new RPC %s: call it here", m.Name())
				}
				if got := connect.CodeOf(err); (c.want == 0 && err != nil) || (c.want != 0 && got != c.want) {
					t.Fatalf("%s: %v, want %v", c.name, err, c.want)
				}
			})
		}
	}
	// Deliver takes notifications only.
	ctx := authz.WithPrincipal(t.Context(), authz.ServicePrincipal("notification"))
	_, err := client.Deliver(ctx, connect.NewRequest(&chatv1.DeliverRequest{UserId: "bob", Conversation: ch(w.general),
		Event: &chatv1.StreamEvent{Event: &chatv1.StreamEvent_Typing{Typing: &chatv1.Typing{}}}}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("delivering a typing event: %v, want invalid_argument", err)
	}
}

// TestErasureIsForTheUserServiceOnly: every RPC of the internal
// ErasureService, read from its descriptor, is refused to anonymous
// callers, to people and to another Beep service; the user service erases
// a person's notifications, mutes, and the notifications of their messages.
func TestErasureIsForTheUserServiceOnly(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	service := notificationv1.File_beep_notification_v1_erasure_proto.Services().ByName("ErasureService")
	for i := range service.Methods().Len() {
		m := service.Methods().Get(i)
		if got := requirement(t, m).GetService(); got != "user" {
			t.Fatalf("%s requires service %q, want user", m.Name(), got)
		}
		if m.Name() != "EraseUser" {
			t.Fatalf("a new RPC %s: call it here", m.Name())
		}
		for _, c := range []struct {
			name string
			p    *authz.Principal
			want connect.Code
		}{
			{"anonymous", nil, connect.CodeUnauthenticated},
			{"the person", &authz.Principal{UserID: "bob"}, connect.CodePermissionDenied},
			{"the notification service", &authz.Principal{Service: "notification"}, connect.CodePermissionDenied},
		} {
			ctx := t.Context()
			if c.p != nil {
				ctx = authz.WithPrincipal(ctx, *c.p)
			}
			if _, err := h.erasure.EraseUser(ctx, connect.NewRequest(&notificationv1.EraseUserRequest{UserId: "bob"})); connect.CodeOf(err) != c.want {
				t.Errorf("%s, %s: %v, want %v", m.Name(), c.name, err, c.want)
			}
		}
	}
	ctx := t.Context()
	mine := h.send(t, "ann", w.token, ch(w.general), "<@bob>", "")
	h.waitFor(t, "bob", mine.Id)
	byBob := h.send(t, "bob", w.token, ch(w.general), "<@carl>", "")
	h.waitFor(t, "carl", byBob.Id)
	must(h.notification.SetMute(ctx, as("bob", w.token, &notificationv1.SetMuteRequest{Target: "server:" + w.server, Muted: true})))
	erased := must(h.erasure.EraseUser(authz.WithPrincipal(ctx, authz.ServicePrincipal("user")), connect.NewRequest(&notificationv1.EraseUserRequest{UserId: "bob"}))).Msg
	if erased.NotificationsRemoved != 2 || erased.MutesRemoved != 1 {
		t.Fatalf("erased: %v, want bob's notification, carl's of bob's message and bob's mute", erased)
	}
	if got := h.inbox(t, "bob"); len(got) != 0 {
		t.Fatalf("bob's inbox after erasure: %v", got)
	}
	if got := about(h.inbox(t, "carl"), byBob.Id); len(got) != 0 {
		t.Fatalf("carl's notification of bob's message stays: %v", got)
	}
	again := must(h.erasure.EraseUser(authz.WithPrincipal(ctx, authz.ServicePrincipal("user")), connect.NewRequest(&notificationv1.EraseUserRequest{UserId: "bob"}))).Msg
	if again.NotificationsRemoved != 0 || again.MutesRemoved != 0 {
		t.Fatalf("erasing again: %v", again)
	}
}
