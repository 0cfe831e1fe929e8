package connectauthz_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	"github.com/beepchat/beep/authz/inprocess"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	"github.com/beepchat/beep/gen/beep/chat/v1/chatv1connect"
)

// chatHandler answers SendMessage when the interceptor lets it through.
type chatHandler struct {
	chatv1connect.UnimplementedChatServiceHandler
}

func (chatHandler) SendMessage(_ context.Context, req *connect.Request[chatv1.SendMessageRequest]) (*connect.Response[chatv1.SendMessageResponse], error) {
	return connect.NewResponse(&chatv1.SendMessageResponse{Message: &chatv1.Message{Conversation: req.Msg.Conversation}}), nil
}

// TestResourceTypes: an RPC whose resource is one of several definitions
// (SendMessage: send_messages on a channel, a thread or a dm_channel,
// named "type:id") is checked on the object named; a reference that is
// malformed or of another type is refused as invalid before any check.
func TestResourceTypes(t *testing.T) {
	srv, err := inprocess.Start(t.Context(), inprocess.Config{Schema: authz.SchemaText})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := srv.Client()
	rel := func(r authz.Relation, id string, s authz.Subject) authz.Update {
		return authz.Touch(authz.Relationship{Relation: r, ResourceID: id, Subject: s})
	}
	// ann owns server s, with channel c and its public thread t, and is in
	// the group DM d.
	at, err := c.Write(t.Context(), []authz.Update{
		rel(authz.Server.Owner, "s", authz.UserSubject("ann")),
		rel(authz.Server.Member, "s", authz.UserSubject("ann")),
		rel(authz.Channel.Server, "c", authz.TypeServer.Object("s").Subject()),
		rel(authz.Channel.OverwritesFrom, "c", authz.TypeChannel.Object("c").Subject()),
		rel(authz.Thread.Parent, "t", authz.TypeChannel.Object("c").Subject()),
		rel(authz.Thread.Public, "t", authz.Wildcard(authz.TypeUser)),
		rel(authz.DmChannel.Member, "d", authz.UserSubject("ann")),
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(chatv1connect.NewChatServiceHandler(chatHandler{},
		connect.WithInterceptors(connectauthz.New(c, slog.New(slog.NewTextHandler(io.Discard, nil))))))
	httpSrv := httptest.NewServer(testAuthentication(mux))
	defer httpSrv.Close()
	client := chatv1connect.NewChatServiceClient(httpSrv.Client(), httpSrv.URL)
	send := func(user, conversation string) error {
		req := connect.NewRequest(&chatv1.SendMessageRequest{Conversation: conversation, Content: "hi"})
		if user != "" {
			req.Header().Set("Test-User", user)
		}
		req.Header().Set(connectauthz.TokenHeader, string(at))
		resp, err := client.SendMessage(t.Context(), req)
		if err == nil && resp.Msg.Message.Conversation != conversation {
			t.Fatalf("the handler saw %q", resp.Msg.Message.Conversation)
		}
		return err
	}

	malformed := []string{"", "c", ":c", "channel:", "channel:*", "channel:a b", "channel:c:d", "Channel:c",
		"server:s", "message:m", "user:ann", "channel_c", "channel:" + strings.Repeat("x", 1025)}
	tests := []struct {
		name, user, conversation string
		want                     connect.Code // 0: allowed
	}{
		{"a channel", "ann", "channel:c", 0},
		{"a thread", "ann", "thread:t", 0},
		{"a dm_channel", "ann", "dm_channel:d", 0},
		{"a stranger in the channel", "bob", "channel:c", connect.CodePermissionDenied},
		{"a stranger in the thread", "bob", "thread:t", connect.CodePermissionDenied},
		{"a stranger in the DM", "bob", "dm_channel:d", connect.CodePermissionDenied},
		{"a DM that does not exist", "ann", "dm_channel:nope", connect.CodePermissionDenied},
		{"anonymous", "", "channel:c", connect.CodeUnauthenticated},
	}
	for _, ref := range malformed {
		tests = append(tests, struct {
			name, user, conversation string
			want                     connect.Code
		}{"malformed " + ref, "ann", ref, connect.CodeInvalidArgument})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := send(tt.user, tt.conversation)
			if tt.want == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if connect.CodeOf(err) != tt.want {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	if err := send("bob", "thread:t"); !strings.Contains(err.Error(), "send_messages on this thread") {
		t.Errorf("the refusal does not name the permission and type: %v", err)
	}

	// Without SpiceDB, a well-formed reference is unavailable; a malformed
	// one is still invalid: it was refused before any check.
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := send("ann", "channel:c"); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("with SpiceDB stopped: %v, want Unavailable", err)
	}
	for _, ref := range malformed {
		if err := send("ann", ref); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("%q with SpiceDB stopped: %v, want InvalidArgument", ref, err)
		}
	}
}

func TestParseObjectRef(t *testing.T) {
	types := []string{"channel", "thread", "dm_channel"}
	for ref, want := range map[string]authz.Object{
		"channel:0190a3c4-7b1e-7c00-8000-000000000001": authz.TypeChannel.Object("0190a3c4-7b1e-7c00-8000-000000000001"),
		"dm_channel:x_y|z=+/-":                         authz.TypeDmChannel.Object("x_y|z=+/-"),
	} {
		got, err := connectauthz.ParseObjectRef(ref, types)
		if err != nil || got != want {
			t.Errorf("ParseObjectRef(%q) = %v, %v; want %v", ref, got, err, want)
		}
	}
	for _, ref := range []string{"thread", "thread:", "thread:*", "role:r", "thread:é"} {
		if _, err := connectauthz.ParseObjectRef(ref, types); err == nil {
			t.Errorf("ParseObjectRef(%q) accepted", ref)
		}
	}
}
